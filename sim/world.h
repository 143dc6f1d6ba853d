// twinloop/sim/world.h: the simulated hosts as machines: their clocks, their
// main coroutines, crashes and restarts.
//
//   auto& world = twinloop::sim::World::of(loop);
//   world.set_clock("b", {.offset = absl::Seconds(3), .drift_ppm = 200});
//   world.start("db", [] { return serve_db(); });   // runs db's main now
//   ...
//   world.crash("db");                  // from a task on another host
//   co_await twinloop::sleep(absl::Seconds(1));
//   world.restart("db");                // db's main runs again
//
// Clocks. Every host has its own clock: code running on a host (a task on
// it, a callback it scheduled, a network notification for it) sees that
// clock in loop.time(), and call_later, call_at, sleep, wait_for and
// timeout run by it. A host's clock is the loop's virtual clock plus an
// offset, running at 1 + drift_ppm / 1,000,000 of its rate. It is
// monotonic (asyncio's loop.time() is: time.monotonic()), so set_clock may
// move a clock forward but never back. Timers already armed keep their
// deadlines on the loop's clock. Hosts without a set clock, and every host
// of a run that never calls set_clock, read the loop's clock itself; the
// loop then pays nothing for clocks.
//
// Crashes. crash(h) is a power loss of host h, as the rest of the world
// sees it, at the virtual time of the call:
//  - The network side first (Network::host_down): h sends nothing more,
//    not even a reset; its listening sockets disappear; its connections'
//    peers learn of the crash as TCP's would (sim/network.h).
//  - Then every task on h ends where it is parked (LoopBackend::abandon):
//    the rule is that a crashed host runs NO more of its code. Its
//    coroutine frames are destroyed in place, so the destructors of the
//    locals alive at the suspension point run (memory is released), but no
//    catch block, no code after the co_await, no `finally`-like cleanup of
//    a Timeout or TaskGroup runs: CancelledError is not delivered into the
//    task. Objects whose destructors talk to the network (a StreamWriter
//    closing its connection) are detached from it by host_down, so they
//    send nothing. Callbacks h scheduled (call_soon, call_later, call_at)
//    are cancelled. Tasks elsewhere awaiting a task of h see it cancelled.
//  - Its processes (sim/process.h) are killed as by SIGKILL, first: their
//    pipes close and their exits report -9 (the crash's line counts them).
//  - Memory is gone with the tasks; what survives is what the test keeps
//    outside them ("durable" state: the test's own objects, and the
//    simulated disk's synced data, sim/disk.h).
// crash() may not be called from code running on the crashed host (a host
// cannot pull its own plug mid-step): std::logic_error; call it from
// another host, the implicit host, or a plain callback.
//
// Restarts. restart(h) brings h back (Network::host_up: it answers
// connections again, with resets for the connections it forgot) and, if h
// has a main (start), runs the main's factory again on h in a fresh
// context, as a new process would start. crash(h, {.restart_after = d})
// schedules the restart d later; crash_and_restart(h, max) draws d in
// [0, max] from the choice source ("world.restart_delay_ms").
//
// When the run's main coroutine is done (asyncio.run then cancels the tasks
// left and runs them to their end), the world stops starting mains: a
// restart still pending, or called then, brings the host's network back but
// runs no main, since a main may use state the finished test body owned.
//
// Every crash and restart is a fault (faults(), in virtual time order) and
// an event of the run's hash.
//
// Threads: the loop thread only, as the loop.
#ifndef TWINLOOP_SIM_WORLD_H_
#define TWINLOOP_SIM_WORLD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/faults.h"
#include "twinloop/sim/network.h"

namespace twinloop::sim {

class SimBackend;
class Network;

// A host's clock against the loop's: see the header comment.
struct HostClock {
  // What the host's clock reads minus what the loop's reads, now.
  absl::Duration offset = absl::ZeroDuration();
  // How much faster (> 0) or slower (< 0) the host's clock runs, in parts
  // per million of the loop's rate; more than -1,000,000.
  double drift_ppm = 0;
};

struct CrashOptions {
  // Restart the host this long after the crash (none: stays down until
  // restart()).
  std::optional<absl::Duration> restart_after;
  // The host's unsynced disk writes (sim/disk.h) are torn, each drawn lost,
  // kept or cut short, instead of lost whole.
  bool torn_writes = false;
};

class World final : private internal::ClockView {
 public:
  explicit World(SimBackend& backend);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // The simulated loop's world, or std::runtime_error for another loop.
  static World& of(EventLoop& loop);

  // ---- clocks

  // From now on `host`'s clock reads the loop's clock plus
  // clock.offset and runs at 1 + clock.drift_ppm / 1e6 of its rate.
  // std::invalid_argument for an unknown host, drift_ppm <= -1e6, or a
  // clock that would read less than it reads now (monotonic).
  void set_clock(std::string_view host, const HostClock& clock);
  // What `host`'s clock reads now (loop.time() on that host).
  absl::Time clock_time(std::string_view host) const;

  // ---- mains, crashes and restarts

  // Starts `main()` as a task on `host` now and remembers the factory, so
  // that restart(host) runs it again. An exception escaping a main (other
  // than its cancellation) is reported through the loop's exception handler
  // (a failure under the harness). std::logic_error if `host` has a main.
  void start(std::string_view host, std::function<Coro<void>()> main);
  // See the header comment. Returns a one-line description (also in
  // faults()). std::logic_error if `host` is down or the caller runs on it.
  std::string crash(std::string_view host, const CrashOptions& options);
  std::string crash(std::string_view host) { return crash(host, CrashOptions()); }
  // A crash whose restart comes after a drawn delay in [0, max_delay]
  // (whole milliseconds; site "world.restart_delay_ms").
  std::string crash_and_restart(std::string_view host, absl::Duration max_delay);
  // std::logic_error if `host` is up.
  std::string restart(std::string_view host);
  bool is_down(std::string_view host) const;
  // Tasks the crashes ended so far.
  uint64_t tasks_ended() const { return tasks_ended_; }

  // ---- faults drawn at random, liveness (sim/faults.h)

  // Starts drawing faults from `profile` now, for profile.duration (a task
  // on the implicit host; a previous injection stops). std::invalid_argument
  // for a negative rate or duration, a tick <= 0, an unknown host, fewer
  // than two hosts for a network fault kind with a rate.
  void inject(const FaultProfile& profile);
  // Stops drawing faults (those in effect stay).
  void stop_injecting();
  bool injecting() const { return injector_.has_value(); }
  // Stops drawing faults and ends every fault in effect: heals every
  // partition and held link, restores slowed links, restarts the hosts that
  // are down (their mains run again). Clocks keep their offsets and drifts.
  // Returns what it did.
  std::string heal_everything();
  // Liveness: heal_everything(), then wait until `condition()` holds,
  // checking it every `poll` of virtual time; DidNotConvergeError if it
  // does not hold `within` after the heal (named `what` in the message,
  // with the await graph of every live task, the network and the world).
  Coro<void> converge(std::function<bool()> condition, absl::Duration within, std::string what);
  Coro<void> converge(std::function<bool()> condition, absl::Duration within, std::string what,
                      absl::Duration poll);
  // Which fault kinds the current (or last) injection enabled (swarm mode
  // draws them), e.g. "partitions crashes".
  const std::string& enabled_kinds() const { return enabled_kinds_; }
  // The process faults' chances per spawn while an injection runs (the
  // profile's process_* fields, less the kinds swarm mode left out);
  // nullptr when no injection runs (sim/process.h draws from them).
  struct ProcessFaultChances {
    double spawn_failures = 0;
    double crashes = 0;
    absl::Duration crash_max;
    double hangs = 0;
    double slow_output = 0;
    absl::Duration slow_max;
    double chunked_output = 0;
    double exit_failures = 0;
  };
  const ProcessFaultChances* process_fault_chances() const {
    return injector_ && process_faults_ ? &*process_faults_ : nullptr;
  }

  // ---- reports

  struct Fault {
    absl::Duration at;  // virtual time since the run's start
    std::string what;
  };
  // The world's faults (crashes, restarts, clock changes), oldest first.
  const std::vector<Fault>& faults() const { return faults_; }
  // Every fault so far, the world's and the network's, one per line
  // ("t=1.5s crash host 'a': ..."), in the order they happened (so in
  // virtual time order); "" if none.
  std::string fault_log() const;
  // Hosts down, clocks set; "" if nothing to say (else starts with "\n").
  std::string describe() const;

  // The loop closed: pending restarts and the mains' handles are dropped.
  void shutdown();

 private:
  // A process's faults are the world's (fault(), fires()).
  friend class Processes;

  struct Clock {
    int64_t base_loop_ns = 0;
    int64_t base_local_ns = 0;
    int64_t drift_ppb = 0;  // parts per billion: integer arithmetic only
  };
  struct HostState {
    std::optional<Clock> clock;
    std::function<Coro<void>()> main;
    std::optional<Task<void>> main_task;
    bool down = false;
    int64_t down_since_ns = 0;
    uint64_t incarnation = 0;  // restarts so far
    std::optional<TimerHandle> pending_restart;
  };

  // internal::ClockView
  int64_t local_ns(int64_t loop_ns) const override;
  int64_t loop_ns(int64_t local_ns, int64_t now_loop_ns) const override;
  static int64_t to_local(const Clock& c, int64_t loop_ns);

  Network& network() const;
  EventLoop& loop() const;
  // The host's id (Network's; std::invalid_argument if unknown) and state.
  uint32_t id_of(std::string_view host) const;
  const std::string& name_of(uint32_t id) const;
  void run_main(uint32_t id, HostState& s);
  void network_down(uint32_t id);
  void network_up(uint32_t id);
  std::string fault(std::string what);
  // `net_before`: how many network faults precede it in fault_log() (a
  // crash's or restart's line goes before the host_down / host_up it does).
  std::string fault(std::string what, size_t net_before);
  Coro<void> inject_faults(FaultProfile profile, std::vector<std::string> hosts);
  bool fires(std::string_view site, double rate, absl::Duration tick);
  const std::string& draw_host(const std::vector<std::string>& hosts);
  // The network kinds of a profile, and healing them (sim/faults.cc).
  void apply_network_fault(std::string_view kind, const FaultProfile& p, const std::vector<std::string>& hosts);
  std::string heal_network();
  // Runs `action` `delay` later, in the world's context; heal_network
  // cancels what is still pending.
  void later(absl::Duration delay, absl::AnyInvocable<void()> action);

  SimBackend& backend_;
  // By host id (Network's), so the clock view finds a clock without a name.
  std::vector<const Clock*> clock_by_id_;
  std::map<uint32_t, HostState> hosts_;  // by host id
  std::vector<Fault> faults_;
  std::vector<size_t> net_before_;  // per fault: see fault(what, net_before)
  uint64_t tasks_ended_ = 0;
  bool clock_installed_ = false;
  std::optional<Task<void>> injector_;
  std::string enabled_kinds_;
  std::optional<ProcessFaultChances> process_faults_;
  std::vector<std::string> process_kinds_;  // enabled by the last inject()
  bool torn_writes_ = false;
  std::vector<TimerHandle> pending_heals_;
  // Links a profile slowed, with the configuration to restore.
  std::map<std::pair<std::string, std::string>, LinkConfig> slowed_;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_WORLD_H_
