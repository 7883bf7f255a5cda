#include "weft/compiler/graph.h"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "weft/ops/definitions.h"

namespace weft {

int Graph::add_input(std::string name, TensorSpec spec) {
  nodes_.push_back(
      {.kind = GraphNode::Kind::input, .spec = std::move(spec), .name = std::move(name)});
  return static_cast<int>(nodes_.size()) - 1;
}

int Graph::add_constant(const Tensor& value) {
  nodes_.push_back({.kind = GraphNode::Kind::constant,
                    .spec = {value.shape(), value.dtype()},
                    .value = value.copy()});
  return static_cast<int>(nodes_.size()) - 1;
}

int Graph::add_op(const OpDef& op, Attrs attrs, std::vector<int> inputs, TensorSpec spec) {
  const int id = static_cast<int>(nodes_.size());
  for (int input : inputs)
    WEFT_CHECK(0 <= input && input < id, "graph: op '{}' reads node {} which comes after it",
               op.name, input);
  nodes_.push_back({.kind = GraphNode::Kind::op,
                    .op = &op,
                    .attrs = std::move(attrs),
                    .inputs = {inputs.begin(), inputs.end()},
                    .spec = std::move(spec)});
  return id;
}

std::vector<int> Graph::input_ids() const {
  std::vector<int> ids;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].kind == GraphNode::Kind::input) ids.push_back(static_cast<int>(i));
  return ids;
}

int Graph::input_id(const std::string& name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].kind == GraphNode::Kind::input && nodes_[i].name == name)
      return static_cast<int>(i);
  throw Error("graph: no input named \"{}\"", name);
}

namespace {

std::string spec_str(const TensorSpec& spec) {
  return fmt::format("{} {}", dtype_name(spec.dtype), shape_str(spec.shape));
}

std::string node_label(const GraphNode& node) {
  switch (node.kind) {
    case GraphNode::Kind::input:
      return fmt::format("input \"{}\"", node.name);
    case GraphNode::Kind::constant:
      return node.value.numel() == 1 ? fmt::format("constant {:g}", node.value.item())
                                     : std::string("constant");
    case GraphNode::Kind::op:
      break;
  }
  std::vector<std::string> args;
  for (int input : node.inputs) args.push_back(fmt::format("%{}", input));
  const std::string attrs = node.attrs.to_string();
  return fmt::format("{}({}{}{})", node.op->name, fmt::join(args, ", "),
                     attrs.empty() || args.empty() ? "" : ", ", attrs);
}

}  // namespace

std::string Graph::to_text() const {
  std::string text;
  for (size_t i = 0; i < nodes_.size(); ++i)
    text += fmt::format("%{} = {} : {}\n", i, node_label(nodes_[i]), spec_str(nodes_[i].spec));
  for (const GraphOutput& output : outputs)
    text += fmt::format("output \"{}\" = %{}\n", output.name, output.node);
  for (const GraphStore& store : stores)
    text += fmt::format("store \"{}\" <- %{}\n", nodes_[store.input].name, store.value);
  return text;
}

std::string Graph::to_dot() const {
  std::string text = "digraph step {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n";
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const GraphNode& node = nodes_[i];
    const char* shape = node.kind == GraphNode::Kind::input      ? "box"
                        : node.kind == GraphNode::Kind::constant ? "note"
                                                                 : "ellipse";
    const std::string label =
        node.kind == GraphNode::Kind::op ? fmt::format("{}", node.op->name) : node_label(node);
    std::string escaped;
    for (char c : label) escaped += c == '"' ? std::string("\\\"") : std::string(1, c);
    text += fmt::format("  n{} [shape={}, label=\"%{} {}\\n{}\"];\n", i, shape, i, escaped,
                        spec_str(node.spec));
    for (int input : node.inputs) text += fmt::format("  n{} -> n{};\n", input, i);
  }
  for (const GraphOutput& output : outputs)
    text += fmt::format("  out_{0} [shape=plaintext, label=\"{0}\"];\n  n{1} -> out_{0};\n",
                        output.name, output.node);
  for (const GraphStore& store : stores)
    text +=
        fmt::format("  n{} -> n{} [style=dashed, label=\"store\"];\n", store.value, store.input);
  return text + "}\n";
}

namespace {

class CaptureTracer : public Tracer {
 public:
  CaptureTracer(Graph& graph, uint64_t first_serial, CaptureMode mode)
      : graph_(graph), first_serial_(first_serial), mode_(mode) {}

  bool computes_values() const override { return mode_ == CaptureMode::eager; }

  void declare(const std::string& name, const Tensor& tensor) {
    inputs_[tensor.impl()] =
        remember(tensor, graph_.add_input(name, {tensor.shape(), tensor.dtype()}));
  }

  // The node holding `tensor`'s value, if the step has one.
  std::optional<int> known(const Tensor& tensor) const {
    if (auto found = ids_.find(tensor.impl()); found != ids_.end()) return found->second;
    // detach() makes a new handle on the same values: the same storage, offset and strides.
    const auto [first, last] = by_storage_.equal_range(tensor.impl()->storage.get());
    for (auto it = first; it != last; ++it) {
      const Tensor& other = alive_[it->second];
      if (other.impl()->offset == tensor.impl()->offset && other.shape() == tensor.shape() &&
          other.strides() == tensor.strides() && other.dtype() == tensor.dtype())
        return ids_.at(other.impl());
    }
    return std::nullopt;
  }

  int id_of(const Tensor& tensor, std::string_view reader) {
    if (const std::optional<int> id = known(tensor)) return *id;
    WEFT_CHECK(!tensor.is_meta(),
               "capture: '{}' reads a value computed by '{}' outside this capture, which has no "
               "value to freeze",
               reader, tensor.impl()->storage->producer());
    WEFT_CHECK(tensor.impl()->storage->serial() >= first_serial_,
               "capture: '{}' reads a {} {} tensor that existed before the step and is not one "
               "of its inputs; it would be frozen into the compiled step",
               reader, dtype_name(tensor.dtype()), shape_str(tensor.shape()));
    if (tensor.dim() != 0) return remember(tensor, graph_.add_constant(tensor));
    // The VJPs make a fresh scalar (a 1, a 0 to broadcast) at every step: one node per value.
    uint64_t bits = 0;
    std::memcpy(&bits, tensor.raw_data(), dtype_size(tensor.dtype()));
    const auto [scalar, added] = scalars_.try_emplace({tensor.dtype(), bits}, -1);
    if (added) scalar->second = graph_.add_constant(tensor);
    return remember(tensor, scalar->second);
  }

  void on_op(const OpDef& op, std::span<const Tensor> inputs, const Attrs& attrs,
             const Tensor& output) override {
    std::vector<int> ids;
    for (const Tensor& input : inputs) ids.push_back(id_of(input, op.name));
    remember(output, graph_.add_op(op, attrs, std::move(ids), {output.shape(), output.dtype()}));
  }

  // A copy of a value the step computed is that value; a copy of anything else becomes a
  // constant or an error when it is read, as its source would.
  void on_copy(const Tensor& source, const Tensor& copy) override {
    if (const std::optional<int> id = known(source)) remember(copy, *id);
  }

  void on_assign(const Tensor& target, const Tensor& source) override {
    // Later reads of the target within the step see the assigned value.
    remember(target, store(target, source, "assign_"));
  }

  void on_store_at_end(const Tensor& target, const Tensor& source) override {
    store(target, source, "a store at the step's end");
  }

 private:
  // Records the store of `source` into `target`, an input; returns the stored value's node: the
  // source converted to the target's dtype, as the store converts it (later reads of the target
  // must see a value of its own dtype).
  int store(const Tensor& target, const Tensor& source, const char* what) {
    const auto found = inputs_.find(target.impl());
    WEFT_CHECK(found != inputs_.end(),
               "capture: {} into a {} tensor that is not an input of the step", what,
               shape_str(target.shape()));
    int value = id_of(source, what);
    if (source.dtype() != target.dtype())
      value = graph_.add_op(cast_op, {{"dtype", static_cast<int64_t>(target.dtype())}}, {value},
                            {target.shape(), target.dtype()});
    graph_.stores.push_back({.input = found->second, .value = value});
    return value;
  }

  // Tensors are known by address, so every tensor seen stays alive until the capture ends:
  // a freed tensor's address could otherwise come back as another tensor.
  int remember(const Tensor& tensor, int id) {
    ids_[tensor.impl()] = id;
    by_storage_.emplace(tensor.impl()->storage.get(), alive_.size());
    alive_.push_back(tensor);
    return id;
  }

  Graph& graph_;
  uint64_t first_serial_;
  CaptureMode mode_;
  std::unordered_map<const TensorImpl*, int> ids_;     // the node holding each tensor's value
  std::unordered_map<const TensorImpl*, int> inputs_;  // declared inputs
  std::vector<Tensor> alive_;
  std::unordered_multimap<const Storage*, size_t> by_storage_;  // into alive_
  std::map<std::pair<DType, uint64_t>, int> scalars_;           // 0-d constants by value
};

}  // namespace

Graph capture(const std::vector<std::pair<std::string, Tensor>>& inputs,
              const std::function<std::vector<std::pair<std::string, Tensor>>()>& step,
              CaptureMode mode) {
  Graph graph;
  CaptureTracer tracer(graph, next_storage_serial(), mode);
  for (const auto& [name, tensor] : inputs) tracer.declare(name, tensor);
  std::vector<std::pair<std::string, Tensor>> results;
  {
    TracingScope scope(tracer);
    results = step();
  }
  for (const auto& [name, tensor] : results)
    graph.outputs.push_back({name, tracer.id_of(tensor, "output")});
  return graph;
}

std::vector<Tensor> evaluate(const Graph& graph, const std::vector<Tensor>& inputs) {
  const std::vector<int> input_ids = graph.input_ids();
  WEFT_CHECK(inputs.size() == input_ids.size(), "evaluate: {} inputs for a graph of {}",
             inputs.size(), input_ids.size());
  NoGrad no_grad;
  std::vector<Tensor> values(graph.nodes().size());
  for (size_t i = 0; i < input_ids.size(); ++i) {
    const TensorSpec& spec = graph.node(input_ids[i]).spec;
    WEFT_CHECK(inputs[i].shape() == spec.shape && inputs[i].dtype() == spec.dtype,
               "evaluate: input \"{}\" is {} {}, the graph expects {} {}",
               graph.node(input_ids[i]).name, dtype_name(inputs[i].dtype()),
               shape_str(inputs[i].shape()), dtype_name(spec.dtype), shape_str(spec.shape));
    values[input_ids[i]] = inputs[i];
  }
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const GraphNode& node = graph.nodes()[i];
    if (node.kind == GraphNode::Kind::constant) values[i] = node.value;
    if (node.kind != GraphNode::Kind::op) continue;
    std::vector<Tensor> args;
    for (int input : node.inputs) args.push_back(values[input]);
    values[i] = apply(*node.op, std::move(args), node.attrs);
  }
  // Stores after every read: the step's reads all see the values from before it, so outputs and
  // stored values that are views of a stored input are copied before the first store.
  const auto before_stores = [&](const Tensor& value) {
    for (const GraphStore& store : graph.stores)
      if (values[store.input].impl()->storage == value.impl()->storage) return value.copy();
    return value;
  };
  std::vector<Tensor> outputs;
  for (const GraphOutput& output : graph.outputs)
    outputs.push_back(before_stores(values[output.node]));
  std::vector<std::pair<Tensor, Tensor>> writes;
  for (const GraphStore& store : graph.stores)
    writes.push_back({values[store.input], before_stores(values[store.value])});
  for (const auto& [target, value] : writes) target.assign_(value);
  return outputs;
}

}  // namespace weft
