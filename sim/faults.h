// twinloop/sim/faults.h: faults drawn at random from a profile, swarm mode,
// and liveness checks (docs/faults.md).
//
//   sim::FaultProfile profile;
//   profile.partitions_per_s = 0.5;     // on average one every 2 s
//   profile.crashes_per_s = 0.2;
//   profile.swarm = true;               // each seed: a drawn subset of kinds
//   auto& world = sim::World::of(get_running_loop());
//   world.inject(profile);              // faults start now, for profile.duration
//   ... the workload ...
//   co_await world.converge([&] { return all_replicas_agree(); }, absl::Seconds(30), "replicas agree");
//
// Every fault the injector applies is drawn from the run's choice source,
// at sites named "fault.*" (sim/draw_sites.h), in such a way that the value
// 0 means "no fault" (or the mildest one): a failing run's faults are in its
// replay file, and shrinking, which moves decisions toward 0, removes the
// faults that do not matter.
#ifndef TWINLOOP_SIM_FAULTS_H_
#define TWINLOOP_SIM_FAULTS_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace twinloop::sim {

// Which faults may happen and how often. A rate is the mean number of
// faults of its kind per virtual second (0: never): each tick, a kind fires
// with probability rate * tick (at most 1).
struct FaultProfile {
  // The hosts faults touch (names given to Network::add_host); empty: every
  // host added so far (the implicit host is never touched).
  std::vector<std::string> hosts;
  // How often the injector draws.
  absl::Duration tick = absl::Milliseconds(100);
  // How long the fault phase lasts from inject(); the injector then stops
  // (faults in effect stay until they end or converge() heals them).
  absl::Duration duration = absl::Seconds(10);

  // A partition between a drawn nonempty set of the hosts and the rest,
  // both ways or one way (drawn), holding or losing what crosses it
  // (drawn: PartitionMode), healed after a drawn time in [tick,
  // partition_max].
  double partitions_per_s = 0;
  absl::Duration partition_max = absl::Seconds(5);
  // One direction between two drawn hosts held (arrives late, in order),
  // released after a drawn time in [tick, hold_max].
  double holds_per_s = 0;
  absl::Duration hold_max = absl::Seconds(2);
  // Every connection between two drawn hosts reset at both ends.
  double resets_per_s = 0;
  // A drawn link's latency raised to a drawn value in [its minimum,
  // slow_latency_max] for a drawn time in [tick, slow_max].
  double slow_links_per_s = 0;
  absl::Duration slow_latency_max = absl::Milliseconds(500);
  absl::Duration slow_max = absl::Seconds(3);
  // A drawn host crashes (sim/world.h) and restarts after a drawn delay in
  // [0, restart_max].
  double crashes_per_s = 0;
  absl::Duration restart_max = absl::Seconds(3);
  // A drawn host's clock jumps forward by a drawn amount in (0,
  // clock_jump_max].
  double clock_jumps_per_s = 0;
  absl::Duration clock_jump_max = absl::Seconds(2);
  // At inject(), each host's clock is set ahead of the loop's by a drawn
  // offset in [0, clock_offset_max] (whole milliseconds; 0: none).
  absl::Duration clock_offset_max = absl::ZeroDuration();
  // At inject(), each host's clock gets a drawn drift in
  // [-clock_drift_max_ppm, clock_drift_max_ppm] (0: none).
  double clock_drift_max_ppm = 0;
  // Process faults (sim/process.h). Each is a chance per spawn in [0, 1]
  // (not a rate): while the injection runs, every spawn on the simulated
  // loop draws each kind that has one ("fault.fire.process_<kind>"), on
  // any host.
  //  - spawn_failures: spawn() raises ENOENT or EAGAIN (drawn).
  //  - crashes: the process is killed by SIGKILL, SIGSEGV or SIGABRT
  //    (drawn) after a drawn virtual delay in [0, process_crash_max] (whole
  //    microseconds), unless it has exited by then.
  //  - hangs: the program never runs; the process ends only when a signal
  //    kills it (it handles none).
  //  - slow_output: every transfer of its stdout and stderr takes a drawn
  //    extra latency in [0, process_slow_max].
  //  - chunked_output: its parent reads its stdout and stderr in drawn
  //    small pieces (1 to 512 bytes).
  //  - exit_failures: a successful exit (0) becomes a drawn status in
  //    [1, 255].
  double process_spawn_failures = 0;
  double process_crashes = 0;
  absl::Duration process_crash_max = absl::Seconds(1);
  double process_hangs = 0;
  double process_slow_output = 0;
  absl::Duration process_slow_max = absl::Milliseconds(50);
  double process_chunked_output = 0;
  double process_exit_failures = 0;

  // Crashes tear unsynced disk writes (sim/disk.h) instead of losing them
  // whole.
  bool torn_writes = false;

  // Swarm mode (Groce et al., "Swarm Testing", ISSTA 2012): each run
  // enables a drawn subset of the kinds above that have a rate, instead of
  // all of them ("fault.swarm.<kind>"; 0: disabled, so shrinking turns
  // kinds off).
  bool swarm = false;
};

// A liveness check failed: converge()'s condition did not hold by its
// deadline. Reported by the harness as the failure kind "did not converge",
// with the await graph of every host's live tasks.
class DidNotConvergeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_FAULTS_H_
