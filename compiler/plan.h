// The values the lowering stages hand to one another (compile.h lists the stages):
//   fuse(graph)        -> Fusion:    the step's calls (fused loops, kernels, copies), their
//                                    buffers, and the stretches of calls that repeat (runs);
//   place(Fusion)      -> Placement: every arena buffer's offset;
//   reroll(Placement)  -> Schedule:  the calls as the step runs them, each run one loop;
//   emit(Schedule)     -> the LLVM module (emit.h).
// Each stage's value prints as text (plan_text) for `weft inspect --graph plan`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weft/compiler/graph.h"
#include "weft/ops/lowering.h"

namespace weft {

// Where a value lives: an input, output or constant of the step (a slot of its pointer array),
// or the arena.
struct Buffer {
  enum class Kind { input, output, constant, arena };
  Kind kind;
  int slot;  // in the step's pointer array (inputs, outputs, constants); -1 for the arena
  int64_t bytes = 0;
  int first = -1, last = -1;  // the calls that write it first and read it last (-1: unused)
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
  // Fused: members that an earlier loop computes and does not keep, computed again here from
  // that value's own operand (which is in memory anyway) where this loop reads the value.
  std::vector<int> recomputed = {};
};

// Whether write `w` of `call` is a kernel argument of its own (not a read's, in place).
bool own_argument(const Call& call, size_t w);
int member_index(const Call& call, int id);

// How a fused member reads an operand: another member's value, an outside read, or an immediate
// (a 0-d constant).
struct Operand {
  enum class Kind { member, read, immediate };
  Kind kind;
  int index;  // into the call's members or reads
};
Operand operand_of(const Call& call, int input);

// A stretch of `period` calls, starting at call `first`, repeated `count` times with every
// argument at a fixed stride from one repetition to the next (one time step after another).
struct Run {
  size_t first = 0, period = 1, count = 1;
  size_t end() const { return first + period * count; }
};

// How fuse lowered a node: the statistics of fusion read this rather than ask the lowerings again.
enum class Lowered { value, element, view, call };  // value: an input or a constant

// Stage "fuse"'s value.
struct Fusion {
  std::vector<Buffer> buffers;
  std::vector<Call> calls;
  std::vector<int> kernel_of;  // by call: its kernel; calls with equal signatures share one
  int kernel_count = 0;
  std::vector<Lowered> lowered;  // by node
  // The repeated stretches of calls, in order and disjoint, and by buffer the chain of buffers it
  // belongs to (buffers that take one another's place in successive repetitions: a time step's
  // activations, say) and its position there, or -1.
  std::vector<Run> runs;
  std::vector<int> chain_of;
  std::vector<int64_t> chain_position;
  int chain_count = 0;
  int first_store = 0;              // the stores are the calls from here on
  std::vector<int> output_buffers;  // by output
  std::vector<int> constant_nodes;  // by constant slot
  int first_constant_slot = 0;      // the pointer array holds inputs, outputs, then constants
};

// Stage "place"'s value: arena offsets.
struct Placement {
  Fusion fusion;
  std::vector<int64_t> offsets;  // by buffer, in bytes (arena buffers)
  int64_t arena_bytes = 0;
  int64_t unplanned_bytes = 0;  // what the same buffers would take without reuse
};

// A kernel argument: bytes into a slot of the pointer array, or into the arena (slot -1).
struct SiteArg {
  int64_t slot;
  int64_t bytes;
};

// A stretch of the step as it runs: one call, or a loop over a run's period; `deltas[j][a]`: how
// far argument `a` of the period's call j moves, in bytes, each time round.
struct Segment {
  Run run;
  std::vector<std::vector<int64_t>> deltas = {};
};

// Stage "reroll"'s value: what the step runs.
struct Schedule {
  Placement placement;
  std::vector<std::vector<SiteArg>> site_args;  // by call
  std::vector<Segment> segments;
  int64_t rolled_calls = 0;
};

// "input %3 \"x\"", "'matmul' (node %7)": a node named in messages.
std::string describe(const Graph& graph, int id);
// The node's op's lowering; throws weft::Error naming the node when it has none.
const Lowering& lowering_of(const Graph& graph, int id);

// The plan as text: one entry per call (its kernel, the ops it runs, what it reads and writes and
// where), arena offsets once placed, and each loop's calls once, once rerolled.
std::string plan_text(const Graph& graph, const Fusion& fusion);
std::string plan_text(const Graph& graph, const Placement& placement);
std::string plan_text(const Graph& graph, const Schedule& schedule);

}  // namespace weft
