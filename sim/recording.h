// twinloop/sim/recording.h: what a simulated run decided and did, as data.
//
// A Recording holds every decision of a run, keyed by the task that drew it,
// its site and its occurrence ("the 2nd draw named executor.latency_us in
// task /guarded#0/deposit#1"; sim/choice.h explains the keys), and every
// scheduling event with the running event hash after it. Re-running with the
// recording's decisions (Options::replay, sim/sim_backend.h) re-executes the
// run exactly; if the program changed, the decisions whose keys still match
// are reused, the others fall back to the seed (replay) or to the default 0
// (shrinking), and the first event that differs from the recording is
// reported as the divergence.
//
//   twinloop::sim::Simulation sim({.seed = 7, .record = true});
//   sim.run(main_coro());
//   twinloop::sim::Recording r = sim.recording();     // decisions and events
//
// The harness writes recordings as replay files
// (sim/harness/replay_file.h); the loop itself does no file I/O.
#ifndef TWINLOOP_SIM_RECORDING_H_
#define TWINLOOP_SIM_RECORDING_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twinloop/api/event_loop.h"

namespace twinloop::sim {

// One decision: the `occurrence`-th draw (from 0) named `site` made by the
// task `task` (its path, "/guarded#0/deposit#1"; "" for the loop itself),
// which had `n` possible answers and answered `value`.
struct Decision {
  std::string task = {};
  std::string site = {};
  uint64_t occurrence = 0;
  uint64_t n = 0;
  uint64_t value = 0;
  friend bool operator==(const Decision&, const Decision&) = default;
};

// One scheduling event (virtual time, kind, task or handle id) and the
// running event hash after it.
struct EventRecord {
  int64_t time_ns = 0;
  internal::EventKind kind = internal::EventKind::kTaskStep;
  uint64_t id = 0;
  uint64_t hash = 0;
  friend bool operator==(const EventRecord&, const EventRecord&) = default;
};

// "task_step", "callback", "timer_due", "signal", "net_send", "net_deliver", "fault".
const char* event_kind_name(internal::EventKind kind);
// "t=1.5s task_step #3".
std::string describe_event(const EventRecord& e);

// A run: everything a replay file holds.
struct Recording {
  // The replay file format's version (sim/harness/replay_file.h). 2:
  // decisions keyed by task path, site and occurrence (1 had no task).
  static constexpr int kVersion = 2;
  uint64_t seed = 0;
  // Free-form metadata (the test's name, the command that reproduces it,
  // what failed); not used to replay.
  std::string test = {};
  std::string command = {};
  std::string failure = {};
  // Options of the run that matter for replaying it, by name
  // ("executor_latency_max_us", "shuffle_equal_timers", "step_jitter_max_us",
  // "time_limit_us", the network's "net_..."); see recorded_options / options_for_replay
  // (sim/sim_backend.h).
  std::map<std::string, int64_t> options = {};
  std::vector<Decision> decisions = {};
  std::vector<EventRecord> events = {};
  // For reports only, not in replay files (empty in a recording read from
  // one): per event, the path of the task it ran in ("" for the loop
  // itself: a callback, a timer, the network) and how many decisions had
  // been drawn when it happened.
  std::vector<std::string> event_tasks = {};
  std::vector<uint64_t> event_decisions = {};
};

// Decisions that are not the default (value != 0).
size_t non_default_choices(const std::vector<Decision>& decisions);

// `s` between single quotes, safe to print on a terminal: bytes outside
// printable ASCII, '\\' and '\'' are escaped (\x1b, \\, \'), and only the
// first `max_bytes` bytes are shown ("... (N more bytes)").
std::string quote_bytes(std::string_view s, size_t max_bytes = 80);

// Percent-escaping, as replay files write names: '%', whitespace, control
// characters (and '/' with `slash`) become %XX. unescape returns false for
// a malformed escape.
std::string percent_escape(std::string_view s, bool slash = false);
bool percent_unescape(std::string_view s, std::string* out);

// A task path's component for `base` (a task name or function name): '%',
// '/' and whitespace or control characters percent-escaped.
inline std::string escape_path_component(std::string_view base) { return percent_escape(base, /*slash=*/true); }
// The task key (sim/choice.h) of a task path ("" or "/": the loop itself).
// Throws std::invalid_argument for a malformed path (a component that is not
// "<base>#<index>", or a bad escape).
uint64_t task_key_of_path(std::string_view path);

// Decisions indexed by their keys (sim/choice.h draw_key), for replaying.
class DecisionMap {
 public:
  DecisionMap() = default;
  // std::invalid_argument for a malformed task path.
  explicit DecisionMap(const std::vector<Decision>& decisions);
  // The recorded value of the decision `draw_key`, if any.
  std::optional<uint64_t> find(uint64_t draw_key) const;
  size_t size() const { return values_.size(); }

 private:
  std::map<uint64_t, uint64_t> values_;
};

// Where two event streams first differ: the index, and the event of each
// stream there (nullopt where that stream had already ended).
struct Divergence {
  size_t index = 0;
  std::optional<EventRecord> expected = std::nullopt;
  std::optional<EventRecord> actual = std::nullopt;
};
std::optional<Divergence> first_divergence(const std::vector<EventRecord>& expected,
                                           const std::vector<EventRecord>& actual);
// "the run diverged from the recording at event 17: expected t=1s task_step
// #3, got t=1s callback #9". When the two events agree on time, kind and id
// and only the running event hash differs, it says so and shows both hashes.
std::string describe_divergence(const Divergence& d);

// The determinism self-check's report (the harness's
// --twinloop_check_determinism), in the manner of loom's "NONDETERMINISTIC
// EXECUTION DETECTED" (tokio-rs/loom PR #184): the previous run's event and
// the current run's side by side, each with the task it ran in and the
// draws made since the event before it, then the `recent` events before
// them (the same in both runs), oldest first:
//
//   two runs of seed 3 differ at event 5 (of 9 and 9):
//     previous run:  #5 t=1.000234s timer_due #2  [task /guarded#0]
//     current run:   #5 t=1.000871s timer_due #2  [task /guarded#0]
//   recent events (the same in both runs):
//     #4 t=0 task_step #1  [task /guarded#0]  draws: executor.latency_us = 3 of 10001
//     ...
std::string describe_nondeterminism(uint64_t seed, const Recording& previous, const Recording& current,
                                    const Divergence& d, size_t recent = 8);

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_RECORDING_H_
