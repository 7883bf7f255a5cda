// The lowering plan (fusion, views, kernels, buffers) and the IR of the step; see compile.h.
#include "weft/compiler/compile.h"

#include <fmt/format.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "weft/compiler/lowering.h"
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
  const GraphNode& node = graph.node(id);
  WEFT_CHECK(node.op->lowering != nullptr, "compile: {} has no lowering to LLVM IR",
             describe(graph, id));
  return *node.op->lowering;
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
  std::vector<int> members = {};  // fused: its ops, in order; op: the op
  Shape shape = {};               // fused: the loop's
  std::vector<Place> reads = {};  // fused: its outside operands (laid out over `shape`); op: inputs
  std::vector<int> read_nodes = {};  // fused: the node of each read
  std::vector<Place> writes = {};    // fused: the members kept in memory; op: output; copy: target
  std::vector<int> written_members = {};
};

class Planner {
 public:
  explicit Planner(const Graph& graph)
      : graph_(graph),
        places_(graph.nodes().size()),
        group_of_(graph.nodes().size(), -1),
        consumers_(graph.nodes().size()),
        kept_(graph.nodes().size(), false) {
    for (size_t id = 0; id < graph.nodes().size(); ++id)
      for (int input : graph.nodes()[id].inputs) consumers_[input].push_back(static_cast<int>(id));
    for (const GraphOutput& output : graph.outputs) kept_[output.node] = true;
    for (const GraphStore& store : graph.stores) kept_[store.value] = true;
    int next_input = 0;
    for (int id : graph.input_ids())
      places_[id] = {add_buffer(Buffer::Kind::input, next_input++, 0),
                     contiguous_layout(graph.node(id).spec.shape), graph.node(id).spec.dtype};
    input_count_ = next_input;
    output_buffer_.assign(graph.outputs.size(), -1);
  }

  void run() {
    for (size_t id = 0; id < graph_.nodes().size(); ++id) {
      const GraphNode& node = graph_.nodes()[id];
      if (node.kind != GraphNode::Kind::op) continue;
      const Lowering& lowering = lowering_of(graph_, static_cast<int>(id));
      if (lowering.element != nullptr)
        plan_element(static_cast<int>(id));
      else if (lowering.view != nullptr)
        plan_view(static_cast<int>(id), lowering);
      else if (lowering.region != nullptr)
        plan_regions(static_cast<int>(id), lowering);
      else
        plan_kernel(static_cast<int>(id), lowering);
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
    plan_arena();
  }

  const Graph& graph_;
  std::vector<Place> places_;
  std::vector<int> group_of_;
  std::vector<std::vector<int>> consumers_;
  std::vector<bool> kept_;  // outputs and stored values
  std::vector<Buffer> buffers_;
  std::vector<Call> calls_;
  std::vector<int> output_buffer_;  // the buffer of each output
  std::vector<int> constant_nodes_;
  // The pointer array holds the inputs, then the outputs, then the constants.
  int output_slot(size_t output) const { return input_count_ + static_cast<int>(output); }
  int first_constant_slot() const { return output_slot(graph_.outputs.size()); }
  int first_store_ = 0;
  int input_count_ = 0;
  int64_t arena_bytes_ = 0, unplanned_bytes_ = 0;

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
    return {add_buffer(Buffer::Kind::arena, -1, bytes), contiguous_layout(spec.shape), spec.dtype};
  }

  // Where a consumer outside the fused loops reads node `id`; closes the node's group.
  Place materialized(int id) {
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
    Place place = materialized(node.inputs[0]);
    Layout layout = place.layout;
    if (!lowering.view(layout, node.attrs, node.spec)) {
      place = contiguous_copy(place);
      layout = place.layout;
      WEFT_CHECK(lowering.view(layout, node.attrs, node.spec),
                 "compile: internal error: {} refuses a contiguous input", describe(graph_, id));
    }
    places_[id] = {place.buffer, layout, node.spec.dtype};
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
    const Place output = places_[id];
    for (size_t i = 0; i < node.inputs.size(); ++i)
      copy(sources[i],
           {output.buffer, lowering.region(i, output.layout, node.attrs, shapes), output.dtype});
  }

  void plan_kernel(int id, const Lowering& lowering) {
    const GraphNode& node = graph_.node(id);
    Call call{.kind = Call::Kind::op, .members = {id}};
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      Place place = materialized(node.inputs[i]);
      if (lowering.reads != nullptr && !lowering.reads(i, place.layout))
        place = contiguous_copy(place);
      call.reads.push_back(place);
    }
    places_[id] = new_value(id);
    call.writes.push_back(places_[id]);
    calls_.push_back(std::move(call));
  }

  // Emits a group's loop: it runs after everything its members read, and before any reader of
  // its members outside it (those close it first).
  void close(int g) {
    Group& group = groups_[g];
    if (!group.open) return;
    group.open = false;
    Call call{.kind = Call::Kind::fused, .members = group.members, .shape = group.shape};
    for (int member : group.members) {
      for (int input : graph_.node(member).inputs) {
        if (group_of_[input] == g || is_immediate(input)) continue;
        if (std::find(call.read_nodes.begin(), call.read_nodes.end(), input) !=
            call.read_nodes.end())
          continue;
        const Place& place = places_[input];
        call.read_nodes.push_back(input);
        call.reads.push_back({place.buffer, broadcast_to(place.layout, group.shape), place.dtype});
      }
      const bool read_outside =
          kept_[member] || std::any_of(consumers_[member].begin(), consumers_[member].end(),
                                       [&](int consumer) { return group_of_[consumer] != g; });
      if (!read_outside) continue;
      places_[member] = new_value(member);
      call.writes.push_back(places_[member]);
      call.written_members.push_back(member);
    }
    calls_.push_back(std::move(call));
  }

  // Offsets in one arena: a buffer lives from the call that writes it first to the call that
  // reads it last (inclusive, so no call's output overlaps its inputs); first fit by offset.
  void plan_arena() {
    auto touch = [&](const Place& place, int call, bool write) {
      Buffer& buffer = buffers_[place.buffer];
      if (write && buffer.first < 0) buffer.first = call;
      buffer.last = std::max(buffer.last, call);
    };
    for (size_t c = 0; c < calls_.size(); ++c) {
      for (const Place& place : calls_[c].writes) touch(place, static_cast<int>(c), true);
      for (const Place& place : calls_[c].reads) touch(place, static_cast<int>(c), false);
    }
    std::vector<int> order;
    for (size_t b = 0; b < buffers_.size(); ++b)
      if (buffers_[b].kind == Buffer::Kind::arena) order.push_back(static_cast<int>(b));
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return buffers_[a].first < buffers_[b].first; });
    std::vector<int> active;  // sorted by offset
    for (int b : order) {
      Buffer& buffer = buffers_[b];
      std::erase_if(active, [&](int other) { return buffers_[other].last < buffer.first; });
      const int64_t size = aligned(buffer.bytes);
      unplanned_bytes_ += size;
      int64_t offset = 0;
      auto at = active.begin();
      for (; at != active.end(); ++at) {
        if (buffers_[*at].offset - offset >= size) break;
        offset = std::max(offset, buffers_[*at].offset + aligned(buffers_[*at].bytes));
      }
      buffer.offset = offset;
      active.insert(at, b);
      arena_bytes_ = std::max(arena_bytes_, offset + size);
    }
  }

  static constexpr int kGroupsSearched = 8;
  // Beyond this a loop body gains little and LLVM's instruction scheduler (quadratic in a block's
  // size) dominates compile time.
  static constexpr int kMaxGroupSize = 24;
  std::vector<Group> groups_;
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
    std::vector<Site> sites;
    for (const Call& call : plan_.calls_) {
      Site site{kernel_for(call), {}};
      for (const std::vector<Place>* places : {&call.reads, &call.writes})
        for (const Place& place : *places) {
          const Buffer& buffer = plan_.buffers_[place.buffer];
          const int64_t element_bytes =
              place.layout.offset * static_cast<int64_t>(dtype_size(place.dtype));
          site.args.push_back(buffer.kind == Buffer::Kind::arena
                                  ? Arg{-1, buffer.offset + element_bytes}
                                  : Arg{buffer.slot, element_bytes});
        }
      sites.push_back(std::move(site));
    }
    const auto first_store = static_cast<size_t>(plan_.first_store_);
    emit_sites(sites, 0, first_store);
    if (!finite_output.empty()) guard_finite(finite_output);
    emit_sites(sites, first_store, sites.size());
    b_.CreateRet(b_.getInt32(0));
    b_.SetInsertPoint(failed_);
    b_.CreateRet(b_.getInt32(1));
  }

  int64_t distinct_kernels() const { return static_cast<int64_t>(kernels_.size()); }
  int64_t rolled_calls() const { return rolled_calls_; }
  const std::vector<std::string>& call_names() const { return call_names_; }

 private:
  // A kernel argument: bytes into a buffer of the pointer array (slot), or into the arena (-1).
  struct Arg {
    int64_t slot;
    int64_t bytes;
  };
  struct Site {
    llvm::Function* kernel;
    std::vector<Arg> args;
  };

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

  // Calls the site's kernel with every argument moved by `repeat` times its `delta`.
  void emit_call(const Site& site, llvm::Value* repeat, const std::vector<int64_t>& deltas) {
    std::vector<llvm::Value*> args;
    for (size_t a = 0; a < site.args.size(); ++a) {
      llvm::Value* bytes = b_.getInt64(site.args[a].bytes);
      if (repeat != nullptr && deltas[a] != 0)
        bytes = b_.CreateAdd(bytes, b_.CreateMul(repeat, b_.getInt64(deltas[a])));
      args.push_back(b_.CreateInBoundsGEP(b_.getInt8Ty(), base(site.args[a].slot), bytes));
    }
    llvm::Value* status = b_.CreateCall(site.kernel, args);
    auto* next = llvm::BasicBlock::Create(context_, "next", step_);
    b_.CreateCondBr(b_.CreateICmpNE(status, b_.getInt32(0)), failed_, next);
    b_.SetInsertPoint(next);
  }

  // Whether sites [first, first + period) repeat at `first + repeat * period` with every
  // argument moved by `repeat` times its delta (deltas: per site, per argument).
  static bool repeats(const std::vector<Site>& sites, size_t first, size_t period, size_t repeat,
                      const std::vector<std::vector<int64_t>>& deltas) {
    for (size_t j = 0; j < period; ++j) {
      const Site& a = sites[first + j];
      const Site& b = sites[first + repeat * period + j];
      if (a.kernel != b.kernel) return false;
      for (size_t k = 0; k < a.args.size(); ++k)
        if (a.args[k].slot != b.args[k].slot ||
            b.args[k].bytes != a.args[k].bytes + static_cast<int64_t>(repeat) * deltas[j][k])
          return false;
    }
    return true;
  }

  // Re-rolling: the calls of an unrolled time loop are the same kernels on buffers that move by
  // a fixed stride each step. Each longest such run becomes a loop over its period, so the
  // step's code stays the size of one time step whatever the sequence length.
  void emit_sites(const std::vector<Site>& sites, size_t begin, size_t end) {
    size_t i = begin;
    while (i < end) {
      size_t best_period = 0, best_count = 1;
      std::vector<std::vector<int64_t>> best_deltas;
      for (size_t period = 1; period <= kMaxPeriod && i + 2 * period <= end; ++period) {
        std::vector<std::vector<int64_t>> deltas(period);
        bool same = true;
        for (size_t j = 0; j < period && same; ++j) {
          const Site& a = sites[i + j];
          const Site& b = sites[i + period + j];
          same = a.kernel == b.kernel;
          for (size_t k = 0; same && k < a.args.size(); ++k) {
            same = a.args[k].slot == b.args[k].slot;
            deltas[j].push_back(b.args[k].bytes - a.args[k].bytes);
          }
        }
        if (!same) continue;
        size_t count = 2;
        while (i + (count + 1) * period <= end && repeats(sites, i, period, count, deltas)) ++count;
        if (count * period > best_count * std::max<size_t>(best_period, 1) && count >= 3) {
          best_period = period;
          best_count = count;
          best_deltas = std::move(deltas);
        }
      }
      if (best_period == 0) {
        emit_call(sites[i++], nullptr, {});
        continue;
      }
      // for (repeat = 0; repeat < count; ++repeat) { the period's calls }
      llvm::BasicBlock* before = b_.GetInsertBlock();
      auto* header = llvm::BasicBlock::Create(context_, "repeat", step_);
      b_.CreateBr(header);
      b_.SetInsertPoint(header);
      llvm::PHINode* repeat = b_.CreatePHI(b_.getInt64Ty(), 2, "r");
      repeat->addIncoming(b_.getInt64(0), before);
      for (size_t j = 0; j < best_period; ++j) emit_call(sites[i + j], repeat, best_deltas[j]);
      llvm::Value* next = b_.CreateAdd(repeat, b_.getInt64(1));
      repeat->addIncoming(next, b_.GetInsertBlock());
      auto* after = llvm::BasicBlock::Create(context_, "after", step_);
      b_.CreateCondBr(b_.CreateICmpULT(next, b_.getInt64(static_cast<int64_t>(best_count))), header,
                      after);
      b_.SetInsertPoint(after);
      rolled_calls_ += static_cast<int64_t>(best_period * best_count);
      i += best_period * best_count;
    }
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

  // The kernel for `call`, emitted once per distinct signature (the code, not the buffers).
  llvm::Function* kernel_for(const Call& call) {
    const std::string signature = signature_of(call);
    auto found = kernels_.find(signature);
    if (found == kernels_.end()) {
      llvm::Function* function = emit_kernel(call, fmt::format("k{}", kernels_.size()));
      found = kernels_.emplace(signature, function).first;
    }
    call_names_.push_back(found->second->getName().str());
    return found->second;
  }

  std::string signature_of(const Call& call) const {
    const Graph& graph = plan_.graph_;
    std::string text;
    for (const Place& place : call.reads) text += layout_str(place.layout, place.dtype) + ";";
    text += "->";
    for (const Place& place : call.writes) text += layout_str(place.layout, place.dtype) + ";";
    if (call.kind == Call::Kind::copy) return "copy " + text;
    if (call.kind == Call::Kind::op) {
      const GraphNode& node = graph.node(call.members[0]);
      return fmt::format("{}({}) {}", node.op->name, node.attrs.to_string(), text);
    }
    text = fmt::format("fused {} {}", shape_str(call.shape), text);
    for (int member : call.members) {
      const GraphNode& node = graph.node(member);
      text += fmt::format(" {}:{}(", node.op->name, dtype_name(node.spec.dtype));
      for (int input : node.inputs) {
        const Operand operand = operand_of(call, input);
        text += operand.kind == Operand::Kind::member ? fmt::format("m{},", operand.index)
                : operand.kind == Operand::Kind::read
                    ? fmt::format("r{},", operand.index)
                    : fmt::format("{}:{:a},", dtype_name(plan_.graph_.node(input).spec.dtype),
                                  plan_.graph_.node(input).value.item());
      }
      text += node.attrs.to_string() + ")";
    }
    for (int member : call.written_members) text += fmt::format(" w{}", member_index(call, member));
    return text;
  }

  int member_index(const Call& call, int id) const {
    return static_cast<int>(std::find(call.members.begin(), call.members.end(), id) -
                            call.members.begin());
  }

  // How a fused member reads an operand: another member's value, an outside read, or an
  // immediate (a 0-d constant).
  struct Operand {
    enum class Kind { member, read, immediate };
    Kind kind;
    int index;  // into the call's members or reads
  };

  static Operand operand_of(const Call& call, int input) {
    const auto member = std::find(call.members.begin(), call.members.end(), input);
    if (member != call.members.end())
      return {Operand::Kind::member, static_cast<int>(member - call.members.begin())};
    const auto read = std::find(call.read_nodes.begin(), call.read_nodes.end(), input);
    if (read != call.read_nodes.end())
      return {Operand::Kind::read, static_cast<int>(read - call.read_nodes.begin())};
    return {Operand::Kind::immediate, -1};
  }

  llvm::Function* emit_kernel(const Call& call, const std::string& name) {
    const size_t params = call.reads.size() + call.writes.size();
    auto* function = llvm::Function::Create(
        llvm::FunctionType::get(b_.getInt32Ty(), std::vector<llvm::Type*>(params, b_.getPtrTy()),
                                false),
        llvm::Function::InternalLinkage, name, module_);
    // Kept out of line: the step is a list of calls, and its size stays that of the list.
    function->addFnAttr(llvm::Attribute::NoInline);
    function->addFnAttr(llvm::Attribute::NoUnwind);
    for (size_t i = 0; i < params; ++i) {
      function->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoCapture);
      // Buffers never overlap a call's output (plan_arena), except a store's own input.
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
    for (size_t i = 0; i < call.writes.size(); ++i)
      writes.push_back({function->getArg(static_cast<unsigned>(call.reads.size() + i)),
                        call.writes[i].layout.shape, call.writes[i].layout.strides,
                        call.writes[i].dtype});
    switch (call.kind) {
      case Call::Kind::copy:
        emit_copy(k, reads[0], writes[0]);
        break;
      case Call::Kind::op: {
        const GraphNode& node = plan_.graph_.node(call.members[0]);
        node.op->lowering->kernel(k, reads, writes[0], node.attrs);
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
        values.push_back(node.op->lowering->element(
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
  static constexpr size_t kMaxPeriod = 64;  // calls in one repeated stretch (one time step)
  std::unordered_map<std::string, llvm::Function*> kernels_;
  std::vector<std::string> call_names_;
  llvm::Function* step_ = nullptr;
  llvm::BasicBlock* failed_ = nullptr;
  std::map<int64_t, llvm::Value*> slot_pointers_;
  int64_t rolled_calls_ = 0;
};

std::string schedule_text(const Planner& plan, const std::vector<std::string>& names) {
  const Graph& graph = plan.graph_;
  auto where = [&](const Place& place) {
    const Buffer& buffer = plan.buffers_[place.buffer];
    const char* kinds[] = {"input", "output", "constant", "arena"};
    const std::string base = buffer.kind == Buffer::Kind::arena
                                 ? fmt::format("arena+{}", buffer.offset)
                                 : fmt::format("{}{}", kinds[static_cast<int>(buffer.kind)],
                                               buffer.kind == Buffer::Kind::constant
                                                   ? buffer.slot - plan.first_constant_slot()
                                                   : buffer.slot);
    return fmt::format("{}[{}] {}", base, place.layout.offset,
                       layout_str(place.layout, place.dtype));
  };
  std::string text;
  for (size_t c = 0; c < plan.calls_.size(); ++c) {
    const Call& call = plan.calls_[c];
    std::vector<std::string> ops, reads, writes;
    for (int member : call.members)
      ops.push_back(fmt::format("%{} {}", member, graph.node(member).op->name));
    for (const Place& place : call.reads) reads.push_back(where(place));
    for (const Place& place : call.writes) writes.push_back(where(place));
    const char* kind = call.kind == Call::Kind::fused ? "fused"
                       : call.kind == Call::Kind::op  ? "kernel"
                                                      : "copy";
    text += fmt::format("{:>4} {} {} [{}]\n       reads {}\n       writes {}\n", c, names[c], kind,
                        fmt::join(ops, ", "), fmt::join(reads, "; "), fmt::join(writes, "; "));
  }
  text +=
      fmt::format("arena: {} bytes ({} without reuse)\n", plan.arena_bytes_, plan.unplanned_bytes_);
  return text;
}

}  // namespace

// ---- compile ----------------------------------------------------------------------------------

CompiledStep compile(const Graph& captured, const CompileOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  CompiledStep step;
  step.graph_ = options.optimize ? optimize(captured,
                                            [&](const Pass& pass, const Graph& graph) {
                                              step.pass_graphs_.emplace_back(pass.name, graph);
                                            })
                                 : captured;
  const Graph& graph = step.graph_;
  Planner plan(graph);
  plan.run();

  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(options.name, *context);
  Emitter emitter(plan, *module);
  emitter.emit_step(options.finite_output);

  step.schedule_ = schedule_text(plan, emitter.call_names());
  step.module_ = std::make_shared<CompiledModule>(
      process_jit().add(std::move(module), std::move(context), options.name));
  step.step_ = step.module_->lookup<CompiledStep::StepFn>("step");
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
  stats.distinct_kernels = emitter.distinct_kernels();
  stats.rolled_calls = emitter.rolled_calls();
  for (const Call& call : plan.calls_)
    if (call.kind == Call::Kind::fused)
      stats.fused_ops += static_cast<int64_t>(call.members.size());
  stats.arena_bytes = plan.arena_bytes_;
  stats.unplanned_bytes = plan.unplanned_bytes_;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  return bytes + static_cast<int64_t>(module_->assembly().size());
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
