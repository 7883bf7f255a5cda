#include "weft/compiler/reroll.h"

#include <algorithm>

#include "weft/runtime/error.h"

namespace weft {

Schedule reroll(Placement placement) {
  Schedule schedule;
  const Fusion& fusion = placement.fusion;
  for (const Call& call : fusion.calls) {
    std::vector<SiteArg>& args = schedule.site_args.emplace_back();
    auto add = [&](const Place& place) {
      const Buffer& buffer = fusion.buffers[place.buffer];
      const int64_t bytes = place.layout.offset * static_cast<int64_t>(dtype_size(place.dtype));
      args.push_back(buffer.kind == Buffer::Kind::arena
                         ? SiteArg{-1, placement.offsets[place.buffer] + bytes}
                         : SiteArg{buffer.slot, bytes});
    };
    for (const Place& place : call.reads) add(place);
    for (size_t w = 0; w < call.writes.size(); ++w)
      if (own_argument(call, w)) add(call.writes[w]);
  }
  const std::vector<std::vector<SiteArg>>& args = schedule.site_args;
  // Whether call `from + j` is followed by call `to + j` moved by `deltas[j]`, for the period.
  auto moves = [&](size_t from, size_t to, const std::vector<std::vector<int64_t>>& deltas) {
    for (size_t j = 0; j < deltas.size(); ++j) {
      if (fusion.kernel_of[from + j] != fusion.kernel_of[to + j]) return false;
      for (size_t k = 0; k < args[from + j].size(); ++k)
        if (args[to + j][k].slot != args[from + j][k].slot ||
            args[to + j][k].bytes - args[from + j][k].bytes != deltas[j][k])
          return false;
    }
    return true;
  };
  const auto first_store = static_cast<size_t>(fusion.first_store);
  size_t done = 0;  // calls before this are in the segments
  for (size_t r = 0; r < fusion.runs.size(); ++r) {
    Run run = fusion.runs[r];
    Segment loop;
    for (size_t j = 0; j < run.period; ++j) {
      std::vector<int64_t>& deltas = loop.deltas.emplace_back();
      const size_t a = run.first + j;
      for (size_t k = 0; k < args[a].size(); ++k)
        deltas.push_back(args[a + run.period][k].bytes - args[a][k].bytes);
    }
    // Every repetition moves by the same bytes: what place's chains are for.
    for (size_t at = run.first + run.period; at + run.period < run.end(); at += run.period)
      WEFT_CHECK(moves(at, at + run.period, loop.deltas),
                 "compile: internal error: calls from {} do not repeat calls from {} at a fixed "
                 "stride",
                 at + run.period, at);
    // A repetition just before or after the run whose arguments place put at the same bytes (a
    // buffer reused at a chain's offset, say) joins the loop, within the run's range of calls.
    const size_t lowest = std::max(done, run.first < first_store ? 0 : first_store);
    const size_t highest =
        std::min(r + 1 < fusion.runs.size() ? fusion.runs[r + 1].first : fusion.calls.size(),
                 run.first < first_store ? first_store : fusion.calls.size());
    while (run.first >= lowest + run.period &&
           moves(run.first - run.period, run.first, loop.deltas)) {
      run.first -= run.period;
      ++run.count;
    }
    while (run.end() + run.period <= highest &&
           moves(run.end() - run.period, run.end(), loop.deltas))
      ++run.count;
    for (; done < run.first; ++done) schedule.segments.push_back({.run = {.first = done}});
    loop.run = run;
    schedule.segments.push_back(std::move(loop));
    schedule.rolled_calls += static_cast<int64_t>(run.period * run.count);
    done = run.end();
  }
  for (; done < fusion.calls.size(); ++done) schedule.segments.push_back({.run = {.first = done}});
  schedule.placement = std::move(placement);
  return schedule;
}

}  // namespace weft
