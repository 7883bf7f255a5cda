// Every primitive op's definition, for code that recognises or builds ops by identity (the
// compiler's passes): renaming or removing an op is then a compile error there, never a rewrite
// silently turned off. Each is defined, and registered, in the op's file.
#pragma once

#include "weft/runtime/op.h"

namespace weft {

// elementwise.cpp
extern const OpDef &neg_op, &exp_op, &log_op, &tanh_op, &sigmoid_op, &relu_op, &sqrt_op;
extern const OpDef &add_op, &sub_op, &mul_op, &div_op, &pow_op;
extern const OpDef &greater_op, &greater_equal_op, &less_op, &less_equal_op, &equal_op,
    &not_equal_op;
extern const OpDef &clip_op, &where_op, &cast_op;
// index.cpp, matmul.cpp, random.cpp
extern const OpDef &gather_op, &scatter_add_op, &matmul_op, &dropout_mask_op;
// matmul_by_id.cpp
extern const OpDef &matmul_by_id_op, &matmul_by_id_grads_op;
// reduce.cpp
extern const OpDef &sum_op, &max_op, &argmax_op;
// shape.cpp
extern const OpDef &reshape_op, &permute_op, &expand_op, &slice_op, &concat_op;

}  // namespace weft
