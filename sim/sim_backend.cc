#include "twinloop/sim/sim_backend.h"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "twinloop/api/graph.h"
#include "twinloop/api/internal/check.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/world.h"
#include "twinloop/sim/disk.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/process.h"

namespace twinloop::sim {

SimBackend::SimBackend(const Options& options)
    : options_(options),
      jitter_(options.step_jitter_max > absl::ZeroDuration()),
      jitter_max_us_(jitter_ ? static_cast<uint64_t>(absl::ToInt64Microseconds(options.step_jitter_max)) : 0),
      choices_(options.seed),
      strategy_(options.strategy, options.seed),
      record_(options.record || options.replay) {
  // A negative bound leaves executor.latency_us no possible answer.
  if (options.executor_latency_max < absl::ZeroDuration()) {
    throw std::invalid_argument(absl::StrCat("sim::Options::executor_latency_max must not be negative (got ",
                                             absl::FormatDuration(options.executor_latency_max), ")"));
  }
  if (options.replay) plan_ = DecisionMap(options.replay->decisions);
  network_ = std::make_unique<Network>(*this, options_);
}

SimBackend::~SimBackend() = default;

namespace {
constexpr char kStrategySourcePrefix[] = "strategy_source_";
constexpr size_t kStrategySourcePrefixSize = sizeof(kStrategySourcePrefix) - 1;
}  // namespace

std::map<std::string, int64_t> recorded_options(const Options& options) {
  std::map<std::string, int64_t> out = {
      {"buggify", options.buggify ? 1 : 0},
      {"executor_latency_max_us", absl::ToInt64Microseconds(options.executor_latency_max)},
      {"net_bandwidth", static_cast<int64_t>(options.net_bandwidth)},
      {"net_latency_max_us", absl::ToInt64Microseconds(options.net_latency_max)},
      {"net_latency_min_us", absl::ToInt64Microseconds(options.net_latency_min)},
      {"net_max_segments", options.net_max_segments},
      {"net_receive_buffer", options.net_receive_buffer},
      {"net_send_buffer", options.net_send_buffer},
      {"shuffle_equal_timers", options.shuffle_equal_timers ? 1 : 0},
      {"step_jitter_max_us", absl::ToInt64Microseconds(options.step_jitter_max)},
      {"time_limit_us", absl::ToInt64Microseconds(options.time_limit)},
  };
  // A uniform run records nothing of its strategy: replay files written
  // before strategies existed read as uniform, and uniform runs' files are
  // unchanged.
  const StrategyOptions& s = options.strategy;
  if (s.kind != StrategyKind::kUniform) {
    out["strategy"] = static_cast<int64_t>(s.kind);
    out["strategy_depth"] = s.depth;
    out["strategy_draws"] = static_cast<int64_t>(s.draws);
    out["strategy_sources"] = static_cast<int64_t>(s.sources);
    out["strategy_chains_named"] = s.chains_named ? 1 : 0;
    for (const auto& [source, count] : s.source_draws) {
      out[absl::StrCat(kStrategySourcePrefix, absl::Hex(source, absl::kZeroPad16))] = static_cast<int64_t>(count);
    }
  }
  return out;
}

Options options_for_replay(const Recording& recording, Options base) {
  base.seed = recording.seed;
  for (const auto& [name, v] : recording.options) {
    if (name == "buggify") base.buggify = v != 0;
    if (name == "executor_latency_max_us") base.executor_latency_max = absl::Microseconds(v);
    if (name == "net_bandwidth") base.net_bandwidth = static_cast<uint64_t>(v);
    if (name == "net_latency_max_us") base.net_latency_max = absl::Microseconds(v);
    if (name == "net_latency_min_us") base.net_latency_min = absl::Microseconds(v);
    if (name == "net_max_segments") base.net_max_segments = static_cast<uint32_t>(v);
    if (name == "net_receive_buffer") base.net_receive_buffer = static_cast<uint32_t>(v);
    if (name == "net_send_buffer") base.net_send_buffer = static_cast<uint32_t>(v);
    if (name == "shuffle_equal_timers") base.shuffle_equal_timers = v != 0;
    if (name == "step_jitter_max_us") base.step_jitter_max = absl::Microseconds(v);
    if (name == "time_limit_us") base.time_limit = absl::Microseconds(v);
  }
  // The recorded strategy, or uniform when none is recorded.
  base.strategy = {};
  const auto strategy = recording.options.find("strategy");
  if (strategy != recording.options.end()) {
    if (strategy->second < 0 || strategy->second >= static_cast<int64_t>(StrategyKind::kPortfolio)) {
      throw std::invalid_argument(absl::StrCat("the recording's option strategy is ", strategy->second,
                                               ": expected 0 (uniform), 1 (pct), 2 (pctcp) or 3 (urw)"));
    }
    StrategyOptions& s = base.strategy;
    s.kind = static_cast<StrategyKind>(strategy->second);
    // A value out of range is a damaged file: said, not clamped.
    const auto at_least = [](const std::string& name, int64_t v, int64_t least) {
      if (v < least) {
        throw std::invalid_argument(
            absl::StrCat("the recording's option ", name, " is ", v, ": expected at least ", least));
      }
      return v;
    };
    for (const auto& [name, v] : recording.options) {
      if (name == "strategy_depth") s.depth = static_cast<uint32_t>(at_least(name, v, 1));
      if (name == "strategy_draws") s.draws = static_cast<uint64_t>(at_least(name, v, 0));
      if (name == "strategy_sources") s.sources = static_cast<uint64_t>(at_least(name, v, 0));
      if (name == "strategy_chains_named") s.chains_named = v != 0;
      if (absl::StartsWith(name, kStrategySourcePrefix)) {
        uint64_t source = 0;
        if (!absl::SimpleHexAtoi(name.substr(kStrategySourcePrefixSize), &source)) {
          throw std::invalid_argument(absl::StrCat("the recording's option ", name, " does not name a source in hex"));
        }
        s.source_draws[source] = static_cast<uint64_t>(at_least(name, v, 0));
      }
    }
  }
  return base;
}

void SimBackend::attach(EventLoop& loop) {
  loop_ = &loop;
  observe_steps(loop, this);
  enable_task_keys(loop);
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
                        task_count(*loop_)),
        describe_live_tasks(*loop_), network_->active() ? "\n" + network_->describe() : std::string(),
        world_ ? world_->describe() : std::string()));
  }
  if (deadline_ns > now_ns_) now_ns_ = deadline_ns;
}

void SimBackend::submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) {
  const int64_t max_us = absl::ToInt64Microseconds(options_.executor_latency_max);
  const int64_t latency_us = static_cast<int64_t>(choose(draw_sites::kExecutorLatencyUs, static_cast<uint64_t>(max_us) + 1));
  // The function runs on the loop thread at the drawn virtual completion time.
  const absl::Time when = absl::UnixEpoch() + absl::Nanoseconds(now_ns_ + latency_us * 1000);
  loop_->call_at(when, [work = std::move(work), done = std::move(done)]() mutable {
    work();
    done();
  });
}

uint64_t SimBackend::choose(std::string_view site, uint64_t n) {
  // No answer is in [0, 0): the caller's range is broken.
  TWINLOOP_CHECK(n != 0, "a decision has at least one possible answer") << "site " << site;
  if (n == 1) return 0;
  if (!options_.shuffle_equal_timers && site == draw_sites::kTimerTie) return 0;
  return draw(context_key(), site, n);
}

uint64_t SimBackend::context_key() const { return decision_context(*loop_); }

uint64_t& SimBackend::counter(Counters& c, uint64_t slot) {
  if (c.last && c.last_slot == slot) return *c.last;
  // An insertion may move every element, but the cached one is replaced by
  // the element just found or inserted, so it is never stale.
  c.last = &c.map[slot];
  c.last_slot = slot;
  return *c.last;
}

uint64_t SimBackend::draw(uint64_t context, std::string_view site, uint64_t n) {
  if (n <= 1) return 0;
  // The timer tie is the hottest site (one draw per tied timer): its hash is
  // computed once. A view at its constant text's own address is that text;
  // any other view, even of an equal text, is hashed (the same hash).
  const bool tie = site.data() == draw_sites::kTimerTie.data() && site.size() == draw_sites::kTimerTie.size();
  const uint64_t site_hash = tie ? timer_tie_hash_ : text_hash(site);
  const uint64_t slot = slot_key(context, site_hash);
  const uint64_t occurrence = counter(occurrences_, slot)++;
  const uint64_t key = draw_key(slot, occurrence);
  ++draws_;
  // The seed's value of this decision, unless a chooser or a replay answers.
  uint64_t value;
  if (options_.chooser) {
    value = std::min(options_.chooser(site, n), n - 1);
  } else if (std::optional<uint64_t> recorded = options_.replay ? plan_.find(key) : std::nullopt) {
    value = std::min(*recorded, n - 1);
  } else if (options_.replay && options_.fallback == Options::Fallback::kDefault) {
    value = 0;
  } else if (strategy_.uniform()) {
    value = choices_.value(key, n);
  } else {
    value = strategy_.value(choices_, key, draw_source(site, context), n, draws_ - 1);
  }
  if (options_.pilot) {
    bool named = false;
    ++options_.pilot->draws;
    ++options_.pilot->source_draws[draw_source(site, context, &named)];
    options_.pilot->chains_named |= named;
  }
  // Past n - 1 the caller would index past its range, and a recording (and
  // so a replay file) would hold a decision no run can make.
  TWINLOOP_CHECK(value < n, "a drawn value is in [0, n)") << "site " << site << ", value " << value << ", n " << n;
  if (record_) decisions_.push_back(Decision{task_path(context), std::string(site), occurrence, n, value});
  ::twinloop::internal::probe_hit(draw_probe(site_hash, site), value != 0);
  return value;
}

::twinloop::internal::ProbeEntry& SimBackend::draw_probe_slow(uint64_t site_hash, std::string_view site) {
  ::twinloop::internal::ProbeEntry*& e = draw_probes_[site_hash];
  if (e == nullptr) {
    e = &::twinloop::internal::probe_entry(ProbeKind::kSometimes,
                                           absl::StrCat("draw ", std::string(site), " took a non-default value"), nullptr, 0,
                                           false);
  }
  last_draw_probe_hash_ = site_hash;
  last_draw_probe_ = e;
  return *e;
}

void SimBackend::note_probe(std::string_view name, bool value) {
  ::twinloop::internal::ProbeEntry*& e = named_probes_[text_hash(name)];
  if (e == nullptr) e = &::twinloop::internal::probe_entry(ProbeKind::kSometimes, name, nullptr, 0, false);
  ::twinloop::internal::probe_hit(*e, value);
}

uint64_t SimBackend::task_key(uint64_t parent_key, std::string_view base) {
  const uint64_t base_hash = text_hash(base);
  const uint64_t index = counter(children_, sibling_slot(parent_key, base_hash))++;
  const uint64_t key = child_key(parent_key, base_hash, index);
  if (record_) task_paths_.emplace(key, absl::StrCat(task_path(parent_key), "/", escape_path_component(base), "#", index));
  return key;
}

NetBackend* SimBackend::net() { return network_.get(); }

World& SimBackend::world() {
  if (!world_) world_ = std::make_unique<World>(*this);
  return *world_;
}

ProcessBackend* SimBackend::processes() { return &process_table(); }

Processes& SimBackend::process_table() {
  if (!processes_) processes_ = std::make_unique<Processes>(*this);
  return *processes_;
}

void SimBackend::close() {
  if (processes_) processes_->shutdown();
  if (world_) world_->shutdown();
  network_->shutdown();
}

const std::string& SimBackend::task_path(uint64_t key) const {
  static const std::string* const kLoop = new std::string();
  auto it = task_paths_.find(key);
  return it == task_paths_.end() ? *kLoop : it->second;
}

bool SimBackend::buggify(std::string_view site) {
  if (!options_.buggify) return false;
  auto it = buggify_.find(site);
  if (it == buggify_.end()) {
    // Enabled for this run with probability 1/4 (the draw 3 of [0, 4); 0,
    // the default, leaves the site off), as FoundationDB's BUGGIFY.
    BuggifySite s;
    // Per run, not per task: keyed by the loop, whichever task asks first.
    s.enabled = draw(0, draw_sites::buggify_enabled(site), 4) == 3;
    it = buggify_.emplace(std::string(site), s).first;
  }
  BuggifySite& s = it->second;
  ++s.evaluations;
  if (s.probe == nullptr) {
    s.probe = &::twinloop::internal::probe_entry(ProbeKind::kSometimes, absl::StrCat("buggify fired: ", std::string(site)), nullptr,
                                                 0, false);
  }
  // An enabled site fires with probability 1/4 each time it is evaluated.
  const bool fire = s.enabled && choose(draw_sites::buggify_fire(site), 4) == 3;
  s.fired += fire;
  ::twinloop::internal::probe_hit(*s.probe, fire);
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
  if (watched_signals_.count(sig)) deliver_signal(*loop_, sig);
}

void SimBackend::on_event(internal::EventKind kind, uint64_t id) {
  // Written field by field where it is kept, never copied from a record
  // just written: clang copies an EventRecord with 16-byte loads, which
  // cannot be forwarded from the 8- and 1-byte stores that filled it, a
  // stall on every event that instruction counts do not show (measured:
  // docs/PERFORMANCE.md, "Simulated loop hand-off cost (issue 8 rerun)").
  EventRecord& e = trace_[events_++ % kTraceSize];
  e.time_ns = now_ns_;
  e.kind = kind;
  e.id = id;
  // The hash after the fields that do not need it, as before the trace held
  // hashes: with the slot's stores behind the hash's multiply chain instead,
  // a hand-off measured ~1.2 ns slower (wall clock; the same instructions).
  hash_ = mix64(hash_ ^ static_cast<uint64_t>(now_ns_));
  hash_ = mix64(hash_ ^ (static_cast<uint64_t>(kind) << 56) ^ id);
  e.hash = hash_;
  if (record_) record_event(kind, id);
  if (jitter_ && (kind == internal::EventKind::kTaskStep || kind == internal::EventKind::kCallback)) {
    now_ns_ += static_cast<int64_t>(choose(draw_sites::kStepJitterUs, jitter_max_us_ + 1)) * 1000;
  }
}

void SimBackend::record_event(internal::EventKind kind, uint64_t id) {
  // In place, like the trace slot (on_event).
  EventRecord& e = events_log_.emplace_back();
  e.time_ns = now_ns_;
  e.kind = kind;
  e.id = id;
  e.hash = hash_;
  // For the determinism report (describe_nondeterminism).
  event_contexts_.push_back(context_key());
  event_decisions_.push_back(decisions_.size());
}

std::vector<std::string> SimBackend::event_tasks() const {
  std::vector<std::string> out;
  out.reserve(event_contexts_.size());
  for (uint64_t key : event_contexts_) out.push_back(task_path(key));
  return out;
}

std::vector<EventRecord> SimBackend::last_events() const {
  std::vector<EventRecord> out;
  const uint64_t n = events_ < kTraceSize ? events_ : kTraceSize;
  for (uint64_t i = events_ - n; i < events_; ++i) out.push_back(trace_[i % kTraceSize]);
  return out;
}

std::string SimBackend::deadlock_report() const {
  return absl::StrCat(
      absl::StrFormat("deadlock at virtual time %s (seed %d): nothing is ready, no timer is pending, and %d "
                      "task(s) wait forever:",
                      absl::FormatDuration(absl::Nanoseconds(now_ns_)), options_.seed,
                      task_count(*loop_)),
      describe_live_tasks(*loop_), network_->active() ? "\n" + network_->describe() : std::string(),
      world_ ? world_->describe() : std::string());
}

}  // namespace twinloop::sim
