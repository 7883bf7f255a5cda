// weft's tensor ops. Primitives (each one OpDef in ops/*.cpp, with shape rule, kernel and VJP)
// come first; composites, built from primitives with no gradient code of their own, follow.
#pragma once

#include <optional>
#include <vector>

#include "weft/runtime/random.h"
#include "weft/runtime/tensor.h"

namespace weft {

// ---- Primitives -------------------------------------------------------------------------
// Elementwise, with NumPy broadcasting; both operands must have the same dtype.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor clip(const Tensor& x, double low, double high);
// cond ? a : b elementwise; cond is true where nonzero.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparisons: 1 where true, 0 where false, in the operands' dtype. No gradient.
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);
Tensor less(const Tensor& a, const Tensor& b);
Tensor less_equal(const Tensor& a, const Tensor& b);
Tensor equal(const Tensor& a, const Tensor& b);
Tensor not_equal(const Tensor& a, const Tensor& b);
Tensor cast(const Tensor& x, DType dtype);

// (..., m, k) x (..., k, n) -> (..., m, n); batch dimensions broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// Shape ops; permute, expand, slice and reshape of contiguous data are views.
Tensor reshape(const Tensor& x, const Shape& shape);  // one dimension may be -1
Tensor permute(const Tensor& x, const std::vector<int64_t>& order);
Tensor expand(const Tensor& x, const Shape& shape);  // NumPy broadcast to `shape`
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
// A tensor of `shape` holding each part at [start, start + its extent) along `axis` and zeros
// elsewhere (a slice's gradient, or the sum of several); parts are sorted by start and do not
// overlap. The zeros are a broadcast scalar: gaps cost no memory.
Tensor place_parts(const Shape& shape, int64_t axis,
                   const std::vector<std::pair<int64_t, Tensor>>& parts);

// Reductions over `axes` (all axes when empty).
Tensor sum(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdims = false);
Tensor argmax(const Tensor& x, int64_t axis);  // int64 indices, no gradient

// out[..., j..., ...] = x[..., indices[j...], ...] along `axis` (NumPy's take): embedding lookup.
Tensor gather(const Tensor& x, int64_t axis, const Tensor& indices);
// The transpose of gather: a tensor with `size` entries along `axis`, where entry i is the sum of
// the slices of `src` whose index is i.
Tensor scatter_add(const Tensor& src, int64_t axis, const Tensor& indices, int64_t size);

// x kernel for rows x (rows, width) that repeat by id, ids (rows,) (an embedding's rows looked up
// by ids): each id's first row times kernel (width, columns), copied to the rows of that id, so a
// product runs once per distinct id where ids repeat. Where rows of equal ids are equal, as after
// gather(table, 0, ids), that is matmul(x, kernel); its gradient is that of the first rows.
Tensor matmul_by_id(const Tensor& x, const Tensor& ids, const Tensor& kernel);
// matmul_by_id's gradients for `grad` (rows, columns): kernel's, then x's, each only where asked
// for, packed one after the other into one 1-D tensor.
Tensor matmul_by_id_grads(const Tensor& x, const Tensor& ids, const Tensor& kernel,
                          const Tensor& grad, bool kernel_grad, bool x_grad);

// Inverted-dropout mask: 0 with probability `rate`, else 1 / (1 - rate), drawn from `generator`.
Tensor dropout_mask(const Shape& shape, DType dtype, double rate,
                    Generator& generator = default_generator());

// A generator's seed and counter as an int64 (3,) tensor [seed, counter, first row]; the first
// row is 0 (see BatchRows).
Tensor random_state(const Generator& generator);
// The same values written into `state`, a random_state() tensor: a stream of calls keeps one.
void write_random_state(const Tensor& state, const Generator& generator);

// Rows [first, first + rows) of a batch of `whole_rows`, recorded as a step of its own: its
// masks draw the counters the whole batch's masks give those rows, so a batch split into parts
// (on threads, on ranks) drops exactly what it drops whole. The first row is not fixed here but
// read from the state's third entry at run time, so every part of one size shares one step.
struct BatchRows {
  int64_t first;  // not fixed in the step: the state's third entry
  int64_t rows;
  int64_t whole_rows;
};

// While alive, masks drawn from `generator` on this thread read the seed and counter from
// `state` (made by random_state() when the scope starts) instead of fixing them as attributes.
// A captured step declares `state` as an input, so every run of the compiled step draws fresh
// masks; the caller then advances the generator by taken(). With `part`, the step records rows
// of a larger batch (BatchRows).
class RandomStateScope {
 public:
  RandomStateScope(Generator& generator, Tensor state, std::optional<BatchRows> part = {});
  ~RandomStateScope();
  RandomStateScope(const RandomStateScope&) = delete;
  RandomStateScope& operator=(const RandomStateScope&) = delete;

  Generator& generator() const { return generator_; }
  const Tensor& state() const { return state_; }
  // The counters the masks drawn so far take (the whole batch's, with a part).
  uint64_t taken() const { return taken_; }
  // False once a mask drawn for a part did not lead with the part's rows: the step then draws
  // what no split of the batch can reproduce.
  bool drawn_by_row() const { return drawn_by_row_; }
  // The mask's offset from the state's counter, counting its counters as taken.
  uint64_t take(const Shape& mask_shape);

 private:
  Generator& generator_;
  Tensor state_;
  std::optional<BatchRows> part_;
  uint64_t taken_ = 0;
  bool drawn_by_row_ = true;
  RandomStateScope* previous_;
};

// ---- Composites -------------------------------------------------------------------------
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdims = false);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor transpose(const Tensor& x, int64_t axis0 = -2, int64_t axis1 = -1);
Tensor unsqueeze(const Tensor& x, int64_t axis);
Tensor squeeze(const Tensor& x, int64_t axis);
Tensor stack(const std::vector<Tensor>& xs, int64_t axis);
std::vector<Tensor> split(const Tensor& x, int64_t parts, int64_t axis);
// Sums a broadcast result back down to `shape` (the gradient of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);
// x * dropout_mask when training, x otherwise.
Tensor dropout(const Tensor& x, double rate, bool training,
               Generator& generator = default_generator());

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
// A double operand becomes a scalar of the tensor's dtype.
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);
Tensor operator/(double a, const Tensor& b);
Tensor pow(const Tensor& base, double exponent);

}  // namespace weft
