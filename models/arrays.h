// Tensors from the plain containers that text preprocessing and the dataset loaders return
// (IntMatrix, DoubleMatrix, label and value vectors), so a program need not spell out shapes
// and dtype conversions by hand.
#pragma once

#include <cstdint>
#include <vector>

#include "weft/models/text.h"
#include "weft/runtime/tensor.h"

namespace weft {

// An int64 tensor of shape (rows, cols): what Embedding takes, e.g. from pad_sequences.
Tensor to_tensor(const IntMatrix& m);

// A tensor of shape (rows, cols) holding the values converted to `dtype`.
Tensor to_tensor(const DoubleMatrix& m, DType dtype = DType::f32);

// A 1-D tensor holding the values converted to `dtype`, e.g. 0/1 labels as float32 targets.
Tensor to_tensor(const std::vector<int64_t>& values, DType dtype);
Tensor to_tensor(const std::vector<double>& values, DType dtype);

}  // namespace weft
