// Tensor: a handle to shaped, strided data in shared storage, with the autodiff state the tape
// needs (requires_grad, the recording node, the accumulated gradient).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/runtime/dtype.h"
#include "weft/runtime/random.h"
#include "weft/runtime/shape.h"
#include "weft/runtime/storage.h"

namespace weft {

class Node;
struct TensorImpl;

struct TensorOptions {
  DType dtype = DType::f32;
  bool requires_grad = false;
};

struct BackwardOptions {
  bool retain_graph = false;  // keep the recorded graph for another backward through it
  bool create_graph = false;  // record the backward pass itself, for gradients of gradients
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: no data, grad() of a tensor that got none
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const;
  bool is_contiguous() const;

  // True for an op's result recorded by a capture that computes no values (CaptureMode::meta):
  // it has a shape and dtype but no data, and reading its values throws weft::Error.
  bool is_meta() const;

  // Pointer to the first element; T must match dtype().
  template <typename T>
  T* data() const;
  void* raw_data() const;
  // The value of a one-element tensor, converted to double.
  double item() const;
  // The values in row-major order, converted to T.
  template <typename T>
  std::vector<T> to_vector() const;

  bool requires_grad() const;
  // Marks a leaf as a variable to differentiate with respect to.
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const;
  // The gradient accumulated by backward() (undefined until one arrives).
  const Tensor& grad() const;
  void zero_grad();
  void set_grad(const Tensor& grad);
  // Reverse-mode differentiation from this tensor. A non-scalar tensor needs a seed gradient.
  void backward(const Tensor& seed = {}, BackwardOptions options = {}) const;
  const std::shared_ptr<Node>& grad_fn() const;

  // Same data, no history, requires_grad false.
  Tensor detach() const;
  // A contiguous copy with no history.
  Tensor copy() const;
  // Overwrites the values in place (shapes must match; dtypes are converted). Not recorded.
  void assign_(const Tensor& source) const;
  // Same storage, new version: in-place writes are visible to the tape's saved-tensor checks.
  void mark_modified() const;

  Tensor sum() const;
  Tensor mean() const;
  Tensor reshape(const Shape& shape) const;

  std::string to_string() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  TensorImpl& checked_impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  Tensor grad;
};

// A view of `base`'s storage with its own shape, strides and offset.
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);

// A contiguous meta tensor (see Tensor::is_meta) standing for the result of the op `producer`.
Tensor meta_tensor(const Shape& shape, DType dtype, std::string_view producer);

// Factories. empty() leaves the values uninitialised.
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor scalar(double value, DType dtype = DType::f32);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
// Standard normal values from a seeded stream (the default generator unless given).
Tensor randn(const Shape& shape, TensorOptions options = {},
             Generator& generator = default_generator());
// Uniform values in [low, high).
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator& generator = default_generator());
Tensor arange(int64_t n, TensorOptions options = {.dtype = DType::i64});
// A tensor from values in row-major order; the shape defaults to 1-D.
Tensor tensor(const std::vector<double>& values, const Shape& shape = {},
              TensorOptions options = {});
Tensor tensor(std::initializer_list<double> values, const Shape& shape = {},
              TensorOptions options = {});
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, bool requires_grad = false);
// Elementwise conversion to another dtype, out of place; not recorded (see cast() for that).
Tensor to_dtype(const Tensor& x, DType dtype);

// True when the shapes match and every pair of values is within atol + rtol * |b| (equal
// infinities are close; NaN is never close to anything).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

template <typename T>
T* Tensor::data() const {
  TensorImpl& impl = checked_impl();
  WEFT_CHECK(impl.dtype == dtype_of<T>(), "data<{}>() called on a {} tensor",
             dtype_name(dtype_of<T>()), dtype_name(impl.dtype));
  return static_cast<T*>(impl.storage->data()) + impl.offset;
}

}  // namespace weft
