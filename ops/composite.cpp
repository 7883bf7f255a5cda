// Composite ops: plain functions of primitives, with no kernel or gradient of their own.
#include <numeric>

#include "weft/ops/ops.h"

namespace weft {

namespace {
Tensor scalar_like(double value, const Tensor& like) { return scalar(value, like.dtype()); }
}  // namespace

Tensor mean(const Tensor& x, const std::vector<int64_t>& axes, bool keepdims) {
  const Tensor total = sum(x, axes, keepdims);
  const int64_t count = total.numel() == 0 ? 0 : x.numel() / total.numel();
  return total / static_cast<double>(count);
}

Tensor square(const Tensor& x) { return x * x; }
Tensor abs(const Tensor& x) { return where(less(x, scalar_like(0, x)), neg(x), x); }

Tensor transpose(const Tensor& x, int64_t axis0, int64_t axis1) {
  std::vector<int64_t> order(x.dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[normalize_axis("transpose", axis0, x.dim())],
            order[normalize_axis("transpose", axis1, x.dim())]);
  return permute(x, order);
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  Shape shape = x.shape();
  shape.insert(shape.begin() + normalize_axis("unsqueeze", axis, x.dim() + 1), 1);
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  const int64_t a = normalize_axis("squeeze", axis, x.dim());
  WEFT_CHECK(x.shape()[a] == 1, "squeeze: axis {} of shape {} has size {}, not 1", axis,
             shape_str(x.shape()), x.shape()[a]);
  Shape shape = x.shape();
  shape.erase(shape.begin() + a);
  return reshape(x, shape);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis) {
  WEFT_CHECK(!xs.empty(), "stack: no tensors to stack");
  const int64_t a = normalize_axis("stack", axis, xs[0].dim() + 1);
  std::vector<Tensor> parts;
  for (const Tensor& x : xs) parts.push_back(unsqueeze(x, a));
  return concat(parts, a);
}

std::vector<Tensor> split(const Tensor& x, int64_t parts, int64_t axis) {
  const int64_t a = normalize_axis("split", axis, x.dim());
  WEFT_CHECK(parts > 0 && x.shape()[a] % parts == 0,
             "split: axis {} of shape {} does not split into {} equal parts", axis,
             shape_str(x.shape()), parts);
  const int64_t size = x.shape()[a] / parts;
  std::vector<Tensor> out;
  for (int64_t i = 0; i < parts; ++i) out.push_back(slice(x, a, i * size, (i + 1) * size));
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  WEFT_CHECK(broadcast_shapes("sum_to", shape, x.shape()) == x.shape(),
             "sum_to: shape {} does not broadcast to {}", shape_str(shape), shape_str(x.shape()));
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && x.shape()[d] != 1)) axes.push_back(d);
  return reshape(sum(x, axes, true), shape);
}

Tensor softmax(const Tensor& x, int64_t axis) {
  // Shifting by the (constant) maximum changes nothing mathematically and avoids overflow.
  const Tensor e = exp(x - max(x, {axis}, true).detach());
  return e / sum(e, {axis}, true);
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  const Tensor shifted = x - max(x, {axis}, true).detach();
  return shifted - log(sum(exp(shifted), {axis}, true));
}

Tensor dropout(const Tensor& x, double rate, bool training, Generator& generator) {
  if (!training || rate == 0) return x;
  return x * dropout_mask(x.shape(), x.dtype(), rate, generator);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }
Tensor pow(const Tensor& base, double exponent) { return pow(base, scalar_like(exponent, base)); }

}  // namespace weft
