// twinloop/sim/draw_sites.h: the names of every decision the simulated loop
// draws, written once.
//
// A site's name is part of every decision's key (sim/choice.h) and is what
// replay files, failure reports and the shrinker print, so the strings below
// must never change: a renamed site makes every recorded decision at it
// unmatched in a replay. Each draw answers a value in [0, n); by convention
// 0 is the default behaviour, so the shrinker, which works towards 0,
// simplifies a schedule.
//
// Every site, its n, the meaning of its value, and who draws it (whose key
// the decision has):
//
//   loop.timer_tie (kTimerTie, from api/loop_backend.h)
//     n: the tied timers still to place (>= 2: timers with equal deadlines
//        that fall due together are Fisher-Yates shuffled, one draw per
//        place but the last).
//     value: which of them runs next, as an offset; 0: the one scheduled
//        first (scheduling order). Options::shuffle_equal_timers = false
//        answers 0 without drawing.
//     drawn by: the task that scheduled the first of the tied timers.
//   executor.latency_us (kExecutorLatencyUs)
//     n: Options::executor_latency_max in whole microseconds, plus 1.
//     value: the virtual microseconds until the work completes; 0: at once.
//     drawn by: the task that called to_thread / run_in_executor.
//   loop.step_jitter_us (kStepJitterUs), only with step_jitter_max > 0
//     n: Options::step_jitter_max in whole microseconds, plus 1.
//     value: the virtual microseconds the clock advances after a task step
//        or a callback; 0: none.
//     drawn by: the task that stepped (the loop, for a callback).
//   buggify.enabled:<site> (buggify_enabled(site))
//     n: 4. value: 3, the buggify site is enabled for the whole run; 0 (and
//        1 or 2): it is off.
//     drawn by: the loop, once per run, when <site> is first evaluated.
//   buggify.fire:<site> (buggify_fire(site))
//     n: 4. value: 3, the fault happens at this evaluation; 0 (and 1 or 2):
//        it does not.
//     drawn by: the task evaluating the enabled <site>.
//   net.latency_us (kNetLatencyUs)
//     n: the link's latency_max - latency_min in whole microseconds, plus 1.
//     value: the microseconds above the link's minimum latency for one
//        segment; 0: the minimum.
//     drawn by: whoever runs when the segment is sent: the writing (or
//        connecting, closing) task, the loop when a delivery or a window
//        update lets queued bytes go.
//   net.segments (kNetSegments)
//     n: min(Options::net_max_segments, bytes sent at once).
//     value: the segments the bytes are cut into, minus 1; 0: one segment.
//     drawn by: as net.latency_us.
//   net.segment_cut (kNetSegmentCut)
//     n: bytes left - segments left + 1.
//     value: this segment's length minus 1; 0: one byte long.
//     drawn by: as net.latency_us.
//   net.ephemeral_port (kNetEphemeralPort)
//     n: the ports free in 32768..60999 on the host.
//     value: which of them, in ascending order; 0: the lowest.
//     drawn by: the connecting task.
//   net.release_latency_us (kNetReleaseLatencyUs)
//     n: as net.latency_us, for a segment that waited at a blocked link
//        (a kHold partition or a hold) and crosses it once unblocked.
//     value: the microseconds above the link's minimum latency after the
//        unblocking; 0: the minimum.
//     drawn by: whoever unblocks the link (heal, heal_all, release).
//
// <site> is a twinloop::buggify site's name, or "file:line" without one
// (api/buggify.h).
#ifndef TWINLOOP_SIM_DRAW_SITES_H_
#define TWINLOOP_SIM_DRAW_SITES_H_

#include <string>
#include <string_view>

#include "twinloop/api/loop_backend.h"

namespace twinloop::sim::draw_sites {

// The shared core's site (api/loop_backend.h), here too so that the
// simulator names every site through this namespace.
using ::twinloop::draw_sites::kTimerTie;

inline constexpr std::string_view kExecutorLatencyUs = "executor.latency_us";
inline constexpr std::string_view kStepJitterUs = "loop.step_jitter_us";
// The simulated network (sim/network.h).
inline constexpr std::string_view kNetLatencyUs = "net.latency_us";
inline constexpr std::string_view kNetSegments = "net.segments";
inline constexpr std::string_view kNetSegmentCut = "net.segment_cut";
inline constexpr std::string_view kNetEphemeralPort = "net.ephemeral_port";
inline constexpr std::string_view kNetReleaseLatencyUs = "net.release_latency_us";
// Prefixes: the site is the prefix followed by the buggify site's name.
inline constexpr std::string_view kBuggifyEnabledPrefix = "buggify.enabled:";
inline constexpr std::string_view kBuggifyFirePrefix = "buggify.fire:";

// "buggify.enabled:<site>" and "buggify.fire:<site>".
inline std::string buggify_enabled(std::string_view site) {
  return std::string(kBuggifyEnabledPrefix).append(site);
}
inline std::string buggify_fire(std::string_view site) { return std::string(kBuggifyFirePrefix).append(site); }

}  // namespace twinloop::sim::draw_sites

#endif  // TWINLOOP_SIM_DRAW_SITES_H_
