// NodeInputs: a node's input ids, inline up to kInline and on the heap beyond, behaving as a
// std::vector<int> of the same ids through copies, moves, growth and comparison.
#include <gtest/gtest.h>

#include <numeric>
#include <utility>
#include <vector>

#include "weft/compiler/graph.h"

namespace weft {
namespace {

std::vector<int> as_vector(const NodeInputs& inputs) { return {inputs.begin(), inputs.end()}; }

class NodeInputsOfSize : public testing::TestWithParam<int> {};

TEST_P(NodeInputsOfSize, KeepTheirIdsThroughCopiesAndMoves) {
  std::vector<int> ids(static_cast<size_t>(GetParam()));
  std::iota(ids.begin(), ids.end(), 7);
  NodeInputs grown;
  for (int id : ids) grown.push_back(id);
  const NodeInputs from_range(ids.begin(), ids.end());
  EXPECT_EQ(as_vector(grown), ids);
  EXPECT_TRUE(grown == from_range);
  EXPECT_EQ(grown.size(), ids.size());
  EXPECT_EQ(grown.empty(), ids.empty());

  NodeInputs copy = grown;
  EXPECT_EQ(as_vector(copy), ids);
  NodeInputs moved = std::move(copy);
  EXPECT_EQ(as_vector(moved), ids);
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty, and reusable
  copy.push_back(1);
  EXPECT_EQ(as_vector(copy), std::vector<int>{1});

  NodeInputs assigned = {3, 4};
  assigned = moved;
  EXPECT_EQ(as_vector(assigned), ids);
  assigned = NodeInputs{5};
  EXPECT_EQ(as_vector(assigned), std::vector<int>{5});
  for (int& id : moved) id += 1;
  if (!ids.empty()) {
    EXPECT_EQ(moved[0], ids[0] + 1);
    EXPECT_FALSE(moved == grown);
    EXPECT_EQ(std::vector<int>(moved.rbegin(), moved.rend()).front(), ids.back() + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(InlineAndOnTheHeap, NodeInputsOfSize,
                         testing::Values(0, 1, static_cast<int>(NodeInputs::kInline),
                                         static_cast<int>(NodeInputs::kInline) + 1, 400));

}  // namespace
}  // namespace weft
