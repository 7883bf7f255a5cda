#include "weft/compiler/analysis.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/topological_sort.hpp>
#include <iterator>

namespace weft {
namespace {

using DataFlow = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
using Vertex = DataFlow::vertex_descriptor;

// Vertex i is node i. Forward edges run from a value to its readers; reversed edges from a
// reader to the values it reads.
DataFlow data_flow(const Graph& graph, bool reversed) {
  DataFlow flow(graph.nodes().size());
  for (size_t reader = 0; reader < graph.nodes().size(); ++reader)
    for (int input : graph.nodes()[reader].inputs)
      if (reversed)
        boost::add_edge(reader, static_cast<Vertex>(input), flow);
      else
        boost::add_edge(static_cast<Vertex>(input), reader, flow);
  return flow;
}

// Marks every vertex the search discovers.
struct Marker : boost::default_bfs_visitor {
  std::vector<bool>* marks;
  void discover_vertex(Vertex v, const DataFlow&) const { (*marks)[v] = true; }
};

}  // namespace

std::vector<int> topological_order(const Graph& graph) {
  const DataFlow flow = data_flow(graph, false);
  std::vector<Vertex> reversed_order;
  boost::topological_sort(flow, std::back_inserter(reversed_order));
  return {reversed_order.rbegin(), reversed_order.rend()};
}

std::vector<bool> needed(const Graph& graph) {
  const DataFlow flow = data_flow(graph, true);
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

}  // namespace weft
