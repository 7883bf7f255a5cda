#include "weft/compiler/passes.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <tuple>
#include <variant>

#include "weft/compiler/analysis.h"
#include "weft/compiler/rewrite.h"
#include "weft/ops/definitions.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

using Kind = GraphNode::Kind;

// Folding makes, and CSE compares, constants of at most this many elements: zero states
// broadcast to big shapes stay ops rather than become big tensors in the graph.
constexpr int64_t small_constant = 4096;

// ---- helpers --------------------------------------------------------------------------------

bool is_op(const GraphNode& node, const OpDef& op) {
  return node.kind == Kind::op && node.op == &op;
}

bool same_spec(const TensorSpec& a, const TensorSpec& b) {
  return a.shape == b.shape && a.dtype == b.dtype;
}

// Whether `node` is a constant whose every element equals `value`.
bool filled_with(const GraphNode& node, double value) {
  if (node.kind != Kind::constant) return false;
  // Read in place: every add, sub, mul and div of the graph asks this of its operands.
  const Tensor dense = node.value.is_contiguous() ? node.value : node.value.copy();
  return dispatch_any(dense.dtype(), [&]<typename T>() {
    const T* data = dense.data<T>();
    return std::all_of(data, data + dense.numel(), [&](T v) { return v == value; });
  });
}

// A zero constant, or one broadcast by expand.
bool all_zeros(const Graph& graph, int id) {
  const GraphNode& node = graph.node(id);
  if (is_op(node, expand_op)) return all_zeros(graph, node.inputs[0]);
  return filled_with(node, 0);
}

bool is_identity(const std::vector<int64_t>& order) {
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// One operand of a concat and the range [start, stop) it fills along the concat's axis.
struct Part {
  int node;
  int64_t start, stop;
};

std::vector<Part> parts_of(const Graph& graph, const GraphNode& concat) {
  const int64_t axis = concat.attrs.integer("axis");
  std::vector<Part> parts;
  int64_t start = 0;
  for (int input : concat.inputs) {
    const int64_t stop = start + graph.node(input).spec.shape[axis];
    parts.push_back({input, start, stop});
    start = stop;
  }
  return parts;
}

// ---- algebraic simplification: rewrites of one node in place ---------------------------------
// Each returns an earlier node with the same value (the node's readers then read that one), the
// node's own id once it has made the node a cheaper op with the same value, or nullopt where it
// does not apply.

// x+0, 0+x, x-0, x*1, 1*x and x/1, when the constant neither broadcasts x nor changes its dtype.
std::optional<int> drop_identity(const Graph& graph, GraphNode& node, int) {
  struct Unit {
    const OpDef& op;
    double value;
    bool commutes;
  };
  static const Unit units[] = {
      {add_op, 0, true}, {sub_op, 0, false}, {mul_op, 1, true}, {div_op, 1, false}};
  for (const Unit& unit : units) {
    if (!is_op(node, unit.op)) continue;
    for (const size_t side : {size_t{1}, size_t{0}}) {  // the operand that may be the unit
      const int x = node.inputs[1 - side];
      if ((side == 1 || unit.commutes) && same_spec(graph.node(x).spec, node.spec) &&
          filled_with(graph.node(node.inputs[side]), unit.value))
        return x;
    }
  }
  return std::nullopt;
}

// reshape, expand, slice and cast to the operand's own shape and dtype, and permute in order.
std::optional<int> drop_no_op(const Graph& graph, GraphNode& node, int) {
  if (node.kind != Kind::op || node.inputs.size() != 1) return std::nullopt;
  const int x = node.inputs[0];
  const OpDef* op = node.op;
  if (op == &permute_op)
    return is_identity(node.attrs.integers("order")) ? std::optional(x) : std::nullopt;
  if ((op == &reshape_op || op == &expand_op || op == &slice_op || op == &cast_op) &&
      same_spec(graph.node(x).spec, node.spec))
    return x;
  return std::nullopt;
}

// reshape(reshape x) is one reshape, permute(permute x) one permute, neg(neg x) is x.
std::optional<int> compose(const Graph& graph, GraphNode& node, int id) {
  if (node.kind != Kind::op || node.inputs.size() != 1) return std::nullopt;
  const GraphNode& inner = graph.node(node.inputs[0]);
  if (inner.kind != Kind::op || inner.op != node.op) return std::nullopt;
  const int x = inner.inputs[0];
  const OpDef* op = node.op;
  if (op == &neg_op) return x;
  if (op == &reshape_op) {
    if (same_spec(graph.node(x).spec, node.spec)) return x;
    node.inputs = {x};
    return id;  // its attrs, the result's shape, stay
  }
  if (op == &permute_op) {
    // Axis i of the result is axis outer[i] of the inner result, which is axis first[outer[i]].
    const std::vector<int64_t>& first = inner.attrs.integers("order");
    std::vector<int64_t> order;
    for (int64_t axis : node.attrs.integers("order")) order.push_back(first[axis]);
    if (is_identity(order)) return x;
    node.inputs = {x};
    node.attrs = {{"order", std::move(order)}};
    return id;
  }
  return std::nullopt;
}

// A slice of a concat that falls inside one part is that part, or a slice of it.
std::optional<int> slice_of_concat(const Graph& graph, GraphNode& node, int id) {
  if (!is_op(node, slice_op)) return std::nullopt;
  const GraphNode& source = graph.node(node.inputs[0]);
  const int64_t axis = node.attrs.integer("axis");
  if (!is_op(source, concat_op) || source.attrs.integer("axis") != axis) return std::nullopt;
  const int64_t start = node.attrs.integer("start"), stop = node.attrs.integer("stop");
  for (const Part& part : parts_of(graph, source)) {
    if (start < part.start || part.stop < stop) continue;
    if (start == part.start && stop == part.stop) return part.node;
    node.inputs = {part.node};
    node.attrs = {{"axis", axis}, {"start", start - part.start}, {"stop", stop - part.start}};
    return id;
  }
  return std::nullopt;
}

// Which nodes are adds whose value one other add alone reads: the inner terms of a longer sum,
// which join_padded takes in one go at the sum's root.
std::vector<bool> inner_sums(const Graph& graph) {
  const size_t n = graph.nodes().size();
  std::vector<int> readers(n, 0), reader(n, -1);
  for (size_t id = 0; id < n; ++id)
    for (int input : graph.nodes()[id].inputs) {
      ++readers[input];
      reader[input] = static_cast<int>(id);
    }
  for (const GraphOutput& output : graph.outputs) readers[output.node] += 2;
  for (const GraphStore& store : graph.stores) readers[store.value] += 2;
  std::vector<bool> inner(n, false);
  for (size_t id = 0; id < n; ++id)
    inner[id] = readers[id] == 1 && is_op(graph.nodes()[id], add_op) &&
                is_op(graph.nodes()[reader[id]], add_op);
  return inner;
}

// The terms of the sum rooted at add `node` (a tree of adds; `inner_sum` marks, by id, the adds
// inside it), in order.
std::vector<int> sum_terms(const Graph& graph, const GraphNode& node,
                           const std::vector<bool>& inner_sum) {
  std::vector<int> terms;
  std::vector<int> stack(node.inputs.rbegin(), node.inputs.rend());
  while (!stack.empty()) {
    const int term = stack.back();
    stack.pop_back();
    if (static_cast<size_t>(term) < inner_sum.size() && inner_sum[term]) {
      const GraphNode& inner = graph.node(term);
      stack.insert(stack.end(), inner.inputs.rbegin(), inner.inputs.rend());
      continue;
    }
    terms.push_back(term);
  }
  return terms;
}

// A rewrite of the sum rooted at add `node` given its terms: the id of the same value in `out`,
// or nullopt where it does not apply. `renamed` maps the old graph's ids to `out`'s, for the
// nodes rebuilt so far (-1 for the others).
using SumRewrite = std::function<std::optional<int>(Graph& out, const GraphNode& node,
                                                    const std::vector<int>& terms,
                                                    const std::vector<int>& renamed)>;

// Rebuilds the graph with `rewrite` applied at the root of every sum of adds; the graph is
// rebuilt only where `applies` says `rewrite` would apply to some sum.
Graph rewrite_sums(Graph graph, const SumRewrite& rewrite,
                   bool (*applies)(const Graph& graph, const GraphNode& node,
                                   const std::vector<int>& terms)) {
  const std::vector<bool> inner = inner_sums(graph);
  std::vector<bool> roots(graph.nodes().size(), false);  // the sums `rewrite` applies to
  bool any = false;
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const GraphNode& node = graph.nodes()[id];
    roots[id] =
        !inner[id] && is_op(node, add_op) && applies(graph, node, sum_terms(graph, node, inner));
    any = any || roots[id];
  }
  if (!any) return graph;
  // The nodes before the first sum to rewrite keep their ids: only the rest is rebuilt.
  const int first = static_cast<int>(std::ranges::find(roots, true) - roots.begin());
  std::vector<bool> inner_sum(inner.begin(), inner.begin() + first);  // by id in the new graph
  std::vector<int> renamed(graph.nodes().size(), -1);
  std::iota(renamed.begin(), renamed.begin() + first, 0);
  return rebuild(
      std::move(graph),
      [&](Graph& out, GraphNode&& node, int id) {
        int& kept = renamed[id];
        if (inner[id] && is_op(node, add_op)) {  // left for the sum's root to rewrite
          kept = append(out, std::move(node));
          inner_sum.resize(out.nodes().size());
          inner_sum[kept] = true;
          return kept;
        }
        if (roots[id])
          if (const std::optional<int> rewritten =
                  rewrite(out, node, sum_terms(out, node, inner_sum), renamed))
            return kept = *rewritten;
        return kept = append(out, std::move(node));
      },
      first);
}

// The sum's concats of its own shape along one axis (zero-padded slices), all along the same one.
std::vector<int> padded_terms(const Graph& graph, const GraphNode& node,
                              const std::vector<int>& terms) {
  std::vector<int> padded;
  for (int term : terms) {
    const GraphNode& summand = graph.node(term);
    if (is_op(summand, concat_op) && same_spec(summand.spec, node.spec) &&
        (padded.empty() || summand.attrs == graph.node(padded[0]).attrs))
      padded.push_back(term);
  }
  return padded;
}

// A sum of concats along one axis whose non-zero parts do not overlap: one concat of those parts,
// the gaps between them filled with zeros, plus the sum's other terms: T adds of zero-padded
// slices (a hand-written slice gradient; the tape places its own, tape.cpp) are O(T²) work;
// joined at the root, O(T).
std::optional<int> join_padded(Graph& out, const GraphNode& node, const std::vector<int>& terms,
                               const std::vector<int>& /*renamed*/) {
  const std::vector<int> padded = padded_terms(out, node, terms);
  if (padded.size() < 2) return std::nullopt;
  const Attrs attrs = out.node(padded[0]).attrs;  // out grows below, which moves its nodes
  const int64_t axis = attrs.integer("axis");
  std::vector<Part> zero_parts, kept;
  for (int concat : padded)
    for (const Part& part : parts_of(out, out.node(concat)))
      if (part.start < part.stop) (all_zeros(out, part.node) ? zero_parts : kept).push_back(part);
  std::sort(kept.begin(), kept.end(),
            [](const Part& p, const Part& q) { return p.start < q.start; });
  for (size_t i = 1; i < kept.size(); ++i)
    if (kept[i].start < kept[i - 1].stop) return std::nullopt;  // two terms add values there

  std::vector<int> pieces;
  int64_t at = 0;
  const auto zeros_until = [&](int64_t stop) {
    if (at == stop) return;
    const auto same = std::find_if(zero_parts.begin(), zero_parts.end(), [&](const Part& part) {
      return part.start == at && part.stop == stop;
    });
    Shape shape = node.spec.shape;
    shape[axis] = stop - at;
    // A broadcast zero scalar: no memory, however many gaps the joins of T slices make.
    pieces.push_back(same != zero_parts.end()
                         ? same->node
                         : out.add_op(expand_op, {{"shape", shape}},
                                      {out.add_constant(scalar(0, node.spec.dtype))},
                                      {shape, node.spec.dtype}));
    at = stop;
  };
  for (const Part& part : kept) {
    zeros_until(part.start);
    pieces.push_back(part.node);
    at = part.stop;
  }
  zeros_until(node.spec.shape[axis]);
  int sum = pieces.size() == 1 ? pieces[0] : out.add_op(concat_op, attrs, pieces, node.spec);
  for (int term : terms)
    if (std::find(padded.begin(), padded.end(), term) == padded.end())
      sum = out.add_op(*node.op, {}, {sum, term}, node.spec);
  return sum;
}

// ---- merging: one GEMM for a sum of products (a weight's gradient over the time steps) ------

// A term matmul(left, right) of a sum, 2-D, where left may be permute(source, [1, 0]).
struct Product {
  int term, left, right;
  int source = -1;  // when left is source transposed
};

std::optional<Product> product_term(const Graph& graph, const GraphNode& sum, int term) {
  const GraphNode& node = graph.node(term);
  if (!is_op(node, matmul_op) || !same_spec(node.spec, sum.spec) || node.spec.shape.size() != 2 ||
      graph.node(node.inputs[0]).spec.shape.size() != 2)
    return std::nullopt;
  Product product{term, node.inputs[0], node.inputs[1]};
  const GraphNode& left = graph.node(product.left);
  if (is_op(left, permute_op) && left.attrs.integers("order") == std::vector<int64_t>{1, 0})
    product.source = left.inputs[0];
  return product;
}

// The sum's matmul terms.
std::vector<Product> product_terms(const Graph& graph, const GraphNode& node,
                                   const std::vector<int>& terms) {
  std::vector<Product> products;
  for (int term : terms)
    if (const std::optional<Product> product = product_term(graph, node, term))
      products.push_back(*product);
  return products;
}

bool has_products(const Graph& graph, const GraphNode& node, const std::vector<int>& terms) {
  return product_terms(graph, node, terms).size() >= 2;
}

// The matrices a stack holds, in order: a concat along axis 0 of matrices each given a leading
// axis of 1 (as stack() records them).
std::optional<std::vector<int>> stacked_matrices(const Graph& graph, const GraphNode& node) {
  if (!is_op(node, concat_op) || node.attrs.integer("axis") != 0) return std::nullopt;
  std::vector<int> matrices;
  for (int input : node.inputs) {
    const GraphNode& layer = graph.node(input);
    if (!is_op(layer, reshape_op) || layer.spec.shape.size() != 3 || layer.spec.shape[0] != 1)
      return std::nullopt;
    matrices.push_back(layer.inputs[0]);
  }
  return matrices;
}

// The matrices one above the other, as stack() records them when they share a shape, so that a
// stack of the same matrices that the step already makes (a sequence's outputs, the tape's
// gradient of an input projection) is found equal by CSE and computed once.
int rows_of(Graph& out, const std::vector<int>& parts) {
  const TensorSpec first = out.node(parts[0]).spec;
  int64_t rows = 0;
  bool same_shape = true;
  for (int part : parts) {
    rows += out.node(part).spec.shape[0];
    same_shape = same_shape && out.node(part).spec.shape == first.shape;
  }
  const TensorSpec spec{{rows, first.shape[1]}, first.dtype};
  if (!same_shape) return out.add_op(concat_op, {{"axis", int64_t{0}}}, parts, spec);
  const Shape one{1, first.shape[0], first.shape[1]};
  std::vector<int> layers;
  for (int part : parts)
    layers.push_back(out.add_op(reshape_op, {{"shape", one}}, {part}, {one, first.dtype}));
  const Shape stacked{static_cast<int64_t>(parts.size()), one[1], one[2]};
  const int stack = out.add_op(concat_op, {{"axis", int64_t{0}}}, layers, {stacked, first.dtype});
  return out.add_op(reshape_op, {{"shape", spec.shape}}, {stack}, spec);
}

// Puts `products` in the order of a stack in `stacks` (old ids, `renamed` to out's) that holds
// exactly their right operands, where there is one.
void follow_a_stack(std::vector<Product>& products, const std::vector<std::vector<int>>& stacks,
                    const std::vector<int>& renamed) {
  std::map<int, size_t> by_right;
  for (size_t i = 0; i < products.size(); ++i) by_right[products[i].right] = i;
  if (by_right.size() != products.size()) return;  // a right operand twice: no order to follow
  for (const std::vector<int>& stack : stacks) {
    if (stack.size() != products.size()) continue;
    std::vector<Product> ordered;
    for (int part : stack) {
      const auto found = by_right.find(renamed[part]);
      if (found == by_right.end()) break;
      ordered.push_back(products[found->second]);
    }
    if (ordered.size() == products.size()) {
      products = std::move(ordered);
      return;
    }
  }
}

// Σ left_i right_i = [left_1 ... left_n] [right_1; ...; right_n]: one GEMM with the steps along
// K instead of n small ones and n - 1 adds, as oneDNN's RNN computes its weight gradients after
// the loop (merge_gemm_iter). The products go in the order of a stack of their right operands
// that the step already makes (`stacks`), so that it serves both; else in their order in the sum.
std::optional<int> merge_products(Graph& out, const GraphNode& node, const std::vector<int>& terms,
                                  const std::vector<int>& renamed,
                                  const std::vector<std::vector<int>>& stacks) {
  std::vector<Product> products = product_terms(out, node, terms);
  if (products.size() < 2) return std::nullopt;
  const TensorSpec spec = node.spec;  // out grows below, which moves its nodes
  follow_a_stack(products, stacks, renamed);
  std::vector<int> lefts, sources, rights;
  for (const Product& product : products) {
    lefts.push_back(product.left);
    // A transposed constant (a zero initial state, folded) is a constant transposed back.
    const GraphNode& left = out.node(product.left);
    sources.push_back(product.source >= 0 || left.kind != Kind::constant
                          ? product.source
                          : out.add_constant(permute(left.value, {1, 0}).copy()));
    rights.push_back(product.right);
  }
  const bool transposed = std::ranges::find(sources, -1) == sources.end();
  const int right = rows_of(out, rights);
  const TensorSpec left_spec{{spec.shape[0], out.node(right).spec.shape[0]}, spec.dtype};
  const int left = transposed ? out.add_op(permute_op, {{"order", std::vector<int64_t>{1, 0}}},
                                           {rows_of(out, sources)}, left_spec)
                              : out.add_op(concat_op, {{"axis", int64_t{1}}}, lefts, left_spec);
  int sum = out.add_op(matmul_op, {}, {left, right}, spec);
  for (int term : terms)
    if (std::ranges::none_of(products, [&](const Product& p) { return p.term == term; }))
      sum = out.add_op(add_op, {}, {sum, term}, spec);
  return sum;
}

// ---- hoisting: one GEMM for the matmuls of one weight over the time slices of one tensor ----

// matmul(rows, weight) where `rows` is slice(source, axis, start, stop), maybe reshaped with its
// last axis kept: each row of the product is a row of source times the weight.
struct RowsProduct {
  int source, weight;
  int64_t axis, start, stop;
};

std::optional<RowsProduct> rows_product(const Graph& graph, const GraphNode& node) {
  if (!is_op(node, matmul_op)) return std::nullopt;
  const GraphNode& weight = graph.node(node.inputs[1]);
  const GraphNode* rows = &graph.node(node.inputs[0]);
  if (weight.spec.shape.size() != 2) return std::nullopt;
  if (is_op(*rows, reshape_op)) {
    const GraphNode& inner = graph.node(rows->inputs[0]);
    if (inner.spec.shape.empty() || inner.spec.shape.back() != rows->spec.shape.back())
      return std::nullopt;
    rows = &inner;
  }
  if (!is_op(*rows, slice_op)) return std::nullopt;
  const int64_t axis = rows->attrs.integer("axis");
  if (axis + 1 == static_cast<int64_t>(rows->spec.shape.size())) return std::nullopt;
  // Rows of no values: nothing to hoist, and no count of rows to make one product of.
  if (graph.node(rows->inputs[0]).spec.shape.back() == 0) return std::nullopt;
  return RowsProduct{rows->inputs[0], node.inputs[1], axis, rows->attrs.integer("start"),
                     rows->attrs.integer("stop")};
}

// matmul(source, weight) over every row of `source`: one GEMM, shaped as source with its last
// axis the weight's columns.
int all_rows_product(Graph& out, int source, int weight, DType dtype) {
  const Shape shape = out.node(source).spec.shape;
  const int64_t width = shape.back(), rows = shape_numel(shape) / width;
  const int64_t columns = out.node(weight).spec.shape[1];
  Shape result = shape;
  result.back() = columns;
  const int flat = out.add_op(reshape_op, {{"shape", Shape{rows, width}}}, {source},
                              {{rows, width}, out.node(source).spec.dtype});
  const int product = out.add_op(matmul_op, {}, {flat, weight}, {{rows, columns}, dtype});
  return out.add_op(reshape_op, {{"shape", result}}, {product}, {result, dtype});
}

// ---- the passes -----------------------------------------------------------------------------

// A recurrent loop written one step at a time multiplies each step's input by the same weight:
// where those matmuls cover most of the time axis, one GEMM over all steps replaces them, each
// step reading its rows of the product. (weft's layers record the hoisted form themselves.)
Graph hoist_input_projections(Graph graph) {
  struct Hoist {
    int64_t steps = 0, covered = 0;  // the matmuls, and the rows of the axis they cover
    bool worth_it = false;           // they cover most of the axis
    int product = -1;                // in the rebuilt graph, once made
  };
  std::map<std::tuple<int, int, int64_t>, Hoist> hoists;  // by source, weight and axis
  std::vector<std::optional<std::tuple<int, int, int64_t>>> hoist_of(graph.nodes().size());
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const GraphNode& node = graph.nodes()[id];
    const std::optional<RowsProduct> rows = rows_product(graph, node);
    if (!rows) continue;
    hoist_of[id] = {rows->source, rows->weight, rows->axis};
    Hoist& hoist = hoists[*hoist_of[id]];
    ++hoist.steps;
    hoist.covered += rows->stop - rows->start;
  }
  bool any = false;
  for (auto& [key, hoist] : hoists) {
    const auto& [source, weight, axis] = key;
    hoist.worth_it = hoist.steps >= 2 && 2 * hoist.covered >= graph.node(source).spec.shape[axis];
    any = any || hoist.worth_it;
  }
  if (!any) return graph;
  return rebuild(std::move(graph), [&](Graph& out, GraphNode&& node, int id) {
    if (!hoist_of[id] || !hoists.at(*hoist_of[id]).worth_it) return append(out, std::move(node));
    const RowsProduct rows = *rows_product(out, node);  // in the rebuilt graph's ids
    Hoist& hoist = hoists.at(*hoist_of[id]);
    if (hoist.product < 0)
      hoist.product = all_rows_product(out, rows.source, rows.weight, node.spec.dtype);
    Shape shape = out.node(hoist.product).spec.shape;
    shape[rows.axis] = rows.stop - rows.start;
    const int step =
        out.add_op(slice_op, {{"axis", rows.axis}, {"start", rows.start}, {"stop", rows.stop}},
                   {hoist.product}, {shape, node.spec.dtype});
    return shape == node.spec.shape
               ? step
               : out.add_op(reshape_op, {{"shape", node.spec.shape}}, {step}, node.spec);
  });
}

// permute(gather(table, ids, axis 0), order) where the order moves only the axes of ids (an
// embedding's output, batch-major, turned time-major for the recurrence): the gather of the
// permuted ids, which writes the time-major rows directly, where the permute would have cost a
// copy of every embedded value. The axes of ids to permute, where that applies.
std::optional<std::vector<int64_t>> index_order(const Graph& graph, const GraphNode& node) {
  if (!is_op(node, permute_op)) return std::nullopt;
  const GraphNode& gather = graph.node(node.inputs[0]);
  if (!is_op(gather, gather_op) || gather.attrs.integer("axis") != 0) return std::nullopt;
  const std::vector<int64_t>& order = node.attrs.integers("order");
  const auto index_axes = static_cast<int64_t>(graph.node(gather.inputs[1]).spec.shape.size());
  for (int64_t axis = index_axes; axis < static_cast<int64_t>(order.size()); ++axis)
    if (order[axis] != axis) return std::nullopt;
  return std::vector<int64_t>(order.begin(), order.begin() + index_axes);
}

// In place, where the gather's readers are all that same permute (one per direction of a
// Bidirectional layer, until cse merges them): the gather becomes the permute of its ids, and
// each permute the gather of those (each id keeps its place in the order).
Graph gather_permuted_indices(Graph graph) {
  const Readers readers(graph);
  std::vector<bool> result(graph.nodes().size(), false);
  for (const GraphOutput& output : graph.outputs) result[output.node] = true;
  for (const GraphStore& store : graph.stores) result[store.value] = true;
  for (size_t gather_id = 0; gather_id < graph.nodes().size(); ++gather_id) {
    const std::span<const int> permutes = readers.of(static_cast<int>(gather_id));
    if (result[gather_id] || permutes.empty()) continue;
    const std::optional<std::vector<int64_t>> order = index_order(graph, graph.node(permutes[0]));
    if (!order || !std::ranges::all_of(permutes, [&](int reader) {
          const GraphNode& permute = graph.node(reader);
          return is_op(permute, permute_op) && permute.inputs[0] == static_cast<int>(gather_id) &&
                 permute.attrs == graph.node(permutes[0]).attrs;
        }))
      continue;
    GraphNode& gather = graph.nodes()[gather_id];
    const int table = gather.inputs[0], ids = gather.inputs[1];
    for (int reader : permutes) {
      GraphNode& permute = graph.nodes()[reader];
      permute.op = &gather_op;
      permute.attrs = gather.attrs;
      permute.inputs = {table, static_cast<int>(gather_id)};
    }
    Shape permuted;
    for (int64_t axis : *order) permuted.push_back(graph.node(ids).spec.shape[axis]);
    gather.op = &permute_op;
    gather.attrs = {{"order", *order}};
    gather.inputs = {ids};
    gather.spec = {permuted, graph.node(ids).spec.dtype};
  }
  return graph;
}

// Ops whose inputs are all constants, with small results, become constants; dropout_mask stays
// an op, a random draw for the lowering to generate. In place: ids do not change.
Graph constant_folding(Graph graph) {
  NoGrad no_grad;
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const GraphNode& node = graph.nodes()[id];
    if (node.kind != Kind::op || node.op == &dropout_mask_op ||
        shape_numel(node.spec.shape) > small_constant ||
        !std::ranges::all_of(node.inputs,
                             [&](int input) { return graph.node(input).kind == Kind::constant; }))
      continue;
    std::vector<Tensor> args;
    for (int input : node.inputs) args.push_back(graph.node(input).value);
    become_constant(graph, static_cast<int>(id), apply(*node.op, std::move(args), node.attrs));
  }
  return graph;
}

// Identities, no-op shape ops, chains of shape ops and slices of concats, each rewritten to less
// work. In place: a node rewritten to an earlier one is left unread, for dead-code elimination.
Graph algebraic_simplification(Graph graph) {
  return redirect(std::move(graph), [](const Graph& current, GraphNode& node, int id) {
    if (node.kind == Kind::op)
      for (auto rewrite : {drop_identity, drop_no_op, compose, slice_of_concat})
        if (const std::optional<int> rewritten = rewrite(current, node, id)) return *rewritten;
    return id;
  });
}

// Sums of zero-padded slices (hand-written slice gradients), each joined into one concat at the
// sum's root. The graph is rebuilt only where some sum has two such terms.
Graph join_padded_sums(Graph graph) {
  return rewrite_sums(
      std::move(graph), join_padded,
      [](const Graph& current, const GraphNode& node, const std::vector<int>& terms) {
        return padded_terms(current, node, terms).size() >= 2;
      });
}

// Sums of matmuls (a weight's gradient, one product per time step), each one GEMM over the
// stacked operands.
Graph merge_product_sums(Graph graph) {
  std::vector<std::vector<int>> stacks;
  for (const GraphNode& node : graph.nodes())
    if (std::optional<std::vector<int>> matrices = stacked_matrices(graph, node))
      stacks.push_back(std::move(*matrices));
  return rewrite_sums(
      std::move(graph),
      [&](Graph& out, const GraphNode& node, const std::vector<int>& terms,
          const std::vector<int>& renamed) {
        return merge_products(out, node, terms, renamed, stacks);
      },
      has_products);
}

// ---- splitting: an elementwise op read only through slices, computed slice by slice ----------

// The operand `input` of an elementwise op whose result (`result_shape`) is sliced [start, stop)
// along `axis`: the operand's matching slice, or the operand itself where it broadcasts along that
// axis or the slice is all of it. An extent of 1 where the result's is 1 too is no broadcast: an
// empty slice empties it.
int sliced_operand(Graph& out, int input, const Shape& result_shape, int64_t axis, int64_t start,
                   int64_t stop) {
  Shape shape = out.node(input).spec.shape;
  const int64_t own_axis = axis - static_cast<int64_t>(result_shape.size() - shape.size());
  if (own_axis < 0 || (shape[own_axis] == 1 && result_shape[axis] != 1) ||
      (start == 0 && stop == shape[own_axis]))
    return input;
  shape[own_axis] = stop - start;
  return out.add_op(slice_op, {{"axis", own_axis}, {"start", start}, {"stop", stop}}, {input},
                    {shape, out.node(input).spec.dtype});
}

// Elementwise ops read only through slices that together read each element at most once, and
// whose slices only elementwise ops read (an LSTM step's gate pre-activations, the sum of the
// input projection and the recurrent product, read as four gates): each slice becomes the op
// over its slices of the operands. The op then joins the loop of its slices' readers (the gate
// maths) instead of a loop of its own that writes the whole value for them to read back. (The
// cell sums all four gates at once, so that their gradients are one stack for both weights'.)
Graph split_sliced_elementwise(Graph graph) {
  std::vector<std::pair<const OpDef*, bool>> elementwise_ops;  // a few ops, asked ~10^5 times
  const auto elementwise = [&](const GraphNode& node) {
    if (node.kind != Kind::op) return false;
    for (const auto& [op, is] : elementwise_ops)
      if (op == node.op) return is;
    const bool is = std::holds_alternative<ElementLowering>(*find_lowering(*node.op));
    elementwise_ops.emplace_back(node.op, is);
    return is;
  };
  const size_t n = graph.nodes().size();
  std::vector<int64_t> sliced(n, 0);                 // elements read through slices
  std::vector<bool> read_whole(n, false);            // read other than through a slice, or kept
  std::vector<bool> read_not_elementwise(n, false);  // by an op that is not elementwise, or kept
  for (const GraphNode& node : graph.nodes()) {
    const bool is_elementwise = elementwise(node);
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (is_op(node, slice_op) && i == 0)
        sliced[node.inputs[0]] += shape_numel(node.spec.shape);
      else
        read_whole[node.inputs[i]] = true;
      if (!is_elementwise) read_not_elementwise[node.inputs[i]] = true;
    }
  }
  for (const GraphOutput& output : graph.outputs)
    read_whole[output.node] = read_not_elementwise[output.node] = true;
  for (const GraphStore& store : graph.stores)
    read_whole[store.value] = read_not_elementwise[store.value] = true;
  std::vector<bool> split(n, false);
  for (size_t id = 0; id < n; ++id) {
    const GraphNode& node = graph.nodes()[id];
    split[id] = !read_whole[id] && sliced[id] > 0 && sliced[id] <= shape_numel(node.spec.shape) &&
                elementwise(node);
  }
  for (size_t id = 0; id < n; ++id) {
    const GraphNode& node = graph.nodes()[id];
    if (is_op(node, slice_op) && read_not_elementwise[id]) split[node.inputs[0]] = false;
  }
  const auto first = std::ranges::find(split, true);
  if (first == split.end()) return graph;
  size_t added = 0;  // the slices' ops and operands
  for (const GraphNode& node : graph.nodes())
    if (is_op(node, slice_op) && split[node.inputs[0]])
      added += 1 + graph.node(node.inputs[0]).inputs.size();
  std::vector<bool> split_in_out;  // by id in the rebuilt graph
  return rebuild(
      std::move(graph),
      [&](Graph& out, GraphNode&& node, int id) {
        if (split[id]) {
          const int kept = append(out, std::move(node));  // unread once split: dce removes it
          split_in_out.resize(out.nodes().size(), false);
          split_in_out[kept] = true;
          return kept;
        }
        const int source = node.inputs.empty() ? -1 : node.inputs[0];
        if (!is_op(node, slice_op) || source >= static_cast<int>(split_in_out.size()) ||
            !split_in_out[source])
          return append(out, std::move(node));
        const int64_t axis = node.attrs.integer("axis");
        const int64_t start = node.attrs.integer("start"), stop = node.attrs.integer("stop");
        // Copies: adding nodes may move the graph's nodes.
        const OpDef& op = *out.node(source).op;
        const auto inputs = out.node(source).inputs;
        const Shape result_shape = out.node(source).spec.shape;
        std::vector<int> operands;
        for (int input : inputs)
          operands.push_back(sliced_operand(out, input, result_shape, axis, start, stop));
        return out.add_op(op, out.node(source).attrs, std::move(operands), std::move(node.spec));
      },
      static_cast<int>(first - split.begin()), added);
}

// A small constant's identity: dtype, shape and the bytes of its values.
std::tuple<DType, Shape, std::string> constant_key(const Tensor& value) {
  const Tensor dense = value.is_contiguous() ? value : value.copy();
  const char* bytes = static_cast<const char*>(dense.raw_data());
  return {dense.dtype(), dense.shape(),
          std::string(bytes, bytes + dense.numel() * dtype_size(dense.dtype()))};
}

// Ops with the same op, attrs and inputs, and equal small constants, are computed once
// (dropout_mask included: its mask is a function of its attrs). In place: the readers of a repeat
// read the first instead, and the repeats, left unread, are for dead-code elimination to remove.
Graph common_subexpressions(Graph graph) {
  std::map<std::tuple<DType, Shape, std::string>, int> constants;
  // The first of each op, by a hash of the op, its attrs and inputs: open addressing in one array
  // of (hash, id) slots, at most half full (a node-based map spent most of this pass allocating
  // and chasing its nodes), on huge pages (its ~10^5 random probes missed the TLB).
  struct Slot {
    size_t hash;
    int id = -1;
  };
  std::vector<Slot, HugePageAllocator<Slot>> ops(std::bit_ceil(2 * graph.nodes().size() + 2));
  const size_t mask = ops.size() - 1;
  const int slot_bits = std::countr_zero(ops.size());
  return redirect(std::move(graph), [&](const Graph& current, const GraphNode& node, int id) {
    if (node.kind == Kind::constant)
      return node.value.numel() > small_constant
                 ? id
                 : constants.try_emplace(constant_key(node.value), id).first->second;
    size_t hash = std::hash<const OpDef*>{}(node.op) ^ node.attrs.hash();
    for (int input : node.inputs) hash = hash * 1000003 ^ std::hash<int>{}(input);
    size_t at = (hash * 0x9E3779B97F4A7C15ull) >> (64 - slot_bits);  // the hash's high bits
    for (; ops[at].id >= 0; at = (at + 1) & mask) {
      const GraphNode& first = current.node(ops[at].id);
      if (ops[at].hash == hash && first.op == node.op && first.inputs == node.inputs &&
          first.attrs == node.attrs)
        return ops[at].id;
    }
    ops[at] = {hash, id};
    return id;
  });
}

// Nodes that no output or store needs are removed; inputs stay. In place: the kept nodes move
// down over the removed ones, in order.
Graph dead_code(Graph graph) {
  const std::vector<bool> live = needed(graph);
  GraphNodes& nodes = graph.nodes();
  std::vector<int> renamed(nodes.size(), -1);
  int kept = 0;
  for (size_t id = 0; id < nodes.size(); ++id) {
    if (nodes[id].kind != Kind::input && !live[id]) continue;
    for (int& input : nodes[id].inputs) {
      WEFT_CHECK(renamed[input] >= 0, "dce: node %{} was removed but %{} reads it", input, id);
      input = renamed[input];
    }
    if (static_cast<size_t>(kept) != id) nodes[kept] = std::move(nodes[id]);
    renamed[id] = kept++;
  }
  nodes.erase(nodes.begin() + kept, nodes.end());
  for (GraphOutput& output : graph.outputs) output.node = renamed[output.node];
  for (GraphStore& store : graph.stores) store = {renamed[store.input], renamed[store.value]};
  return graph;
}

}  // namespace

const std::vector<Pass>& pipeline() {
  static const std::vector<Pass> passes = {
      {"fold", "ops on small constants become constants", constant_folding},
      {"hoist", "per-step matmuls of one weight over one tensor's time slices become one GEMM",
       hoist_input_projections},
      {"gather", "a permute of a gather's index axes gathers by permuted indices",
       gather_permuted_indices},
      {"simplify", "identities, no-op shape ops, chains of shape ops, slices of concats",
       algebraic_simplification},
      {"join", "sums of zero-padded slices (slice gradients) become one concat", join_padded_sums},
      {"merge", "sums of matmuls (a weight's gradient over the time steps) become one GEMM",
       merge_product_sums},
      {"split", "elementwise ops read only through slices are computed slice by slice",
       split_sliced_elementwise},
      {"cse", "equal ops on the same inputs, and equal small constants, merged",
       common_subexpressions},
      {"dce", "nodes no output or store needs removed", dead_code},
  };
  return passes;
}

Graph optimize(Graph graph, const std::function<void(const Pass&, const Graph&)>& after_each) {
  Graph current = std::move(graph);
  for (const Pass& pass : pipeline()) {
    current = pass.run(std::move(current));
    if (after_each) after_each(pass, current);
  }
  return current;
}

}  // namespace weft
