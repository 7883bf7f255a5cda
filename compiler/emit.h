// Stage "emit": a Schedule (plan.h) as LLVM IR. Each distinct kernel is one function; the step
// is one function that calls them in order, a loop for each run:
//   int32_t step(void** buffers, char* arena)
// returns 0 when it ran, 1 after a failure a kernel recorded (jit_take_runtime_error), 2 when
// `finite_output` was not finite (the stores skipped).
#pragma once

#include <llvm/IR/Module.h>

#include <string>

#include "weft/compiler/plan.h"

namespace weft {

void emit(const Graph& graph, const Schedule& schedule, llvm::Module& module,
          const std::string& finite_output);

}  // namespace weft
