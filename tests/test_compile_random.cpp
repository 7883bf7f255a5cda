// The compiler's differential fuzzer: random graphs over every primitive op family (elementwise
// with broadcasting, casts, views and views of views, concat, matmul, reductions, indexing,
// dropout masks), with values read by several consumers, outputs that are views of inputs,
// gradients taken through the tape inside the capture and parameter stores. Each graph is
// captured, compiled and run, and must agree with the reference interpreter evaluate(). A table of
// small regression graphs keeps the bugs the fuzzer found fixed.
//
// A failure prints the graph's index, the captured graph, the compiled one and its schedule; the
// graph is a pure function of its index, so WEFT_FUZZ_FIRST=index WEFT_FUZZ_GRAPHS=1 runs it
// alone (and larger values search further than the suite does).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "weft/autodiff/tape.h"
#include "weft/compiler/compile.h"
#include "weft/compiler/graph.h"
#include "weft/ops/lowering.h"
#include "weft/weft.h"

namespace weft {
namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

// ---- comparing a compiled step with evaluate() -------------------------------------------------

// Compiled code does the eager kernels' arithmetic in their order (the same float32 polynomials,
// sums folded in float64, the same GEMM), so results agree to the last bit but where a sum adds
// in another order: tight tolerances. Such a sum is a few units in the last place off, which the
// ops after it can grow several times (a product whose operand the passes folded into another
// layout, then exp, then a square: 1.0e-6 in a portable build). Integers must be equal.
double tolerance(DType dtype) {
  return dtype == DType::f32 ? 1e-5 : dtype == DType::f64 ? 1e-12 : 0;
}

// By node, the dtype whose tolerance its value gets: a float64 value computed from float32 ones
// (through a cast) carries their error, so it is compared as float32; other values by their own.
std::vector<DType> working_precision(const Graph& graph) {
  std::vector<DType> precision(graph.nodes().size());
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const GraphNode& node = graph.nodes()[id];
    precision[id] = node.spec.dtype;
    if (node.spec.dtype != DType::f64) continue;
    for (int input : node.inputs)
      if (is_floating(precision[input]) && precision[input] != DType::f64)
        precision[id] = DType::f32;
  }
  return precision;
}

// The first elements where `actual` is not `expected` (equal, both NaN, or within the tolerance of
// `precision`, the value's working precision, of the larger of the two or of the tensor's largest
// finite value), as text.
std::string differences(const Tensor& actual, const Tensor& expected, const std::string& what,
                        DType precision) {
  if (actual.shape() != expected.shape() || actual.dtype() != expected.dtype())
    return fmt::format("{}: {} {} where evaluate() gives {} {}\n", what, dtype_name(actual.dtype()),
                       shape_str(actual.shape()), dtype_name(expected.dtype()),
                       shape_str(expected.shape()));
  const std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double scale = 0;
  for (double v : e)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  const double rtol = tolerance(precision);
  std::string text;
  int shown = 0;
  for (size_t i = 0; i < a.size() && shown < 4; ++i) {
    if (a[i] == e[i] || (std::isnan(a[i]) && std::isnan(e[i]))) continue;
    const double bound = rtol * std::max({std::abs(a[i]), std::abs(e[i]), scale});
    if (std::isfinite(a[i]) && std::isfinite(e[i]) && std::abs(a[i] - e[i]) <= bound) continue;
    text += fmt::format("{}: element {} is {}, evaluate() gives {}\n", what, i, a[i], e[i]);
    ++shown;
  }
  return text;
}

std::vector<Tensor> copies(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(t.copy());
  return out;
}

// Where a failing graph first goes wrong: the first op whose value differs when every op's value
// is an output (which changes the plan, so the difference may also vanish).
std::string first_difference(const Graph& graph, const std::vector<Tensor>& inputs,
                             const CompileOptions& options) {
  Graph every = graph;
  every.outputs.clear();
  for (size_t id = 0; id < graph.nodes().size(); ++id)
    if (graph.nodes()[id].kind == GraphNode::Kind::op)
      every.outputs.push_back({fmt::format("%{}", id), static_cast<int>(id)});
  try {
    const std::vector<Tensor> expected = evaluate(every, copies(inputs));
    const std::vector<Tensor> actual =
        compile(every, {.optimize = options.optimize, .name = "every"}).run(copies(inputs));
    const std::vector<DType> precision = working_precision(every);
    for (size_t k = 0; k < expected.size(); ++k) {
      const std::string text = differences(actual[k], expected[k], every.outputs[k].name,
                                           precision[every.outputs[k].node]);
      if (!text.empty()) return "with every op an output, the first to differ:\n" + text;
    }
  } catch (const std::exception& error) {
    return fmt::format("with every op an output, it threw: {}\n", error.what());
  }
  return "with every op an output, no op differs\n";
}

// Compiles `graph`, runs it and evaluate() on copies of `inputs`, and compares the outputs and the
// stored inputs. Returns what differs (with the graphs, so the failure can be read and
// reproduced), or nothing. `ops`, when given, collects the primitives of the compiled graph.
std::string check(const Graph& graph, const std::vector<Tensor>& inputs,
                  const CompileOptions& options = {},
                  std::set<std::string, std::less<>>* ops = nullptr) {
  std::string text;
  std::optional<CompiledStep> compiled;
  try {
    compiled.emplace(compile(graph, options));
    for (const GraphNode& node : compiled->graph().nodes())
      if (ops != nullptr && node.kind == GraphNode::Kind::op) ops->emplace(node.op->name);
    std::vector<Tensor> expected_inputs = copies(inputs), actual_inputs = copies(inputs);
    const std::vector<Tensor> expected = evaluate(graph, expected_inputs);
    // A step whose finite_output is not finite skips its stores.
    for (size_t k = 0; k < expected.size(); ++k)
      if (graph.outputs[k].name == options.finite_output && !std::isfinite(expected[k].item()))
        expected_inputs = copies(inputs);
    // Run twice: a kernel that relies on what its buffers held before shows on the second run.
    compiled->run(copies(inputs));
    const std::vector<Tensor> actual = compiled->run(actual_inputs);
    const std::vector<DType> precision = working_precision(graph);
    for (size_t k = 0; k < expected.size(); ++k)
      text +=
          differences(actual[k], expected[k], fmt::format("output \"{}\"", graph.outputs[k].name),
                      precision[graph.outputs[k].node]);
    const std::vector<int> input_ids = graph.input_ids();
    for (size_t k = 0; k < inputs.size(); ++k) {
      // A stored input holds its last stored value.
      int value = input_ids[k];
      for (const GraphStore& store : graph.stores)
        if (store.input == input_ids[k]) value = store.value;
      text += differences(actual_inputs[k], expected_inputs[k],
                          fmt::format("input \"{}\" after the step", graph.node(input_ids[k]).name),
                          precision[value]);
    }
  } catch (const std::exception& error) {
    text += fmt::format("threw: {}\n", error.what());
  }
  if (text.empty()) return text;
  text += first_difference(graph, inputs, options);
  text += "captured graph:\n" + graph.to_text();
  if (compiled) text += "compiled graph:\n" + compiled->graph().to_text() + compiled->schedule();
  return text;
}

// ---- the generator -----------------------------------------------------------------------------

// A value of the graph being built. `bound` > 0 marks integer values known to lie in
// [0, bound): indices that gather and scatter_add may use. Views and casts keep it.
struct Value {
  Tensor tensor;
  int64_t bound = 0;
};

constexpr int64_t kMaxElements = 2048;  // keeps expand and concat from growing values without end

// Builds one random graph inside capture(): a pool of values (inputs first) that each step of the
// generator reads from and adds to.
class Builder {
 public:
  Builder(uint64_t seed, DType dtype) : rng_(seed), dtype_(dtype), constants_(seed) {}

  DType dtype() const { return dtype_; }
  const std::vector<Value>& pool() const { return pool_; }
  void add(const Tensor& tensor, int64_t bound = 0) { pool_.push_back({tensor, bound}); }

  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }
  int64_t between(int64_t low, int64_t high) {  // inclusive
    return low + static_cast<int64_t>(pick(static_cast<size_t>(high - low + 1)));
  }
  int64_t axis_of(const Tensor& x) {
    return static_cast<int64_t>(pick(static_cast<size_t>(x.dim())));
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  double real(double low, double high) {
    return std::uniform_real_distribution<double>(low, high)(rng_);
  }
  template <typename T>
  void shuffle(std::vector<T>& items) {
    std::shuffle(items.begin(), items.end(), rng_);
  }

  // A random pool value that satisfies `fits`, recent ones more often (so chains grow deep).
  std::optional<Value> find(const std::function<bool(const Tensor&)>& fits) {
    std::vector<size_t> candidates;
    for (size_t i = 0; i < pool_.size(); ++i)
      if (fits(pool_[i].tensor)) candidates.push_back(i);
    if (candidates.empty()) return std::nullopt;
    const size_t recent = std::min<size_t>(candidates.size(), 4);
    const size_t at = chance(0.5) ? candidates.size() - 1 - pick(recent) : pick(candidates.size());
    return pool_[candidates[at]];
  }
  Value any() {
    return *find([](const Tensor&) { return true; });
  }
  Tensor floating() {  // every graph has a floating-point input
    return find([](const Tensor& x) { return is_floating(x.dtype()); })->tensor;
  }
  std::optional<Value> with_rank(int64_t rank, bool floating_only) {
    return find([&](const Tensor& x) {
      return x.dim() >= rank && (!floating_only || is_floating(x.dtype()));
    });
  }

  // A value of x's dtype whose shape broadcasts with x's: from the pool, a size-1 slice of x, or
  // a 0-d constant.
  Tensor partner(const Tensor& x) {
    const size_t choice = pick(8);
    if (choice == 0) return scalar(std::round(real(-2, 2) * 4) / 4, x.dtype());
    if (choice == 1 && x.dim() > 0) {
      const int64_t axis = axis_of(x);
      if (x.size(axis) > 0) {
        const int64_t at = between(0, x.size(axis) - 1);
        return slice(x, axis, at, at + 1);
      }
    }
    // x itself, where nothing fits: a value of more than kMaxElements fits nothing.
    const std::optional<Value> other = find([&](const Tensor& c) {
      return c.dtype() == x.dtype() && broadcasts(c.shape(), x.shape()) &&
             shape_numel(broadcast_shapes("fuzz", c.shape(), x.shape())) <= kMaxElements;
    });
    return other ? other->tensor : x;
  }

  // A fresh constant of `shape` (made inside the step, so capture records it as a constant).
  Tensor constant(const Shape& shape, DType dtype) {
    return uniform(shape, -2, 2, {.dtype = dtype}, constants_);
  }
  // Integer indices in [0, bound) of `shape`: a pool value known to fit, or a constant.
  Tensor indices(const Shape& shape, int64_t bound) {
    for (auto v = pool_.rbegin(); v != pool_.rend(); ++v)  // recent ones more often
      if (v->bound > 0 && v->bound <= bound && v->tensor.shape() == shape && chance(0.5))
        return v->tensor;
    std::vector<int64_t> values(static_cast<size_t>(shape_numel(shape)));
    for (int64_t& value : values) value = between(0, bound - 1);
    const Tensor ids = from_vector(values, shape);
    return chance(0.5) ? ids : to_dtype(ids, DType::i32);
  }
  Generator& random_stream() { return constants_; }

  static bool broadcasts(const Shape& a, const Shape& b) {
    for (size_t i = 1; i <= std::min(a.size(), b.size()); ++i) {
      const int64_t x = a[a.size() - i], y = b[b.size() - i];
      if (x != y && x != 1 && y != 1) return false;
    }
    return true;
  }

 private:
  std::mt19937_64 rng_;
  DType dtype_;
  Generator constants_;
  std::vector<Value> pool_;
};

bool has_elements_on_an_axis(const Tensor& x) {
  return std::any_of(x.shape().begin(), x.shape().end(), [](int64_t d) { return d > 0; });
}

int64_t nonempty_axis(Builder& b, const Tensor& x) {
  int64_t axis = b.axis_of(x);
  while (x.size(axis) == 0) axis = b.axis_of(x);
  return axis;
}

// x clamped to [0, 3], NaN to 0: a float-to-integer cast of NaN, an infinity or a huge value is
// undefined.
Tensor castable(const Tensor& x) {
  if (!is_floating(x.dtype())) return x;
  return clip(where(equal(x, x), x, scalar(0, x.dtype())), 0, 3);
}

// ---- the op families: each adds one or a few values to the pool, or nothing when the pool has no
// operand it can use. Safe forms keep logarithms, roots and powers off negative numbers and
// denominators off zero, so that both sides stay finite and comparable.

void unary(Builder& b) {
  const Tensor x = b.floating();
  switch (b.pick(7)) {
    case 0:
      return b.add(-x);
    case 1:
      return b.add(tanh(x));
    case 2:
      return b.add(sigmoid(x));
    case 3:
      return b.add(relu(x));
    case 4:
      return b.add(exp(clip(x, -6, 6)));
    case 5:
      return b.add(log(x * x + 0.25));
    default:
      return b.add(sqrt(x * x + 0.5));
  }
}

void binary(Builder& b) {
  const Tensor x = b.floating();
  const Tensor y = b.partner(x);
  const bool swap = b.chance(0.5);
  const Tensor& l = swap ? y : x;
  const Tensor& r = swap ? x : y;
  switch (b.pick(6)) {
    case 0:
      return b.add(l + r);
    case 1:
      return b.add(l - r);
    case 2:
      return b.add(l * r);
    case 3:
      return b.add(l / (r * r + 0.5));
    case 4:
      return b.add(pow(l * l + 0.5, clip(r, -2, 2)));
    default:
      return b.add(pow(l, b.chance(0.5) ? 2.0 : 3.0));
  }
}

void comparison(Builder& b) {
  const Tensor x = b.any().tensor;
  const Tensor y = b.partner(x);
  using Compare = Tensor (*)(const Tensor&, const Tensor&);
  static constexpr Compare compares[] = {greater,    greater_equal, less,
                                         less_equal, equal,         not_equal};
  b.add(compares[b.pick(std::size(compares))](x, y));
}

void select(Builder& b) {
  const Tensor cond = b.any().tensor;
  const Tensor x = b.partner(b.chance(0.5) ? cond : b.any().tensor);
  const Tensor y = b.partner(x);
  if (!Builder::broadcasts(cond.shape(), broadcast_shapes("fuzz", x.shape(), y.shape()))) return;
  b.add(where(cond, x, y));
}

void clamp(Builder& b) {
  const double low = std::round(b.real(-2, 1) * 8) / 8;
  b.add(clip(b.floating(), low, low + (b.chance(0.1) ? 0 : b.real(0, 2))));
}

void convert(Builder& b) {
  constexpr DType dtypes[] = {DType::f32, DType::f64, DType::i32, DType::i64};
  const DType to = dtypes[b.pick(std::size(dtypes))];
  const Value x = b.any();
  if (is_floating(to)) return b.add(cast(x.tensor, to));
  // Clamped, a float becomes an index below 4.
  b.add(cast(castable(x.tensor), to), is_floating(x.tensor.dtype()) ? 4 : x.bound);
}

void reshape_view(Builder& b) {
  const Value x = b.any();
  // Split the elements into random factors (a prime stays whole), maybe with a -1 and 1s.
  int64_t rest = x.tensor.numel();
  Shape shape;
  while (rest > 1 && shape.size() < 4) {
    std::vector<int64_t> divisors;
    for (int64_t d = 2; d <= rest; ++d)
      if (rest % d == 0) divisors.push_back(d);
    const int64_t d = b.chance(0.4) ? rest : divisors[b.pick(divisors.size())];
    shape.push_back(d);
    rest /= d;
  }
  if (rest != 1) shape.push_back(rest);  // zero elements
  if (b.chance(0.3))
    shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(b.pick(shape.size() + 1)), 1);
  if (!shape.empty() && rest == 1 && b.chance(0.3)) shape[b.pick(shape.size())] = -1;
  b.add(reshape(x.tensor, shape), x.bound);
}

void permute_view(Builder& b) {
  const std::optional<Value> x = b.with_rank(2, false);
  if (!x) return;
  if (b.chance(0.3)) return b.add(transpose(x->tensor), x->bound);
  std::vector<int64_t> order(static_cast<size_t>(x->tensor.dim()));
  std::iota(order.begin(), order.end(), 0);
  b.shuffle(order);
  b.add(permute(x->tensor, order), x->bound);
}

void expand_view(Builder& b) {
  const Value x = b.any();
  Shape shape = x.tensor.shape();
  for (int64_t& d : shape)
    if (d == 1 && b.chance(0.7)) d = b.between(1, 4);
  while (shape.size() < 4 && b.chance(0.4)) shape.insert(shape.begin(), b.between(1, 3));
  if (shape_numel(shape) <= kMaxElements) b.add(expand(x.tensor, shape), x.bound);
}

void slice_view(Builder& b) {
  const std::optional<Value> x = b.with_rank(1, false);
  if (!x) return;
  Tensor view = x->tensor;
  for (int times = b.chance(0.3) ? 2 : 1; times > 0; --times) {  // sometimes a slice of a slice
    const int64_t axis = b.axis_of(view);
    const int64_t size = view.size(axis);
    const int64_t start = b.between(0, size);
    // Mostly non-empty: an empty slice only when the start is the end.
    const int64_t stop = start == size ? size : b.between(start + 1, size);
    view = slice(view, axis, start, stop);
  }
  b.add(view, x->bound);
}

// Parts along an axis: the value, its slices, fitting pool values and broadcast zeros (the
// padding of a slice's gradient).
void concatenate(Builder& b) {
  const std::optional<Value> first = b.with_rank(1, false);
  if (!first) return;
  const Tensor& x = first->tensor;
  const int64_t axis = b.axis_of(x);
  std::vector<Tensor> parts = {x};
  int64_t bound = first->bound;
  for (int64_t count = b.between(1, 3); count > 0; --count) {
    Shape shape = x.shape();
    switch (b.pick(3)) {
      case 0: {
        const int64_t start = b.between(0, x.size(axis));
        parts.push_back(slice(x, axis, start, b.between(start, x.size(axis))));
        break;
      }
      case 1: {
        const Value other = *b.find([&](const Tensor& c) {  // x itself fits
          if (c.dtype() != x.dtype() || c.dim() != x.dim()) return false;
          for (int64_t d = 0; d < x.dim(); ++d)
            if (d != axis && c.size(d) != x.size(d)) return false;
          return true;
        });
        parts.push_back(other.tensor);
        bound = bound > 0 && other.bound > 0 ? std::max(bound, other.bound) : 0;
        break;
      }
      default:
        shape[axis] = b.between(1, 3);
        parts.push_back(expand(scalar(0, x.dtype()), shape));
        break;
    }
  }
  b.shuffle(parts);
  int64_t total = 0;
  for (const Tensor& part : parts) total += part.numel();
  if (total <= kMaxElements) b.add(concat(parts, axis), bound);
}

// x @ y, y a pool matrix with x's inner size (maybe transposed), x's own transpose, or a
// constant; batched on either side, batch dimensions broadcast.
void matrix_product(Builder& b) {
  const std::optional<Value> left = b.with_rank(1, true);
  if (!left) return;
  Tensor x = left->tensor;
  if (x.dim() == 1) x = reshape(x, {1, x.size(0)});
  if (b.chance(0.3)) x = transpose(x);  // a column-major left operand
  const int64_t k = x.size(-1);
  Tensor y;
  if (b.chance(0.3)) {
    y = transpose(x);
  } else if (const std::optional<Value> v = b.find([&](const Tensor& c) {
               return c.dtype() == x.dtype() && c.dim() >= 2 &&
                      (c.size(-2) == k || c.size(-1) == k);
             });
             v && b.chance(0.5)) {
    y = v->tensor.size(-2) == k ? v->tensor : transpose(v->tensor);
  } else {
    const int64_t n = b.between(1, 6);
    Shape shape = {k, n};
    if (b.chance(0.3)) shape.insert(shape.begin(), b.chance(0.5) ? 1 : 2);
    y = b.chance(0.5) ? b.constant(shape, x.dtype()) : transpose(b.constant({n, k}, x.dtype()));
    if (shape.size() == 3 && y.dim() == 2) y = expand(y, shape);
  }
  const Shape batch_x(x.shape().begin(), x.shape().end() - 2);
  const Shape batch_y(y.shape().begin(), y.shape().end() - 2);
  if (!Builder::broadcasts(batch_x, batch_y)) return;
  const Tensor product = matmul(x, y);
  if (product.numel() <= kMaxElements) b.add(product);
}

void reduction(Builder& b) {
  const Tensor x = b.floating();
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (b.chance(0.4)) axes.push_back(b.chance(0.5) ? d : d - x.dim());  // negative axes too
  b.shuffle(axes);
  const bool keepdims = b.chance(0.4);
  switch (b.pick(3)) {
    case 0:
      return b.add(sum(x, axes, keepdims));
    case 1:
      return b.add(max(x, axes, keepdims));
    default:
      return b.add(mean(x, axes, keepdims));
  }
}

void arg_max(Builder& b) {
  const std::optional<Value> x = b.find(has_elements_on_an_axis);
  if (!x) return;
  const int64_t axis = nonempty_axis(b, x->tensor);
  b.add(argmax(x->tensor, axis), x->tensor.size(axis));
}

void take(Builder& b) {
  const std::optional<Value> x = b.find(has_elements_on_an_axis);
  if (!x) return;
  const int64_t axis = nonempty_axis(b, x->tensor);
  Shape shape;
  for (int64_t rank = b.between(0, 2); rank > 0; --rank) shape.push_back(b.between(1, 4));
  const Tensor out = gather(x->tensor, axis, b.indices(shape, x->tensor.size(axis)));
  if (out.numel() <= kMaxElements) b.add(out, x->bound);
}

// x W by id, or its gradients op itself. x is a 2-D pool value (its gradient then reaches the
// tape when it requires one) or a wide constant; ids of one repeated value take the distinct-id
// path of the runtime (runtime/matmul_by_id.cpp).
void product_by_id(Builder& b) {
  const std::optional<Value> found =
      b.find([](const Tensor& x) { return is_floating(x.dtype()) && x.dim() == 2; });
  const Tensor x = found && b.chance(0.7)
                       ? found->tensor
                       : b.constant({b.between(5, 12), b.between(30, 40)}, b.dtype());
  const Shape shape{x.size(0)};
  const Tensor ids =
      b.chance(0.3)
          ? from_vector(std::vector<int64_t>(static_cast<size_t>(x.size(0)), b.between(0, 5)),
                        shape)
          : b.indices(shape, b.between(1, 8));
  const Tensor kernel = b.constant({x.size(1), b.between(1, 6)}, x.dtype());
  Tensor out;
  if (b.chance(0.3)) {
    const bool kernel_grad = b.chance(0.7), x_grad = !kernel_grad || b.chance(0.5);
    out = matmul_by_id_grads(x, ids, kernel, b.constant({x.size(0), kernel.size(1)}, x.dtype()),
                             kernel_grad, x_grad);
  } else {
    out = matmul_by_id(x, ids, kernel);
  }
  if (out.numel() <= kMaxElements) b.add(out);
}

// Indices of any rank up to the values' remaining one, 0-d included.
void scatter(Builder& b) {
  const std::optional<Value> src = b.with_rank(1, true);
  if (!src) return;
  const Tensor& x = src->tensor;
  const int64_t axis = b.axis_of(x);
  const auto rank = static_cast<int64_t>(b.pick(static_cast<size_t>(x.dim() - axis + 1)));
  const Shape shape(x.shape().begin() + axis, x.shape().begin() + axis + rank);
  const int64_t size = b.between(1, 5);
  const Tensor out = scatter_add(x, axis, b.indices(shape, size), size);
  if (out.numel() <= kMaxElements) b.add(out);
}

void drop(Builder& b) {
  const Tensor x = b.floating();
  const double rate = b.chance(0.5) ? 0.5 : 0.2;
  b.add(b.chance(0.5) ? dropout(x, rate, true, b.random_stream())
                      : dropout_mask(x.shape(), x.dtype(), rate, b.random_stream()));
}

// Gradients of a few values with respect to the inputs that require one, through the tape while
// the capture records it, with random seeds; they join the pool.
void gradients(Builder& b) {
  std::vector<Tensor> leaves, roots, seeds;
  for (const Value& v : b.pool())
    if (v.tensor.is_leaf() && v.tensor.requires_grad()) leaves.push_back(v.tensor);
  for (int count = 1 + static_cast<int>(b.pick(2)); count > 0; --count) {
    const std::optional<Value> root = b.find([](const Tensor& c) { return c.requires_grad(); });
    if (!root) break;
    roots.push_back(root->tensor);
    seeds.push_back(b.constant(root->tensor.shape(), root->tensor.dtype()));
  }
  if (leaves.empty() || roots.empty()) return;
  for (const Tensor& g :
       grad(roots, leaves, seeds, {.retain_graph = true, .create_graph = b.chance(0.5)}))
    b.add(g);
}

// A run of elementwise ops on recent values: long fused loops.
void chain(Builder& b) {
  for (int64_t k = b.between(5, 20); k > 0; --k) (b.chance(0.5) ? unary : binary)(b);
}

// An unrolled recurrence over axis 0 of x, as a recurrent layer's cell: the same kernels on
// buffers that move by one step each time, which the compiler re-rolls into a loop. The steps run
// forwards, backwards or in a random order (which must not roll); their states are concatenated
// along the time axis.
void recurrence(Builder& b) {
  const std::optional<Value> sequence = b.with_rank(2, true);
  if (!sequence || sequence->tensor.size(0) < 3) return;
  const Tensor& x = sequence->tensor;
  const int64_t units = b.between(1, 5);
  const Tensor w = b.constant({x.size(-1), units}, x.dtype());
  const Tensor u = b.constant({units, units}, x.dtype());
  Shape state = x.shape();
  state.front() = 1;
  state.back() = units;
  Tensor h = zeros(state, {.dtype = x.dtype()});
  std::vector<int64_t> order(static_cast<size_t>(x.size(0)));
  std::iota(order.begin(), order.end(), 0);
  if (b.chance(0.3)) std::reverse(order.begin(), order.end());
  if (b.chance(0.2)) b.shuffle(order);
  const bool gated = b.chance(0.5);
  std::vector<Tensor> states(order.size());
  for (int64_t t : order) {
    const Tensor z = matmul(slice(x, 0, t, t + 1), w) + matmul(h, u);
    h = gated ? sigmoid(z) * h + (1.0 - sigmoid(z)) * tanh(z) : tanh(z);
    states[static_cast<size_t>(t)] = h;
  }
  b.add(concat(states, 0));
  b.add(h);
}

struct Family {
  const char* name;
  void (*make)(Builder&);
  int weight;  // how often it is drawn, relative to the others
};

const Family kFamilies[] = {
    {"unary", unary, 4},
    {"binary", binary, 5},
    {"comparison", comparison, 2},
    {"where", select, 2},
    {"clip", clamp, 1},
    {"cast", convert, 2},
    {"reshape", reshape_view, 2},
    {"permute", permute_view, 2},
    {"expand", expand_view, 2},
    {"slice", slice_view, 3},
    {"concat", concatenate, 2},
    {"matmul", matrix_product, 3},
    {"reduction", reduction, 3},
    {"argmax", arg_max, 1},
    {"gather", take, 2},
    {"scatter_add", scatter, 1},
    {"matmul_by_id", product_by_id, 1},
    {"dropout", drop, 1},
    {"chain", chain, 1},
    {"recurrence", recurrence, 1},
    {"gradients", gradients, 1},
};

// One random graph, and other values of its inputs for the run.
struct RandomGraph {
  Graph graph;
  std::vector<Tensor> run_inputs;
  std::string families;    // the generator's steps, for the failure message
  CompileOptions options;  // with or without the passes, maybe guarding the stores
};

// Inputs share a base shape (some dimensions 1, some leading ones dropped) so that binary ops
// find operands that broadcast; an int64 input holds indices below 3. Some graphs take gradients
// with respect to their floating-point inputs, and some store values into them.
RandomGraph random_graph(uint64_t seed) {
  Builder b(seed, seed % 2 == 0 ? DType::f32 : DType::f64);
  Shape base;
  for (int64_t rank = b.between(0, 4); rank > 0; --rank)
    base.push_back(b.chance(0.15) ? 1 : b.between(2, rank > 2 ? 5 : 9));
  std::vector<TensorSpec> specs;
  for (int64_t count = b.between(1, 3); count > 0; --count) {
    Shape shape(base.begin() + static_cast<std::ptrdiff_t>(b.pick(base.size() + 1)), base.end());
    for (int64_t& d : shape)
      if (b.chance(0.2)) d = 1;
    const DType other = b.dtype() == DType::f32 ? DType::f64 : DType::f32;
    specs.push_back({shape, b.chance(0.15) ? other : b.dtype()});
  }
  if (b.chance(0.3)) specs.push_back({base.empty() ? Shape{3} : Shape{base.back()}, DType::i64});
  const bool with_gradients = b.chance(0.4);
  RandomGraph out;
  out.options.optimize = b.chance(0.8);
  // Some floating-point inputs hold a few NaNs, infinities and negative zeros.
  Generator values(seed);
  const bool special = b.chance(0.15);
  auto draw = [&](const TensorSpec& spec) {
    if (spec.dtype == DType::i64) return cast(uniform(spec.shape, 0, 3, {}, values), DType::i64);
    const Tensor x = uniform(spec.shape, -2, 2, {.dtype = spec.dtype}, values);
    if (!special || x.numel() == 0) return x;
    std::vector<double> v = x.to_vector<double>();
    constexpr double specials[] = {NAN, INFINITY, -INFINITY, -0.0};
    for (int k = 0; k < 2; ++k) v[b.pick(v.size())] = specials[b.pick(std::size(specials))];
    return tensor(v, spec.shape, {.dtype = spec.dtype});
  };
  Named named;
  for (size_t k = 0; k < specs.size(); ++k) {
    Tensor input = draw(specs[k]);
    if (with_gradients && is_floating(input.dtype())) input.requires_grad_();
    named.push_back({fmt::format("x{}", k), input});
    out.run_inputs.push_back(draw(specs[k]));
  }
  int total_weight = 0;
  for (const Family& family : kFamilies) total_weight += family.weight;
  out.graph = capture(named, [&]() -> Named {
    for (const auto& [name, input] : named) b.add(input, input.dtype() == DType::i64 ? 3 : 0);
    for (int64_t steps = b.between(6, 30); steps > 0; --steps) {
      auto drawn = static_cast<int>(b.pick(static_cast<size_t>(total_weight)));
      const Family* family = kFamilies;
      while (drawn >= family->weight) drawn -= (family++)->weight;
      if (!with_gradients && family->make == gradients) continue;
      out.families += fmt::format("{} ", family->name);
      family->make(b);
    }
    // The last value, and a few others: inputs, views of inputs, values read elsewhere too, a
    // constant.
    Named outputs = {{"last", b.pool().back().tensor}};
    for (int64_t k = b.between(0, 3); k > 0; --k)
      outputs.push_back({fmt::format("y{}", k), b.any().tensor});
    if (b.chance(0.1)) outputs.push_back({"constant", b.constant({b.between(1, 3)}, b.dtype())});
    // A 0-d output that guards the stores, infinite now and then.
    if (b.chance(0.3)) {
      const Tensor loss = sum(b.floating()) * (b.chance(0.3) ? INFINITY : 1.0);
      out.options.finite_output = "loss";
      outputs.push_back({"loss", loss});
    }
    // Parameter updates: an input gets a value of its shape (an SGD step, or the value itself:
    // maybe a view of an input, maybe of another dtype, which assign_ converts).
    NoGrad no_grad;
    for (const auto& [name, input] : named) {
      if (!is_floating(input.dtype()) || !b.chance(0.3)) continue;
      const std::optional<Value> v = b.find([&](const Tensor& c) {
        return c.shape() == input.shape() && is_floating(c.dtype()) && c.impl() != input.impl();
      });
      if (!v) continue;
      const bool step = v->tensor.dtype() == input.dtype() && b.chance(0.7);
      input.assign_(step ? input - v->tensor * 0.125 : v->tensor);
    }
    return outputs;
  });
  // Most values no other reads become outputs too, so that dead-code elimination leaves most of
  // the graph to the compiler.
  std::vector<bool> read(out.graph.nodes().size(), false);
  for (const GraphNode& node : out.graph.nodes())
    for (int input : node.inputs) read[input] = true;
  for (const GraphOutput& output : out.graph.outputs) read[output.node] = true;
  for (size_t id = 0; id < read.size(); ++id)
    if (out.graph.node(static_cast<int>(id)).kind == GraphNode::Kind::op && !read[id] &&
        b.chance(0.8))
      out.graph.outputs.push_back({fmt::format("sink{}", id), static_cast<int>(id)});
  return out;
}

// Graph `index` grows from seed kSeed + index.
constexpr uint64_t kSeed = 2026000;
// About 45 ms each in Release, nearly all of it LLVM's (so hardly more under the sanitizers).
constexpr int64_t kGraphs = 300;

int64_t from_environment(const char* name, int64_t otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::stoll(value) : otherwise;
}

TEST(CompileRandom, GraphsOverEveryOpMatchEvaluate) {
  std::set<std::string, std::less<>> covered;
  const int64_t first = from_environment("WEFT_FUZZ_FIRST", 0);
  const int64_t last = first + from_environment("WEFT_FUZZ_GRAPHS", kGraphs);
  int failed = 0;
  for (int64_t index = first; index < last && failed < 3; ++index) {
    const uint64_t seed = kSeed + static_cast<uint64_t>(index);
    RandomGraph random;
    try {
      random = random_graph(seed);
    } catch (const Error& error) {  // an op refused its operands: a bug of the generator or the op
      ADD_FAILURE() << fmt::format("graph {} (seed {}) could not be built: {}", index, seed,
                                   error.what());
      ++failed;
      continue;
    }
    const std::string text = check(random.graph, random.run_inputs, random.options, &covered);
    if (text.empty()) continue;
    ++failed;
    ADD_FAILURE() << fmt::format("graph {} (seed {}; steps {}{}):\n{}", index, seed,
                                 random.families, random.options.optimize ? "" : "; not optimised",
                                 text);
  }
  // A new op fails here until the generator makes it (in a run of the suite's length at least).
  for (const OpDef* op : registered_ops()) {
    if (find_lowering(*op) == nullptr || last - first < kGraphs) continue;
    EXPECT_TRUE(covered.contains(op->name))
        << op->name << " appears in no compiled random graph: teach the generator to make it";
  }
}

// ---- regressions: the bugs the fuzzer found, each as the smallest graph that showed it ---------

struct Regression {
  const char* name;
  std::vector<TensorSpec> inputs;  // drawn uniformly from [-2, 2)
  std::function<Named(const std::vector<Tensor>&)> step;
};

std::vector<Regression> regressions() {
  constexpr DType f32 = DType::f32, f64 = DType::f64;
  return {
      // evaluate() returned outputs that are views of a stored input after the stores
      // (compiler/graph.cpp).
      {"output_is_a_view_of_a_stored_input",
       {{{3, 3}, f32}},
       [](const std::vector<Tensor>& in) {
         const Tensor rows = slice(in[0], 0, 1, 3);
         in[0].assign_(in[0] * 2.0);
         return Named{{"rows", rows}, {"x", in[0]}};
       }},
      // The planner copied a store's value from its own target's buffer in place
      // (compiler/compile.cpp, Planner::run).
      {"store_of_its_own_input_transposed",
       {{{3, 3}, f32}},
       [](const std::vector<Tensor>& in) {
         in[0].assign_(transpose(in[0]));
         return Named{};
       }},
      // The planner copied a store's value from a buffer an earlier store had overwritten
      // (compiler/compile.cpp, Planner::run).
      {"store_of_a_view_of_an_input_stored_before",
       {{{3, 4}, f64}, {{4, 3}, f64}},
       [](const std::vector<Tensor>& in) {
         const Tensor old = transpose(in[1]);
         in[1].assign_(in[1] * 2.0);
         in[0].assign_(old);
         return Named{};
       }},
      // GEMM refused the leading dimension 0 of an empty result, eager and compiled
      // (ops/matmul.cpp).
      {"matmul_with_an_empty_result",
       {{{2, 2, 3}, f32}, {{3, 0}, f32}},
       [](const std::vector<Tensor>& in) {
         return Named{{"y", matmul(in[0], in[1])}};
       }},
      // scatter_add (the gradient of gather) refused the axis after src's last, which 0-d
      // indices need (ops/index.cpp).
      {"gradient_of_a_gather_by_one_index",
       {{{4, 3}, f64}},
       [](const std::vector<Tensor>& in) {
         Tensor x = in[0];
         x.requires_grad_();
         const Tensor column = gather(x, 1, from_vector(std::vector<int64_t>{2}, {}));
         return Named{{"grad", grad({column}, {x}, {ones({4}, {.dtype = f64})})[0]}};
       }},
      // The eager float32 exp, sigmoid and tanh were contracted into FMAs, which the compiled code
      // does not do: last bits differed, seen through a cast to float64 (CMakeLists.txt).
      {"float32_fast_math_bit_for_bit",
       {{{4096}, f32}},
       [](const std::vector<Tensor>& in) {
         return Named{{"exp", cast(exp(in[0]), f64)},
                      {"sigmoid", cast(sigmoid(in[0]), f64)},
                      {"tanh", cast(tanh(in[0]), f64)}};
       }},
      // The eager sum over an outer axis rounded to float32 after each addition; the compiled one
      // adds in float64 (ops/kernels.h, ops/reduce.cpp).
      {"float32_sum_over_an_outer_axis",
       {{{200, 8}, f32}},
       [](const std::vector<Tensor>& in) {
         return Named{{"sum", cast(sum(in[0], {0}), f64)}};
       }},
      // The split pass took an operand of extent 1 for a broadcast where the result's extent was 1
      // too, so an empty slice of the op kept that extent (compiler/passes.cpp).
      {"empty_slice_of_an_op_of_extent_one",
       {{{8, 7}, f64}},
       [](const std::vector<Tensor>& in) {
         const Tensor mean = sum(in[0], {0}, true) / 8.0;  // (1, 7), read through slices only
         return Named{{"empty", slice(mean, 0, 1, 1) * 2.0},
                      {"column", slice(mean, 1, 2, 3) * 2.0}};
       }},
      // A capture recorded the assigned value itself as the target's later value, in the source's
      // dtype where assign_ converts it: a float32 times a float64 (compiler/graph.cpp).
      {"read_after_an_assign_of_another_dtype",
       {{{}, f64}, {{2}, f32}},
       [](const std::vector<Tensor>& in) {
         in[0].assign_(sum(in[1]));
         return Named{{"scaled", in[0] * 0.125}};
       }},
  };
}

TEST(CompileRandom, RegressionsMatchEvaluate) {
  for (const Regression& r : regressions()) {
    // The step may store into its inputs while it is captured: the run gets fresh ones.
    const auto draw = [&] {
      Generator gen(1);
      std::vector<Tensor> tensors;
      for (const TensorSpec& spec : r.inputs)
        tensors.push_back(uniform(spec.shape, -2, 2, {.dtype = spec.dtype}, gen));
      return tensors;
    };
    const std::vector<Tensor> captured = draw();
    Named named;
    for (size_t k = 0; k < captured.size(); ++k)
      named.push_back({fmt::format("x{}", k), captured[k]});
    Graph graph;
    try {
      graph = capture(named, [&] { return r.step(captured); });
    } catch (const Error& error) {
      ADD_FAILURE() << r.name << " could not be captured: " << error.what();
      continue;
    }
    EXPECT_EQ(check(graph, draw()), "") << r.name;
  }
}

}  // namespace
}  // namespace weft
