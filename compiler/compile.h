// compile(): a captured step (graph.h) becomes one native function.
//
// The graph first goes through the pass pipeline (passes.h), then through the lowering stages,
// each a function from one value to the next (plan.h), each in a file of its name:
//   fuse    (fuse.h)    Graph     -> Fusion:    the calls (fused loops, kernels, copies), their
//                                               buffers, kernels and repeating runs;
//   place   (place.h)   Fusion    -> Placement: arena offsets by liveness, a run's buffers in
//                                               chains at fixed strides;
//   reroll  (reroll.h)  Placement -> Schedule:  each run one loop, so the code of a step does not
//                                               grow with the sequence length;
//   emit    (emit.h)    Schedule  -> LLVM module, optimised at O3 for the host and compiled by ORC
//                                               LLJIT (jit.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weft/compiler/arena_pool.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/jit.h"
#include "weft/compiler/passes.h"

namespace weft {

struct CompileOptions {
  bool optimize = true;            // run the pass pipeline first
  std::string name = "step";       // the module's label in dumps and messages
  std::string finite_output = {};  // when set: skip the stores unless this 0-d output is finite
  // Keep the graph after each pass, the plan after each lowering stage and the module's IR text,
  // for inspection (time and memory in proportion to the graph).
  bool keep_stages = false;
};

// The lowering stages, in order (their values print as plan_text for inspection).
struct LoweringStage {
  std::string_view name;
  std::string_view summary;  // one line, shown in dumps
};
const std::vector<LoweringStage>& lowering_stages();

// What the compiler did, for `weft inspect` and the tests.
struct CompileStats {
  int64_t graph_nodes = 0;       // after the passes
  int64_t kernel_calls = 0;      // in the step, in order
  int64_t distinct_kernels = 0;  // functions emitted
  int64_t rolled_calls = 0;      // calls inside re-rolled loops
  int64_t fused_ops = 0;         // elementwise ops inside fused loops
  int64_t recomputed_ops = 0;    // ops a later loop computes again rather than read from memory
  // With keep_stages, the dominance of fusion groups: the elementwise ops that could share a loop
  // with their immediate post-dominator (the first node every path to the step's results goes
  // through: here an elementwise op of their shape, only elementwise ops between them), how many
  // do, and of the others, how many because a kernel comes between them in the step (no loop
  // spans another call, so that every time step's calls are alike for re-rolling, and a gradient
  // summed over time steps is added up step by step) or their loop was full.
  int64_t post_dominated_ops = 0;
  int64_t fused_with_post_dominator = 0;
  int64_t apart_by_a_kernel = 0;
  int64_t apart_in_a_full_loop = 0;
  int64_t copy_calls = 0;       // calls that only copy (layout changes, concat parts, stores)
  int64_t arena_bytes = 0;      // after buffer planning
  int64_t unplanned_bytes = 0;  // what the same buffers would take without reuse
  double seconds = 0;           // capture excluded
  // Where those seconds went: each pass, each lowering stage, "emit" (LLVM IR) and "llvm"
  // (optimisation and machine code), in order.
  std::vector<std::pair<std::string, double>> stage_seconds;
};

class StepBinding;

class CompiledStep {
 public:
  // Runs the step on `inputs` (input_ids() order, with the captured shapes and dtypes): returns
  // the outputs and writes the stores into the inputs. Throws weft::Error for wrong inputs and
  // for a failure detected by the compiled code (an index out of range). Runs may overlap, each
  // with an arena of its own (an inference step on parts of a batch at once), but not runs that
  // store into the same inputs.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;
  // As run(), into `outputs`: a tensor there from an earlier run, of its output's shape and
  // dtype, is written again, so that a step run over and over allocates nothing (a large fresh
  // block is mapped page by page as the step writes it, which costs more than a short step).
  // The caller must not hand those tensors out while it reuses them.
  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const;

  const Graph& graph() const { return graph_; }  // after the passes
  // Each pass's name and the graph it produced, in pipeline order (with keep_stages).
  const std::vector<std::pair<std::string, Graph>>& pass_graphs() const { return pass_graphs_; }
  // Each lowering stage's name and the plan after it, as schedule() shows it (with keep_stages).
  const std::vector<std::pair<std::string, std::string>>& plan_stages() const {
    return plan_stages_;
  }
  // The plan the step runs: its calls (fused ops, kernels, buffers and offsets), each loop's
  // calls shown once.
  const std::string& schedule() const { return schedule_; }
  const CompiledModule& module() const { return *module_; }
  const CompileStats& stats() const { return stats_; }
  // Bytes this step holds: its arenas, constants, packed weights and code.
  int64_t memory_bytes() const;

  struct PackedInputs;  // the packed copies of the inputs in row_product_inputs_ (step.cpp)
  static std::shared_ptr<PackedInputs> make_packed_inputs(size_t count);

 private:
  friend CompiledStep compile(Graph graph, const CompileOptions& options);
  friend class StepBinding;
  CompiledStep() = default;

  using StepFn = int32_t(void** buffers, char* arena);
  // Whether `input` is what input `index` takes: defined, of the captured dtype and shape.
  bool accepts(size_t index, const Tensor& input) const;
  // Throws weft::Error naming the input, unless accepts(index, input).
  void check_input(size_t index, const Tensor& input) const;
  // run() once its inputs are checked.
  void run_checked(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const;
  // Makes `outputs` the step's (writing again each that fits, as run() says) and puts each one's
  // data into `buffers`, in output order.
  void prepare_outputs(std::vector<Tensor>& outputs, void** buffers) const;
  // Calls the step's function on `buffers` (inputs, outputs, constants) in `arena`, the packed
  // copies of `inputs` read where due. False where the finite output was not finite (no store
  // was written); throws for a failure detected by the compiled code.
  bool call(void** buffers, char* arena, const std::vector<Tensor>& inputs) const;

  Graph graph_;
  std::vector<std::pair<std::string, Graph>> pass_graphs_;
  std::vector<std::pair<std::string, std::string>> plan_stages_;
  std::string schedule_;
  std::shared_ptr<CompiledModule> module_;
  StepFn* step_ = nullptr;
  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<std::string> input_names_;
  std::vector<size_t> stored_inputs_;  // the input each store writes
  std::vector<Tensor> constants_;
  std::shared_ptr<ArenaPool> arenas_;
  // The inputs that products of one row read as their right operand, and the step does not store
  // into (a streaming step's weights), with how many such products a run computes. Once enough
  // products have read one unchanged (the same storage, version and address; step.cpp says how
  // many), they read a packed copy of it (gemm.h's PackedB), kept until it changes. A write
  // through Tensor::data must call mark_modified(), as for the tape.
  struct RowProductInput {
    size_t input;
    int64_t products;  // per run
  };
  std::vector<RowProductInput> row_product_inputs_;
  std::shared_ptr<PackedInputs> packed_inputs_;
  CompileStats stats_;
};

// A compiled step bound to its inputs, for runs over and over (a streaming model's calls): the
// inputs are checked once, when set, and each run hands the step the same buffers in an arena
// the binding holds, so a run costs little more than the step's own code. The bound tensors stay
// the step's inputs: a write into one (through Tensor::data, then mark_modified) is read by the
// next run, and packed copies of weights are made again once it changes. A binding is for one
// thread at a time; bindings of one step may run at once, each in its own arena.
class StepBinding {
 public:
  // `inputs` in input order, as run() takes them. A stored input must be contiguous; any other
  // strided one is copied when set.
  StepBinding(std::shared_ptr<const CompiledStep> step, std::vector<Tensor> inputs);

  const CompiledStep& step() const { return *step_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  // Input `index` for the next runs, checked as the constructor checks each.
  void set_input(size_t index, const Tensor& input);
  // Lets go of input `index` (a caller's batch, not to be held between runs) until it is set
  // again; a run before that throws.
  void release_input(size_t index);
  // As CompiledStep::run(inputs(), outputs).
  void run(std::vector<Tensor>& outputs);

 private:
  std::shared_ptr<const CompiledStep> step_;
  std::vector<Tensor> inputs_;
  std::vector<bool> released_;  // by input: let go of, and not set since
  size_t released_count_ = 0;
  std::vector<void*> buffers_;  // inputs, outputs (set each run), constants
  ArenaPool::Lease arena_;      // after step_, which owns its pool
};

// Compiles `graph` into the process's JIT. A graph with an op that has no lowering, or that
// LLVM rejects, throws weft::Error naming the op or the function; there is no fallback.
// A graph passed as an rvalue is not copied.
CompiledStep compile(Graph graph, const CompileOptions& options = {});

// Compiled steps by key (the shapes and options that produced them), oldest evicted first once
// their memory passes `memory_bound` bytes.
class StepCache {
 public:
  explicit StepCache(int64_t memory_bound = int64_t{1} << 30) : memory_bound_(memory_bound) {}

  const CompiledStep* find(const std::string& key) const;
  // The step stored under `key`, shared: it outlives its eviction. Null where none is.
  std::shared_ptr<const CompiledStep> find_shared(const std::string& key) const;
  // Stores `step` under `key` (replacing an older one), then evicts while over the bound (never
  // the step just stored).
  const CompiledStep& insert(const std::string& key, CompiledStep step);
  void clear();

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  int64_t memory_bytes() const;
  int64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const CompiledStep> step;
  };
  const Entry* entry(const std::string& key) const;
  int64_t memory_bound_;
  std::vector<Entry> entries_;  // oldest first
  int64_t evictions_ = 0;
};

}  // namespace weft
