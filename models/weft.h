// weft: everything a user program needs, in one include.
#pragma once

#include "weft/autodiff/gradcheck.h"
#include "weft/autodiff/op.h"
#include "weft/autodiff/tape.h"
#include "weft/autodiff/tensor.h"
#include "weft/ops/ops.h"
