// compile(): the pass pipeline, then the lowering stages, each a function from one value to the
// next (plan.h), then LLVM. See compile.h.
#include "weft/compiler/compile.h"

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <chrono>
#include <map>

#include "weft/compiler/analysis.h"
#include "weft/compiler/emit.h"
#include "weft/compiler/fuse.h"
#include "weft/compiler/place.h"
#include "weft/compiler/reroll.h"
#include "weft/compiler/runtime_calls.h"
#include "weft/ops/definitions.h"
#include "weft/runtime/error.h"
#include "weft/runtime/gemm.h"

namespace weft {
namespace {

Jit& process_jit() {
  // Never destroyed: compiled steps held by static objects may outlive any other owner.
  static Jit* jit = Jit::create(runtime_symbols()).release();
  return *jit;
}

// The elementwise ops that could share a loop with their immediate post-dominator (an elementwise
// op of their shape, with only elementwise ops on the paths between them), how many do, and why
// the others do not: read from what fuse did.
void count_fusion_by_post_dominators(const Graph& graph, const Fusion& fusion,
                                     CompileStats& stats) {
  const size_t nodes = graph.nodes().size();
  std::vector<int> loop_of(nodes, -1);
  for (size_t c = 0; c < fusion.calls.size(); ++c)
    if (fusion.calls[c].kind == Call::Kind::fused)
      for (int member : fusion.calls[c].members)
        if (!std::ranges::binary_search(fusion.calls[c].recomputed, member))
          loop_of[member] = static_cast<int>(c);
  const auto elementwise = [&](int id) { return fusion.lowered[id] == Lowered::element; };
  // By id: how many ops that are calls of their own come before it; fuse closes every open loop
  // at one.
  std::vector<int> calls_before(nodes + 1, 0);
  for (size_t id = 0; id < nodes; ++id)
    calls_before[id + 1] = calls_before[id] + (fusion.lowered[id] == Lowered::call);
  // Ids are in topological order: the nodes on the paths from `from` to its post-dominator `to`
  // are those `from` reaches below `to`.
  const Readers readers(graph);
  std::vector<int> seen_by(nodes, -1), stack;
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
  for (size_t id = 0; id < nodes; ++id) {
    const int node = static_cast<int>(id), after = post_dominator[id];
    if (after < 0 || !elementwise(node) || !elementwise(after) ||
        graph.node(after).spec.shape != graph.node(node).spec.shape ||
        !only_elementwise_between(node, after))
      continue;
    ++stats.post_dominated_ops;
    if (loop_of[id] == loop_of[after])
      ++stats.fused_with_post_dominator;
    else if (calls_before[after] > calls_before[id + 1])
      ++stats.apart_by_a_kernel;
    else
      stats.apart_in_a_full_loop +=
          fusion.calls[loop_of[id]].members.size() >= static_cast<size_t>(kMaxLoopMembers);
  }
}

// How many matmuls read each input whole and 2-D as their right operand for one row of output,
// where a packed copy (PackedB) is laid out otherwise: the products gemm reads faster from one.
std::map<int, int64_t> row_products_by_operand(const Graph& graph) {
  std::map<int, int64_t> products;
  for (const GraphNode& node : graph.nodes()) {
    if (node.kind != GraphNode::Kind::op || node.op != &matmul_op || node.spec.shape.size() != 2 ||
        node.spec.shape[0] != 1 ||
        !PackedB::reorders(node.spec.shape[1], dtype_size(node.spec.dtype)))
      continue;
    const int right = node.inputs[1];
    if (graph.node(right).kind == GraphNode::Kind::input) ++products[right];
  }
  return products;
}

}  // namespace

const std::vector<LoweringStage>& lowering_stages() {
  static const std::vector<LoweringStage> stages = {
      {"fuse",
       "elementwise chains become loops, views strides, every other op one kernel call; the "
       "runs of repeating calls are found"},
      {"place",
       "buffers get arena offsets by liveness; a run's chains of buffers at fixed strides"},
      {"reroll", "each run of calls repeating with arguments at fixed strides becomes a loop"},
  };
  return stages;
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
  // A lowering stage's value, once computed: timed, and kept as text for inspection.
  auto lowered = [&](std::string_view name, auto value) {
    stage_done(name);
    if (options.keep_stages) step.plan_stages_.emplace_back(name, plan_text(graph, value));
    stage_start = Clock::now();
    return value;
  };
  // lowering_stages(), in order.
  Fusion fusion = lowered("fuse", fuse(graph, {.stores_in_place = options.finite_output.empty()}));
  Placement placement = lowered("place", place(std::move(fusion)));
  const Schedule schedule = lowered("reroll", reroll(std::move(placement)));

  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(options.name, *context);
  emit(graph, schedule, *module, options.finite_output);
  step.schedule_ = plan_text(graph, schedule);
  stage_done("emit");
  step.module_ = std::make_shared<CompiledModule>(
      process_jit().add(std::move(module), std::move(context), options.name,
                        options.keep_stages ? IrText::keep : IrText::drop));
  step.step_ = step.module_->lookup<CompiledStep::StepFn>("step");
  stage_done("llvm");

  const Fusion& plan = schedule.placement.fusion;
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
  const std::map<int, int64_t> row_products = row_products_by_operand(graph);
  for (size_t i = 0; i < input_ids.size(); ++i)
    if (const auto read = row_products.find(input_ids[i]);
        read != row_products.end() &&
        std::ranges::find(step.stored_inputs_, i) == step.stored_inputs_.end())
      step.row_product_inputs_.push_back({i, read->second});
  step.packed_inputs_ = CompiledStep::make_packed_inputs(step.row_product_inputs_.size());
  for (int id : plan.constant_nodes) step.constants_.push_back(graph.node(id).value.copy());
  const int64_t arena_bytes = schedule.placement.arena_bytes;
  step.arenas_ = std::make_shared<ArenaPool>(arena_bytes);

  CompileStats& stats = step.stats_;
  stats.graph_nodes = static_cast<int64_t>(graph.nodes().size());
  stats.kernel_calls = static_cast<int64_t>(plan.calls.size());
  stats.distinct_kernels = plan.kernel_count;
  stats.rolled_calls = schedule.rolled_calls;
  for (const Call& call : plan.calls) {
    if (call.kind == Call::Kind::fused) {
      stats.fused_ops += static_cast<int64_t>(call.members.size() - call.recomputed.size());
      stats.recomputed_ops += static_cast<int64_t>(call.recomputed.size());
    }
    stats.copy_calls += call.kind == Call::Kind::copy;
  }
  stats.arena_bytes = arena_bytes;
  stats.unplanned_bytes = schedule.placement.unplanned_bytes;
  if (options.keep_stages) count_fusion_by_post_dominators(graph, plan, stats);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return step;
}

}  // namespace weft
