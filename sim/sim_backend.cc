#include "sim/sim_backend.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "api/graph.h"
#include "api/task.h"

namespace twinloop::sim {

SimBackend::SimBackend(const Options& options)
    : options_(options),
      jitter_(options.step_jitter_max > absl::ZeroDuration()),
      jitter_max_us_(jitter_ ? static_cast<uint64_t>(absl::ToInt64Microseconds(options.step_jitter_max)) : 0),
      choices_(options.seed),
      keyed_(options.record || options.replay || options.chooser),
      record_(options.record || options.replay) {
  if (options.replay) plan_ = DecisionMap(options.replay->decisions);
}

std::map<std::string, int64_t> recorded_options(const Options& options) {
  return {
      {"buggify", options.buggify ? 1 : 0},
      {"executor_latency_max_us", absl::ToInt64Microseconds(options.executor_latency_max)},
      {"shuffle_equal_timers", options.shuffle_equal_timers ? 1 : 0},
      {"step_jitter_max_us", absl::ToInt64Microseconds(options.step_jitter_max)},
      {"time_limit_us", absl::ToInt64Microseconds(options.time_limit)},
  };
}

Options options_for_replay(const Recording& recording, Options base) {
  base.seed = recording.seed;
  for (const auto& [name, v] : recording.options) {
    if (name == "buggify") base.buggify = v != 0;
    if (name == "executor_latency_max_us") base.executor_latency_max = absl::Microseconds(v);
    if (name == "shuffle_equal_timers") base.shuffle_equal_timers = v != 0;
    if (name == "step_jitter_max_us") base.step_jitter_max = absl::Microseconds(v);
    if (name == "time_limit_us") base.time_limit = absl::Microseconds(v);
  }
  return base;
}

void SimBackend::attach(EventLoop& loop) {
  loop_ = &loop;
  loop.set_step_observer(this);
}

void SimBackend::wait(int64_t deadline_ns) {
  if (deadline_ns == kPollOnly) return;  // no I/O source to poll yet
  if (deadline_ns == kNoDeadline) throw DeadlockError(deadlock_report());
  const int64_t limit = absl::ToInt64Nanoseconds(options_.time_limit);
  if (deadline_ns > limit) {
    throw TimeLimitError(absl::StrCat(
        absl::StrFormat("virtual time limit exceeded: the next timer is at %s, the limit is %s (at seed %d); "
                        "%d task(s) alive:",
                        absl::FormatDuration(absl::Nanoseconds(deadline_ns)),
                        absl::FormatDuration(options_.time_limit), options_.seed,
                        loop_->registered_tasks().size()),
        describe_live_tasks(*loop_)));
  }
  if (deadline_ns > now_ns_) now_ns_ = deadline_ns;
}

void SimBackend::submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) {
  const int64_t max_us = absl::ToInt64Microseconds(options_.executor_latency_max);
  const int64_t latency_us = static_cast<int64_t>(choose("executor.latency_us", static_cast<uint64_t>(max_us) + 1));
  // The function runs on the loop thread at the drawn virtual completion time.
  loop_->call_at_ns(now_ns_ + latency_us * 1000, [work = std::move(work), done = std::move(done)]() mutable {
    work();
    done();
  });
}

uint64_t SimBackend::choose(std::string_view site, uint64_t n) {
  if (!options_.shuffle_equal_timers && site == "loop.timer_tie") return 0;
  if (!keyed_) return choices_.choose(site, n);
  return keyed_choose(site, n);
}

uint64_t SimBackend::keyed_choose(std::string_view site, uint64_t n) {
  if (n <= 1) return 0;
  auto it = occurrences_.find(site);
  if (it == occurrences_.end()) it = occurrences_.emplace(std::string(site), 0).first;
  const uint64_t occurrence = it->second++;
  // The seeded stream advances on every draw, so that a draw the replay
  // lacks gets the value the seed gives at this position.
  uint64_t value = choices_.choose(site, n);
  if (options_.chooser) {
    value = std::min(options_.chooser(site, n), n - 1);
  } else if (options_.replay) {
    if (std::optional<uint64_t> recorded = plan_.find(site, occurrence)) {
      value = std::min(*recorded, n - 1);
    } else if (options_.fallback == Options::Fallback::kDefault) {
      value = 0;
    }
  }
  if (record_) decisions_.push_back(Decision{std::string(site), occurrence, n, value});
  return value;
}

bool SimBackend::buggify(std::string_view site) {
  if (!options_.buggify) return false;
  auto it = buggify_.find(site);
  if (it == buggify_.end()) {
    // Enabled for this run with probability 1/4 (the draw 3 of [0, 4); 0,
    // the default, leaves the site off), as FoundationDB's BUGGIFY.
    BuggifySite s;
    s.enabled = choose(std::string("buggify.enabled:").append(site), 4) == 3;
    it = buggify_.emplace(std::string(site), s).first;
  }
  BuggifySite& s = it->second;
  ++s.evaluations;
  if (!s.enabled) return false;
  // An enabled site fires with probability 1/4 each time it is evaluated.
  const bool fire = choose(std::string("buggify.fire:").append(site), 4) == 3;
  s.fired += fire;
  return fire;
}

void SimBackend::watch_signal(int sig, bool on) {
  if (on) {
    watched_signals_.insert(sig);
  } else {
    watched_signals_.erase(sig);
  }
}

void SimBackend::raise_signal(int sig) {
  if (watched_signals_.count(sig)) loop_->deliver_signal(sig);
}

void SimBackend::on_event(internal::EventKind kind, uint64_t id) {
  trace_[events_ % kTraceSize] = Event{now_ns_, kind, id};
  ++events_;
  hash_ = mix64(hash_ ^ static_cast<uint64_t>(now_ns_));
  hash_ = mix64(hash_ ^ (static_cast<uint64_t>(kind) << 56) ^ id);
  if (record_) events_log_.push_back(EventRecord{now_ns_, kind, id, hash_});
  if (jitter_ && (kind == internal::EventKind::kTaskStep || kind == internal::EventKind::kCallback)) {
    now_ns_ += static_cast<int64_t>(choose("loop.step_jitter_us", jitter_max_us_ + 1)) * 1000;
  }
}

std::vector<Event> SimBackend::last_events() const {
  std::vector<Event> out;
  const uint64_t n = events_ < kTraceSize ? events_ : kTraceSize;
  for (uint64_t i = events_ - n; i < events_; ++i) out.push_back(trace_[i % kTraceSize]);
  return out;
}

std::string describe_live_tasks(EventLoop& loop) {
  std::vector<internal::TaskBase*> tasks = loop.registered_tasks();
  std::string s;
  for (internal::TaskBase* t : tasks) {
    absl::StrAppend(&s, "\n  Task '", t->get_name(), "' waits on ", t->waiting_on());
  }
  absl::StrAppend(&s, "\nThe await graph of every waiting task:");
  for (internal::TaskBase* t : tasks) {
    auto graph = internal::capture_call_graph_of(&t->future(), std::nullopt, {});
    if (!graph) continue;
    for (absl::string_view line : absl::StrSplit(internal::render_call_graph(*graph), '\n'))
      absl::StrAppend(&s, "\n  ", line);
  }
  return s;
}

std::string SimBackend::deadlock_report() const {
  return absl::StrCat(
      absl::StrFormat("deadlock at virtual time %s (seed %d): nothing is ready, no timer is pending, and %d "
                      "task(s) wait forever:",
                      absl::FormatDuration(absl::Nanoseconds(now_ns_)), options_.seed,
                      loop_->registered_tasks().size()),
      describe_live_tasks(*loop_));
}

}  // namespace twinloop::sim
