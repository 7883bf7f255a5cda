// Stage "place": arena offsets for the fused calls' buffers.
#include "weft/compiler/place.h"

#include <algorithm>
#include <numeric>

namespace weft {
namespace {

int64_t aligned(int64_t bytes) { return (bytes + 63) / 64 * 64; }

// A block of the arena placed as one: a buffer, or a chain of buffers laid out one after another
// (buffer k at the block's offset + k * stride; stride 0 when their lives do not overlap, and
// they share the block).
struct Unit {
  int64_t bytes;
  int first, last;
  int64_t stride = 0;
  int64_t offset = 0;
};

}  // namespace

Placement place(Fusion fusion) {
  const std::vector<Buffer>& buffers = fusion.buffers;
  Placement placement;
  std::vector<Unit> units(static_cast<size_t>(fusion.chain_count), Unit{0, -1, -1});
  std::vector<std::vector<int>> chains(units.size());
  for (size_t b = 0; b < buffers.size(); ++b) {
    if (fusion.chain_of[b] < 0) continue;
    std::vector<int>& chain = chains[fusion.chain_of[b]];
    const auto position = static_cast<size_t>(fusion.chain_position[b]);
    if (chain.size() <= position) chain.resize(position + 1);
    chain[position] = static_cast<int>(b);
  }
  for (size_t u = 0; u < units.size(); ++u) {
    const std::vector<int>& chain = chains[u];
    Unit& unit = units[u];
    for (size_t k = 1; k < chain.size(); ++k)
      if (buffers[chain[k - 1]].last >= buffers[chain[k]].first)
        unit.stride = aligned(buffers[chain[0]].bytes);
    unit.bytes = unit.stride > 0 ? unit.stride * static_cast<int64_t>(chain.size())
                                 : aligned(buffers[chain[0]].bytes);
    unit.first = buffers[chain[0]].first;
    for (int b : chain) {
      unit.first = std::min(unit.first, buffers[b].first);
      unit.last = std::max(unit.last, buffers[b].last);
    }
  }
  std::vector<int> unit_of(fusion.chain_of);  // a chain's buffers are its unit
  for (size_t b = 0; b < buffers.size(); ++b) {
    // A buffer left unused (a concat part written into the concat's region) takes no space.
    if (buffers[b].kind != Buffer::Kind::arena || buffers[b].last < 0) continue;
    placement.unplanned_bytes += aligned(buffers[b].bytes);
    if (unit_of[b] >= 0) continue;
    unit_of[b] = static_cast<int>(units.size());
    units.push_back({aligned(buffers[b].bytes), buffers[b].first, buffers[b].last});
  }
  // Every unit's life is known before any is placed, so the largest go first, each at the
  // lowest offset where it overlaps no placed unit alive at the same time (TFLite's greedy by
  // size): the sequences kept for the backward pass take the bottom of the arena and the small
  // buffers fill the gaps between them. First fit in order of first use left holes that a later,
  // larger buffer could not use, and its arena grew or shrank by 10% with the order of a few calls.
  std::vector<int> order(units.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return units[a].bytes != units[b].bytes ? units[a].bytes > units[b].bytes
                                            : units[a].first < units[b].first;
  });
  std::vector<int> placed;  // sorted by offset
  for (int u : order) {
    Unit& unit = units[u];
    int64_t offset = 0;
    for (int other : placed) {
      const Unit& p = units[other];
      if (p.last < unit.first || unit.last < p.first) continue;  // never alive together
      if (p.offset - offset >= unit.bytes) break;
      offset = std::max(offset, p.offset + p.bytes);
    }
    unit.offset = offset;
    placed.insert(std::ranges::upper_bound(placed, offset, {},
                                           [&](int other) { return units[other].offset; }),
                  u);
    placement.arena_bytes = std::max(placement.arena_bytes, offset + unit.bytes);
  }
  placement.offsets.assign(buffers.size(), 0);
  for (size_t b = 0; b < buffers.size(); ++b) {
    if (unit_of[b] < 0) continue;
    const Unit& unit = units[unit_of[b]];
    placement.offsets[b] =
        unit.offset + (fusion.chain_of[b] >= 0 ? fusion.chain_position[b] * unit.stride : 0);
  }
  placement.fusion = std::move(fusion);
  return placement;
}

}  // namespace weft
