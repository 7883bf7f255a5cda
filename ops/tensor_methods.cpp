// The methods and factories of runtime/tensor.h that need ops: copies and dtype conversions (the
// strided copy kernel of kernels.h) and the sum, mean and reshape methods. Declared with Tensor;
// defined here, where the ops are.
#include "weft/ops/kernels.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const Tensor converted = to_dtype(*this, dtype_of<T>());
  const T* data = converted.data<T>();
  return std::vector<T>(data, data + converted.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;

Tensor Tensor::copy() const {
  Tensor out;
  if (is_meta()) {  // a copy of a value that was not computed is another such value
    out = meta_tensor(shape(), dtype(), impl_->storage->producer());
  } else {
    out = empty(shape(), {.dtype = dtype()});
    copy_into(out, *this);
  }
  if (Tracer* tracer = active_tracer()) tracer->on_copy(*this, out);
  return out;
}

void Tensor::assign_(const Tensor& source) const {
  WEFT_CHECK(source.shape() == shape(), "assign_(): source of shape {} for a tensor of shape {}",
             shape_str(source.shape()), shape_str(shape()));
  // A capture without values only records the write: the compiled step will make it.
  if (!meta_capture_active()) copy_into(*this, source);
  mark_modified();
  if (Tracer* tracer = active_tracer()) tracer->on_assign(*this, source);
}

Tensor Tensor::sum() const { return weft::sum(*this); }
Tensor Tensor::mean() const { return weft::mean(*this); }
Tensor Tensor::reshape(const Shape& new_shape) const { return weft::reshape(*this, new_shape); }

Tensor tensor(const std::vector<double>& values, const Shape& shape, TensorOptions options) {
  const Shape dims = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  WEFT_CHECK(shape_numel(dims) == static_cast<int64_t>(values.size()),
             "tensor(): {} values do not fill shape {}", values.size(), shape_str(dims));
  Tensor out = empty(dims, {.dtype = options.dtype});
  copy_into(out, from_vector(values, dims));
  if (options.requires_grad) out.requires_grad_();
  return out;
}

Tensor tensor(std::initializer_list<double> values, const Shape& shape, TensorOptions options) {
  return tensor(std::vector<double>(values), shape, options);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  Tensor out = empty(x.shape(), {.dtype = dtype});
  copy_into(out, x);
  return out;
}

}  // namespace weft
