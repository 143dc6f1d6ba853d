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
//   world.restart_delay_ms (kRestartDelayMs)
//     n: World::crash_and_restart's max_delay in whole milliseconds, plus 1.
//     value: the milliseconds from the crash to the restart; 0: at once
//        (the next loop iteration).
//     drawn by: the code calling crash_and_restart.
//   fault.swarm.<kind> (kFaultSwarmPrefix; World::inject with swarm)
//     n: 2. value: 1, the run enables <kind> (partitions, holds, resets,
//        slow_links, crashes, clock_jumps); 0: it leaves it out.
//     drawn by: the fault injector, once per kind with a rate, at its start.
//   fault.fire.<kind> (kFaultFirePrefix)
//     n: 1,000,000. value: >= n - rate * tick * n, a fault of <kind>
//        happens at this tick; 0 (and below that): it does not.
//     drawn by: the fault injector, each tick, per enabled kind.
//   fault.host (kFaultHost)
//     n: the profile's hosts. value: which host a fault touches (in the
//        order of FaultProfile::hosts, else Network::hosts()); 0: the first.
//     drawn by: the fault injector.
//   fault.restart_ms (kFaultRestartMs)
//     n: restart_max in whole milliseconds, plus 1. value: the delay from a
//        drawn crash to its restart; 0: at once.
//   fault.clock_jump_ms (kFaultClockJumpMs)
//     n: clock_jump_max in whole milliseconds, plus 1. value: the jump
//        forward minus 1 ms.
//   fault.clock_drift_ppm (kFaultClockDrift)
//     n: 2 * clock_drift_max_ppm + 1. value: 0, no drift; odd v: +(v+1)/2
//        ppm; even v: -v/2 ppm. Drawn per host when the injection starts.
//   fault.clock_offset_ms (kFaultClockOffsetMs)
//     n: clock_offset_max in whole milliseconds, plus 1. value: how far
//        ahead of the loop's clock a host's clock is set; 0: not at all.
//        Drawn per host when the injection starts.
//   fault.partition_set, fault.partition_mode, fault.one_way,
//   fault.duration_ms, fault.latency_us (the network kinds' parameters)
//     see sim/faults.cc; 0 is the mildest choice of each.
//   disk.sync_latency_us (kDiskSyncLatencyUs)
//     n: DiskConfig::sync_latency_max - sync_latency_min in whole
//        microseconds, plus 1 (nothing is drawn when they are equal).
//     value: the microseconds above sync_latency_min that one sync (or
//        sync_all) takes; 0: the minimum.
//     drawn by: the task awaiting the sync.
//   disk.torn_fate (kDiskTornFate), only in a torn crash
//     n: 3; 2 for a truncate or a write of fewer than 2 bytes (no proper
//        prefix to keep).
//     value: what the crash does to one unsynced write, in the order
//        written: 0 lost (what a clean crash does to every one), 1 kept
//        whole, 2 torn (a prefix kept, disk.torn_prefix).
//     drawn by: whoever calls Disk::crash (the crashing task, or the loop).
//   disk.torn_prefix (kDiskTornPrefix), after a disk.torn_fate of 2
//     n: the write's bytes minus 1.
//     value: the bytes kept minus 1; 0: only the first byte is kept.
//     drawn by: as disk.torn_fate.
//   net.release_latency_us (kNetReleaseLatencyUs)
//     n: as net.latency_us, for a segment that waited at a blocked link
//        (a kHold partition or a hold) and crosses it once unblocked.
//     value: the microseconds above the link's minimum latency after the
//        unblocking; 0: the minimum.
//     drawn by: whoever unblocks the link (heal, heal_all, release).
//   process.pipe_latency_us (kProcessPipeLatencyUs)
//     n: 21. value: the microseconds until one transfer into a simulated
//        pipe (sim/process.h) is readable; 0: at once (the next iteration).
//     drawn by: the writing task (the program's, or the parent's), or the
//        loop when a transport writes from a writability notification.
//   process.signal_latency_us (kProcessSignalLatencyUs)
//     n: 21. value: the microseconds until a signal sent to a simulated
//        process arrives; 0: the next iteration. drawn by: the sender.
//   process.exit_latency_us (kProcessExitLatencyUs)
//     n: 101. value: the microseconds from a simulated process's end (its
//        pipes closed) to its parent observing the exit; 0: the next
//        iteration. drawn by: whoever ended it (the loop, mostly).
//   fault.swarm.process_<kind>, fault.fire.process_<kind> (kinds:
//   spawn_failures, crashes, hangs, slow_output, chunked_output,
//   exit_failures)
//     as fault.swarm.<kind> and fault.fire.<kind>, with n = 1,000,000 and
//     the profile's chance per spawn as rate * tick; swarm's drawn in
//     World::inject, fire's at each spawn by the spawning task.
//   process.spawn_errno (kProcessSpawnErrno)
//     n: 2. value: a spawn failure's errno: 0 ENOENT, 1 EAGAIN.
//   process.crash_signal (kProcessCrashSignal)
//     n: 3. value: a crash's signal: 0 SIGKILL, 1 SIGSEGV, 2 SIGABRT.
//   process.crash_after_us (kProcessCrashAfterUs)
//     n: FaultProfile::process_crash_max in whole microseconds, plus 1.
//     value: the virtual microseconds from the spawn to the crash.
//   process.slow_us (kProcessSlowUs)
//     n: FaultProfile::process_slow_max in whole microseconds, plus 1.
//     value: a slow-output process's extra latency for one transfer; 0:
//        none. drawn by: as process.pipe_latency_us.
//   process.chunk_bytes (kProcessChunkBytes)
//     n: min(bytes asked and available, 512). value: a chunked read's
//        length minus 1; 0: one byte. drawn by: the reading code.
//   process.exit_status (kProcessExitStatus)
//     n: 255. value: the status replacing a successful exit, minus 1.
//     All fault parameters are drawn at the spawn, by the spawning task,
//     except process.slow_us and process.chunk_bytes.
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
inline constexpr std::string_view kRestartDelayMs = "world.restart_delay_ms";
inline constexpr std::string_view kFaultSwarmPrefix = "fault.swarm.";
inline constexpr std::string_view kFaultFirePrefix = "fault.fire.";
inline constexpr std::string_view kFaultHost = "fault.host";
inline constexpr std::string_view kFaultRestartMs = "fault.restart_ms";
inline constexpr std::string_view kFaultClockJumpMs = "fault.clock_jump_ms";
inline constexpr std::string_view kFaultClockDrift = "fault.clock_drift_ppm";
inline constexpr std::string_view kFaultClockOffsetMs = "fault.clock_offset_ms";
inline constexpr std::string_view kFaultPartitionSet = "fault.partition_set";
inline constexpr std::string_view kFaultPartitionMode = "fault.partition_mode";
inline constexpr std::string_view kFaultOneWay = "fault.one_way";
inline constexpr std::string_view kFaultDurationMs = "fault.duration_ms";
inline constexpr std::string_view kFaultLatencyUs = "fault.latency_us";
// The simulated disk (sim/disk.h).
inline constexpr std::string_view kDiskSyncLatencyUs = "disk.sync_latency_us";
inline constexpr std::string_view kDiskTornFate = "disk.torn_fate";
inline constexpr std::string_view kDiskTornPrefix = "disk.torn_prefix";
inline constexpr std::string_view kNetReleaseLatencyUs = "net.release_latency_us";
// The simulated processes (sim/process.h).
inline constexpr std::string_view kProcessPipeLatencyUs = "process.pipe_latency_us";
inline constexpr std::string_view kProcessSignalLatencyUs = "process.signal_latency_us";
inline constexpr std::string_view kProcessExitLatencyUs = "process.exit_latency_us";
inline constexpr std::string_view kProcessSpawnErrno = "process.spawn_errno";
inline constexpr std::string_view kProcessCrashSignal = "process.crash_signal";
inline constexpr std::string_view kProcessCrashAfterUs = "process.crash_after_us";
inline constexpr std::string_view kProcessSlowUs = "process.slow_us";
inline constexpr std::string_view kProcessChunkBytes = "process.chunk_bytes";
inline constexpr std::string_view kProcessExitStatus = "process.exit_status";
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
