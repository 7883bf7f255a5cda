// The lowering plan (fusion, views, kernels, buffers) and the IR of the step; see compile.h.
#include "weft/compiler/compile.h"

#include <fmt/format.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <variant>

#include "weft/compiler/analysis.h"
#include "weft/ops/lowering.h"
#include "weft/runtime/error.h"

namespace weft {
namespace {

Jit& process_jit() {
  // Never destroyed: compiled steps held by static objects may outlive any other owner.
  static Jit* jit = Jit::create().release();
  return *jit;
}

std::string describe(const Graph& graph, int id) {
  const GraphNode& node = graph.node(id);
  if (node.kind == GraphNode::Kind::input) return fmt::format("input %{} \"{}\"", id, node.name);
  if (node.kind == GraphNode::Kind::constant) return fmt::format("constant %{}", id);
  return fmt::format("'{}' (node %{})", node.op->name, id);
}

const Lowering& lowering_of(const Graph& graph, int id) {
  const Lowering* lowering = find_lowering(*graph.node(id).op);
  WEFT_CHECK(lowering != nullptr, "compile: {} has no lowering to LLVM IR", describe(graph, id));
  return *lowering;
}

int64_t aligned(int64_t bytes) { return (bytes + 63) / 64 * 64; }

// Merges adjacent dimensions that every layout walks as one (and drops size-1 dimensions), so a
// loop over contiguous data is one loop, which vectorises.
Shape collapse(Shape shape, std::vector<Shape*> strides) {
  Shape merged;
  std::vector<Shape> merged_strides(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool joins = !merged.empty();
    for (size_t k = 0; k < strides.size() && joins; ++k)
      joins = merged_strides[k].back() == (*strides[k])[d] * shape[d];
    if (joins) {
      merged.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) merged_strides[k].back() = (*strides[k])[d];
      continue;
    }
    merged.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) merged_strides[k].push_back((*strides[k])[d]);
  }
  for (size_t k = 0; k < strides.size(); ++k) *strides[k] = merged_strides[k];
  return merged;
}

std::string layout_str(const Layout& layout, DType dtype) {
  return fmt::format("{}{}/{}", dtype_name(dtype), shape_str(layout.shape),
                     shape_str(layout.strides));
}

// ---- The plan ---------------------------------------------------------------------------------

struct Buffer {
  enum class Kind { input, output, constant, arena };
  Kind kind;
  int slot;  // in the step's pointer array (inputs, outputs, constants); -1 for the arena
  int64_t bytes = 0;
  int first = -1, last = -1;  // the calls that write it first and read it last
  int64_t offset = 0;         // in the arena
  int owner = -1;             // the node whose value it holds, for one made for a node's value
  // A buffer that is a contiguous region of another (a concat part computed in place): that
  // buffer and the region's element offset in it. Resolved when fuse ends.
  int region_of = -1;
  int64_t region_offset = 0;
  bool has_regions = false;  // other buffers are regions of this one
};

struct Place {
  int buffer = -1;  // -1: not in memory (a value inside a fused loop, or a scalar immediate)
  Layout layout;
  DType dtype = DType::f32;
};

// One kernel call of the step.
struct Call {
  enum class Kind { fused, op, copy };
  Kind kind;
  std::vector<int> members = {};  // fused: its ops, in id order; op: the op
  Shape shape = {};               // fused: the loop's
  std::vector<Place> reads = {};  // fused: its outside operands (laid out over `shape`); op: inputs
  std::vector<int> read_nodes = {};  // fused: the node of each read
  std::vector<Place> writes = {};    // fused: the members kept in memory; op: output; copy: target
  std::vector<int> written_members = {};
  // Fused, by write: the read that dies here whose buffer, and kernel argument, it takes (the same
  // layout), or -1.
  std::vector<int> in_place_of = {};
};

// Whether write `w` of `call` is a kernel argument of its own (not a read's, in place).
bool own_argument(const Call& call, size_t w) {
  return w >= call.in_place_of.size() || call.in_place_of[w] < 0;
}

int member_index(const Call& call, int id) {
  return static_cast<int>(std::find(call.members.begin(), call.members.end(), id) -
                          call.members.begin());
}

// How a fused member reads an operand: another member's value, an outside read, or an immediate
// (a 0-d constant).
struct Operand {
  enum class Kind { member, read, immediate };
  Kind kind;
  int index;  // into the call's members or reads
};

Operand operand_of(const Call& call, int input) {
  const auto member = std::lower_bound(call.members.begin(), call.members.end(), input);
  if (member != call.members.end() && *member == input)
    return {Operand::Kind::member, static_cast<int>(member - call.members.begin())};
  const auto read = std::find(call.read_nodes.begin(), call.read_nodes.end(), input);
  if (read != call.read_nodes.end())
    return {Operand::Kind::read, static_cast<int>(read - call.read_nodes.begin())};
  return {Operand::Kind::immediate, -1};
}

// A kernel's signature, as words: compared as a map key, never shown. Values are added as they
// are rather than formatted, into one buffer reused for every call (the fuse stage writes one per
// call, thousands per step, and keeps only the few distinct ones).
using Signature = std::vector<uint64_t>;

struct SignatureHash {
  size_t operator()(const Signature& words) const {
    uint64_t hash = words.size();
    for (uint64_t word : words) hash = (hash ^ word) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(hash ^ (hash >> 32));
  }
};

class SignatureWriter {
 public:
  explicit SignatureWriter(Signature& words) : words_(words) { words_.clear(); }
  template <typename Integer>
  requires std::is_integral_v<Integer>
  void add(Integer value) { words_.push_back(static_cast<uint64_t>(value)); }
  void add(double value) { words_.push_back(std::bit_cast<uint64_t>(value)); }
  void add(const std::vector<int64_t>& values) {
    add(values.size());
    words_.insert(words_.end(), values.begin(), values.end());
  }
  // Ops are registered once, for the life of the process: an op's address names it.
  void add(const OpDef& op) { add(reinterpret_cast<uintptr_t>(&op)); }
  void add(std::string_view text) {
    add(text.size());
    for (size_t at = 0; at < text.size(); at += sizeof(uint64_t)) {
      uint64_t word = 0;
      std::memcpy(&word, text.data() + at, std::min(sizeof word, text.size() - at));
      add(word);
    }
  }
  void add(const Place& place) {
    add(place.dtype);
    add(place.layout.shape);
    add(place.layout.strides);
  }
  void add(DType dtype) { add(static_cast<int>(dtype)); }
  void add(const Attrs& attrs) {
    add(attrs.items().size());
    for (const auto& [name, value] : attrs.items()) {
      add(name);
      std::visit([this](const auto& v) { add(v); }, value);
    }
  }

 private:
  Signature& words_;
};

// Writes into `words` what a call's kernel does, apart from the buffers it is given: calls with
// equal signatures share one kernel.
void write_signature(const Graph& graph, const Call& call, Signature& words) {
  SignatureWriter signature(words);
  signature.add(static_cast<int>(call.kind));
  signature.add(call.reads.size());
  for (const Place& place : call.reads) signature.add(place);
  signature.add(call.writes.size());
  for (const Place& place : call.writes) signature.add(place);
  if (call.kind == Call::Kind::copy) return;
  if (call.kind == Call::Kind::op) {
    const GraphNode& node = graph.node(call.members[0]);
    signature.add(*node.op);
    signature.add(node.attrs);
    return;
  }
  signature.add(call.shape);
  signature.add(call.members.size());
  for (int member : call.members) {
    const GraphNode& node = graph.node(member);
    signature.add(*node.op);
    signature.add(node.spec.dtype);
    signature.add(node.inputs.size());
    for (int input : node.inputs) {
      const Operand operand = operand_of(call, input);
      signature.add(static_cast<int>(operand.kind));
      if (operand.kind != Operand::Kind::immediate) {
        signature.add(operand.index);
        continue;
      }
      signature.add(graph.node(input).spec.dtype);
      signature.add(graph.node(input).value.item());
    }
    signature.add(node.attrs);
  }
  for (size_t w = 0; w < call.written_members.size(); ++w) {
    signature.add(member_index(call, call.written_members[w]));
    signature.add(own_argument(call, w) ? -1 : call.in_place_of[w]);
  }
}

constexpr size_t kMaxPeriod = 64;  // calls in one repeated stretch (one time step)
constexpr size_t kMinRepeats = 3;

// A stretch of `period` calls repeated `count` times; `moves[j]`: how the arguments of the
// stretch's call j move from one repetition to the next.
template <typename Move>
struct Repetition {
  size_t period = 0, count = 1;
  std::vector<std::vector<Move>> moves = {};
};

// The longest repetition starting at call `first` (ending by `end`) in which every argument moves
// the same way each time: `moves_between(a, b, moves)` appends to `moves` how call b's arguments
// follow call a's, or returns false when b is not a repeat of a.
template <typename Move, typename MovesBetween>
Repetition<Move> find_repetition(size_t first, size_t end, const MovesBetween& moves_between) {
  Repetition<Move> best;
  std::vector<Move> moves;  // one buffer for every comparison: this runs for each call of a step
  for (size_t period = 1; period <= kMaxPeriod && first + kMinRepeats * period <= end; ++period) {
    // A multiple of a period that repeats is made of that period's stretches: it covers no more
    // calls, and checking it would redo the same comparisons two or three times over.
    if (best.period > 0 && period % best.period == 0) continue;
    Repetition<Move> candidate{.period = period, .count = 1};
    auto repeats = [&] {
      const size_t start = first + (candidate.count - 1) * period;
      for (size_t j = 0; j < period; ++j) {
        moves.clear();
        if (!moves_between(start + j, start + period + j, moves)) return false;
        if (candidate.count == 1)
          candidate.moves.push_back(moves);
        else if (moves != candidate.moves[j])
          return false;
      }
      return true;
    };
    while (first + (candidate.count + 1) * period <= end && repeats()) ++candidate.count;
    if (candidate.count >= kMinRepeats &&
        candidate.count * period > best.count * std::max<size_t>(best.period, 1))
      best = std::move(candidate);
  }
  return best;
}

class Planner {
 public:
  // Members a loop takes at most: beyond this a loop body gains little and LLVM's instruction
  // scheduler (quadratic in a block's size) dominates compile time.
  static constexpr int kMaxGroupSize = 24;

  explicit Planner(const Graph& graph)
      : graph_(graph),
        places_(graph.nodes().size()),
        group_of_(graph.nodes().size(), -1),
        readers_(graph),
        kept_(graph.nodes().size(), false),
        written_by_(graph.nodes().size(), {-1, -1}) {
    for (const GraphOutput& output : graph.outputs) kept_[output.node] = true;
    for (const GraphStore& store : graph.stores) kept_[store.value] = true;
    int next_input = 0;
    for (int id : graph.input_ids())
      places_[id] = {add_buffer(Buffer::Kind::input, next_input++, 0),
                     contiguous_layout(graph.node(id).spec.shape), graph.node(id).spec.dtype};
    input_count_ = next_input;
    output_buffer_.assign(graph.outputs.size(), -1);
  }

  // Stage "fuse": the calls, in order (fused loops, kernels, copies), each value's place.
  void fuse() {
    for (size_t id = 0; id < graph_.nodes().size(); ++id) {
      const GraphNode& node = graph_.nodes()[id];
      if (node.kind != GraphNode::Kind::op) continue;
      const Lowering& lowering = lowering_of(graph_, static_cast<int>(id));
      if (lowering.element != nullptr)
        plan_element(static_cast<int>(id));
      else if (lowering.view != nullptr)
        plan_view(static_cast<int>(id), lowering);
      else {
        // No loop spans another call: its place among the calls is then the same in every time
        // step, for re-rolling, and a sum over time steps (a weight's gradient) is added up as
        // it goes instead of at the end, each term freed at once.
        close_open_groups();
        if (lowering.region != nullptr)
          plan_regions(static_cast<int>(id), lowering);
        else
          plan_kernel(static_cast<int>(id), lowering);
      }
    }
    for (size_t g = 0; g < groups_.size(); ++g) close(static_cast<int>(g));
    // Outputs not computed straight into their buffer, then the stores: after every read.
    for (size_t i = 0; i < graph_.outputs.size(); ++i) {
      const int node = graph_.outputs[i].node;
      if (output_buffer_[i] >= 0 && places_[node].buffer == output_buffer_[i]) continue;
      const int buffer = add_buffer(Buffer::Kind::output, output_slot(i), 0);
      output_buffer_[i] = buffer;
      copy(materialized(node),
           {buffer, contiguous_layout(graph_.node(node).spec.shape), graph_.node(node).spec.dtype});
    }
    // The stores copy one after another, so a value read from the buffer of its own target or of
    // an earlier store's (a view of a stored input) is set aside first: every read sees the
    // values from before the stores.
    std::vector<std::pair<Place, Place>> stores;
    std::set<int> stored;
    for (const GraphStore& store : graph_.stores) {
      Place source = materialized(store.value);
      const Place& target = places_[store.input];
      if (source.buffer == target.buffer && source.layout.offset == 0 &&
          is_contiguous(source.layout))
        continue;
      stored.insert(target.buffer);
      if (stored.contains(source.buffer)) source = contiguous_copy(source);
      stores.emplace_back(source, target);
    }
    first_store_ = static_cast<int>(calls_.size());
    for (const auto& [source, target] : stores) copy(source, target);
    resolve_regions();
    std::unordered_map<Signature, int, SignatureHash> kernel_ids;
    Signature signature;
    for (const Call& call : calls_) {
      write_signature(graph_, call, signature);
      auto kernel = kernel_ids.find(signature);
      if (kernel == kernel_ids.end())
        kernel = kernel_ids.emplace(signature, static_cast<int>(kernel_ids.size())).first;
      kernel_of_.push_back(kernel->second);
    }
    kernel_count_ = static_cast<int>(kernel_ids.size());
  }

  const Graph& graph_;
  std::vector<Place> places_;
  std::vector<int> group_of_;
  Readers readers_;
  std::vector<bool> kept_;  // outputs and stored values
  // By node: the call (a fused loop or a kernel), and its write, that put the node's value in
  // memory.
  std::vector<std::pair<int, int>> written_by_;
  std::vector<Buffer> buffers_;
  std::vector<Call> calls_;
  std::vector<int> output_buffer_;  // the buffer of each output
  std::vector<int> constant_nodes_;
  // The pointer array holds the inputs, then the outputs, then the constants.
  int output_slot(size_t output) const { return input_count_ + static_cast<int>(output); }
  int first_constant_slot() const { return output_slot(graph_.outputs.size()); }
  int first_store_ = 0;
  int input_count_ = 0;
  // By call: its kernel (calls with equal signatures share one).
  std::vector<int> kernel_of_;
  int kernel_count_ = 0;
  bool placed_ = false;  // buffers have their offsets
  int64_t arena_bytes_ = 0, unplanned_bytes_ = 0;
  // By call: its arguments, as bytes into a buffer of the pointer array (slot) or the arena (-1).
  struct SiteArg {
    int64_t slot;
    int64_t bytes;
  };
  std::vector<std::vector<SiteArg>> site_args_;
  // The calls as the step runs them: each segment is one call (period 1, count 1) or a loop.
  struct Segment {
    size_t first;  // call
    Repetition<int64_t> run;
  };
  std::vector<Segment> segments_;
  int64_t rolled_calls_ = 0;

 private:
  struct Group {
    std::vector<int> members;
    Shape shape;
    bool open = true;
  };

  int add_buffer(Buffer::Kind kind, int slot, int64_t bytes) {
    buffers_.push_back({kind, slot, bytes});
    return static_cast<int>(buffers_.size()) - 1;
  }

  // A fresh contiguous buffer for an op's value: its output's buffer when it is an output.
  Place new_value(int id) {
    const TensorSpec& spec = graph_.node(id).spec;
    for (size_t i = 0; i < graph_.outputs.size(); ++i)
      if (graph_.outputs[i].node == id && output_buffer_[i] < 0) {
        output_buffer_[i] = add_buffer(Buffer::Kind::output, output_slot(i), 0);
        return {output_buffer_[i], contiguous_layout(spec.shape), spec.dtype};
      }
    const int64_t bytes = shape_numel(spec.shape) * static_cast<int64_t>(dtype_size(spec.dtype));
    const int buffer = add_buffer(Buffer::Kind::arena, -1, bytes);
    buffers_[buffer].owner = id;
    return {buffer, contiguous_layout(spec.shape), spec.dtype};
  }

  // Where a consumer outside the fused loops reads node `id`; closes the node's group.
  const Place& materialized(int id) {
    const GraphNode& node = graph_.node(id);
    if (places_[id].buffer < 0 && node.kind == GraphNode::Kind::constant) {
      places_[id] = {
          add_buffer(Buffer::Kind::constant,
                     first_constant_slot() + static_cast<int>(constant_nodes_.size()), 0),
          contiguous_layout(node.spec.shape), node.spec.dtype};
      constant_nodes_.push_back(id);
    }
    if (places_[id].buffer < 0 && group_of_[id] >= 0) close(group_of_[id]);
    WEFT_CHECK(places_[id].buffer >= 0, "compile: internal error: {} has no place",
               describe(graph_, id));
    return places_[id];
  }

  Place contiguous_copy(const Place& source) {
    const int64_t bytes =
        shape_numel(source.layout.shape) * static_cast<int64_t>(dtype_size(source.dtype));
    const Place target{add_buffer(Buffer::Kind::arena, -1, bytes),
                       contiguous_layout(source.layout.shape), source.dtype};
    copy(source, target);
    return target;
  }

  void copy(const Place& source, const Place& target) {
    calls_.push_back({.kind = Call::Kind::copy,
                      .shape = target.layout.shape,
                      .reads = {source},
                      .writes = {target}});
  }

  bool is_immediate(int id) const {
    const GraphNode& node = graph_.node(id);
    return node.kind == GraphNode::Kind::constant && node.spec.shape.empty();
  }

  // An elementwise op joins a loop over its shape: its operands' (merging them when they are
  // several; an open group has no reader outside it yet, so any two can become one loop), or else
  // a recent open one, so that independent chains over one shape share a loop too.
  void plan_element(int id) {
    const GraphNode& node = graph_.node(id);
    auto joinable = [&](int g) {
      return g >= 0 && groups_[g].open && groups_[g].shape == node.spec.shape &&
             static_cast<int>(groups_[g].members.size()) < kMaxGroupSize;
    };
    int joined = -1;
    for (int input : node.inputs) {
      const int g = group_of_[input];
      if (!joinable(g) || g == joined) continue;
      if (joined < 0)
        joined = g;
      else
        merge(g, joined);
    }
    for (int g = static_cast<int>(groups_.size()) - 1;
         joined < 0 && g >= 0 && g >= static_cast<int>(groups_.size()) - kGroupsSearched; --g)
      if (joinable(g)) joined = g;
    for (int input : node.inputs)
      if ((group_of_[input] < 0 || group_of_[input] != joined) && !is_immediate(input))
        materialized(input);
    if (joined < 0) {
      groups_.push_back({{}, node.spec.shape, true});
      joined = static_cast<int>(groups_.size()) - 1;
      open_groups_.push_back(joined);
    }
    groups_[joined].members.push_back(id);
    group_of_[id] = joined;
  }

  void merge(int from, int into) {
    std::vector<int>& members = groups_[into].members;
    for (int member : groups_[from].members) group_of_[member] = into;
    members.insert(members.end(), groups_[from].members.begin(), groups_[from].members.end());
    std::sort(members.begin(), members.end());  // ids are a topological order
    groups_[from] = {{}, {}, false};
  }

  void plan_view(int id, const Lowering& lowering) {
    const GraphNode& node = graph_.node(id);
    const Place& source = materialized(node.inputs[0]);
    Place& place = places_[id];
    place = {source.buffer, source.layout, node.spec.dtype};
    if (!lowering.view(place.layout, node.attrs, node.spec)) {
      const Place copy = contiguous_copy(source);
      place = {copy.buffer, copy.layout, node.spec.dtype};
      WEFT_CHECK(lowering.view(place.layout, node.attrs, node.spec),
                 "compile: internal error: {} refuses a contiguous input", describe(graph_, id));
    }
  }

  void plan_regions(int id, const Lowering& lowering) {
    const GraphNode& node = graph_.node(id);
    std::vector<Shape> shapes;
    std::vector<Place> sources;
    for (int input : node.inputs) {
      shapes.push_back(graph_.node(input).spec.shape);
      sources.push_back(materialized(input));
    }
    places_[id] = new_value(id);
    const Place& output = places_[id];
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const Place region{output.buffer, lowering.region(i, output.layout, node.attrs, shapes),
                         output.dtype};
      if (!sole_write_into(node.inputs[i], id, region) && !become_region(sources[i], region) &&
          !write_into(node.inputs[i], region))
        copy(sources[i], region);
    }
  }

  // A part that is all of a buffer, placed in a contiguous region, is computed there: the
  // buffer becomes that region (for every call that reads or writes it) rather than being
  // copied into it. The time steps of a sequence, or their gate gradients, then go straight
  // into the tensor that stacks them.
  bool become_region(const Place& part, const Place& region) {
    Buffer& buffer = buffers_[part.buffer];
    if (buffer.kind != Buffer::Kind::arena || buffer.region_of >= 0 ||
        part.buffer == region.buffer || part.dtype != region.dtype || part.layout.offset != 0 ||
        !is_contiguous(part.layout) || !is_contiguous(region.layout) ||
        buffer.bytes !=
            shape_numel(part.layout.shape) * static_cast<int64_t>(dtype_size(part.dtype)))
      return false;
    buffer.region_of = region.buffer;
    buffer.region_offset = region.layout.offset;
    buffers_[region.buffer].has_regions = true;
    return true;
  }

  // Every call's place in a buffer that became a region, moved to the buffer it is a region of
  // (the later stages read the calls, not places_).
  void resolve_regions() {
    auto resolve = [&](Place& place) {
      while (place.buffer >= 0 && buffers_[place.buffer].region_of >= 0) {
        place.layout.offset += buffers_[place.buffer].region_offset;
        place.buffer = buffers_[place.buffer].region_of;
      }
    };
    for (Call& call : calls_) {
      for (Place& place : call.reads) resolve(place);
      for (Place& place : call.writes) resolve(place);
    }
  }

  // A part of a concat that a fused loop or a kernel computed for the concat alone is written into
  // its region instead of into a buffer of its own (the 4 gate gradients of an LSTM step, say; a
  // kernel when its lowering `writes` the region's layout): no copy, and that buffer stays unused.
  bool sole_write_into(int part, int concat, const Place& region) {
    const auto [call, write] = written_by_[part];
    if (call < 0 || !own_argument(calls_[call], write) || !owns_buffer(part) ||
        readers_.of(part).size() != 1 || readers_.of(part)[0] != concat ||
        places_[part].dtype != region.dtype)
      return false;
    if (calls_[call].kind == Call::Kind::op) {
      const Lowering& lowering = lowering_of(graph_, part);
      if (lowering.writes == nullptr || !lowering.writes(region.layout)) return false;
    }
    buffers_[places_[part].buffer].bytes = 0;
    calls_[call].writes[write] = region;
    places_[part] = region;
    return true;
  }

  // A part of a concat that a fused loop computed, and others read too, is also written into its
  // region by that loop: one more store there rather than a copy call afterwards. So is one that
  // reshapes such a value (an LSTM's h as one time step of its output sequence, say).
  bool write_into(int part, Place region) {
    while (written_by_[part].first < 0 && graph_.node(part).kind == GraphNode::Kind::op &&
           graph_.node(part).op->name == "reshape") {
      part = graph_.node(part).inputs[0];
      std::optional<Layout> layout = reshaped(region.layout, graph_.node(part).spec.shape);
      if (!layout) return false;
      region.layout = std::move(*layout);
    }
    const int call = written_by_[part].first;
    if (call < 0 || calls_[call].kind != Call::Kind::fused || places_[part].dtype != region.dtype)
      return false;
    calls_[call].writes.push_back(region);
    calls_[call].written_members.push_back(part);
    calls_[call].in_place_of.push_back(-1);
    return true;
  }

  // Whether node `id`'s value is all of an arena buffer made for it that no output or store
  // needs: once `id` is read for the last time, the buffer may hold something else.
  bool owns_buffer(int id) const {
    const Place& place = places_[id];
    const Buffer& buffer = buffers_[place.buffer];
    // A buffer with regions in it is not reused in place: the regions' values may be read later.
    return !kept_[id] && buffer.kind == Buffer::Kind::arena && buffer.owner == id &&
           buffer.region_of < 0 && !buffer.has_regions && place.layout.offset == 0 &&
           is_contiguous(place.layout);
  }

  void plan_kernel(int id, const Lowering& lowering) {
    const GraphNode& node = graph_.node(id);
    Call call{.kind = Call::Kind::op, .members = {id}};
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const Place& place = materialized(node.inputs[i]);
      call.reads.push_back(lowering.reads == nullptr || lowering.reads(i, place.layout)
                               ? place
                               : contiguous_copy(place));
    }
    places_[id] = new_value(id);
    call.writes.push_back(places_[id]);
    written_by_[id] = {static_cast<int>(calls_.size()), 0};
    calls_.push_back(std::move(call));
  }

  void close_open_groups() {
    for (int g : open_groups_) close(g);
    open_groups_.clear();
  }

  // Emits a group's loop: it runs after everything its members read, and before any reader of
  // its members outside it (those close it first).
  void close(int g) {
    Group& group = groups_[g];
    if (!group.open) return;
    group.open = false;
    // A closed group is never read again: its members move into the call.
    Call call{.kind = Call::Kind::fused,
              .members = std::move(group.members),
              .shape = std::move(group.shape)};
    // At most one read per member input and one write per member: reserved, not grown step by
    // step (thousands of loops per step).
    size_t inputs = 0;
    for (int member : call.members) inputs += graph_.node(member).inputs.size();
    call.reads.reserve(inputs);
    call.read_nodes.reserve(inputs);
    call.writes.reserve(call.members.size());
    call.written_members.reserve(call.members.size());
    call.in_place_of.reserve(call.members.size());
    std::vector<bool> taken;  // by read: its buffer already taken by a write
    for (int member : call.members) {
      for (int input : graph_.node(member).inputs) {
        if (group_of_[input] == g || is_immediate(input)) continue;
        if (std::find(call.read_nodes.begin(), call.read_nodes.end(), input) !=
            call.read_nodes.end())
          continue;
        const Place& place = places_[input];
        call.read_nodes.push_back(input);
        call.reads.push_back({place.buffer, broadcast_to(place.layout, call.shape), place.dtype});
        taken.push_back(false);
      }
      const bool read_outside =
          kept_[member] || std::ranges::any_of(readers_.of(member), [&](int consumer) {
            return group_of_[consumer] != g;
          });
      if (!read_outside) continue;
      const std::optional<size_t> reused = dying_read(call, g, member, taken);
      const TensorSpec& spec = graph_.node(member).spec;
      places_[member] =
          reused ? Place{call.reads[*reused].buffer, contiguous_layout(spec.shape), spec.dtype}
                 : new_value(member);
      call.in_place_of.push_back(reused ? static_cast<int>(*reused) : -1);
      written_by_[member] = {static_cast<int>(calls_.size()), static_cast<int>(call.writes.size())};
      call.writes.push_back(places_[member]);
      call.written_members.push_back(member);
    }
    calls_.push_back(std::move(call));
  }

  // A value only a concat reads is written into the concat's region (write_into): taking a dying
  // read's buffer instead would cost a copy into the region.
  bool only_read_by_a_region_op(int id) const {
    return readers_.of(id).size() == 1 && lowering_of(graph_, readers_.of(id)[0]).region != nullptr;
  }

  // A read of loop `g` whose buffer its member `member` can be written to: an arena buffer that
  // holds one node's value, laid out as the member's, that nothing reads after the loop (each
  // element is read before it is written). An accumulator (a weight's gradient summed over time
  // steps, an optimizer's update) then stays in one buffer.
  std::optional<size_t> dying_read(const Call& call, int g, int member, std::vector<bool>& taken) {
    const TensorSpec& spec = graph_.node(member).spec;
    if (kept_[member] || only_read_by_a_region_op(member)) return std::nullopt;
    for (size_t r = 0; r < call.reads.size(); ++r) {
      const int node = call.read_nodes[r];
      const Place& place = places_[node];
      if (taken[r] || !owns_buffer(node) || place.dtype != spec.dtype ||
          place.layout.shape != spec.shape ||
          !std::ranges::all_of(readers_.of(node),
                               [&](int consumer) { return group_of_[consumer] == g; }))
        continue;
      taken[r] = true;
      buffers_[place.buffer].owner = member;
      return r;
    }
    return std::nullopt;
  }

 public:
  // Stage "place": offsets in one arena. A buffer lives from the call that writes it first to the
  // call that reads it last (inclusive, so no call's output overlaps its inputs). The buffers of a
  // repeated stretch of calls (a time step) first become strips, so that each repetition's
  // arguments are the previous one's moved by fixed strides and reroll can turn the calls into a
  // loop; then strips and other buffers are placed first fit by offset.
  void place() {
    auto touch = [&](const Place& place, int call, bool write) {
      Buffer& buffer = buffers_[place.buffer];
      if (write && buffer.first < 0) buffer.first = call;
      buffer.last = std::max(buffer.last, call);
    };
    for (size_t c = 0; c < calls_.size(); ++c) {
      for (const Place& place : calls_[c].writes) touch(place, static_cast<int>(c), true);
      for (const Place& place : calls_[c].reads) touch(place, static_cast<int>(c), false);
    }
    plan_strips();

    struct Unit {
      int64_t bytes;
      int first, last;
      int64_t offset = 0;
    };
    std::vector<Unit> units;
    std::vector<int> unit_of(buffers_.size(), -1);
    for (const Strip& strip : strips_) {
      Unit unit{.bytes = strip.stride > 0
                             ? strip.stride * static_cast<int64_t>(strip.buffers.size())
                             : aligned(buffers_[strip.buffers[0]].bytes),
                .first = buffers_[strip.buffers[0]].first,
                .last = -1};
      for (int b : strip.buffers) {
        unit.first = std::min(unit.first, buffers_[b].first);
        unit.last = std::max(unit.last, buffers_[b].last);
        unit_of[b] = static_cast<int>(units.size());
      }
      units.push_back(unit);
    }
    for (size_t b = 0; b < buffers_.size(); ++b) {
      // A buffer left unused (a concat part written into the concat's region) takes no space.
      if (buffers_[b].kind != Buffer::Kind::arena || buffers_[b].last < 0) continue;
      unplanned_bytes_ += aligned(buffers_[b].bytes);
      if (unit_of[b] >= 0) continue;
      unit_of[b] = static_cast<int>(units.size());
      units.push_back({aligned(buffers_[b].bytes), buffers_[b].first, buffers_[b].last});
    }
    std::vector<int> order(units.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return units[a].first < units[b].first; });
    std::vector<int> active;  // sorted by offset
    for (int u : order) {
      Unit& unit = units[u];
      std::erase_if(active, [&](int other) { return units[other].last < unit.first; });
      int64_t offset = 0;
      auto at = active.begin();
      for (; at != active.end(); ++at) {
        if (units[*at].offset - offset >= unit.bytes) break;
        offset = std::max(offset, units[*at].offset + units[*at].bytes);
      }
      unit.offset = offset;
      active.insert(at, u);
      arena_bytes_ = std::max(arena_bytes_, offset + unit.bytes);
    }
    for (size_t b = 0; b < buffers_.size(); ++b) {
      if (unit_of[b] < 0) continue;
      buffers_[b].offset = units[unit_of[b]].offset;
      if (strip_of_[b] >= 0)
        buffers_[b].offset += strip_position_[b] * strips_[strip_of_[b]].stride;
    }
    placed_ = true;
  }

  // Stage "reroll": the calls of an unrolled time loop are the same kernels on buffers that move
  // by a fixed stride each step (place's strips). Each longest such run becomes a loop over its
  // period, so the step's code stays the size of one time step whatever the sequence length.
  // The stores start a segment of their own (the finite-loss guard goes before them).
  void reroll() {
    for (const Call& call : calls_) {
      site_args_.emplace_back();
      auto add = [&](const Place& place) {
        const Buffer& buffer = buffers_[place.buffer];
        const int64_t bytes = place.layout.offset * static_cast<int64_t>(dtype_size(place.dtype));
        site_args_.back().push_back(buffer.kind == Buffer::Kind::arena
                                        ? SiteArg{-1, buffer.offset + bytes}
                                        : SiteArg{buffer.slot, bytes});
      };
      for (const Place& place : call.reads) add(place);
      for (size_t w = 0; w < call.writes.size(); ++w)
        if (own_argument(call, w)) add(call.writes[w]);
    }
    auto moves_between = [&](size_t a, size_t b, std::vector<int64_t>& deltas) {
      if (kernel_of_[a] != kernel_of_[b]) return false;
      for (size_t k = 0; k < site_args_[a].size(); ++k) {
        if (site_args_[a][k].slot != site_args_[b][k].slot) return false;
        deltas.push_back(site_args_[b][k].bytes - site_args_[a][k].bytes);
      }
      return true;
    };
    const auto first_store = static_cast<size_t>(first_store_);
    for (const auto& [begin, end] : {std::pair<size_t, size_t>{0, first_store},
                                     std::pair<size_t, size_t>{first_store, calls_.size()}})
      for (size_t i = begin; i < end;) {
        Repetition<int64_t> run = find_repetition<int64_t>(i, end, moves_between);
        if (run.period == 0)
          run.period = 1;
        else
          rolled_calls_ += static_cast<int64_t>(run.period * run.count);
        const size_t first = i;
        i += run.period * run.count;
        segments_.push_back({first, std::move(run)});
      }
  }

 private:
  // Buffers laid out one after another: buffer k at the strip's offset + k * stride.
  struct Strip {
    std::vector<int> buffers;
    int64_t stride = 0;  // 0: their lives do not overlap, and they share one block
  };

  // A kernel argument before offsets: a buffer and an element offset into it.
  struct Arg {
    int buffer;
    int64_t offset;
  };

  // How an argument of a call moves one repetition later: within its buffer or strip (by
  // `position` places), or to the next buffer of a chain (one new buffer per repetition).
  struct Move {
    bool next_buffer = false;
    int64_t position = 0;
    int64_t offset = 0;  // elements
    bool operator==(const Move&) const = default;
  };

  std::optional<Move> move_between(const Arg& a, const Arg& b, int period) const {
    const Buffer& from = buffers_[a.buffer];
    const Buffer& to = buffers_[b.buffer];
    Move move{.offset = b.offset - a.offset};
    if (a.buffer == b.buffer) return move;
    if (from.kind != Buffer::Kind::arena || to.kind != Buffer::Kind::arena) return std::nullopt;
    const int strip = strip_of_[a.buffer];
    if (strip >= 0 && strip == strip_of_[b.buffer]) {
      move.position = strip_position_[b.buffer] - strip_position_[a.buffer];
      return move;
    }
    if (strip >= 0 || strip_of_[b.buffer] >= 0 || from.bytes != to.bytes ||
        to.first - from.first != period)
      return std::nullopt;
    move.next_buffer = true;
    return move;
  }

  // Finds the repeated stretches of calls (greedily, as reroll does) and makes a strip of
  // each chain of buffers that moves by one buffer per repetition.
  void plan_strips() {
    std::vector<std::vector<Arg>> args;
    for (const Call& call : calls_) {
      args.emplace_back();
      for (const std::vector<Place>* places : {&call.reads, &call.writes})
        for (const Place& place : *places)
          args.back().push_back({place.buffer, place.layout.offset});
    }
    strip_of_.assign(buffers_.size(), -1);
    strip_position_.assign(buffers_.size(), 0);
    auto moves_between = [&](size_t a, size_t b, std::vector<Move>& moves) {
      if (kernel_of_[a] != kernel_of_[b]) return false;
      for (size_t k = 0; k < args[a].size(); ++k) {
        const std::optional<Move> move =
            move_between(args[a][k], args[b][k], static_cast<int>(b - a));
        if (!move) return false;
        moves.push_back(*move);
      }
      return true;
    };
    // By buffer, within one repetition: the buffer the next repetition uses in its place (or -1),
    // and whether it is itself such a next one.
    std::vector<int> next(buffers_.size(), -1);
    std::vector<bool> follows(buffers_.size(), false);
    std::vector<int> moved;  // the buffers with a next one, in order
    for (size_t i = 0; i < calls_.size();) {
      const auto run = find_repetition<Move>(i, calls_.size(), moves_between);
      if (run.period == 0) {
        ++i;
        continue;
      }
      const size_t end = i + run.period * run.count;
      for (size_t c = i; c + run.period < end; ++c)
        for (size_t k = 0; k < args[c].size(); ++k)
          if (run.moves[(c - i) % run.period][k].next_buffer) {
            const int buffer = args[c][k].buffer, follower = args[c + run.period][k].buffer;
            if (next[buffer] < 0) moved.push_back(buffer);
            next[buffer] = follower;
            follows[follower] = true;
          }
      std::sort(moved.begin(), moved.end());
      for (int head : moved)
        if (!follows[head]) add_strip(head, next);
      for (int buffer : moved) {
        follows[next[buffer]] = false;
        next[buffer] = -1;
      }
      moved.clear();
      i = end;
    }
  }

  void add_strip(int head, const std::vector<int>& next) {
    Strip strip;
    for (int b = head; b >= 0 && strip_of_[b] < 0; b = next[b]) {
      strip_of_[b] = static_cast<int>(strips_.size());
      strip_position_[b] = static_cast<int64_t>(strip.buffers.size());
      strip.buffers.push_back(b);
    }
    for (size_t k = 1; k < strip.buffers.size(); ++k)
      if (buffers_[strip.buffers[k - 1]].last >= buffers_[strip.buffers[k]].first)
        strip.stride = aligned(buffers_[head].bytes);
    strips_.push_back(std::move(strip));
  }

  std::vector<Strip> strips_;
  std::vector<int> strip_of_;  // by buffer: its strip, or -1
  std::vector<int64_t> strip_position_;

  static constexpr int kGroupsSearched = 8;
  std::vector<Group> groups_;
  std::vector<int> open_groups_;  // may also list groups closed since
};

// ---- IR ---------------------------------------------------------------------------------------

class Emitter {
 public:
  Emitter(const Planner& plan, llvm::Module& module)
      : plan_(plan), module_(module), context_(module.getContext()), b_(context_) {}

  // int32_t step(void** buffers, char* arena): 0 when it ran, 1 after a failure it recorded,
  // 2 when `finite_output` was not finite (the stores skipped).
  void emit_step(const std::string& finite_output) {
    llvm::Type* ptr = b_.getPtrTy();
    step_ = llvm::Function::Create(llvm::FunctionType::get(b_.getInt32Ty(), {ptr, ptr}, false),
                                   llvm::Function::ExternalLinkage, "step", module_);
    // Only a list of calls (and loops of them): optimising it buys nothing, while LLVM's
    // instruction scheduler is quadratic in the size of the one block O3 would make of it.
    step_->addFnAttr(llvm::Attribute::OptimizeNone);
    step_->addFnAttr(llvm::Attribute::NoInline);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context_, "entry", step_));
    failed_ = llvm::BasicBlock::Create(context_, "failed", step_);
    bool guarded = finite_output.empty();
    for (const Planner::Segment& segment : plan_.segments_) {
      if (!guarded && segment.first >= static_cast<size_t>(plan_.first_store_)) {
        guard_finite(finite_output);
        guarded = true;
      }
      emit_segment(segment.first, segment.run);
    }
    if (!guarded) guard_finite(finite_output);
    b_.CreateRet(b_.getInt32(0));
    b_.SetInsertPoint(failed_);
    b_.CreateRet(b_.getInt32(1));
  }

 private:
  llvm::Type* type(DType dtype) {
    KernelBuilder k(b_, module_, nullptr);
    return k.type(dtype);
  }

  llvm::Value* base(int64_t slot) {
    if (slot < 0) return step_->getArg(1);
    llvm::Value*& loaded = slot_pointers_[slot];
    if (loaded == nullptr) {
      llvm::IRBuilder<> at_entry(&step_->getEntryBlock(), step_->getEntryBlock().begin());
      loaded = at_entry.CreateLoad(
          b_.getPtrTy(), at_entry.CreateConstInBoundsGEP1_64(b_.getPtrTy(), step_->getArg(0),
                                                             static_cast<uint64_t>(slot)));
    }
    return loaded;
  }

  // Call `c`, with every argument moved by `repeat` times its delta when in a loop.
  void emit_call(size_t c, llvm::Value* repeat, const std::vector<int64_t>& deltas) {
    std::vector<llvm::Value*> args;
    const auto& site_args = plan_.site_args_[c];
    for (size_t a = 0; a < site_args.size(); ++a) {
      llvm::Value* bytes = b_.getInt64(site_args[a].bytes);
      if (repeat != nullptr && deltas[a] != 0)
        bytes = b_.CreateAdd(bytes, b_.CreateMul(repeat, b_.getInt64(deltas[a])));
      args.push_back(b_.CreateInBoundsGEP(b_.getInt8Ty(), base(site_args[a].slot), bytes));
    }
    llvm::Value* status = b_.CreateCall(kernel_for(c), args);
    auto* next = llvm::BasicBlock::Create(context_, "next", step_);
    b_.CreateCondBr(b_.CreateICmpNE(status, b_.getInt32(0)), failed_, next);
    b_.SetInsertPoint(next);
  }

  void emit_segment(size_t first, const Repetition<int64_t>& run) {
    if (run.count == 1) {
      for (size_t j = 0; j < run.period; ++j) emit_call(first + j, nullptr, {});
      return;
    }
    // for (repeat = 0; repeat < count; ++repeat) { the period's calls }
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(context_, "repeat", step_);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode* repeat = b_.CreatePHI(b_.getInt64Ty(), 2, "r");
    repeat->addIncoming(b_.getInt64(0), before);
    for (size_t j = 0; j < run.period; ++j) emit_call(first + j, repeat, run.moves[j]);
    llvm::Value* next = b_.CreateAdd(repeat, b_.getInt64(1));
    repeat->addIncoming(next, b_.GetInsertBlock());
    auto* after = llvm::BasicBlock::Create(context_, "after", step_);
    b_.CreateCondBr(b_.CreateICmpULT(next, b_.getInt64(static_cast<int64_t>(run.count))), header,
                    after);
    b_.SetInsertPoint(after);
  }

  void guard_finite(const std::string& name) {
    const Graph& graph = plan_.graph_;
    for (size_t i = 0; i < graph.outputs.size(); ++i) {
      if (graph.outputs[i].name != name) continue;
      const GraphNode& node = graph.node(graph.outputs[i].node);
      WEFT_CHECK(node.spec.shape.empty() && is_floating(node.spec.dtype),
                 "compile: finite_output \"{}\" must be a 0-d floating-point output, got {} {}",
                 name, dtype_name(node.spec.dtype), shape_str(node.spec.shape));
      const Buffer& buffer = plan_.buffers_[plan_.output_buffer_[i]];
      llvm::Value* value = b_.CreateLoad(type(node.spec.dtype), base(buffer.slot));
      llvm::Value* infinity = llvm::ConstantFP::getInfinity(type(node.spec.dtype));
      llvm::Value* finite =
          b_.CreateFCmpOLT(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, value), infinity);
      auto* skip = llvm::BasicBlock::Create(context_, "not_finite", step_);
      auto* go = llvm::BasicBlock::Create(context_, "stores", step_);
      b_.CreateCondBr(finite, go, skip);
      b_.SetInsertPoint(skip);
      b_.CreateRet(b_.getInt32(2));
      b_.SetInsertPoint(go);
      return;
    }
    throw Error("compile: finite_output \"{}\" is not an output of the step", name);
  }

  // The kernel of call `c`, emitted once per distinct signature (the code, not the buffers).
  llvm::Function* kernel_for(size_t c) {
    const int id = plan_.kernel_of_[c];
    if (kernels_[id] == nullptr)
      kernels_[id] = emit_kernel(plan_.calls_[c], fmt::format("k{}", id));
    return kernels_[id];
  }

  llvm::Function* emit_kernel(const Call& call, const std::string& name) {
    size_t params = call.reads.size();
    for (size_t w = 0; w < call.writes.size(); ++w) params += own_argument(call, w) ? 1 : 0;
    auto* function = llvm::Function::Create(
        llvm::FunctionType::get(b_.getInt32Ty(), std::vector<llvm::Type*>(params, b_.getPtrTy()),
                                false),
        llvm::Function::InternalLinkage, name, module_);
    // Kept out of line: the step is a list of calls, and its size stays that of the list.
    function->addFnAttr(llvm::Attribute::NoInline);
    function->addFnAttr(llvm::Attribute::NoUnwind);
    for (size_t i = 0; i < params; ++i) {
      function->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoCapture);
      // Buffers never overlap a call's output (place), except a store's own input; an in-place
      // write goes through its read's argument.
      if (call.kind != Call::Kind::copy)
        function->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
    }
    llvm::IRBuilder<>::InsertPointGuard guard(b_);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context_, "entry", function));
    auto* fail = llvm::BasicBlock::Create(context_, "fail", function);
    KernelBuilder k(b_, module_, fail);
    std::vector<Access> reads, writes;
    for (size_t i = 0; i < call.reads.size(); ++i)
      reads.push_back({function->getArg(static_cast<unsigned>(i)), call.reads[i].layout.shape,
                       call.reads[i].layout.strides, call.reads[i].dtype});
    auto next_arg = static_cast<unsigned>(call.reads.size());
    for (size_t w = 0; w < call.writes.size(); ++w)
      writes.push_back(
          {own_argument(call, w) ? function->getArg(next_arg++) : reads[call.in_place_of[w]].data,
           call.writes[w].layout.shape, call.writes[w].layout.strides, call.writes[w].dtype});
    switch (call.kind) {
      case Call::Kind::copy:
        emit_copy(k, reads[0], writes[0]);
        break;
      case Call::Kind::op: {
        const GraphNode& node = plan_.graph_.node(call.members[0]);
        find_lowering(*node.op)->kernel(k, reads, writes[0], node.attrs);
        break;
      }
      case Call::Kind::fused:
        emit_fused(k, call, reads, writes);
        break;
    }
    b_.CreateRet(b_.getInt32(0));
    b_.SetInsertPoint(fail);
    b_.CreateRet(b_.getInt32(1));
    return function;
  }

  void emit_copy(KernelBuilder& k, Access source, Access target) {
    const Shape shape = collapse(target.shape, {&source.strides, &target.strides});
    source.shape = target.shape = shape;
    k.for_each(shape, [&](std::span<llvm::Value* const> index) {
      k.store(target, index, k.convert(k.load(source, index), source.dtype, target.dtype));
    });
  }

  void emit_fused(KernelBuilder& k, const Call& call, std::vector<Access> reads,
                  std::vector<Access> writes) {
    std::vector<Shape*> strides;
    for (Access& access : reads) strides.push_back(&access.strides);
    for (Access& access : writes) strides.push_back(&access.strides);
    const Shape shape = collapse(call.shape, strides);
    for (Access& access : reads) access.shape = shape;
    for (Access& access : writes) access.shape = shape;
    const Graph& graph = plan_.graph_;
    k.for_each(shape, [&](std::span<llvm::Value* const> index) {
      std::vector<llvm::Value*> read_values;
      for (const Access& access : reads) read_values.push_back(k.load(access, index));
      std::vector<llvm::Value*> values;
      for (int member : call.members) {
        const GraphNode& node = graph.node(member);
        std::vector<llvm::Value*> args;
        std::vector<DType> dtypes;
        for (int input : node.inputs) {
          const Operand operand = operand_of(call, input);
          const DType dtype = graph.node(input).spec.dtype;
          args.push_back(operand.kind == Operand::Kind::member ? values[operand.index]
                         : operand.kind == Operand::Kind::read
                             ? read_values[operand.index]
                             : k.constant(dtype, graph.node(input).value.item()));
          dtypes.push_back(dtype);
        }
        values.push_back(find_lowering(*node.op)->element(
            k,
            {.args = args, .arg_dtypes = dtypes, .dtype = node.spec.dtype, .attrs = node.attrs}));
      }
      for (size_t w = 0; w < writes.size(); ++w)
        k.store(writes[w], index, values[member_index(call, call.written_members[w])]);
    });
  }

  const Planner& plan_;
  llvm::Module& module_;
  llvm::LLVMContext& context_;
  llvm::IRBuilder<> b_;
  std::vector<llvm::Function*> kernels_ = std::vector<llvm::Function*>(plan_.kernel_count_);
  llvm::Function* step_ = nullptr;
  llvm::BasicBlock* failed_ = nullptr;
  std::map<int64_t, llvm::Value*> slot_pointers_;
};

// The plan as text: one entry per call (its kernel, the ops it runs, what it reads and writes and
// where), arena offsets once placed, and each loop's calls once, once rerolled.
std::string schedule_text(const Planner& plan) {
  const Graph& graph = plan.graph_;
  auto where = [&](const Place& place) {
    const Buffer& buffer = plan.buffers_[place.buffer];
    const char* kinds[] = {"input", "output", "constant", "arena"};
    const std::string base = buffer.kind != Buffer::Kind::arena
                                 ? fmt::format("{}{}", kinds[static_cast<int>(buffer.kind)],
                                               buffer.kind == Buffer::Kind::constant
                                                   ? buffer.slot - plan.first_constant_slot()
                                                   : buffer.slot)
                             : plan.placed_ ? fmt::format("arena+{}", buffer.offset)
                                            : fmt::format("buffer{}", place.buffer);
    return fmt::format("{}[{}] {}", base, place.layout.offset,
                       layout_str(place.layout, place.dtype));
  };
  std::string text;
  auto add_call = [&](size_t c) {
    const Call& call = plan.calls_[c];
    std::vector<std::string> ops, reads, writes;
    for (int member : call.members)
      ops.push_back(fmt::format("%{} {}", member, graph.node(member).op->name));
    for (const Place& place : call.reads) reads.push_back(where(place));
    for (const Place& place : call.writes) writes.push_back(where(place));
    const char* kind = call.kind == Call::Kind::fused ? "fused"
                       : call.kind == Call::Kind::op  ? "kernel"
                                                      : "copy";
    text +=
        fmt::format("{:>4} k{} {} [{}]\n       reads {}\n       writes {}\n", c, plan.kernel_of_[c],
                    kind, fmt::join(ops, ", "), fmt::join(reads, "; "), fmt::join(writes, "; "));
  };
  if (plan.segments_.empty())
    for (size_t c = 0; c < plan.calls_.size(); ++c) add_call(c);
  for (const Planner::Segment& segment : plan.segments_) {
    const auto& run = segment.run;
    const size_t first = segment.first;
    if (run.count > 1)
      text += fmt::format(
          "loop {} times: calls {} to {}, each time the next {} with every argument "
          "moved by a fixed stride\n",
          run.count, first, first + run.period * run.count - 1, run.period);
    for (size_t j = 0; j < run.period; ++j) add_call(first + j);
    if (run.count > 1) text += "end of loop\n";
  }
  if (plan.placed_)
    text += fmt::format("arena: {} bytes ({} without reuse)\n", plan.arena_bytes_,
                        plan.unplanned_bytes_);
  return text;
}

// The lowering stages, as the Planner runs them.
struct PlanStage {
  LoweringStage stage;
  void (Planner::*run)();
};

const std::vector<PlanStage>& plan_stages() {
  static const std::vector<PlanStage> stages = {
      {{"fuse", "elementwise chains become loops, views strides, every other op one kernel call"},
       &Planner::fuse},
      {{"place", "buffers get arena offsets by liveness; a time step's buffers become strips"},
       &Planner::place},
      {{"reroll", "runs of calls repeating with arguments at fixed strides become loops"},
       &Planner::reroll},
  };
  return stages;
}

}  // namespace

// ---- compile ----------------------------------------------------------------------------------

const std::vector<LoweringStage>& lowering_stages() {
  static const std::vector<LoweringStage> stages = [] {
    std::vector<LoweringStage> list;
    for (const PlanStage& stage : plan_stages()) list.push_back(stage.stage);
    return list;
  }();
  return stages;
}

// The elementwise ops that could share a loop with their immediate post-dominator (an elementwise
// op of their shape, with only elementwise ops on the paths between them), how many do, and why
// the others do not.
void count_fusion_by_post_dominators(const Graph& graph, const Planner& plan, CompileStats& stats) {
  std::vector<int> loop_of(graph.nodes().size(), -1);
  for (size_t c = 0; c < plan.calls_.size(); ++c)
    if (plan.calls_[c].kind == Call::Kind::fused)
      for (int member : plan.calls_[c].members) loop_of[member] = static_cast<int>(c);
  const auto elementwise = [&](int id) {
    const GraphNode& node = graph.node(id);
    return node.kind == GraphNode::Kind::op && lowering_of(graph, id).element != nullptr;
  };
  // By id: how many kernels (ops that are neither elementwise nor views) come before it; fuse
  // closes every open loop at a kernel.
  std::vector<int> kernels_before(graph.nodes().size() + 1, 0);
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    bool kernel = false;
    if (graph.nodes()[id].kind == GraphNode::Kind::op) {
      const Lowering& lowering = lowering_of(graph, static_cast<int>(id));
      kernel = lowering.element == nullptr && lowering.view == nullptr;
    }
    kernels_before[id + 1] = kernels_before[id] + kernel;
  }
  // Ids are in topological order: the nodes on the paths from `from` to its post-dominator `to`
  // are those `from` reaches below `to`.
  const Readers readers(graph);
  std::vector<int> seen_by(graph.nodes().size(), -1), stack;
  const auto only_elementwise_between = [&](int from, int to) {
    stack.assign({from});
    while (!stack.empty()) {
      const int id = stack.back();
      stack.pop_back();
      for (int reader : readers.of(id)) {
        if (reader >= to || seen_by[reader] == from) continue;
        if (!elementwise(reader)) return false;
        seen_by[reader] = from;
        stack.push_back(reader);
      }
    }
    return true;
  };
  const std::vector<int> post_dominator = post_dominators(graph);
  for (size_t id = 0; id < graph.nodes().size(); ++id) {
    const int node = static_cast<int>(id), after = post_dominator[id];
    if (after < 0 || !elementwise(node) || !elementwise(after) ||
        graph.node(after).spec.shape != graph.node(node).spec.shape ||
        !only_elementwise_between(node, after))
      continue;
    ++stats.post_dominated_ops;
    if (loop_of[id] == loop_of[after])
      ++stats.fused_with_post_dominator;
    else if (kernels_before[after] > kernels_before[id + 1])
      ++stats.apart_by_a_kernel;
    else
      stats.apart_in_a_full_loop +=
          plan.calls_[loop_of[id]].members.size() >= static_cast<size_t>(Planner::kMaxGroupSize);
  }
}

CompiledStep compile(Graph captured, const CompileOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  CompiledStep step;
  auto stage_start = start;
  auto stage_done = [&](std::string_view name) {
    const auto now = Clock::now();
    step.stats_.stage_seconds.emplace_back(
        name, std::chrono::duration<double>(now - stage_start).count());
    stage_start = now;
  };
  auto after_pass = [&](const Pass& pass, const Graph& graph) {
    stage_done(pass.name);
    if (options.keep_stages) step.pass_graphs_.emplace_back(pass.name, graph);
    stage_start = Clock::now();
  };
  step.graph_ = options.optimize ? optimize(std::move(captured), after_pass) : std::move(captured);
  const Graph& graph = step.graph_;
  Planner plan(graph);
  for (const PlanStage& stage : plan_stages()) {
    (plan.*stage.run)();
    stage_done(stage.stage.name);
    if (options.keep_stages) step.plan_stages_.emplace_back(stage.stage.name, schedule_text(plan));
    stage_start = Clock::now();
  }

  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(options.name, *context);
  Emitter emitter(plan, *module);
  emitter.emit_step(options.finite_output);
  step.schedule_ = schedule_text(plan);
  stage_done("emit");
  step.module_ = std::make_shared<CompiledModule>(
      process_jit().add(std::move(module), std::move(context), options.name,
                        options.keep_stages ? IrText::keep : IrText::drop));
  step.step_ = step.module_->lookup<CompiledStep::StepFn>("step");
  stage_done("llvm");
  const std::vector<int> input_ids = graph.input_ids();
  for (int id : input_ids) {
    step.inputs_.push_back(graph.node(id).spec);
    step.input_names_.push_back(graph.node(id).name);
  }
  for (const GraphStore& store : graph.stores)
    step.stored_inputs_.push_back(static_cast<size_t>(
        std::find(input_ids.begin(), input_ids.end(), store.input) - input_ids.begin()));
  for (const GraphOutput& output : graph.outputs)
    step.outputs_.push_back(graph.node(output.node).spec);
  for (int id : plan.constant_nodes_) step.constants_.push_back(graph.node(id).value.copy());
  step.arena_ =
      Storage::allocate(static_cast<size_t>(std::max<int64_t>(plan.arena_bytes_, 64)), false);
  step.running_ = std::make_shared<std::mutex>();

  CompileStats& stats = step.stats_;
  stats.graph_nodes = static_cast<int64_t>(graph.nodes().size());
  stats.kernel_calls = static_cast<int64_t>(plan.calls_.size());
  stats.distinct_kernels = plan.kernel_count_;
  stats.rolled_calls = plan.rolled_calls_;
  for (const Call& call : plan.calls_) {
    if (call.kind == Call::Kind::fused)
      stats.fused_ops += static_cast<int64_t>(call.members.size());
    stats.copy_calls += call.kind == Call::Kind::copy;
  }
  stats.arena_bytes = plan.arena_bytes_;
  stats.unplanned_bytes = plan.unplanned_bytes_;
  if (options.keep_stages) count_fusion_by_post_dominators(graph, plan, stats);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return step;
}

std::vector<Tensor> CompiledStep::run(const std::vector<Tensor>& inputs) const {
  WEFT_CHECK(inputs.size() == inputs_.size(), "compiled step '{}': {} inputs for a step of {}",
             module_->name(), inputs.size(), inputs_.size());
  std::vector<Tensor> held(inputs.size());  // contiguous copies of strided inputs
  std::vector<void*> buffers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    WEFT_CHECK(inputs[i].defined(), "compiled step '{}': input \"{}\" is undefined",
               module_->name(), input_names_[i]);
    WEFT_CHECK(inputs[i].shape() == inputs_[i].shape && inputs[i].dtype() == inputs_[i].dtype,
               "compiled step '{}': input \"{}\" is {} {}, the step was compiled for {} {}",
               module_->name(), input_names_[i], dtype_name(inputs[i].dtype()),
               shape_str(inputs[i].shape()), dtype_name(inputs_[i].dtype),
               shape_str(inputs_[i].shape));
    held[i] = inputs[i].is_contiguous() ? inputs[i] : inputs[i].copy();
    buffers.push_back(held[i].raw_data());
  }
  std::vector<Tensor> outputs;
  for (const TensorSpec& spec : outputs_) {
    outputs.push_back(empty(spec.shape, {.dtype = spec.dtype}));
    buffers.push_back(outputs.back().raw_data());
  }
  for (const Tensor& constant : constants_) buffers.push_back(constant.raw_data());
  std::lock_guard lock(*running_);
  const int32_t status = step_(buffers.data(), static_cast<char*>(arena_->data()));
  WEFT_CHECK(status != 1, "compiled step '{}': {}", module_->name(), jit_take_runtime_error());
  if (status == 0)
    for (size_t i : stored_inputs_) {
      if (held[i].impl() != inputs[i].impl()) inputs[i].assign_(held[i]);
      inputs[i].mark_modified();
    }
  return outputs;
}

int64_t CompiledStep::memory_bytes() const {
  int64_t bytes = static_cast<int64_t>(arena_->bytes());
  for (const Tensor& constant : constants_)
    bytes += constant.numel() * static_cast<int64_t>(dtype_size(constant.dtype()));
  return bytes + module_->object_bytes();
}

// ---- StepCache --------------------------------------------------------------------------------

const CompiledStep* StepCache::find(const std::string& key) const {
  for (const Entry& entry : entries_)
    if (entry.key == key) return entry.step.get();
  return nullptr;
}

const CompiledStep& StepCache::insert(const std::string& key, CompiledStep step) {
  std::erase_if(entries_, [&](const Entry& entry) { return entry.key == key; });
  entries_.push_back({key, std::make_shared<const CompiledStep>(std::move(step))});
  while (entries_.size() > 1 && memory_bytes() > memory_bound_) {
    entries_.erase(entries_.begin());
    ++evictions_;
  }
  return *entries_.back().step;
}

void StepCache::clear() { entries_.clear(); }

int64_t StepCache::memory_bytes() const {
  int64_t bytes = 0;
  for (const Entry& entry : entries_) bytes += entry.step->memory_bytes();
  return bytes;
}

}  // namespace weft
