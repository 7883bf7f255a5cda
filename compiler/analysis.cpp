#include "weft/compiler/analysis.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/dominator_tree.hpp>
#include <iterator>
#include <numeric>
#include <utility>

namespace weft {
namespace {

// Compressed rows: built from one edge list in a few allocations, where an adjacency list
// allocates per vertex (the passes build it for graphs of ~10^5 nodes).
using DataFlow = boost::compressed_sparse_row_graph<boost::directedS>;
using Vertex = DataFlow::vertex_descriptor;

// Vertex i is node i; the edges run from a reader to the values it reads (the data flow
// reversed: what a result needs is what it reaches).
DataFlow reads(const Graph& graph) {
  std::vector<std::pair<Vertex, Vertex>> edges;
  for (size_t reader = 0; reader < graph.nodes().size(); ++reader)
    for (int input : graph.nodes()[reader].inputs)
      edges.emplace_back(reader, static_cast<Vertex>(input));
  return DataFlow(boost::edges_are_unsorted_multi_pass, edges.begin(), edges.end(),
                  graph.nodes().size());
}

// Marks every vertex the search discovers.
struct Marker : boost::default_bfs_visitor {
  std::vector<bool>* marks;
  void discover_vertex(Vertex v, const DataFlow&) const { (*marks)[v] = true; }
};

}  // namespace

Readers::Readers(const Graph& graph) : offsets_(graph.nodes().size() + 1, 0) {
  // A counting sort of the reads by the node read: row sizes, their starts, then the readers.
  for (const GraphNode& node : graph.nodes())
    for (int input : node.inputs) ++offsets_[input + 1];
  std::partial_sum(offsets_.begin(), offsets_.end(), offsets_.begin());
  ids_.resize(offsets_.back());
  std::vector<int> next(offsets_.begin(), offsets_.end() - 1);
  for (size_t reader = 0; reader < graph.nodes().size(); ++reader)
    for (int input : graph.nodes()[reader].inputs) ids_[next[input]++] = static_cast<int>(reader);
}

std::vector<bool> needed(const Graph& graph) {
  const DataFlow flow = reads(graph);
  std::vector<Vertex> roots;
  for (const GraphOutput& output : graph.outputs) roots.push_back(output.node);
  for (const GraphStore& store : graph.stores) roots.push_back(store.value);
  std::vector<bool> marks(graph.nodes().size(), false);
  std::vector<boost::default_color_type> colors(graph.nodes().size());
  boost::queue<Vertex> queue;
  boost::breadth_first_search(
      flow, roots.begin(), roots.end(), queue, Marker{{}, &marks},
      boost::make_iterator_property_map(colors.begin(), boost::get(boost::vertex_index, flow)));
  return marks;
}

std::vector<int> post_dominators(const Graph& graph) {
  // The dominators of the reversed flow, entered from one more vertex (the step's end) with an
  // edge to each result. Lengauer-Tarjan needs in-edges, which Boost's compressed rows lack in
  // 1.74 (boostorg/graph#330): an adjacency list, built only when a step is inspected.
  using ReversedFlow = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS>;
  using FlowVertex = ReversedFlow::vertex_descriptor;
  const size_t end = graph.nodes().size();
  ReversedFlow flow(end + 1);
  for (size_t reader = 0; reader < end; ++reader)
    for (int input : graph.nodes()[reader].inputs)
      boost::add_edge(reader, static_cast<FlowVertex>(input), flow);
  for (const GraphOutput& output : graph.outputs)
    boost::add_edge(end, static_cast<FlowVertex>(output.node), flow);
  for (const GraphStore& store : graph.stores)
    boost::add_edge(end, static_cast<FlowVertex>(store.value), flow);
  std::vector<FlowVertex> dominator(end + 1, boost::graph_traits<ReversedFlow>::null_vertex());
  boost::lengauer_tarjan_dominator_tree(
      flow, end,
      boost::make_iterator_property_map(dominator.begin(), boost::get(boost::vertex_index, flow)));
  std::vector<int> result(end, -1);
  for (size_t id = 0; id < end; ++id)
    if (dominator[id] < end) result[id] = static_cast<int>(dominator[id]);
  return result;
}

}  // namespace weft
