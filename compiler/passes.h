// The compiler's optimisation pipeline: one ordered list of named Graph -> Graph passes, each
// dumpable by name (`weft inspect --pass dce`).
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "weft/compiler/graph.h"

namespace weft {

// One optimisation pass: a named Graph -> Graph function. Passes keep every output, every store,
// the inputs (all of them, in order: they are the step's calling convention) and the values.
struct Pass {
  std::string_view name;      // "dce", as `weft inspect --pass dce` names it
  std::string_view summary;   // one line, shown in dumps
  Graph (*run)(Graph graph);  // by value: the pass moves the nodes into the graph it returns
};

// The pipeline, in order.
const std::vector<Pass>& pipeline();

// Runs the pipeline; `after_each`, when set, sees each pass and the graph it produced. A graph
// passed as an rvalue is not copied.
Graph optimize(Graph graph, const std::function<void(const Pass&, const Graph&)>& after_each = {});

}  // namespace weft
