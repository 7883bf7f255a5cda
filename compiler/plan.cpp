#include "weft/compiler/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "weft/runtime/error.h"

namespace weft {

bool own_argument(const Call& call, size_t w) {
  return w >= call.in_place_of.size() || call.in_place_of[w] < 0;
}

int member_index(const Call& call, int id) {
  return static_cast<int>(std::find(call.members.begin(), call.members.end(), id) -
                          call.members.begin());
}

Operand operand_of(const Call& call, int input) {
  const auto member = std::lower_bound(call.members.begin(), call.members.end(), input);
  if (member != call.members.end() && *member == input)
    return {Operand::Kind::member, static_cast<int>(member - call.members.begin())};
  const auto read = std::find(call.read_nodes.begin(), call.read_nodes.end(), input);
  if (read != call.read_nodes.end())
    return {Operand::Kind::read, static_cast<int>(read - call.read_nodes.begin())};
  return {Operand::Kind::immediate, -1};
}

std::string describe(const Graph& graph, int id) {
  const GraphNode& node = graph.node(id);
  if (node.kind == GraphNode::Kind::input) return fmt::format("input %{} \"{}\"", id, node.name);
  if (node.kind == GraphNode::Kind::constant) return fmt::format("constant %{}", id);
  return fmt::format("'{}' (node %{})", node.op->name, id);
}

const Lowering& lowering_of(const Graph& graph, int id) {
  const GraphNode& node = graph.node(id);
  const Lowering* lowering = find_lowering(*node.op);
  WEFT_CHECK(lowering != nullptr, "compile: {} has no lowering to LLVM IR", describe(graph, id));
  return *lowering;
}

namespace {

// One printer for every stage's value: offsets once placed, loops once rerolled.
std::string text(const Graph& graph, const Fusion& fusion, const Placement* placement,
                 const Schedule* schedule) {
  auto where = [&](const Place& place) {
    const Buffer& buffer = fusion.buffers[place.buffer];
    const char* kinds[] = {"input", "output", "constant", "arena"};
    const std::string base = buffer.kind != Buffer::Kind::arena
                                 ? fmt::format("{}{}", kinds[static_cast<int>(buffer.kind)],
                                               buffer.kind == Buffer::Kind::constant
                                                   ? buffer.slot - fusion.first_constant_slot
                                                   : buffer.slot)
                             : placement ? fmt::format("arena+{}", placement->offsets[place.buffer])
                                         : fmt::format("buffer{}", place.buffer);
    return fmt::format("{}[{}] {}{}/{}", base, place.layout.offset, dtype_name(place.dtype),
                       shape_str(to_shape(place.layout.shape)),
                       shape_str(to_shape(place.layout.strides)));
  };
  std::string text;
  auto add_call = [&](size_t c) {
    const Call& call = fusion.calls[c];
    std::vector<std::string> ops, reads, writes;
    for (int member : call.members)
      ops.push_back(fmt::format(
          "%{} {}{}", member, graph.node(member).op->name,
          std::ranges::binary_search(call.recomputed, member) ? " (computed again)" : ""));
    for (const Place& place : call.reads) reads.push_back(where(place));
    for (const Place& place : call.writes) writes.push_back(where(place));
    const char* kind = call.kind == Call::Kind::fused ? "fused"
                       : call.kind == Call::Kind::op  ? "kernel"
                                                      : "copy";
    text += fmt::format("{:>4} k{} {} [{}]\n       reads {}\n       writes {}\n", c,
                        fusion.kernel_of[c], kind, fmt::join(ops, ", "), fmt::join(reads, "; "),
                        fmt::join(writes, "; "));
  };
  if (schedule == nullptr)
    for (size_t c = 0; c < fusion.calls.size(); ++c) add_call(c);
  else
    for (const Segment& segment : schedule->segments) {
      const Run& run = segment.run;
      if (run.count > 1)
        text += fmt::format(
            "loop {} times: calls {} to {}, each time the next {} with every argument "
            "moved by a fixed stride\n",
            run.count, run.first, run.end() - 1, run.period);
      for (size_t j = 0; j < run.period; ++j) add_call(run.first + j);
      if (run.count > 1) text += "end of loop\n";
    }
  if (placement != nullptr)
    text += fmt::format("arena: {} bytes ({} without reuse)\n", placement->arena_bytes,
                        placement->unplanned_bytes);
  return text;
}

}  // namespace

std::string plan_text(const Graph& graph, const Fusion& fusion) {
  return text(graph, fusion, nullptr, nullptr);
}
std::string plan_text(const Graph& graph, const Placement& placement) {
  return text(graph, placement.fusion, &placement, nullptr);
}
std::string plan_text(const Graph& graph, const Schedule& schedule) {
  return text(graph, schedule.placement.fusion, &schedule.placement, &schedule);
}

}  // namespace weft
