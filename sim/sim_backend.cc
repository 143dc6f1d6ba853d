#include "sim/sim_backend.h"

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
      choices_(options.seed) {}

void SimBackend::attach(EventLoop& loop) {
  loop_ = &loop;
  loop.set_step_observer(this);
}

void SimBackend::wait(int64_t deadline_ns) {
  if (deadline_ns == kPollOnly) return;  // no I/O source to poll yet
  if (deadline_ns == kNoDeadline) throw DeadlockError(deadlock_report());
  const int64_t limit = absl::ToInt64Nanoseconds(options_.time_limit);
  if (deadline_ns > limit) {
    throw TimeLimitError(absl::StrFormat(
        "virtual time limit exceeded: the next timer is at %s, the limit is %s (at seed %d)",
        absl::FormatDuration(absl::Nanoseconds(deadline_ns)), absl::FormatDuration(options_.time_limit),
        options_.seed));
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
  return choices_.choose(site, n);
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

std::string SimBackend::deadlock_report() const {
  std::vector<internal::TaskBase*> tasks = loop_->registered_tasks();
  std::string s = absl::StrFormat(
      "deadlock at virtual time %s (seed %d): nothing is ready, no timer is pending, and %d task(s) wait "
      "forever:",
      absl::FormatDuration(absl::Nanoseconds(now_ns_)), options_.seed, tasks.size());
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

}  // namespace twinloop::sim
