// Stage "fuse": the step's calls, in order (fused loops, kernels, copies), and the buffers they
// use.
#include "weft/compiler/fuse.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <variant>

#include "weft/compiler/analysis.h"
#include "weft/compiler/repetition.h"
#include "weft/compiler/signature.h"
#include "weft/ops/definitions.h"
#include "weft/runtime/error.h"

namespace weft {
namespace {

// What fuse knows of a buffer beyond what the later stages need.
struct BufferUse {
  int owner = -1;  // the node whose value it holds, for one made for a node's value
  // A buffer that is a contiguous region of another (a concat part computed in place): that
  // buffer and the region's element offset in it. Resolved when fuse ends.
  int region_of = -1;
  int64_t region_offset = 0;
  bool has_regions = false;  // other buffers are regions of this one
};

class Fuser {
 public:
  Fuser(const Graph& graph, const FuseOptions& options)
      : graph_(graph),
        options_(options),
        places_(graph.nodes().size()),
        group_of_(graph.nodes().size(), -1),
        readers_(graph),
        kept_(graph.nodes().size(), false),
        written_by_(graph.nodes().size(), {-1, -1}),
        unkept_by_(graph.nodes().size(), -1) {
    for (const GraphOutput& output : graph.outputs) kept_[output.node] = true;
    for (const GraphStore& store : graph.stores) {
      kept_[store.value] = true;
      // A value stored into two inputs is written to one and copied to the other, as before.
      if (!store_target_.try_emplace(store.value, store.input).second)
        store_target_[store.value] = -1;
    }
    std::erase_if(store_target_, [](const auto& entry) { return entry.second < 0; });
    // From the end, and only where a store could be written in place: a step's ~10^5 nodes
    // would each ask for their lowering again.
    for (int id = static_cast<int>(graph.nodes().size()) - 1;
         options_.stores_in_place && !store_target_.empty() && id >= 0 && last_kernel_ < 0; --id)
      if (graph.node(id).kind == GraphNode::Kind::op &&
          std::holds_alternative<KernelLowering>(lowering_of(graph, id)))
        last_kernel_ = id;
    int next_input = 0;
    for (int id : graph.input_ids())
      places_[id] = {add_buffer(Buffer::Kind::input, next_input++, 0),
                     contiguous_layout(graph.node(id).spec.shape), graph.node(id).spec.dtype};
    input_count_ = next_input;
    fusion_.output_buffers.assign(graph.outputs.size(), -1);
    fusion_.lowered.assign(graph.nodes().size(), Lowered::value);
    fusion_.first_constant_slot = output_slot(graph.outputs.size());
  }

  Fusion run() && {
    for (size_t id = 0; id < graph_.nodes().size(); ++id) {
      const GraphNode& node = graph_.nodes()[id];
      if (node.kind != GraphNode::Kind::op) continue;
      const int op = static_cast<int>(id);
      std::visit(Overloaded{
                     [&](const ElementLowering&) { plan_element(op); },
                     [&](const ViewLowering& view) { plan_view(op, view); },
                     // No loop spans another call: its place among the calls is then the same in
                     // every time step, for re-rolling, and a sum over time steps (a weight's
                     // gradient) is added up as it goes instead of at the end, each term freed
                     // at once.
                     [&](const RegionsLowering& regions) {
                       close_open_groups();
                       plan_regions(op, regions);
                     },
                     [&](const KernelLowering& kernel) {
                       close_open_groups();
                       plan_kernel(op, kernel);
                     },
                 },
                 lowering_of(graph_, op));
    }
    for (size_t g = 0; g < groups_.size(); ++g) close(static_cast<int>(g));
    plan_outputs_and_stores();
    resolve_regions();
    mark_lifetimes();
    assign_kernels(graph_, fusion_);
    find_runs(fusion_);
    return std::move(fusion_);
  }

 private:
  struct Group {
    std::vector<int> members;  // in id order, `recomputed` among them
    Shape shape;
    bool open = true;
    std::vector<int> recomputed = {};  // members of earlier loops computed again here, in id order
  };

  std::vector<Buffer>& buffers() { return fusion_.buffers; }
  std::vector<Call>& calls() { return fusion_.calls; }
  // The pointer array holds the inputs, then the outputs, then the constants.
  int output_slot(size_t output) const { return input_count_ + static_cast<int>(output); }

  int add_buffer(Buffer::Kind kind, int slot, int64_t bytes) {
    fusion_.buffers.push_back({kind, slot, bytes});
    uses_.emplace_back();
    return static_cast<int>(fusion_.buffers.size()) - 1;
  }

  // A fresh contiguous buffer for an op's value: its output's buffer when it is an output.
  Place new_value(int id) {
    const TensorSpec& spec = graph_.node(id).spec;
    for (size_t i = 0; i < graph_.outputs.size(); ++i)
      if (graph_.outputs[i].node == id && fusion_.output_buffers[i] < 0) {
        fusion_.output_buffers[i] = add_buffer(Buffer::Kind::output, output_slot(i), 0);
        return {fusion_.output_buffers[i], contiguous_layout(spec.shape), spec.dtype};
      }
    const int64_t bytes = shape_numel(spec.shape) * static_cast<int64_t>(dtype_size(spec.dtype));
    const int buffer = add_buffer(Buffer::Kind::arena, -1, bytes);
    uses_[buffer].owner = id;
    return {buffer, contiguous_layout(spec.shape), spec.dtype};
  }

  // Where a consumer outside the fused loops reads node `id`; closes the node's group.
  const Place& materialized(int id) {
    const GraphNode& node = graph_.node(id);
    if (places_[id].buffer < 0 && node.kind == GraphNode::Kind::constant) {
      const auto slot =
          fusion_.first_constant_slot + static_cast<int>(fusion_.constant_nodes.size());
      places_[id] = {add_buffer(Buffer::Kind::constant, slot, 0),
                     contiguous_layout(node.spec.shape), node.spec.dtype};
      fusion_.constant_nodes.push_back(id);
    }
    if (places_[id].buffer < 0 && group_of_[id] >= 0) close(group_of_[id]);
    if (places_[id].buffer < 0 && unkept_by_[id] >= 0) keep_after_all(id);
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
    calls().push_back({.kind = Call::Kind::copy,
                       .shape = to_shape(target.layout.shape),
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
    if (added_by_product_kernel(id)) return;
    fusion_.lowered[id] = Lowered::element;
    const GraphNode& node = graph_.node(id);
    auto joinable = [&](int g) {
      return g >= 0 && groups_[g].open && groups_[g].shape == node.spec.shape &&
             static_cast<int>(groups_[g].members.size()) < kMaxLoopMembers;
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
    std::vector<int> recomputed;
    for (int input : node.inputs) {
      if ((group_of_[input] >= 0 && group_of_[input] == joined) || is_immediate(input)) continue;
      if (recomputable(input, node.spec.shape))
        recomputed.push_back(input);
      else
        materialized(input);
    }
    if (joined < 0) {
      groups_.push_back({{}, node.spec.shape, true});
      joined = static_cast<int>(groups_.size()) - 1;
      open_groups_.push_back(joined);
    }
    Group& group = groups_[joined];
    for (int value : recomputed) {
      const auto at = std::ranges::lower_bound(group.recomputed, value);
      if (at != group.recomputed.end() && *at == value) continue;
      group.recomputed.insert(at, value);
      group.members.insert(std::ranges::lower_bound(group.members, value), value);
    }
    group.members.push_back(id);
    group_of_[id] = joined;
  }

  // Whether a loop over `shape` can compute `id` again rather than read it: an earlier loop
  // computed it without keeping it (unkept), from a value in memory. Closes `id`'s loop first, as
  // reading it would.
  bool recomputable(int id, const Shape& shape) {
    if (group_of_[id] >= 0) close(group_of_[id]);
    return unkept_by_[id] >= 0 && graph_.node(id).spec.shape == shape;
  }

  // Whether member `member` of the loop being closed, which others read, can go unkept: each of
  // its readers outside the loop is elementwise over the member's shape, so it can compute the
  // member again from its one operand, a value in memory anyway (written by this loop, or read by
  // it, and then not overwritten by it) and no larger an element. A recurrent cell's tanh(c) is
  // then computed again from c in the backward pass instead of written for it: one stream of a
  // time step's activations fewer to memory and back. `taken`, by read, as dying_read keeps it.
  bool may_go_unkept(const Call& call, int g, int member, std::vector<bool>& taken) const {
    const GraphNode& node = graph_.node(member);
    if (kept_[member]) return false;
    int source = -1;
    for (int input : node.inputs) {
      if (is_immediate(input)) continue;
      if (source >= 0) return false;
      source = input;
    }
    if (source < 0 || graph_.node(source).kind != GraphNode::Kind::op ||
        places_[source].buffer < 0 ||
        dtype_size(graph_.node(source).spec.dtype) > dtype_size(node.spec.dtype))
      return false;
    // Each reader's loop computes it again: a value that many read (a mask every time step
    // applies) is cheaper read from cache.
    if (readers_.of(member).size() > kMostReadersToComputeAgain) return false;
    for (int reader : readers_.of(member)) {
      if (group_of_[reader] == g) continue;
      const GraphNode& outside = graph_.node(reader);
      if (outside.kind != GraphNode::Kind::op ||
          !std::holds_alternative<ElementLowering>(lowering_of(graph_, reader)) ||
          outside.spec.shape != node.spec.shape)
        return false;
    }
    const auto read = std::ranges::find(call.read_nodes, source) - call.read_nodes.begin();
    if (static_cast<size_t>(read) < call.reads.size()) {
      if (taken[static_cast<size_t>(read)]) return false;
      taken[static_cast<size_t>(read)] = true;  // the readers will need its value
    }
    return true;
  }

  // An unkept value that some reader needs in memory after all: its loop writes it too.
  void keep_after_all(int id) {
    const int c = std::exchange(unkept_by_[id], -1);
    Call& call = calls()[static_cast<size_t>(c)];
    places_[id] = new_value(id);
    written_by_[id] = {c, static_cast<int>(call.writes.size())};
    call.writes.push_back(places_[id]);
    call.written_members.push_back(id);
    call.in_place_of.push_back(-1);
  }

  // An add of a 2-D product and a row broadcast down it (a layer's bias), where only the add
  // reads the product and the product's kernel is the last call: that kernel adds the row as it
  // stores the product (KernelLowering::adds_row), and the sum takes the product's buffer. A loop
  // of its own would read and write the whole product again (an input projection over all time
  // steps). The row must be in memory before that call: not a member of an open loop.
  bool added_by_product_kernel(int id) {
    const GraphNode& node = graph_.node(id);
    if (node.op != &add_op || calls().empty() || calls().back().kind != Call::Kind::op ||
        calls().back().members.size() != 1)
      return false;
    const int product = calls().back().members[0];
    if (!std::get<KernelLowering>(lowering_of(graph_, product)).adds_row ||
        readers_.of(product).size() != 1 || kept_[product])
      return false;
    const auto read = std::ranges::find(node.inputs, product);
    if (read == node.inputs.end()) return false;
    const int row = node.inputs[read == node.inputs.begin() ? 1 : 0];
    const Shape& shape = node.spec.shape;
    const TensorSpec& row_spec = graph_.node(row).spec;
    if (shape.size() != 2 || shape != graph_.node(product).spec.shape ||
        row_spec.dtype != node.spec.dtype || row_spec.shape.empty() ||
        row_spec.shape.back() != shape[1] || shape_numel(row_spec.shape) != shape[1] ||
        (group_of_[row] >= 0 && groups_[group_of_[row]].open))
      return false;
    const Place& place = materialized(row);
    if (!is_contiguous(place.layout)) return false;
    Call& call = calls().back();
    call.members.push_back(id);
    call.reads.push_back({place.buffer, {{shape[1]}, {1}, place.layout.offset}, place.dtype});
    fusion_.lowered[id] = Lowered::call;
    places_[id] = places_[product];
    uses_[places_[id].buffer].owner = id;
    written_by_[id] = written_by_[product];
    return true;
  }

  void merge(int from, int into) {
    Group& merged = groups_[into];
    const Group& other = groups_[from];
    for (int member : other.members)
      if (!std::ranges::binary_search(other.recomputed, member)) group_of_[member] = into;
    // Ids are a topological order; a value both loops recompute is computed once.
    for (auto [list, more] : {std::pair{&merged.members, &other.members},
                              std::pair{&merged.recomputed, &other.recomputed}}) {
      list->insert(list->end(), more->begin(), more->end());
      std::sort(list->begin(), list->end());
      list->erase(std::unique(list->begin(), list->end()), list->end());
    }
    groups_[from] = {{}, {}, false};
  }

  void plan_view(int id, const ViewLowering& view) {
    fusion_.lowered[id] = Lowered::view;
    const GraphNode& node = graph_.node(id);
    const Place& source = materialized(node.inputs[0]);
    Place& place = places_[id];
    place = {source.buffer, source.layout, node.spec.dtype};
    if (!view.layout(place.layout, node.attrs, node.spec)) {
      // The copy a kernel reading the same strided input would share (time-major ids, read by
      // an embedding's gather and by its product by id), else one of the view's own.
      const Place copy = unchanging_and_reread(node.inputs[0]) ? shared_copy(node.inputs[0])
                                                               : contiguous_copy(source);
      place = {copy.buffer, copy.layout, node.spec.dtype};
      WEFT_CHECK(view.layout(place.layout, node.attrs, node.spec),
                 "compile: internal error: {} refuses a contiguous input", describe(graph_, id));
    }
  }

  void plan_regions(int id, const RegionsLowering& regions) {
    fusion_.lowered[id] = Lowered::call;
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
      const Place region{output.buffer, regions.region(i, output.layout, node.attrs, shapes),
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
    const Buffer& buffer = buffers()[part.buffer];
    BufferUse& use = uses_[part.buffer];
    if (buffer.kind != Buffer::Kind::arena || use.region_of >= 0 || part.buffer == region.buffer ||
        part.dtype != region.dtype || part.layout.offset != 0 || !is_contiguous(part.layout) ||
        !is_contiguous(region.layout) ||
        buffer.bytes !=
            shape_numel(part.layout.shape) * static_cast<int64_t>(dtype_size(part.dtype)))
      return false;
    use.region_of = region.buffer;
    use.region_offset = region.layout.offset;
    uses_[region.buffer].has_regions = true;
    return true;
  }

  // Every call's place in a buffer that became a region, moved to the buffer it is a region of.
  void resolve_regions() {
    auto resolve = [&](Place& place) {
      while (place.buffer >= 0 && uses_[place.buffer].region_of >= 0) {
        place.layout.offset += uses_[place.buffer].region_offset;
        place.buffer = uses_[place.buffer].region_of;
      }
    };
    for (Call& call : calls()) {
      for (Place& place : call.reads) resolve(place);
      for (Place& place : call.writes) resolve(place);
    }
  }

  // A part of a concat that a fused loop or a kernel computed for the concat alone is written into
  // its region instead of into a buffer of its own (the 4 gate gradients of an LSTM step, say; a
  // kernel when its lowering `writes` the region's layout): no copy, and that buffer stays unused.
  bool sole_write_into(int part, int concat, const Place& region) {
    const auto [call, write] = written_by_[part];
    if (call < 0 || !own_argument(calls()[call], write) || !owns_buffer(part) ||
        readers_.of(part).size() != 1 || readers_.of(part)[0] != concat ||
        places_[part].dtype != region.dtype)
      return false;
    if (calls()[call].kind == Call::Kind::op) {
      const auto& kernel = std::get<KernelLowering>(lowering_of(graph_, calls()[call].members[0]));
      if (kernel.writes == nullptr || !kernel.writes(region.layout)) return false;
    }
    buffers()[places_[part].buffer].bytes = 0;
    calls()[call].writes[write] = region;
    places_[part] = region;
    return true;
  }

  // A part of a concat that a fused loop computed, and others read too, is also written into its
  // region by that loop: one more store there rather than a copy call afterwards. So is one that
  // reshapes such a value (an LSTM's h as one time step of its output sequence, say).
  bool write_into(int part, Place region) {
    while (written_by_[part].first < 0 && fusion_.lowered[part] == Lowered::view &&
           std::get<ViewLowering>(lowering_of(graph_, part)).reshapes) {
      part = graph_.node(part).inputs[0];
      std::optional<Layout> layout = reshaped(region.layout, graph_.node(part).spec.shape);
      if (!layout) return false;
      region.layout = std::move(*layout);
    }
    const int call = written_by_[part].first;
    if (call < 0 || calls()[call].kind != Call::Kind::fused || places_[part].dtype != region.dtype)
      return false;
    calls()[call].writes.push_back(region);
    calls()[call].written_members.push_back(part);
    calls()[call].in_place_of.push_back(-1);
    return true;
  }

  // Whether node `id`'s value is all of an arena buffer made for it that no output or store
  // needs: once `id` is read for the last time, the buffer may hold something else.
  bool owns_buffer(int id) const {
    const Place& place = places_[id];
    const BufferUse& use = uses_[place.buffer];
    // A buffer with regions in it is not reused in place: the regions' values may be read later.
    return !kept_[id] && fusion_.buffers[place.buffer].kind == Buffer::Kind::arena &&
           use.owner == id && use.region_of < 0 && !use.has_regions && place.layout.offset == 0 &&
           is_contiguous(place.layout);
  }

  void plan_kernel(int id, const KernelLowering& kernel) {
    fusion_.lowered[id] = Lowered::call;
    const GraphNode& node = graph_.node(id);
    Call call{.kind = Call::Kind::op, .members = {id}};
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const int input = node.inputs[i];
      const Place& place = materialized(input);
      if (kernel.reads != nullptr && !kernel.reads(i, place.layout))
        call.reads.push_back(contiguous_copy(place));
      else if (unchanging_and_reread(input))
        call.reads.push_back(shared_copy(input));
      else
        call.reads.push_back(place);
    }
    places_[id] = new_value(id);
    call.writes.push_back(places_[id]);
    written_by_[id] = {static_cast<int>(calls().size()), 0};
    calls().push_back(std::move(call));
  }

  // A strided view (a transposed weight) of a buffer the step does not change before its stores
  // (an input or a constant), read by several kernels (the recurrent kernel's transpose, by the
  // gradient product of every time step): copied contiguous once, where each of them would
  // otherwise pack or stride through it again. A broadcast view stays: its copy would be larger.
  bool unchanging_and_reread(int id) const {
    const Place& place = places_[id];
    const Buffer::Kind kind = fusion_.buffers[place.buffer].kind;
    if ((kind != Buffer::Kind::input && kind != Buffer::Kind::constant) ||
        is_contiguous(place.layout) || readers_.of(id).size() < 2)
      return false;
    for (size_t d = 0; d < place.layout.shape.size(); ++d)
      if (place.layout.shape[d] > 1 && place.layout.strides[d] == 0) return false;
    return true;
  }

  const Place& shared_copy(int id) {
    auto [copy, made] = shared_copies_.try_emplace(id);
    if (made) copy->second = contiguous_copy(places_[id]);
    return copy->second;
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
              .shape = std::move(group.shape),
              .recomputed = std::move(group.recomputed)};
    const auto is_member = [&](int id) { return std::ranges::binary_search(call.members, id); };
    const auto is_recomputed = [&](int id) {
      return std::ranges::binary_search(call.recomputed, id);
    };
    // The loop's reads (its members' operands from outside it, each once) and writes (members
    // read outside it) counted first, so that its vectors are allocated once at their size:
    // thousands of loops per step, and reserving for every member input took megabytes.
    size_t writes = 0;
    for (int member : call.members) {
      for (int input : graph_.node(member).inputs)
        if (!is_member(input) && !is_immediate(input) &&
            std::ranges::find(call.read_nodes, input) == call.read_nodes.end())
          call.read_nodes.push_back(input);
      writes += !is_recomputed(member) && read_outside(member, g);
    }
    call.reads.reserve(call.read_nodes.size());
    call.writes.reserve(writes);
    call.written_members.reserve(writes);
    call.in_place_of.reserve(writes);
    std::vector<bool> taken(call.read_nodes.size(), false);  // by read: its buffer taken by a write
    for (int member : call.members) {
      // The reads in the order the members first use them, as counted above.
      for (int input : graph_.node(member).inputs) {
        if (call.reads.size() == call.read_nodes.size() ||
            call.read_nodes[call.reads.size()] != input)
          continue;
        const Place& place = places_[input];
        call.reads.push_back({place.buffer, broadcast_to(place.layout, call.shape), place.dtype});
      }
      if (is_recomputed(member) || !read_outside(member, g)) continue;
      if (may_go_unkept(call, g, member, taken)) {
        unkept_by_[member] = static_cast<int>(calls().size());
        continue;
      }
      const TensorSpec& spec = graph_.node(member).spec;
      std::optional<size_t> reused;
      if (const std::optional<int> input = stored_in_place(call, g, member)) {
        // Through the read of the input's old value, where the loop reads it (one argument for
        // both, as the kernel's parameters do not alias).
        const auto read = std::ranges::find(call.read_nodes, *input) - call.read_nodes.begin();
        if (static_cast<size_t>(read) < call.reads.size()) reused = static_cast<size_t>(read);
        places_[member] = places_[*input];
      } else {
        reused = dying_read(call, g, member, taken);
        places_[member] =
            reused ? Place{call.reads[*reused].buffer, contiguous_layout(spec.shape), spec.dtype}
                   : new_value(member);
      }
      call.in_place_of.push_back(reused ? static_cast<int>(*reused) : -1);
      written_by_[member] = {static_cast<int>(calls().size()),
                             static_cast<int>(call.writes.size())};
      call.writes.push_back(places_[member]);
      call.written_members.push_back(member);
    }
    calls().push_back(std::move(call));
  }

  // Whether member `member` of loop `g` is needed outside it: kept, or read by another call.
  bool read_outside(int member, int g) const {
    return kept_[member] || std::ranges::any_of(readers_.of(member), [&](int consumer) {
             return group_of_[consumer] != g;
           });
  }

  // The input that member `member` of loop `g` may be written straight into: the one a store
  // gives its value, when the step's stores need not wait for a finite-loss guard, no kernel
  // call (the only calls that can fail) comes after the loop, and only the loop reads the
  // input's old value, each element before it writes it. An optimizer's update then writes each
  // weight and slot where it lives, instead of into the arena and then copying it there.
  std::optional<int> stored_in_place(const Call& call, int g, int member) const {
    const auto target = store_target_.find(member);
    if (!options_.stores_in_place || target == store_target_.end() || member < last_kernel_ ||
        std::ranges::any_of(graph_.outputs,
                            [&](const GraphOutput& output) { return output.node == member; }))
      return std::nullopt;
    const int input = target->second;
    const Place& place = places_[input];
    const TensorSpec& spec = graph_.node(member).spec;
    if (kept_[input] || place.dtype != spec.dtype || !same_dims(place.layout.shape, spec.shape) ||
        !is_contiguous(place.layout) || place.layout.offset != 0 ||
        std::ranges::any_of(call.writes,
                            [&](const Place& w) { return w.buffer == place.buffer; }) ||
        !std::ranges::all_of(readers_.of(input),
                             [&](int consumer) { return group_of_[consumer] == g; }))
      return std::nullopt;
    return input;
  }

  // A value only a concat reads is written into the concat's region (write_into): taking a dying
  // read's buffer instead would cost a copy into the region.
  bool only_read_by_a_region_op(int id) const {
    return readers_.of(id).size() == 1 &&
           std::holds_alternative<RegionsLowering>(lowering_of(graph_, readers_.of(id)[0]));
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
          !same_dims(place.layout.shape, spec.shape) ||
          !std::ranges::all_of(readers_.of(node),
                               [&](int consumer) { return group_of_[consumer] == g; }))
        continue;
      taken[r] = true;
      uses_[place.buffer].owner = member;
      return r;
    }
    return std::nullopt;
  }

  // Outputs not computed straight into their buffer, then the stores: after every read.
  void plan_outputs_and_stores() {
    for (size_t i = 0; i < graph_.outputs.size(); ++i) {
      const int node = graph_.outputs[i].node;
      int& output_buffer = fusion_.output_buffers[i];
      if (output_buffer >= 0 && places_[node].buffer == output_buffer) continue;
      output_buffer = add_buffer(Buffer::Kind::output, output_slot(i), 0);
      copy(materialized(node), {output_buffer, contiguous_layout(graph_.node(node).spec.shape),
                                graph_.node(node).spec.dtype});
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
    fusion_.first_store = static_cast<int>(calls().size());
    for (const auto& [source, target] : stores) copy(source, target);
  }

  // Each buffer's first write and last read (inclusive, so that no call's output overlaps its
  // inputs once place reuses memory).
  void mark_lifetimes() {
    auto touch = [&](const Place& place, int call, bool write) {
      Buffer& buffer = buffers()[place.buffer];
      if (write && buffer.first < 0) buffer.first = call;
      buffer.last = std::max(buffer.last, call);
    };
    for (size_t c = 0; c < calls().size(); ++c) {
      for (const Place& place : calls()[c].writes) touch(place, static_cast<int>(c), true);
      for (const Place& place : calls()[c].reads) touch(place, static_cast<int>(c), false);
    }
  }

  static constexpr int kGroupsSearched = 8;
  static constexpr size_t kMostReadersToComputeAgain = 4;

  const Graph& graph_;
  const FuseOptions options_;
  Fusion fusion_;
  std::vector<BufferUse> uses_;                          // by buffer
  std::vector<Place, HugePageAllocator<Place>> places_;  // by node
  std::vector<int> group_of_;                            // by node
  Readers readers_;
  std::vector<bool> kept_;  // outputs and stored values
  // By node: the call (a fused loop or a kernel), and its write, that put the node's value in
  // memory.
  std::vector<std::pair<int, int>> written_by_;
  // By node: the loop (call) that computes it without keeping it (may_go_unkept), or -1.
  std::vector<int> unkept_by_;
  std::map<int, Place> shared_copies_;  // by node: its contiguous copy (shared_copy)
  std::map<int, int> store_target_;     // by stored value: the input a store writes it into
  int last_kernel_ = -1;                // the last op that is a kernel call
  int input_count_ = 0;
  std::vector<Group> groups_;
  std::vector<int> open_groups_;  // may also list groups closed since
};

}  // namespace

Fusion fuse(const Graph& graph, const FuseOptions& options) { return Fuser(graph, options).run(); }

}  // namespace weft
