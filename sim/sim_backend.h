// twinloop/sim/sim_backend.h: the simulated loop's side of the seam.
//
// Virtual time: the clock stands still while callbacks run and jumps to the
// next timer deadline when nothing is ready, so sleeping an hour costs
// nothing. Every nondeterministic decision (executor completion latency, the
// order of timers with equal deadlines, optional per-step jitter) is drawn
// from one seeded ChoiceSource. No wall clock, no threads, no OS randomness,
// no addresses and no unordered iteration influence a run, so a run is a pure
// function of the program and the seed.
//
// The backend also observes every scheduling event (task step, callback,
// timer, signal, and the simulated network's segment sends and deliveries)
// and folds (virtual time, kind, id) into a running 64-bit hash: two runs
// are the same schedule iff their hashes match (with overwhelming
// probability).
//
// It owns the simulated network (sim/network.h: hosts, links, connections),
// which is its LoopBackend::net().
//
// Users reach this through twinloop::sim::run / sim::Simulation
// (sim/simulation.h).
#ifndef TWINLOOP_SIM_SIM_BACKEND_H_
#define TWINLOOP_SIM_SIM_BACKEND_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/loop_backend.h"
#include "twinloop/api/probes.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/recording.h"
#include "twinloop/sim/strategy.h"

namespace twinloop::sim {

// The knobs of a simulated run.
struct Options {
  // Selects the run; the same seed gives the same run.
  uint64_t seed = 0;
  // run_in_executor / to_thread complete after a drawn virtual latency in
  // [0, executor_latency_max], in whole microseconds. Negative: the
  // simulation refuses to start (std::invalid_argument).
  absl::Duration executor_latency_max = absl::Milliseconds(10);
  // Timers with equal deadlines run in a drawn order (a real loop gives no
  // guarantee either). Off: scheduling order.
  bool shuffle_equal_timers = true;
  // Chaos knob, off by default: every task step and callback advances the
  // virtual clock by a drawn amount in [0, step_jitter_max] (whole
  // microseconds), modelling CPU time.
  absl::Duration step_jitter_max = absl::ZeroDuration();
  // The run fails with TimeLimitError if virtual time would pass this.
  absl::Duration time_limit = absl::Hours(24 * 365);
  // asyncio debug mode (EventLoop::set_debug; api/event_loop.h, "Debug
  // mode"); unset (nullopt) keeps the loop's default, TWINLOOP_DEBUG's.
  // Slow callbacks and steps are measured on the virtual clock, so a step is
  // slow only by the step jitter charged to it (step_jitter_max).
  std::optional<bool> debug = std::nullopt;
  // What debug mode considers slow (asyncio's loop.slow_callback_duration).
  absl::Duration slow_callback_duration = absl::Milliseconds(100);
  // twinloop::buggify sites may fire (each is enabled or not per run, then
  // fires with a probability; both are draws). Off: buggify() is false.
  bool buggify = true;

  // ---- The simulated network (sim/network.h); Network's methods change
  // these per link or mid-run.
  // Every link's latency unless set per link: drawn per segment in
  // [net_latency_min, net_latency_max], in whole microseconds
  // ("net.latency_us"; nothing is drawn when they are equal).
  absl::Duration net_latency_min = absl::Microseconds(50);
  absl::Duration net_latency_max = absl::Microseconds(50);
  // Every link's bandwidth in bytes per second (a segment of b bytes
  // occupies its link for b / bandwidth); 0: unlimited.
  uint64_t net_bandwidth = 0;
  // A transmission may be cut into up to this many segments, each arriving
  // on its own ("net.segments"; 1: never cut). The default explores short
  // reads; a draw of 0 sends one segment.
  uint32_t net_max_segments = 4;
  // Per connection and direction: the sender's buffer and the receiver's
  // buffer in bytes. A writer may have at most their sum written and not yet
  // read by its peer (write() takes less, then 0); at most the receive
  // buffer is in flight or waiting to be read.
  uint32_t net_send_buffer = 64 * 1024;
  uint32_t net_receive_buffer = 64 * 1024;

  // ---- Recording and replaying (sim/harness/replay_file.h; the harness sets these)
  // Keep every decision (site, occurrence, n, value) and every event with
  // its running hash: Simulation::recording().
  bool record = false;
  // Reuse this recording's decisions, matched by (site, occurrence); implies
  // `record`. Simulation::divergence() then reports the first event that
  // differs from the recording's.
  std::shared_ptr<const Recording> replay = nullptr;
  // What a draw the replay does not have answers: the seeded stream (as if
  // there were no replay), or 0, the default (shrinking uses this).
  enum class Fallback : uint8_t { kSeed, kDefault };
  Fallback fallback = Fallback::kSeed;
  // If set, every draw comes from here instead (answers are clamped to
  // [0, n)); a RapidCheck property draws through its generators this way.
  std::function<uint64_t(std::string_view site, uint64_t n)> chooser = nullptr;
  // How a draw that neither `replay` nor `chooser` answers is decided
  // (sim/strategy.h): uniform (the seed's value) unless set. Recorded in
  // replay files (recorded_options) when not uniform.
  StrategyOptions strategy = {};
  // If set, the run counts its draws per source here (the strategies' pilot run).
  Pilot* pilot = nullptr;
};

// The options a recording names, and Options updated from a recording
// (seed and options), for replaying it.
std::map<std::string, int64_t> recorded_options(const Options& options);
Options options_for_replay(const Recording& recording, Options base = {});

// Nothing is ready, no timer is pending, and tasks still wait: nothing can
// ever happen again. The message names every waiting task and what it waits on.
class DeadlockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Virtual time would pass Options::time_limit.
class TimeLimitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};


class Network;
class World;
class Disk;
class Processes;

class SimBackend final : public LoopBackend, public internal::StepObserver {
 public:
  explicit SimBackend(const Options& options);
  ~SimBackend() override;

  void attach(EventLoop& loop) override;
  int64_t time_ns() override { return now_ns_; }
  void wait(int64_t deadline_ns) override;
  void wake() override {}
  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) override;
  uint64_t choose(std::string_view site, uint64_t n) override;
  void watch_signal(int sig, bool on) override;
  // Always: the simulated process's signals are raise_signal's alone.
  bool signal_is_default(int /*sig*/) override { return true; }
  bool buggify(std::string_view site) override;
  uint64_t task_key(uint64_t parent_key, std::string_view base) override;
  NetBackend* net() override;
  // The simulated programs (sim/process.h), made on first use.
  ProcessBackend* processes() override;
  void close() override;

  void on_event(internal::EventKind kind, uint64_t id) override;

  // Delivers `sig` to the loop as a real signal would (if a handler is set).
  void raise_signal(int sig);

  // The simulated network: hosts, links, connections (sim/network.h).
  Network& network() { return *network_; }
  const Network& network() const { return *network_; }
  // The hosts as machines: clocks, crashes, restarts (sim/world.h); made on
  // first use. Null until then.
  World& world();
  const World* world_if_any() const { return world_.get(); }
  // The simulated processes (sim/process.h); made on first use.
  Processes& process_table();
  const Processes* processes_if_any() const { return processes_.get(); }

  uint64_t event_hash() const { return hash_; }
  uint64_t event_count() const { return events_; }
  // Decisions drawn so far (draws with more than one possible answer).
  uint64_t choices_made() const { return draws_; }
  // The most recent events, oldest first (at most kTraceSize).
  std::vector<EventRecord> last_events() const;
  static constexpr size_t kTraceSize = 256;

  // With Options::record: every decision and event so far.
  const std::vector<Decision>& decisions() const { return decisions_; }
  const std::vector<EventRecord>& events() const { return events_log_; }
  // With Options::record, per event: the path of the task it ran in ("":
  // the loop) and the decisions drawn before it (Recording::event_tasks,
  // event_decisions).
  std::vector<std::string> event_tasks() const;
  const std::vector<uint64_t>& event_decisions() const { return event_decisions_; }

  // Built-in probes (api/probes.h; docs/exploration.md, "Probes"): a
  // sometimes(value) named `name` ("fault fired: crashes"). The simulator's
  // own probes: every draw site drawn is "draw <site> took a non-default
  // value" (in draw()), every buggify site evaluated is "buggify fired:
  // <site>", every fault kind a profile enables is "fault fired: <kind>"
  // (World::fires, for every site named draw_sites::kFaultFirePrefix +
  // <kind>). Probes never influence the run.
  void note_probe(std::string_view name, bool value);

  // A buggify site as this run saw it.
  struct BuggifySite {
    bool enabled = false;
    uint64_t evaluations = 0;
    uint64_t fired = 0;
    // Its "buggify fired: <site>" probe.
    ::twinloop::internal::ProbeEntry* probe = nullptr;
  };
  // Every site evaluated so far, by key.
  const std::map<std::string, BuggifySite, std::less<>>& buggify_sites() const { return buggify_; }

 private:
  // The network reaches the loop through the backend's protected helpers
  // (timers, the ready queue, the decision context) and notes its events.
  friend class Network;
  // The world installs its clock view and ends a crashed host's tasks
  // through the protected helpers.
  friend class World;
  // Disk::of makes the loop's disk (sim/disk.h) on first use.
  friend class Disk;
  // The processes use the ready queue, timers and abandon like the network
  // and the world (sim/process.h).
  friend class Processes;
  friend struct Pipe;
  friend struct PipeEnd;

  std::string deadlock_report() const;
  // The decision named (context task, site, occurrence): see sim/choice.h.
  uint64_t draw(uint64_t context_key, std::string_view site, uint64_t n);
  // The key of the task running now (0: none, the loop itself).
  uint64_t context_key() const;
  // A task's path ("/guarded#0/deposit#1"; "" for the loop itself).
  const std::string& task_path(uint64_t key) const;

  Options options_;
  // options_.step_jitter_max > 0, and it in whole microseconds (per event).
  bool jitter_ = false;
  uint64_t jitter_max_us_ = 0;
  ChoiceSource choices_;
  Strategy strategy_;
  uint64_t draws_ = 0;
  EventLoop* loop_ = nullptr;
  int64_t now_ns_ = 0;
  uint64_t hash_ = 0;
  uint64_t events_ = 0;
  std::array<EventRecord, kTraceSize> trace_{};
  std::set<int> watched_signals_;
  // Occurrences so far per (context, site) slot, and children so far per
  // (parent, base) slot: lookups only, never iterated. The last slot is
  // cached: spawning loops and drawing loops ask for the same one in a row.
  struct Counters {
    absl::flat_hash_map<uint64_t, uint64_t> map;
    uint64_t last_slot = 0;
    uint64_t* last = nullptr;
  };
  static uint64_t& counter(Counters& c, uint64_t slot);
  // With record_: appends the event on_event just traced (out of line, so
  // that on_event's common path saves no registers for it).
  [[gnu::noinline]] void record_event(internal::EventKind kind, uint64_t id);
  Counters occurrences_;
  Counters children_;
  bool record_ = false;
  DecisionMap plan_;
  // With record_: every task's path, by key (for the decisions' records).
  std::map<uint64_t, std::string> task_paths_;
  std::vector<Decision> decisions_;
  std::vector<EventRecord> events_log_;
  std::vector<uint64_t> event_contexts_;
  std::vector<uint64_t> event_decisions_;
  std::map<std::string, BuggifySite, std::less<>> buggify_;
  // The built-in probe of a draw site (one per site): the last site's inline
  // (draws come in runs of one site), the others looked up.
  ::twinloop::internal::ProbeEntry& draw_probe(uint64_t site_hash, std::string_view site) {
    if (last_draw_probe_ != nullptr && last_draw_probe_hash_ == site_hash) return *last_draw_probe_;
    return draw_probe_slow(site_hash, site);
  }
  ::twinloop::internal::ProbeEntry& draw_probe_slow(uint64_t site_hash, std::string_view site);
  // text_hash(draw_sites::kTimerTie), computed once.
  const uint64_t timer_tie_hash_ = text_hash(draw_sites::kTimerTie);
  // The built-in probes' entries, by the text_hash of the draw site or of
  // the probe's name (lookups only, never iterated), and the last draw
  // site's.
  absl::flat_hash_map<uint64_t, ::twinloop::internal::ProbeEntry*> draw_probes_;
  absl::flat_hash_map<uint64_t, ::twinloop::internal::ProbeEntry*> named_probes_;
  uint64_t last_draw_probe_hash_ = 0;
  ::twinloop::internal::ProbeEntry* last_draw_probe_ = nullptr;
  std::unique_ptr<Network> network_;
  std::unique_ptr<World> world_;
  std::unique_ptr<Disk> disk_;
  std::unique_ptr<Processes> processes_;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_SIM_BACKEND_H_
