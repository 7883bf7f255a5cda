#include "weft/runtime/tensor.h"

#include <cmath>
#include <cstring>

namespace weft {

TensorImpl& Tensor::checked_impl() const {
  WEFT_CHECK(impl_ != nullptr, "operation on an undefined tensor");
  return *impl_;
}

const Shape& Tensor::shape() const { return checked_impl().shape; }
const Shape& Tensor::strides() const { return checked_impl().strides; }
DType Tensor::dtype() const { return checked_impl().dtype; }

int64_t Tensor::size(int64_t axis) const { return shape()[normalize_axis("size", axis, dim())]; }

bool Tensor::is_contiguous() const {
  const TensorImpl& impl = checked_impl();
  int64_t expected = 1;
  for (size_t i = impl.shape.size(); i-- > 0;) {
    if (impl.shape[i] != 1 && impl.strides[i] != expected) return false;
    expected *= impl.shape[i];
  }
  return true;
}

bool Tensor::is_meta() const { return checked_impl().storage->is_meta(); }

void* Tensor::raw_data() const {
  TensorImpl& impl = checked_impl();
  return static_cast<char*>(impl.storage->data()) + impl.offset * dtype_size(impl.dtype);
}

double Tensor::item() const {
  WEFT_CHECK(numel() == 1, "item(): the tensor has shape {}, not one element", shape_str(shape()));
  return dispatch_any(dtype(), [&]<typename T>() { return static_cast<double>(*data<T>()); });
}

bool Tensor::requires_grad() const { return checked_impl().requires_grad; }

bool Tensor::is_leaf() const { return checked_impl().grad_fn == nullptr; }
const Tensor& Tensor::grad() const { return checked_impl().grad; }
void Tensor::zero_grad() { checked_impl().grad = Tensor(); }

void Tensor::set_grad(const Tensor& gradient) {
  WEFT_CHECK(!gradient.defined() || gradient.shape() == shape(),
             "set_grad(): gradient of shape {} for a tensor of shape {}",
             gradient.defined() ? shape_str(gradient.shape()) : "undefined", shape_str(shape()));
  // backward() adds into this gradient, which only works in the tensor's own dtype.
  WEFT_CHECK(!gradient.defined() || gradient.dtype() == dtype(),
             "set_grad(): a {} gradient for a {} tensor", dtype_name(gradient.dtype()),
             dtype_name(dtype()));
  checked_impl().grad = gradient;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked_impl().grad_fn; }

Tensor Tensor::detach() const {
  const TensorImpl& impl = checked_impl();
  return make_view(*this, impl.shape, impl.strides, impl.offset);
}

void Tensor::mark_modified() const { checked_impl().storage->bump_version(); }

namespace {
// NumPy-style nested brackets, one line per innermost row.
void print_values(std::string& text, const std::vector<double>& values, const Shape& shape,
                  size_t axis, int64_t& next, bool integral) {
  if (axis == shape.size()) {
    const double v = values[next++];
    text += integral ? fmt::format("{}", static_cast<int64_t>(v)) : fmt::format("{:.6g}", v);
    return;
  }
  text += '[';
  for (int64_t i = 0; i < shape[axis]; ++i) {
    if (i > 0) text += axis + 1 == shape.size() ? ", " : ",\n" + std::string(axis + 8, ' ');
    print_values(text, values, shape, axis + 1, next, integral);
  }
  text += ']';
}
}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::string text = "tensor(";
  int64_t next = 0;
  print_values(text, to_vector<double>(), shape(), 0, next, !is_floating(dtype()));
  text += fmt::format(", shape={}, dtype={}", shape_str(shape()), dtype_name(dtype()));
  if (requires_grad()) text += ", requires_grad=true";
  return text + ")";
}

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor meta_tensor(const Shape& shape, DType dtype, std::string_view producer) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::meta(producer);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

namespace {
Tensor allocate(const Shape& shape, TensorOptions options, bool zero_fill) {
  for (int64_t d : shape)
    WEFT_CHECK(d >= 0, "empty(): negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(shape_numel(shape) * dtype_size(options.dtype), zero_fill);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  Tensor out(std::move(impl));
  if (options.requires_grad) out.requires_grad_();
  return out;
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) { return allocate(shape, options, false); }
Tensor zeros(const Shape& shape, TensorOptions options) { return allocate(shape, options, true); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor out = empty(shape, {.dtype = options.dtype});
  dispatch_any(options.dtype, [&]<typename T>() {
    T* data = out.data<T>();
    std::fill(data, data + out.numel(), static_cast<T>(value));
  });
  if (options.requires_grad) out.requires_grad_();
  return out;
}

Tensor scalar(double value, DType dtype) { return full({}, value, {.dtype = dtype}); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), {.dtype = like.dtype()}); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), {.dtype = like.dtype()}); }

namespace {
template <typename Draw>
Tensor random_tensor(const Shape& shape, TensorOptions options, Generator& generator, Draw draw) {
  Tensor out = empty(shape, {.dtype = options.dtype});
  const uint64_t first = generator.take(out.numel());
  dispatch_floating(options.dtype, "random", [&]<typename T>() {
    T* data = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i)
      data[i] = static_cast<T>(draw(generator.seed(), first + i));
  });
  if (options.requires_grad) out.requires_grad_();
  return out;
}
}  // namespace

Tensor randn(const Shape& shape, TensorOptions options, Generator& generator) {
  return random_tensor(shape, options, generator, random_normal);
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions options,
               Generator& generator) {
  return random_tensor(shape, options, generator, [&](uint64_t seed, uint64_t counter) {
    return low + (high - low) * random_uniform(seed, counter);
  });
}

Tensor arange(int64_t n, TensorOptions options) {
  Tensor out = empty({n}, {.dtype = options.dtype});
  dispatch_any(options.dtype, [&]<typename T>() {
    T* data = out.data<T>();
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<T>(i);
  });
  if (options.requires_grad) out.requires_grad_();
  return out;
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad) {
  WEFT_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()),
             "from_vector(): {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor out = empty(shape, {.dtype = dtype_of<T>()});
  if (!values.empty()) std::memcpy(out.data<T>(), values.data(), values.size() * sizeof(T));
  if (requires_grad) out.requires_grad_();
  return out;
}
template Tensor from_vector(const std::vector<float>&, const Shape&, bool);
template Tensor from_vector(const std::vector<double>&, const Shape&, bool);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, bool);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, bool);

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape()) return false;
  const std::vector<double> x = a.to_vector<double>();
  const std::vector<double> y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == y[i]) continue;  // equal infinities are close
    // An infinity is close only to itself (the tolerance rtol * inf would pass anything), and
    // NaN to nothing.
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return false;
    if (!(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]))) return false;
  }
  return true;
}

}  // namespace weft
