// weft: everything a user program needs, in one include.
#pragma once

#include "weft/autodiff/gradcheck.h"
#include "weft/autodiff/op.h"
#include "weft/autodiff/tape.h"
#include "weft/autodiff/tensor.h"
#include "weft/models/core_layers.h"
#include "weft/models/layer_gradcheck.h"
#include "weft/models/datasets.h"
#include "weft/models/layer.h"
#include "weft/models/recurrent.h"
#include "weft/models/sequential.h"
#include "weft/models/text.h"
#include "weft/models/training.h"
#include "weft/ops/ops.h"
