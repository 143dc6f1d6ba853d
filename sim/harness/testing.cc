#include "twinloop/sim/harness/testing.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/graph.h"
#include "twinloop/api/probes.h"
#include "gtest/gtest-spi.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/harness/explore.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/harness/shrink.h"
#include "twinloop/sim/harness/sweep.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim::harness {
namespace {

// ---------------------------------------------------------------- config

enum class KnobType {
  kSeedCount,  // uint64 >= 1
  kSeed,       // uint64
  kCount,      // int >= 0
  kBool,       // 0, 1, true, false
  kSeconds,    // a number in [0, 1e9]
  kFraction,   // a number in [0, 1]
  kText,       // non-empty
};

struct Knob {
  const char* flag;  // without the leading "--"
  const char* env;
  KnobType type;
};

// The harness's knobs: the flags and the environment variables that set them.
constexpr Knob kKnobs[] = {
    {"twinloop_seeds", "TWINLOOP_SEEDS", KnobType::kSeedCount},
    {"twinloop_first_seed", "TWINLOOP_FIRST_SEED", KnobType::kSeed},
    {"twinloop_seed", "TWINLOOP_SEED", KnobType::kSeed},
    {"twinloop_replay", "TWINLOOP_REPLAY", KnobType::kText},
    {"twinloop_shrink", "TWINLOOP_SHRINK", KnobType::kBool},
    {"twinloop_shrink_seconds", "TWINLOOP_SHRINK_SECONDS", KnobType::kSeconds},
    {"twinloop_check_determinism", "TWINLOOP_CHECK_DETERMINISM", KnobType::kFraction},
    {"twinloop_jobs", "TWINLOOP_JOBS", KnobType::kCount},
    {"twinloop_max_failures", "TWINLOOP_MAX_FAILURES", KnobType::kCount},
    {"twinloop_progress", "TWINLOOP_PROGRESS", KnobType::kBool},
    {"twinloop_replay_dir", "TWINLOOP_REPLAY_DIR", KnobType::kText},
    {"twinloop_require_probes", "TWINLOOP_REQUIRE_PROBES", KnobType::kBool},
    {"twinloop_explore", "TWINLOOP_EXPLORE", KnobType::kText},
    {"twinloop_branch_energy", "TWINLOOP_BRANCH_ENERGY", KnobType::kSeedCount},
    {"twinloop_exhaustive", "TWINLOOP_EXHAUSTIVE", KnobType::kCount},
    {"twinloop_exhaustive_values", "TWINLOOP_EXHAUSTIVE_VALUES", KnobType::kSeedCount},
    {"twinloop_exhaustive_max_runs", "TWINLOOP_EXHAUSTIVE_MAX_RUNS", KnobType::kSeed},
    {"twinloop_strategy", "TWINLOOP_STRATEGY", KnobType::kText},
};

// Every other TWINLOOP_* environment variable the project uses, anywhere.
// THIS LIST MUST NAME EVERY SUCH VARIABLE: the harness rejects any TWINLOOP_*
// variable that is neither a knob's (kKnobs) nor listed here, as a
// misspelling. Add a variable here when you add one anywhere in the project.
constexpr const char* kOtherVariables[] = {
    "TWINLOOP_RC_REPLAY",   // sim/harness/rc_simulation.h: replay a schedule under RapidCheck
    "TWINLOOP_PROBE_LOG",   // tests/harness/shard_probe_test.cc
    "TWINLOOP_SKIP_TSAN", "TWINLOOP_SKIP_ASAN",  // ./twinloop test
    "TWINLOOP_SKIP_CROSS", "TWINLOOP_SKIP_GCC",  // ./twinloop test
    "TWINLOOP_SKIP_BAZEL_CONSUMER", "TWINLOOP_SKIP_CMAKE",  // ./twinloop test (docs/building.md)
    "TWINLOOP_ANCHORS",     // bench/compare.sh, bench/compare.py
    "TWINLOOP_DEBUG",       // api/event_loop.cc: asyncio's debug mode
};

// A knob's value as given, and where it came from ("--twinloop_seeds" as the
// user spelt it, or "TWINLOOP_SEEDS").
struct Given {
  std::string value;
  std::string source;
  bool from_flag = false;
  // "--twinloop_seeds=5", "TWINLOOP_SEEDS=5": for messages.
  std::string as_written() const { return absl::StrCat(source, "=", value); }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `name` (edit distance; the first on ties).
std::string closest(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::vector<std::string> known_flags() {
  std::vector<std::string> out;
  for (const Knob& k : kKnobs) out.push_back(k.flag);
  return out;
}

std::vector<std::string> known_variables() {
  std::vector<std::string> out;
  for (const Knob& k : kKnobs) out.push_back(k.env);
  for (const char* v : kOtherVariables) out.push_back(v);
  return out;
}

const Knob* knob_by_flag(std::string_view flag) {
  for (const Knob& k : kKnobs) {
    if (flag == k.flag) return &k;
  }
  return nullptr;
}

bool is_bool_word(std::string_view v) { return v == "0" || v == "1" || v == "true" || v == "false"; }

// An argument that is a flag rather than a value: "--x", "-x" (not "-1").
bool looks_like_flag(std::string_view a) {
  return a.size() >= 2 && a[0] == '-' && (a[1] == '-' || std::isalpha(static_cast<unsigned char>(a[1])));
}

// Reads argv and the environment into knob values, appending an error for
// every unknown, incomplete or malformed flag and unknown variable.
// `hint` gets the list of flags if something was unknown.
std::map<std::string, Given> gather(const std::vector<std::string>& argv, std::vector<std::string>* errors,
                                    std::string* hint) {
  std::map<std::string, Given> given;
  bool unknown = false;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    // GoogleTest's users write flags with one dash or two.
    const size_t dashes = absl::StartsWith(a, "--") ? 2 : absl::StartsWith(a, "-") ? 1 : 0;
    if (dashes == 0) continue;
    const std::string_view body = std::string_view(a).substr(dashes);
    if (!absl::StartsWith(lower(body), "twinloop")) continue;
    const size_t eq = body.find('=');
    const std::string name(body.substr(0, eq));
    const std::string spelt = absl::StrCat(a.substr(0, dashes), name);
    const Knob* k = knob_by_flag(name);
    if (k == nullptr) {
      errors->push_back(absl::StrCat("unknown flag ", quote_bytes(a), ": did you mean --",
                                     closest(lower(name), known_flags()), "?"));
      unknown = true;
      continue;
    }
    std::string value;
    if (k->type == KnobType::kBool) {
      if (eq == std::string_view::npos) {
        value = "1";
        if (i + 1 < argv.size() && is_bool_word(argv[i + 1])) {
          errors->push_back(absl::StrCat(spelt, " is followed by '", argv[i + 1],
                                         "': a boolean flag takes its value after '=': write ", spelt, "=",
                                         argv[i + 1]));
          ++i;
          continue;
        }
      } else {
        value = std::string(body.substr(eq + 1));
        if (value.empty()) {
          errors->push_back(absl::StrCat(spelt, "= needs a value: write ", spelt, " (or ", spelt, "=1) or ", spelt,
                                         "=0"));
          continue;
        }
      }
    } else if (eq != std::string_view::npos) {
      value = std::string(body.substr(eq + 1));
      if (value.empty()) {
        errors->push_back(absl::StrCat(spelt, " needs a value: ", spelt, "=VALUE or ", spelt, " VALUE"));
        continue;
      }
    } else if (i + 1 < argv.size() && !looks_like_flag(argv[i + 1])) {
      value = argv[++i];
    } else {
      errors->push_back(absl::StrCat(
          spelt, " needs a value",
          i + 1 < argv.size() ? absl::StrCat(" (the next argument, ", quote_bytes(argv[i + 1]), ", is a flag)")
                              : std::string(" (it is the last argument)"),
          ": ", spelt, "=VALUE or ", spelt, " VALUE"));
      continue;
    }
    given[k->flag] = Given{value, spelt, true};  // the last one wins, as with Abseil flags
  }

  // The environment, in a fixed order (sorted by name).
  std::vector<std::pair<std::string, std::string>> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    if (!absl::StartsWith(entry, "TWINLOOP_")) continue;
    const size_t eq = entry.find('=');
    vars.emplace_back(entry.substr(0, eq), eq == std::string::npos ? std::string() : entry.substr(eq + 1));
  }
  std::sort(vars.begin(), vars.end());
  const std::vector<std::string> variables = known_variables();
  for (const auto& [name, value] : vars) {
    const Knob* k = nullptr;
    for (const Knob& knob : kKnobs) {
      if (name == knob.env) k = &knob;
    }
    if (k == nullptr) {
      if (std::find(variables.begin(), variables.end(), name) == variables.end()) {
        errors->push_back(absl::StrCat("unknown environment variable ", quote_bytes(name), ": did you mean ",
                                       closest(name, variables), "?"));
        unknown = true;
      }
      continue;
    }
    if (given.count(k->flag)) continue;  // the flag wins
    if (value.empty()) {
      errors->push_back(absl::StrCat(name, " is set but empty: unset it or give it a value"));
      continue;
    }
    given[k->flag] = Given{value, name, false};
  }
  if (unknown) {
    std::string flags;
    for (const Knob& k : kKnobs) absl::StrAppend(&flags, flags.empty() ? "" : ", ", "--", k.flag);
    *hint = absl::StrCat("the harness's flags are ", flags,
                         ", each also an environment variable TWINLOOP_<NAME> (docs/testing.md, \"Flags and "
                         "environment variables\")");
  }
  return given;
}

// Converts the given values; appends an error for each bad one.
class Reader {
 public:
  Reader(const std::map<std::string, Given>& given, std::vector<std::string>* errors)
      : given_(given), errors_(errors) {}

  const Given* find(const char* flag) const {
    auto it = given_.find(flag);
    return it == given_.end() ? nullptr : &it->second;
  }

  void bad(const char* flag, const Given& g, const char* expected) {
    const Knob* k = knob_by_flag(flag);
    errors_->push_back(absl::StrCat("bad value ", quote_bytes(g.value), " for ", g.source, ": expected ", expected,
                                    " (flag --", k->flag, ", variable ", k->env, ")"));
  }

  void uint(const char* flag, uint64_t* out, uint64_t min) {
    const Given* g = find(flag);
    if (g == nullptr) return;
    uint64_t x = 0;
    if (!absl::SimpleAtoi(g->value, &x) || x < min) {
      return bad(flag, *g, min == 0 ? "an integer in [0, 2^64)" : "an integer in [1, 2^64)");
    }
    *out = x;
  }

  void count(const char* flag, int* out) {
    const Given* g = find(flag);
    if (g == nullptr) return;
    int x = 0;
    if (!absl::SimpleAtoi(g->value, &x) || x < 0) return bad(flag, *g, "an integer in [0, 2^31)");
    *out = x;
  }

  void boolean(const char* flag, bool* out) {
    const Given* g = find(flag);
    if (g == nullptr) return;
    if (g->value == "1" || g->value == "true") {
      *out = true;
    } else if (g->value == "0" || g->value == "false") {
      *out = false;
    } else {
      bad(flag, *g, "0, 1, true or false");
    }
  }

  void number(const char* flag, double* out, double max, const char* range) {
    const Given* g = find(flag);
    if (g == nullptr) return;
    double x = 0;
    if (!absl::SimpleAtod(g->value, &x) || !(x >= 0) || x > max) return bad(flag, *g, range);
    *out = x;
  }

  void text(const char* flag, std::string* out) {
    if (const Given* g = find(flag)) *out = g->value;
  }

 private:
  const std::map<std::string, Given>& given_;
  std::vector<std::string>* errors_;
};

// ---------------------------------------------------------------- running one seed

// The simulated network's state for a failure report (hosts, listeners, open
// connections and the bytes in flight each way; sim/network.h), or "" if
// the run has not used the network: no host added, no listener, no
// connection.
std::string network_state(EventLoop& loop) {
  const Network& net = Network::of(loop);
  if (!net.active() && net.hosts().size() <= 1) return "";
  return net.describe();
}

// What the run looked like at its first failure: every live task (at the
// first GoogleTest failure or exception leaving the body) and the network
// (at the first failure of any kind but a deadlock or a time limit, whose
// messages carry it).
struct FirstFailure {
  SeedOutcome* out;
  bool network_taken = false;

  void tasks(EventLoop& loop) const {
    if (out->tasks.empty()) out->tasks = describe_live_tasks(loop);
  }
  void network(EventLoop& loop) {
    if (network_taken) return;
    network_taken = true;
    out->network = network_state(loop);
  }
};

// Captures GoogleTest failures of one run (instead of reporting them) and,
// at the first one, what every live task was doing and the network.
class Capture : public ::testing::ScopedFakeTestPartResultReporter {
 public:
  Capture(::testing::TestPartResultArray* results, FirstFailure* first)
      : ScopedFakeTestPartResultReporter(INTERCEPT_ONLY_CURRENT_THREAD, results), first_(first) {}

  void ReportTestPartResult(const ::testing::TestPartResult& r) override {
    ScopedFakeTestPartResultReporter::ReportTestPartResult(r);
    if (!r.failed()) return;
    if (EventLoop* loop = running_loop_or_null()) {
      first_->tasks(*loop);
      first_->network(*loop);
    }
  }

 private:
  FirstFailure* first_;
};

Coro<void> guarded(Body body, FirstFailure* first) {
  std::exception_ptr error;
  try {
    co_await body();
  } catch (...) {
    error = std::current_exception();
    first->tasks(get_running_loop());
    first->network(get_running_loop());
  }
  if (error) std::rethrow_exception(error);
}

std::string exception_text(const std::exception& e) { return absl::StrCat(typeid(e).name(), ": ", e.what()); }

void set_failure(SeedOutcome* out, SeedOutcome::Kind kind, std::string what) {
  if (out->failed) {
    absl::StrAppend(&out->what, "\n", what);
    return;
  }
  out->failed = true;
  out->kind = kind;
  out->what = std::move(what);
}

std::string describe_part(const ::testing::TestPartResult& r) {
  return absl::StrCat(r.file_name() ? r.file_name() : "unknown file", ":", r.line_number(), ": ", r.message());
}

// A deterministic sample of the seeds, `fraction` of them.
bool sampled(uint64_t seed, double fraction) {
  if (fraction >= 1) return true;
  if (fraction <= 0) return false;
  const double u = static_cast<double>(mix64(seed ^ 0x7A11'0DE7'E2B1'AC4Bull) >> 11) * 0x1.0p-53;
  return u < fraction;
}

// ---------------------------------------------------------------- probes

// The tally of the sweep running in this process (nullptr: none), and in a
// worker process what of it the parent already knows (kept equal to the
// tally in the parent, so that a worker forked later starts from it).
ProbeTally*& sweep_tally() {
  static ProbeTally* t = nullptr;
  return t;
}
ProbeTally& sent_tally() {
  static ProbeTally t;
  return t;
}

// Every probe a run of this binary reached, as far as this process knows:
// its own runs' first hits and what workers reported (probes reached in this
// process are also in ProbeEntry::ever). Read by the end-of-binary report.
std::set<std::pair<std::string, ProbeKind>>& binary_reached() {
  static std::set<std::pair<std::string, ProbeKind>> s;
  return s;
}

// News for the parent (SweepOptions::worker_news): one line per probe whose
// bits grew, "<bits> <kind> <percent-escaped name>".
std::string probe_news() {
  ProbeTally* t = sweep_tally();
  if (t == nullptr) return "";
  std::string out;
  ProbeTally& sent = sent_tally();
  for (const auto& [key, bits] : t->bits) {
    uint8_t& known = sent.bits[key];
    if ((known | bits) == known) continue;
    known |= bits;
    absl::StrAppend(&out, static_cast<int>(bits), " ", static_cast<int>(key.second), " ", percent_escape(key.first),
                    "\n");
  }
  return out;
}

void absorb_probe_news(const std::string& news) {
  ProbeTally* t = sweep_tally();
  if (t == nullptr) return;
  for (absl::string_view line : absl::StrSplit(news, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    int bits = 0;
    int kind = 0;
    std::string name;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &bits) || !absl::SimpleAtoi(f[1], &kind) || bits < 0 || bits > 3 ||
        kind < 0 || kind > static_cast<int>(ProbeKind::kUnreachable) ||
        !percent_unescape(std::string_view(f[2].data(), f[2].size()), &name)) {
      std::fprintf(stderr, "twinloop: a worker sent malformed probe news: %s\n",
                   quote_bytes(std::string_view(line.data(), line.size())).c_str());
      continue;
    }
    const std::pair<std::string, ProbeKind> key(name, static_cast<ProbeKind>(kind));
    t->bits[key] |= static_cast<uint8_t>(bits);
    sent_tally().bits[key] |= static_cast<uint8_t>(bits);
    binary_reached().insert(key);
  }
}

// "sometimes 'name' = true"
std::string describe_probe(const std::string& name, ProbeKind kind) {
  return absl::StrCat(probe_kind_name(kind), " ", quote_bytes(name, 200));
}

// One run's probes: first hits go to the outcome and the sweep's tally,
// failures fail the run.
class RunProbes : public ::twinloop::internal::ProbeObserver {
 public:
  RunProbes(SeedOutcome* out, std::function<void(const std::string&)> fail) : out_(out), fail_(std::move(fail)) {
    ::twinloop::internal::begin_probe_run();
    previous_ = ::twinloop::internal::set_probe_observer(this);
  }
  ~RunProbes() override { ::twinloop::internal::set_probe_observer(previous_); }
  RunProbes(const RunProbes&) = delete;
  RunProbes& operator=(const RunProbes&) = delete;

  void on_first_hit(const ::twinloop::internal::ProbeEntry& e, bool value) override {
    out_->probe_hits.push_back(absl::StrCat(describe_probe(e.name, e.kind), " = ", value ? "true" : "false"));
    size_t drawn = 0;
    if (EventLoop* loop = running_loop_or_null()) {
      if (auto* sim = dynamic_cast<SimBackend*>(&loop->backend())) drawn = sim->choices_made();
    }
    out_->probe_hit_decisions.push_back(drawn);
    binary_reached().insert({e.name, e.kind});
    if (ProbeTally* t = sweep_tally()) {
      t->bits[{e.name, e.kind}] |= static_cast<uint8_t>(value ? ::twinloop::internal::kProbeSeenTrue : ::twinloop::internal::kProbeSeenFalse);
    }
  }
  void on_failure(const ::twinloop::internal::ProbeEntry&, const std::string& message) override { fail_(message); }

 private:
  SeedOutcome* out_;
  std::function<void(const std::string&)> fail_;
  ::twinloop::internal::ProbeObserver* previous_ = nullptr;
};

// CI-style runs require probes unless told otherwise: under Bazel, a sweep
// (part) of at least the default seed count.
constexpr uint64_t kCiStyleSeeds = 100;
bool probes_required(uint64_t seeds_in_part) {
  const Config& c = config();
  if (c.require_probes) return *c.require_probes;
  const char* target = std::getenv("TEST_TARGET");
  return target != nullptr && *target != '\0' && seeds_in_part >= kCiStyleSeeds;
}

// ---------------------------------------------------------------- the simulated tests of this binary

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string::npos) {
    return s;
  }
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// The --gtest_filter that selects the test `name` (sharded or not).
std::string filter_for(const std::string& name) { return absl::StrCat(name, ":", name, "/*"); }


struct SimTestEntry {
  std::string full;  // "Suite.Name"
  std::string suite;
  std::string name;  // without "/part_j_of_K"
};

std::vector<SimTestEntry>& registry() {
  static std::vector<SimTestEntry> r;
  return r;
}

// The number of parts each simulated test is registered as (shards).
int& registered_parts() {
  static int parts = 1;
  return parts;
}

// "A.B, C.D, ..." (at most 20, then how many more).
std::string list_sim_tests() {
  std::string out;
  const std::vector<SimTestEntry>& r = registry();
  for (size_t i = 0; i < r.size() && i < 20; ++i) absl::StrAppend(&out, i ? ", " : "", r[i].full);
  if (r.size() > 20) absl::StrAppend(&out, ", and ", r.size() - 20, " more");
  return out.empty() ? std::string("(none)") : out;
}

// ---------------------------------------------------------------- the replay file, read once

struct ReplayState {
  bool loaded = false;
  std::string error;
  Recording recording;
};

ReplayState& replay_state() {
  static ReplayState s;
  const Config& c = config();
  if (!s.loaded && !c.replay.empty()) {
    s.loaded = true;
    try {
      s.recording = read_recording_file(c.replay);
    } catch (const std::exception& e) {
      s.error = absl::StrCat("twinloop: --twinloop_replay: ", e.what());
    }
  }
  return s;
}

// What is wrong with replaying the file in this binary and run ("" if
// nothing): it does not parse, names no test, names a test this binary
// does not have, or one the filter excludes.
std::string replay_problem() {
  const Config& c = config();
  const ReplayState& s = replay_state();
  if (!s.error.empty()) return s.error;
  const std::string file = quote_bytes(c.replay, 4096);
  const std::string& test = s.recording.test;
  if (test.empty()) {
    return absl::StrCat("twinloop: the replay file ", file,
                        " names no test (it has no 'test' record), so it cannot be matched to one of this "
                        "binary's simulated tests: ",
                        list_sim_tests(), ". Add a line 'test Suite.Name' to it to choose one.");
  }
  const auto it = std::find_if(registry().begin(), registry().end(),
                               [&](const SimTestEntry& e) { return e.full == test; });
  if (it == registry().end()) {
    return absl::StrCat("twinloop: the replay file ", file, " was recorded for ", quote_bytes(test),
                        ", which this binary does not have; its simulated tests are: ", list_sim_tests());
  }
  // Sharded, the test's parts may run in other shards: nothing to check.
  if (registered_parts() > 1) return "";
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite* suite = unit.GetTestSuite(i);
    if (suite->name() != it->suite) continue;
    for (int j = 0; j < suite->total_test_count(); ++j) {
      const ::testing::TestInfo* info = suite->GetTestInfo(j);
      if (info->name() != it->name || info->should_run()) continue;
      return absl::StrCat("twinloop: the replay file ", file, " was recorded for ", test, ", but --gtest_filter=",
                          quote_bytes(GTEST_FLAG_GET(filter)),
                          " excludes it (or it is disabled): nothing would replay. Run it with "
                          "--gtest_filter=",
                          shell_quote(filter_for(test)), " or without a filter.");
    }
  }
  return "";
}

// ---------------------------------------------------------------- reporting

std::string replay_dir() {
  const Config& c = config();
  return c.replay_dir.empty() ? default_replay_dir() : c.replay_dir;
}

std::string indent(std::string_view text, std::string_view pad) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) {
      out.append(pad);
      out.append(text.substr(start, end - start));
      out.push_back('\n');
    }
    start = end + 1;
  }
  return out;
}

// Under `bazel test`: the target's directory below bazel-bin/ and
// bazel-testlogs/, from $TEST_TARGET ("//tests/planted:planted_bugs_test" ->
// "tests/planted/planted_bugs_test"; "@repo//p:t" -> "external/repo/p/t").
// "" outside Bazel.
std::string bazel_target_dir() {
  const char* target = std::getenv("TEST_TARGET");
  if (target == nullptr || *target == '\0') return "";
  std::string label(target);
  std::string repo;
  if (absl::StartsWith(label, "@")) {
    const size_t slashes = label.find("//");
    repo = label.substr(1, slashes == std::string::npos ? 0 : slashes - 1);
    label.erase(0, slashes == std::string::npos ? label.size() : slashes);
  }
  while (absl::StartsWith(label, "/")) label.erase(0, 1);
  const size_t colon = label.rfind(':');
  std::string package, name;
  if (colon == std::string::npos) {
    package = label;
    name = std::filesystem::path(package).filename().string();
  } else {
    package = label.substr(0, colon);
    name = label.substr(colon + 1);
  }
  std::string dir;
  if (!repo.empty()) absl::StrAppend(&dir, "external/", repo, "/");
  if (!package.empty()) absl::StrAppend(&dir, package, "/");
  return absl::StrCat(dir, name);
}

// Under `bazel test`, replay files written to $TEST_UNDECLARED_OUTPUTS_DIR
// (the default) live in the sandbox during the run; Bazel then zips them
// into bazel-testlogs/<package>/<target>[/shard_<i+1>_of_<K>]/test.outputs/outputs.zip.
// Returns that zip's path (relative to the workspace root), or "" when the
// files are written somewhere the user can open directly.
std::string bazel_outputs_zip() {
  const std::string target = bazel_target_dir();
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (target.empty() || outputs == nullptr || *outputs == '\0') return "";
  if (!config().replay_dir.empty() || replay_dir() != outputs) return "";
  std::string dir = absl::StrCat("bazel-testlogs/", target, "/");
  Shard shard;
  try {
    shard = shard_from_env();
  } catch (const std::exception&) {
  }
  if (shard.count > 1) absl::StrAppend(&dir, "shard_", shard.index + 1, "_of_", shard.count, "/");
  return absl::StrCat(dir, "test.outputs/outputs.zip");
}

constexpr char kExtractDir[] = "/tmp/twinloop";

// A replay file the harness wrote, and how the user gets to it.
struct SavedReplay {
  std::string written;  // where this process wrote it ("" if it could not)
  std::string error;    // why not
  std::string zip;      // under Bazel: the outputs.zip that holds it
  // The path to pass to --twinloop_replay after the run.
  std::string user_path() const {
    return zip.empty() ? written : absl::StrCat(kExtractDir, "/", std::filesystem::path(written).filename().string());
  }
  // "replay file: ..." lines of the report, `label` being "replay file".
  std::string describe(const std::string& label) const {
    if (!error.empty()) return absl::StrCat(label, ": (not written: ", error, ")\n");
    if (zip.empty()) return absl::StrCat(label, ": ", written, "\n");
    const std::string file = std::filesystem::path(written).filename().string();
    return absl::StrCat(label, ": ", file, ", saved in ", zip,
                        " when the test ends\n  get it out (from the workspace root): unzip -o ", zip, " ", file,
                        " -d ", kExtractDir, "\n");
  }
};

SavedReplay write_replay(const std::string& name, const std::string& suffix, Recording r, const std::string& failure,
                         const std::string& command) {
  r.test = name;
  r.failure = failure;
  r.command = command;
  SavedReplay saved;
  const std::string path = replay_file_path(replay_dir(), absl::StrCat(target_slug(), "-", name, "-", suffix));
  try {
    write_recording_file(path, r);
  } catch (const std::exception& e) {
    saved.error = e.what();
    return saved;
  }
  saved.written = path;
  saved.zip = bazel_outputs_zip();
  return saved;
}

// Commands that rerun `name` with `arg` (e.g. "--twinloop_seed=7").
std::vector<std::string> commands_for(const std::string& name, const std::string& arg) {
  std::vector<std::string> out;
  if (const char* target = std::getenv("TEST_TARGET")) {
    out.push_back(absl::StrCat("bazel test ", target, " --test_output=streamed --test_filter=",
                               shell_quote(filter_for(name)), " --test_arg=", shell_quote(arg)));
  }
  // Under Bazel the binary runs from a sandbox that is gone after the run:
  // name it in bazel-bin/ (relative to the workspace root).
  std::string binary;
  if (const std::string target = bazel_target_dir(); !target.empty()) {
    binary = absl::StrCat("bazel-bin/", target);
  } else {
    const std::vector<std::string>& argv = ::testing::internal::GetArgvs();
    binary = argv.empty() ? std::string("<test binary>") : argv[0];
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(binary, ec);
    if (!ec) binary = abs.lexically_normal().string();
  }
  out.push_back(absl::StrCat(shell_quote(binary), " --gtest_filter=", shell_quote(filter_for(name)), " ",
                             shell_quote(arg)));
  return out;
}

constexpr size_t kReportEvents = 20;

std::string format_report(const std::string& name, const std::string& run_label, const SeedOutcome& o,
                          const std::string& replay_lines, const std::vector<std::string>& commands,
                          const std::string& extra) {
  std::string s = absl::StrCat("\n======== twinloop: ", name, " FAILED at ", run_label, ", virtual time ",
                               absl::FormatDuration(absl::Nanoseconds(o.virtual_time_ns)), "\n");
  absl::StrAppend(&s, "what failed (", o.kind_name(), "):\n", indent(o.what, "  "));
  if (!o.tasks.empty()) absl::StrAppend(&s, "live tasks at the failure:", o.tasks, "\n");
  if (!o.network.empty()) absl::StrAppend(&s, "network:\n", indent(o.network, "  "));
  if (!o.buggify.empty()) absl::StrAppend(&s, o.buggify, "\n");
  if (!o.faults.empty()) absl::StrAppend(&s, "faults (virtual time order):\n", indent(o.faults, "  "));
  if (!o.last_events.empty()) {
    const size_t n = std::min(o.last_events.size(), kReportEvents);
    absl::StrAppend(&s, "last ", n, " events:\n");
    for (size_t i = o.last_events.size() - n; i < o.last_events.size(); ++i) {
      absl::StrAppend(&s, "  ", describe_event(o.last_events[i]), "\n");
    }
  }
  if (!extra.empty()) absl::StrAppend(&s, extra);
  absl::StrAppend(&s, replay_lines);
  absl::StrAppend(&s, "reproduce:\n");
  for (const std::string& c : commands) absl::StrAppend(&s, "  ", c, "\n");
  absl::StrAppend(&s, "========\n");
  return s;
}

// Reports the run's own GoogleTest failures (at their file and line) and the
// report block, and so marks the test failed.
// Where the running simulated test is defined (its TWINLOOP_SIM_TEST line):
// the report block is attributed to it.
struct TestLocation {
  const char* file = nullptr;
  int line = 0;
};
TestLocation& current_location() {
  static TestLocation l;
  return l;
}

void add_report(const std::string& report) {
  const TestLocation& l = current_location();
  if (l.file) {
    ADD_FAILURE_AT(l.file, l.line) << report;
  } else {
    ADD_FAILURE() << report;
  }
}

// Skips the running test (as GTEST_SKIP() would), at its TWINLOOP_SIM_TEST line.
void skip(const std::string& why) {
  const TestLocation& l = current_location();
  ::testing::internal::AssertHelper(::testing::TestPartResult::kSkip, l.file ? l.file : __FILE__,
                                    l.file ? l.line : __LINE__, why.c_str()) = ::testing::Message();
}

void report_failure(const SeedOutcome& o, const std::string& report) {
  for (const ::testing::TestPartResult& r : o.failures) {
    if (!r.failed()) continue;
    ::testing::internal::AssertHelper(::testing::TestPartResult::kNonFatalFailure,
                                      r.file_name() ? r.file_name() : "unknown file", r.line_number(),
                                      r.message()) = ::testing::Message();
  }
  add_report(report);
}

// The strategy of the running test's seeds (--twinloop_strategy) and its
// pilot run, set by run_sim_test while it runs seeds; null: uniform.
struct StrategyPlan {
  StrategyKind kind = StrategyKind::kUniform;
  Pilot pilot;
};
const StrategyPlan*& strategy_plan() {
  static const StrategyPlan* plan = nullptr;
  return plan;
}

// The strategy options seed `seed` runs under.
StrategyOptions strategy_for_seed(const StrategyPlan& plan, uint64_t seed) {
  const StrategyKind kind =
      plan.kind == StrategyKind::kPortfolio ? portfolio_strategy(seed, plan.pilot.chains_named) : plan.kind;
  return strategy_options(kind, plan.pilot);
}

Options seeded(Options options, uint64_t seed, bool record) {
  options.seed = seed;
  options.record = record;
  if (const StrategyPlan* plan = strategy_plan()) options.strategy = strategy_for_seed(*plan, seed);
  return options;
}

// Runs `seed` twice (recording) and compares the event streams.
std::optional<std::string> determinism_mismatch(Body body, const Options& options, uint64_t seed) {
  const SeedOutcome a = run_once(body, seeded(options, seed, true));
  const SeedOutcome b = run_once(body, seeded(options, seed, true));
  std::optional<Divergence> d = first_divergence(a.recording.events, b.recording.events);
  if (!d) return std::nullopt;
  return absl::StrCat("nondeterministic: ", describe_nondeterminism(seed, a.recording, b.recording, *d),
                      "something other than the seed decides: the wall clock, an address, an unordered "
                      "container, a thread, OS randomness?");
}

// One seed as the sweep sees it: failed, or (when sampled) nondeterministic.
bool seed_fails(Body body, const Options& options, uint64_t seed) {
  if (run_once(body, seeded(options, seed, false)).failed) return true;
  if (sampled(seed, config().check_determinism)) return determinism_mismatch(body, options, seed).has_value();
  return false;
}

// "kind: what", as replay files record a failure.
std::string failure_text(const SeedOutcome& o) { return absl::StrCat(o.kind_name(), ": ", o.what); }

// A failure text on one line, bounded: whitespace runs (newlines,
// indentation) become one space.
std::string one_line(std::string_view text, size_t max = 300) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  if (out.size() > max) out = absl::StrCat(out.substr(0, max), "...");
  return out;
}

// How many failed seeds twinloop_failed_seeds lists (the count is in
// twinloop_seeds_failed).
constexpr size_t kFailedSeedsListed = 10;

// The seeds a simulated test ran, as properties of its <testcase> in
// GoogleTest's XML (--gtest_output=xml; under Bazel, bazel-testlogs/.../test.xml),
// so that CI dashboards can show them (docs/testing.md, "Seeds in the JUnit XML"):
//   twinloop_first_seed    the first seed of the range (the seed, with --twinloop_seed)
//   twinloop_seeds         the seeds this test (this part, when sharded) was asked to run
//   twinloop_seeds_run     the seeds it ran (fewer after a failure: the sweep stops
//                          handing out seeds above the --twinloop_max_failures lowest failures)
//   twinloop_seeds_failed  how many of them failed
//   twinloop_failed_seeds  the first kFailedSeedsListed failed seeds, ascending,
//                          comma-separated ("" when none failed)
void record_seed_properties(uint64_t first_seed, uint64_t asked, uint64_t run, const std::vector<uint64_t>& failed) {
  std::string listed;
  for (size_t i = 0; i < failed.size() && i < kFailedSeedsListed; ++i) {
    absl::StrAppend(&listed, i == 0 ? "" : ",", failed[i]);
  }
  // Numbers as text: RecordProperty's integer overload takes an int.
  ::testing::Test::RecordProperty("twinloop_first_seed", absl::StrCat(first_seed));
  ::testing::Test::RecordProperty("twinloop_seeds", absl::StrCat(asked));
  ::testing::Test::RecordProperty("twinloop_seeds_run", absl::StrCat(run));
  ::testing::Test::RecordProperty("twinloop_seeds_failed", absl::StrCat(failed.size()));
  ::testing::Test::RecordProperty("twinloop_failed_seeds", listed);
}

void report_outcome(const std::string& name, Body body, const Options& options, SeedOutcome o,
                    const std::string& suffix, const std::string& label, std::vector<std::string> commands,
                    const std::string& extra);

// Re-runs a failing seed with recording, writes its replay file, shrinks it
// if asked, and reports it.
void report_seed(const std::string& name, Body body, const Options& options, uint64_t seed) {
  SeedOutcome o = run_once(body, seeded(options, seed, true));
  if (!o.failed) {
    if (std::optional<std::string> mismatch = determinism_mismatch(body, options, seed)) {
      set_failure(&o, SeedOutcome::Kind::kNondeterminism, *mismatch);
    } else {
      // It failed in the sweep but not now: the test itself is not
      // deterministic (or failed in a worker process only).
      set_failure(&o, SeedOutcome::Kind::kNondeterminism,
                  absl::StrCat("seed ", seed, " failed in the sweep but passed when run again"));
    }
  }
  const std::string seed_arg = absl::StrCat("--twinloop_seed=", seed);
  std::vector<std::string> commands = commands_for(name, seed_arg);
  // The seed runs as it did only under the same strategy (and pilot run).
  if (const StrategyPlan* plan = strategy_plan()) {
    const std::string flag = absl::StrCat("--twinloop_strategy=", std::string(strategy_name(plan->kind)));
    for (std::string& cmd : commands) absl::StrAppend(&cmd, absl::StartsWith(cmd, "bazel test ") ? " --test_arg=" : " ", flag);
  }
  report_outcome(name, body, options, std::move(o), absl::StrCat("seed", seed), absl::StrCat("seed ", seed),
                 std::move(commands), "");
}

// Writes the failing run `o`'s replay file (as `suffix`), shrinks it if
// asked, and reports it as failing at `label`.
void report_outcome(const std::string& name, Body body, const Options& options, SeedOutcome o,
                    const std::string& suffix, const std::string& label, std::vector<std::string> commands,
                    const std::string& extra) {
  const Config& c = config();
  const SavedReplay saved = write_replay(name, suffix, o.recording, failure_text(o), commands.empty() ? "" : commands[0]);
  std::string replay_lines = saved.describe("replay file");
  if (saved.error.empty()) {
    for (const std::string& cmd : commands_for(name, absl::StrCat("--twinloop_replay=", saved.user_path()))) {
      commands.push_back(cmd);
    }
  }

  if (c.shrink && o.kind != SeedOutcome::Kind::kNondeterminism) {
    const SeedOutcome::Kind kind = o.kind;
    // A candidate "fails the same way" when it fails with the same kind; it
    // returns its own recording with its own failure text, so the minimal
    // file records what the minimal run failed with.
    auto fails = [&](const Recording& candidate) -> std::optional<Recording> {
      Options r = options_for_replay(candidate, options);
      r.replay = std::make_shared<Recording>(candidate);
      r.fallback = Options::Fallback::kDefault;
      r.record = true;
      SeedOutcome co = run_once(body, r);
      if (!co.failed || co.kind != kind) return std::nullopt;
      co.recording.failure = failure_text(co);
      return co.recording;
    };
    ShrinkOptions so;
    so.time_budget = absl::Seconds(c.shrink_seconds);
    ShrinkResult sr = shrink(o.recording, fails, so);
    const std::string min_failure = sr.minimal.failure.empty() ? failure_text(o) : sr.minimal.failure;
    const SavedReplay min = write_replay(name, absl::StrCat(suffix, ".min"), sr.minimal, min_failure, "");
    absl::StrAppend(&replay_lines, "shrunk in ", sr.runs, " runs", sr.budget_exhausted ? " (budget exhausted)" : "",
                    ":\n  before: ", describe(sr.before), "\n  after:  ", describe(sr.after), "\n");
    if (min_failure != failure_text(o))
      absl::StrAppend(&replay_lines, "  the minimal run fails with: ", one_line(min_failure), "\n");
    absl::StrAppend(&replay_lines, min.describe("minimal replay file"));
    if (min.error.empty()) {
      for (const std::string& cmd : commands_for(name, absl::StrCat("--twinloop_replay=", min.user_path()))) {
        commands.push_back(cmd);
      }
    }
  }
  std::string with_strategy = extra;
  if (!o.recording.options.empty()) {
    const StrategyOptions st = options_for_replay(o.recording, options).strategy;
    if (st.kind != StrategyKind::kUniform) {
      absl::StrAppend(&with_strategy, "strategy: ", describe_strategy(st), " (recorded in the replay file)\n");
    }
  }
  report_failure(o, format_report(name, label, o, replay_lines, commands, with_strategy));
}

// The verdict of a replay: did the recorded failure reproduce, and do the
// events match the recording.
std::string replay_verdict(const std::string& recorded, const SeedOutcome& now, const std::string& events) {
  if (recorded.empty()) {
    return now.failed ? absl::StrCat("the run failed (", one_line(failure_text(now)),
                                     ") but the file records no failure; ", events)
                      : absl::StrCat("the run passed, and the file records no failure; ", events);
  }
  if (!now.failed) {
    return absl::StrCat("recorded failure did not reproduce: the run passed; ", events, " (recorded: ",
                        one_line(recorded), ")");
  }
  const std::string text = failure_text(now);
  if (text == recorded) return absl::StrCat("recorded failure reproduced (", now.kind_name(), "); ", events);
  std::string recorded_line = one_line(recorded);
  std::string now_line = one_line(text);
  const bool same_kind = absl::StartsWith(recorded, absl::StrCat(now.kind_name(), ": "));
  return absl::StrCat("the run failed differently: recorded ", recorded_line, ", now ", now_line,
                      recorded_line == now_line ? " (the texts differ further on)" : "",
                      same_kind ? " (the same kind of failure, another message)" : "", "; ", events);
}

void run_replay(const std::string& name, Body body, const Options& options, const Recording& rec) {
  const Config& c = config();
  Options o = options_for_replay(rec, options);
  o.replay = std::make_shared<Recording>(rec);
  SeedOutcome out = run_once(body, o);
  // Divergence: compare the events of this run with the recording's.
  const std::optional<Divergence> d = first_divergence(rec.events, out.recording.events);
  const std::string events =
      d ? describe_divergence(*d)
        : absl::StrCat("the run matches the recording (", out.recording.events.size(), " events)");
  const std::string verdict = replay_verdict(rec.failure, out, events);
  std::fprintf(stderr, "twinloop: replay of %s: %s\n", c.replay.c_str(), verdict.c_str());
  ::testing::Test::RecordProperty("twinloop_replay_verdict", verdict);
  if (out.failed) {
    report_failure(out, format_report(name, absl::StrCat("replay of ", c.replay), out,
                                      absl::StrCat("replay file: ", c.replay, "\n"),
                                      commands_for(name, absl::StrCat("--twinloop_replay=", c.replay)),
                                      absl::StrCat("verdict: ", verdict, "\n")));
  }
}

// ---------------------------------------------------------------- exploration (sim/harness/explore.h)

// The built-in draw probes are not branched on: the draw buckets cover them.
bool is_draw_probe_hit(const std::string& hit) {
  return absl::StartsWith(hit, "sometimes 'draw ") && absl::StrContains(hit, " took a non-default value'");
}

// One run of the body for the explorers: `forced` replayed by key, the rest
// from `seed` (or 0).
ExploreRun explore_run(Body body, const Options& options, uint64_t seed, const std::vector<Decision>& forced,
                       bool default_fallback) {
  Options o = options;
  o.seed = seed;
  o.record = true;
  // Under --twinloop_strategy (branching only): the draws after the prefix
  // are the strategy's for this run's seed.
  if (const StrategyPlan* plan = strategy_plan(); plan && !default_fallback) o.strategy = strategy_for_seed(*plan, seed);
  if (!forced.empty() || default_fallback) {
    auto plan = std::make_shared<Recording>();
    plan->seed = seed;
    plan->decisions = forced;
    o.replay = std::move(plan);
    o.fallback = default_fallback ? Options::Fallback::kDefault : Options::Fallback::kSeed;
  }
  SeedOutcome out = run_once(body, o);
  ExploreRun r;
  r.failed = out.failed;
  r.decisions = std::move(out.recording.decisions);
  for (size_t i = 0; i < out.probe_hits.size(); ++i) {
    if (is_draw_probe_hit(out.probe_hits[i])) continue;
    r.hits.emplace_back(out.probe_hits[i], out.probe_hit_decisions[i]);
  }
  return r;
}

// Re-runs a failing explored run from its decisions and reports it.
void report_explored(const std::string& name, Body body, const Options& options, uint64_t seed,
                     const std::vector<Decision>& decisions, const std::string& suffix, const std::string& label,
                     const std::string& extra) {
  Recording plan;
  plan.seed = seed;
  plan.decisions = decisions;
  Options o = options;
  o.seed = seed;
  o.record = true;
  if (const StrategyPlan* sp = strategy_plan()) o.strategy = strategy_for_seed(*sp, seed);
  o.replay = std::make_shared<Recording>(plan);
  SeedOutcome out = run_once(body, o);
  if (!out.failed) {
    set_failure(&out, SeedOutcome::Kind::kNondeterminism,
                absl::StrCat(label, " failed in the exploration but passed when replayed from its decisions"));
  }
  report_outcome(name, body, options, std::move(out), suffix, label, {}, extra);
}

// A progress line on stderr, updated in place.
void progress_line(const std::string& text, bool last) {
  std::fprintf(stderr, "\r%s%s", text.c_str(), last ? "\n" : "");
  std::fflush(stderr);
}

void run_branching(const std::string& name, const Options& options, Body body, int part) {
  const Config& c = config();
  if (part != 0) return skip(absl::StrCat("--twinloop_explore=branch explores in part 0 of ", name, " (one tree)"));
  BranchOptions bo;
  bo.first_seed = c.first_seed;
  bo.runs = c.seeds;
  bo.energy = c.branch_energy;
  if (c.progress) {
    bo.progress = [&name](uint64_t runs, size_t prefixes) {
      if (runs % 500 == 0) progress_line(absl::StrCat("twinloop: ", name, ": branching: ", runs, " runs, ", prefixes, " prefixes kept"), false);
    };
  }
  ProbeTally tally;
  sweep_tally() = &tally;
  BranchResult r;
  try {
    r = explore_branches(bo, [&](uint64_t seed, const std::vector<Decision>& forced, bool fallback) {
      return explore_run(body, options, seed, forced, fallback);
    });
  } catch (...) {
    sweep_tally() = nullptr;
    throw;
  }
  sweep_tally() = nullptr;
  if (c.progress) std::fprintf(stderr, "\n");
  const uint64_t done = r.runs.size();
  std::string line = absl::StrCat("branching from seed ", c.first_seed, ": ", done, " runs (", r.fresh_runs, " fresh, ",
                                  done - r.fresh_runs, " from ", r.prefixes, " kept prefixes), ", r.features,
                                  " features, tree digest ", absl::Hex(r.digest, absl::kZeroPad16));
  if (r.failed) {
    absl::StrAppend(&line, ", first failure at run ", r.failed_run + 1, " (",
                    r.runs[r.failed_run].prefix < 0 ? std::string("fresh")
                                                    : absl::StrCat("prefix ", r.runs[r.failed_run].prefix, " of ",
                                                                   r.runs[r.failed_run].prefix_decisions, " decisions"),
                    ", seed ", r.failing_seed, ")");
  } else {
    absl::StrAppend(&line, ", no failure");
  }
  if (r.diverged) absl::StrAppend(&line, "; WARNING: ", r.diverged, " branch runs did not repeat their prefix (nondeterminism)");
  std::fprintf(stderr, "twinloop: %s: %s\n", name.c_str(), line.c_str());
  ::testing::Test::RecordProperty("twinloop_branching", line);
  if (!tally.bits.empty()) ::testing::Test::RecordProperty("twinloop_probes", tally.summary());
  const std::vector<std::string> never = tally.never_hit();
  if (!never.empty() || c.progress) std::fprintf(stderr, "twinloop: %s: %s\n", name.c_str(), tally.summary().c_str());
  if (r.failed) {
    report_explored(name, body, options, r.failing_seed, r.failing_decisions, absl::StrCat("branch", r.failed_run + 1),
                    absl::StrCat("run ", r.failed_run + 1, " of the branching exploration from seed ", c.first_seed),
                    absl::StrCat("exploration: ", line, "\n  (the same exploration: --twinloop_explore=branch "
                                 "--twinloop_first_seed=", c.first_seed, " --twinloop_seeds=", c.seeds,
                                 " --twinloop_branch_energy=", c.branch_energy,
                                 c.strategy == StrategyKind::kUniform
                                     ? std::string()
                                     : absl::StrCat(" --twinloop_strategy=", std::string(strategy_name(c.strategy))),
                                 ")\n"));
    return;
  }
  if (!never.empty() && probes_required(done)) {
    add_report(absl::StrCat("\n======== twinloop: ", name, ": must-hit probes never hit in ", done,
                            " explored runs (", tally.summary(), ")\n========\n"));
  }
}

void run_exhaustive(const std::string& name, const Options& options, Body body, int part, int parts) {
  const Config& c = config();
  ExhaustiveOptions eo;
  eo.bound = *c.exhaustive;
  eo.values_per_draw = c.exhaustive_values;
  eo.max_runs = c.exhaustive_max_runs;
  eo.shard = Shard{part, parts};
  const std::string who = parts > 1 ? absl::StrCat(name, " (part ", part, " of ", parts, ")") : name;
  const auto start = std::chrono::steady_clock::now();  // for the progress line only
  auto last = start;
  eo.progress = [&](uint64_t runs) {
    if (!c.progress && runs % 10000 != 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(250)) return;
    last = now;
    progress_line(absl::StrCat("twinloop: ", who, ": exhaustive, bound ", eo.bound, ": ", runs, " runs"), false);
  };
  const ExhaustiveResult r = explore_exhaustive(eo, [&](uint64_t seed, const std::vector<Decision>& forced, bool fallback) {
    return explore_run(body, options, seed, forced, fallback);
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (last != start) std::fprintf(stderr, "\n");
  const std::string verdict = r.verdict(eo.bound, eo.values_per_draw);
  std::fprintf(stderr, "twinloop: %s: %s (%.2f s)\n", who.c_str(), verdict.c_str(), seconds);
  ::testing::Test::RecordProperty("twinloop_exhaustive_verdict", verdict);
  if (r.failed) {
    report_explored(name, body, options, eo.seed, r.failing_decisions, absl::StrCat("exhaustive", r.runs),
                    absl::StrCat("run ", r.runs, " of the exhaustive runs within bound ", eo.bound),
                    absl::StrCat("verdict: ", verdict, "\n"));
  }
}

// ---------------------------------------------------------------- after the last test

// Why this run of the binary is not the whole binary ("" if it is): a
// filtered or sharded run, or a replay, legitimately misses probes.
std::string partial_run_reason() {
  const std::string filter = GTEST_FLAG_GET(filter);
  if (filter != "*") return absl::StrCat("--gtest_filter=", filter, " selected part of the binary");
  Shard shard;
  try {
    shard = shard_from_env();
  } catch (const std::exception&) {
  }
  if (shard.count > 1) return absl::StrCat("this is shard ", shard.index + 1, " of ", shard.count);
  try {
    if (!config().replay.empty()) return "--twinloop_replay runs one test";
  } catch (const std::exception&) {
    return "the flags were rejected";
  }
  return "";
}

// The end-of-binary report (docs/exploration.md, "Probes no test reached"):
// every probe a macro declared (registered at static initialisation) that no
// run of this binary reached, by name with file:line. It fails the binary
// only with --twinloop_require_probes on and the whole binary run; it says
// why it did not fail otherwise.
void report_unreached_probes() {
  std::vector<const ::twinloop::internal::ProbeEntry*> must;
  std::vector<const ::twinloop::internal::ProbeEntry*> unreachable;
  size_t declared = 0;
  for (const ::twinloop::internal::ProbeEntry* e : ::twinloop::internal::probe_catalog()) {
    if (!e->declared) continue;
    ++declared;
    if (e->ever.load(std::memory_order_relaxed) != 0 || binary_reached().count({e->name, e->kind})) continue;
    (e->kind == ProbeKind::kUnreachable ? unreachable : must).push_back(e);
  }
  if (declared == 0) return;
  const auto where = [](const ::twinloop::internal::ProbeEntry* e) {
    return absl::StrCat("  ", describe_probe(e->name, e->kind), " at ", e->file, ":", e->line, "\n");
  };
  std::string out;
  if (must.empty()) {
    out = absl::StrCat("twinloop: probes: every always, sometimes and reachable probe declared in this binary was reached (",
                       declared, " declared)\n");
  } else {
    out = absl::StrCat("twinloop: probes no test of this binary reached (", must.size(), " of ", declared,
                       " declared):\n");
    for (const auto* e : must) absl::StrAppend(&out, where(e));
  }
  if (!unreachable.empty()) {
    absl::StrAppend(&out, "twinloop: unreachable probes never reached (as they should be; listed so that a dead one shows):\n");
    for (const auto* e : unreachable) absl::StrAppend(&out, where(e));
  }
  bool fail = false;
  if (!must.empty()) {
    std::optional<bool> required;
    try {
      required = config().require_probes;
    } catch (const std::exception&) {
    }
    const std::string partial = partial_run_reason();
    if (!required.value_or(false)) {
      absl::StrAppend(&out, "twinloop: not failing the binary for them: --twinloop_require_probes is not on",
                      required.has_value() ? "" : " (the binary-wide check needs it given: a binary's probes may belong to code its tests do not run)",
                      "\n");
    } else if (!partial.empty()) {
      absl::StrAppend(&out, "twinloop: not failing the binary for them: ", partial,
                      ", and a partial run legitimately misses probes (run the whole binary to check them)\n");
    } else {
      fail = true;
      absl::StrAppend(&out, "twinloop: FAILING the binary: --twinloop_require_probes is on and the whole binary ran, "
                            "yet no test reached the probes above\n");
    }
  }
  std::fflush(stdout);
  std::fprintf(stderr, "\n%s", out.c_str());
  std::fflush(stderr);
  if (fail) {
    ::testing::internal::AssertHelper(::testing::TestPartResult::kNonFatalFailure, "twinloop", -1,
                                      absl::StrCat(must.size(), " declared probe(s) that no test of this binary reached "
                                                   "(--twinloop_require_probes)").c_str()) = ::testing::Message();
  }
}

// ---------------------------------------------------------------- before any test

// Parses the configuration and checks the replay file once, before any test
// runs: on an error, GoogleTest runs no test and the binary fails.
class HarnessEnvironment : public ::testing::Environment {
 public:
  // After the last test: the end-of-binary probe report.
  void TearDown() override { report_unreached_probes(); }

  void SetUp() override {
    static const std::string error = check();
    if (error.empty()) return;
    // Once on stderr (after what GoogleTest printed so far), and once as
    // GoogleTest's failure.
    std::fflush(stdout);
    std::fprintf(stderr, "\n%s\n(no test runs: GoogleTest lists every test as skipped)\n\n", error.c_str());
    std::fflush(stderr);
    // Fatal: GoogleTest then runs no test, and the binary exits non-zero.
    ::testing::internal::AssertHelper(::testing::TestPartResult::kFatalFailure, "twinloop", -1, error.c_str()) =
        ::testing::Message();
  }

 private:
  static std::string check() {
    try {
      const Config& c = config();
      for (const std::string& note : c.notes) std::fprintf(stderr, "%s\n", note.c_str());
      if (!c.replay.empty()) return replay_problem();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }
};

std::function<SweepResult(const SweepOptions&, const std::function<bool(uint64_t)>&)>& sweep_runner() {
  static std::function<SweepResult(const SweepOptions&, const std::function<bool(uint64_t)>&)> runner;
  return runner;
}

}  // namespace

// ---------------------------------------------------------------- public

Config config_from_flags_and_env(const std::vector<std::string>& argv) {
  std::vector<std::string> errors;
  std::string hint;
  const std::map<std::string, Given> given = gather(argv, &errors, &hint);
  Reader read(given, &errors);
  Config c;
  read.uint("twinloop_seeds", &c.seeds, 1);
  read.uint("twinloop_first_seed", &c.first_seed, 0);
  if (read.find("twinloop_seed")) {
    uint64_t seed = 0;
    read.uint("twinloop_seed", &seed, 0);
    c.seed = seed;
  }
  read.text("twinloop_replay", &c.replay);
  read.boolean("twinloop_shrink", &c.shrink);
  read.number("twinloop_shrink_seconds", &c.shrink_seconds, 1e9, "a number of seconds in [0, 1e9]");
  read.number("twinloop_check_determinism", &c.check_determinism, 1, "a fraction in [0, 1]");
  read.count("twinloop_jobs", &c.jobs);
  read.count("twinloop_max_failures", &c.max_failures);
  read.boolean("twinloop_progress", &c.progress);
  read.text("twinloop_replay_dir", &c.replay_dir);
  if (read.find("twinloop_require_probes")) {
    bool require = false;
    read.boolean("twinloop_require_probes", &require);
    c.require_probes = require;
  }
  if (const Given* g = read.find("twinloop_explore")) {
    if (g->value == "branch") {
      c.branch = true;
    } else if (g->value != "seeds") {
      errors.push_back(absl::StrCat("bad value ", quote_bytes(g->value), " for ", g->source,
                                    ": expected seeds or branch (flag --twinloop_explore, variable TWINLOOP_EXPLORE)"));
    }
  }
  read.uint("twinloop_branch_energy", &c.branch_energy, 1);
  if (read.find("twinloop_exhaustive")) {
    int k = 0;
    read.count("twinloop_exhaustive", &k);
    c.exhaustive = k;
  }
  read.uint("twinloop_exhaustive_values", &c.exhaustive_values, 1);
  read.uint("twinloop_exhaustive_max_runs", &c.exhaustive_max_runs, 0);
  const Given* strategy = read.find("twinloop_strategy");
  if (strategy) {
    if (std::optional<StrategyKind> k = parse_strategy(lower(strategy->value))) {
      c.strategy = *k;
    } else {
      std::vector<std::string> names;
      for (StrategyKind k : {StrategyKind::kUniform, StrategyKind::kPct, StrategyKind::kPctcp, StrategyKind::kUrw,
                             StrategyKind::kPortfolio}) {
        names.push_back(std::string(strategy_name(k)));
      }
      errors.push_back(absl::StrCat("bad value ", quote_bytes(strategy->value), " for ", strategy->source,
                                    ": expected uniform, pct, pctcp, urw or portfolio (flag --twinloop_strategy, "
                                    "variable TWINLOOP_STRATEGY); did you mean ",
                                    closest(lower(strategy->value), names), "?"));
    }
  }

  // Contradictions.
  const Given* seed = read.find("twinloop_seed");
  const Given* replay = read.find("twinloop_replay");
  if (seed && replay) {
    errors.push_back(absl::StrCat(seed->as_written(), " and ", replay->as_written(),
                                  " contradict each other: one runs a seed, the other replays a recorded run; give "
                                  "one of them"));
  }
  if (replay && c.shrink) {
    errors.push_back(absl::StrCat(read.find("twinloop_shrink")->source, " does not apply to ", replay->as_written(),
                                  ": shrinking starts from a failing seed (--twinloop_seed=N --twinloop_shrink)"));
  }
  if (replay && c.check_determinism > 0) {
    errors.push_back(absl::StrCat(read.find("twinloop_check_determinism")->as_written(), " does not apply to ",
                                  replay->as_written(), ": the determinism check runs seeds"));
  }
  if (strategy && replay) {
    errors.push_back(absl::StrCat(strategy->as_written(), " and ", replay->as_written(),
                                  " contradict each other: a replay runs under the strategy its file records"));
  }
  // Branching's runs draw after their prefix under the strategy (by their
  // seed); bounded exhaustive runs decide every draw themselves.
  if (strategy && read.find("twinloop_exhaustive")) {
    errors.push_back(absl::StrCat(strategy->as_written(), " applies only to seed sweeps, --twinloop_seed=N and "
                                  "--twinloop_explore=branch: ", read.find("twinloop_exhaustive")->as_written(),
                                  " decides its own draws"));
  }
  // Exploration modes: one at a time, and not with a single seed or a replay.
  const Given* exhaustive = read.find("twinloop_exhaustive");
  const Given* explore = read.find("twinloop_explore");
  if (exhaustive && c.branch) {
    errors.push_back(absl::StrCat(explore->as_written(), " and ", exhaustive->as_written(),
                                  " contradict each other: one explores by branching, the other enumerates every "
                                  "schedule within a bound; give one of them"));
  }
  for (const Given* mode : {c.branch ? explore : nullptr, exhaustive}) {
    if (mode == nullptr) continue;
    for (const Given* single : {seed, replay}) {
      if (single == nullptr) continue;
      errors.push_back(absl::StrCat(mode->as_written(), " and ", single->as_written(),
                                    " contradict each other: one explores many runs, the other runs one; give one "
                                    "of them"));
    }
  }
  {
    std::vector<std::pair<const char*, bool>> needs = {{"twinloop_branch_energy", c.branch},
                                                       {"twinloop_exhaustive_values", c.exhaustive.has_value()},
                                                       {"twinloop_exhaustive_max_runs", c.exhaustive.has_value()}};
    for (const auto& [flag, applies] : needs) {
      const Given* g = read.find(flag);
      if (g == nullptr || applies) continue;
      errors.push_back(absl::StrCat(g->as_written(), " applies only to ",
                                    std::string_view(flag) == "twinloop_branch_energy" ? "--twinloop_explore=branch"
                                                                                        : "--twinloop_exhaustive=K",
                                    ", which is not given"));
    }
  }
  if ((c.branch || exhaustive) && errors.empty()) {
    std::string unused;
    std::vector<const char*> flags = {"twinloop_jobs", "twinloop_max_failures", "twinloop_check_determinism"};
    if (exhaustive) {
      flags.push_back("twinloop_seeds");
      flags.push_back("twinloop_first_seed");
    }
    for (const char* flag : flags) {
      if (const Given* g = read.find(flag)) absl::StrAppend(&unused, unused.empty() ? "" : ", ", g->as_written());
    }
    if (!unused.empty()) {
      c.notes.push_back(absl::StrCat("twinloop: ", (exhaustive ? exhaustive : explore)->as_written(),
                                     " given: the exploration runs in this process, one run at a time, and stops "
                                     "at its first failure",
                                     exhaustive ? " (every unforced draw answers 0: no seed decides)" : "", "; ",
                                     unused, " not used"));
    }
  }
  if (c.seeds - 1 > UINT64_MAX - c.first_seed) {
    errors.push_back(absl::StrCat("the seed range passes the largest seed (2^64 - 1): ", c.seeds, " seeds from ",
                                  c.first_seed));
  }
  // Knobs of a sweep that a single seed or a replay does not use: said once.
  if (seed || replay) {
    std::string unused;
    for (const char* flag : {"twinloop_seeds", "twinloop_first_seed", "twinloop_jobs", "twinloop_max_failures",
                             "twinloop_progress", "twinloop_require_probes"}) {
      if (const Given* g = read.find(flag)) absl::StrAppend(&unused, unused.empty() ? "" : ", ", g->as_written());
    }
    if (!unused.empty() && errors.empty()) {
      c.notes.push_back(absl::StrCat("twinloop: ", seed ? seed->as_written() : replay->as_written(), " given: ",
                                     seed ? absl::StrCat("only seed ", c.seed.value_or(0), " runs")
                                          : std::string("only the replay runs"),
                                     "; ", unused, " not used"));
    }
  }

  if (!errors.empty()) {
    std::string all = errors.size() == 1
                          ? absl::StrCat("twinloop: ", errors[0])
                          : absl::StrCat("twinloop: ", errors.size(), " errors in the flags and environment:");
    if (errors.size() > 1) {
      for (const std::string& e : errors) absl::StrAppend(&all, "\n  ", e);
    }
    if (!hint.empty()) absl::StrAppend(&all, "\n(", hint, ")");
    throw std::invalid_argument(all);
  }
  return c;
}

const Config& config() {
  static const Config c = config_from_flags_and_env(::testing::internal::GetArgvs());
  return c;
}

namespace {
// The simulator's draw-site probes ("draw <site> took a non-default value"):
// listed, never must-hit (a site drawn in a few runs only, or whose other
// answers this test cannot reach, says little about the test).
constexpr absl::string_view kDrawProbePrefix = "draw ";
constexpr absl::string_view kDrawProbeSuffix = " took a non-default value";
bool advisory(const std::pair<std::string, ProbeKind>& key) {
  return key.second == ProbeKind::kSometimes && absl::StartsWith(key.first, kDrawProbePrefix) &&
         absl::EndsWith(key.first, kDrawProbeSuffix);
}
}  // namespace

size_t ProbeTally::must_hit() const {
  size_t n = 0;
  for (const auto& [key, b] : bits) n += key.second != ProbeKind::kUnreachable && !advisory(key);
  return n;
}

std::vector<std::string> ProbeTally::never_hit() const {
  std::vector<std::string> out;
  for (const auto& [key, b] : bits) {
    if (key.second == ProbeKind::kSometimes && !advisory(key) && (b & ::twinloop::internal::kProbeSeenTrue) == 0) {
      out.push_back(describe_probe(key.first, key.second));
    }
  }
  return out;
}

std::vector<std::string> ProbeTally::draws_at_default() const {
  std::vector<std::string> out;
  for (const auto& [key, b] : bits) {
    if (advisory(key) && (b & ::twinloop::internal::kProbeSeenTrue) == 0) {
      out.push_back(key.first.substr(kDrawProbePrefix.size(),
                                     key.first.size() - kDrawProbePrefix.size() - kDrawProbeSuffix.size()));
    }
  }
  return out;
}

std::string ProbeTally::summary() const {
  const std::vector<std::string> never = never_hit();
  std::string s = absl::StrCat("probes: ", must_hit() - never.size(), "/", must_hit(), " hit");
  if (!never.empty()) absl::StrAppend(&s, "; never hit: ", absl::StrJoin(never, ", "));
  const std::vector<std::string> draws = draws_at_default();
  if (!draws.empty()) absl::StrAppend(&s, "; drawn, always 0: ", absl::StrJoin(draws, ", "));
  return s;
}

const char* SeedOutcome::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "";
    case Kind::kAssertion:
      return "assertion";
    case Kind::kException:
      return "exception";
    case Kind::kDeadlock:
      return "deadlock";
    case Kind::kTimeLimit:
      return "time limit";
    case Kind::kUnhandledError:
      return "unhandled error";
    case Kind::kNondeterminism:
      return "nondeterminism";
    case Kind::kDidNotConverge:
      return "did not converge";
    case Kind::kProbe:
      return "probe";
  }
  return "unknown";  // not reached: every enumerator is listed
}

SeedOutcome run_once(Body body, const Options& options) {
  SeedOutcome out;
  ::testing::TestPartResultArray results;
  {
    FirstFailure first{&out};
    Capture capture(&results, &first);
    // Probes: a failed always / a reached unreachable fails the run (even
    // if the code catches the AssertionError, as a failed ASSERT_* stays
    // failed).
    RunProbes probes(&out, [&out, &first](const std::string& message) {
      if (EventLoop* loop = running_loop_or_null()) {
        first.tasks(*loop);
        first.network(*loop);
      }
      set_failure(&out, SeedOutcome::Kind::kProbe, message);
    });
    Simulation sim(options);
    // Errors nobody retrieved (a failed task never awaited, an exception in
    // a callback) fail the run: under simulation they are bugs.
    sim.loop().set_exception_handler([&out, &first](EventLoop& loop, const ExceptionContext& context) {
      std::string what = context.message;
      if (context.exception) {
        try {
          std::rethrow_exception(context.exception);
        } catch (const FatalFailure&) {
          return;  // an ASSERT_* in a task: already recorded
        } catch (const AssertionError& e) {
          if (out.kind == SeedOutcome::Kind::kProbe) return;  // a probe's: already recorded
          absl::StrAppend(&what, ": ", exception_text(e));
        } catch (const std::exception& e) {
          absl::StrAppend(&what, ": ", exception_text(e));
        } catch (...) {
          absl::StrAppend(&what, ": an exception of unknown type");
        }
      }
      if (!context.task.empty()) absl::StrAppend(&what, " [task ", context.task, "]");
      first.network(loop);
      set_failure(&out, SeedOutcome::Kind::kUnhandledError, what);
    });
    try {
      sim.run(guarded(body, &first));
    } catch (const FatalFailure&) {
      // Recorded by the capture.
    } catch (const DeadlockError& e) {
      set_failure(&out, SeedOutcome::Kind::kDeadlock, e.what());
    } catch (const TimeLimitError& e) {
      set_failure(&out, SeedOutcome::Kind::kTimeLimit, e.what());
    } catch (const DidNotConvergeError& e) {
      set_failure(&out, SeedOutcome::Kind::kDidNotConverge, e.what());
    } catch (const AssertionError& e) {
      // A probe's failure (already recorded), or one thrown by hand.
      if (out.kind != SeedOutcome::Kind::kProbe) {
        set_failure(&out, SeedOutcome::Kind::kException, absl::StrCat("the test body raised ", exception_text(e)));
      }
    } catch (const CancelledError& e) {
      set_failure(&out, SeedOutcome::Kind::kException, absl::StrCat("the test body was cancelled: CancelledError(", e.what(), ")"));
    } catch (const std::exception& e) {
      set_failure(&out, SeedOutcome::Kind::kException, absl::StrCat("the test body raised ", exception_text(e)));
    } catch (...) {
      set_failure(&out, SeedOutcome::Kind::kException, "the test body raised an exception of unknown type");
    }
    out.virtual_time_ns = absl::ToInt64Nanoseconds(sim.elapsed());
    out.last_events = sim.last_events();
    out.buggify = sim.buggify_summary();
    if (const World* w = sim.backend().world_if_any()) out.faults = w->fault_log();
    if (options.record || options.replay) out.recording = sim.recording();
  }
  std::string messages;
  for (int i = 0; i < results.size(); ++i) {
    const ::testing::TestPartResult& r = results.GetTestPartResult(i);
    out.failures.push_back(r);
    if (r.failed()) absl::StrAppend(&messages, messages.empty() ? "" : "\n", describe_part(r));
  }
  if (!messages.empty()) {
    if (out.failed) {
      out.what = absl::StrCat(messages, "\n", out.what);
    } else {
      set_failure(&out, SeedOutcome::Kind::kAssertion, messages);
    }
  }
  return out;
}

void run_sim_test(const char* name_c, Options options, Body body, int part, int parts) {
  const Config& c = config();
  const std::string name = name_c;
  if (!c.replay.empty()) {
    // Only the test the file was recorded for replays (checked before any
    // test ran: the file names a test of this binary).
    const ReplayState& replay = replay_state();
    if (!replay.error.empty()) throw std::runtime_error(replay.error);
    if (replay.recording.test != name) {
      return skip(absl::StrCat("replaying ", c.replay, ", recorded for ", replay.recording.test));
    }
    if (part != 0) return skip(absl::StrCat("replaying ", c.replay, " in part 0 of ", name));
    run_replay(name, body, options, replay.recording);
    return;
  }
  // The strategy's pilot run (sim/strategy.h): every draw answers 0; it
  // measures k and the sources, the same whatever the seed range.
  StrategyPlan plan;
  struct ClearPlan {
    ~ClearPlan() { strategy_plan() = nullptr; }
  } clear_plan;
  if (c.strategy != StrategyKind::kUniform && !c.exhaustive) {
    plan.kind = c.strategy;
    Options po = options;
    po.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; };
    po.pilot = &plan.pilot;
    {
      const PilotScope tasks(&plan.pilot);  // pct's per-task counts
      (void)run_once(body, po);
    }
    strategy_plan() = &plan;
    std::string line = absl::StrCat("twinloop: ", name, ": strategy ", std::string(strategy_name(c.strategy)), " (pilot run: ",
                                    plan.pilot.draws, " draws from ", plan.pilot.task_draws.size(), " tasks",
                                    plan.pilot.chains_named ? absl::StrCat(", ", plan.pilot.source_draws.size(), " chains") : "",
                                    ")");
    if (c.strategy == StrategyKind::kPortfolio) {
      if (plan.pilot.chains_named) {
        absl::StrAppend(&line, "; seed % 4 = 0 uniform, 1 and 2 pctcp (chains: pctcp in pct's place), 3 urw");
        absl::StrAppend(&line, "\n  ", describe_strategy(strategy_options(StrategyKind::kPctcp, plan.pilot)));
      } else {
        absl::StrAppend(&line, "; seed % 4 = 0 uniform, 1 pct, 2 pctcp, 3 urw");
        for (StrategyKind k : {StrategyKind::kPct, StrategyKind::kPctcp}) {
          absl::StrAppend(&line, "\n  ", describe_strategy(strategy_options(k, plan.pilot)));
        }
      }
    } else {
      absl::StrAppend(&line, "\n  ", describe_strategy(strategy_options(c.strategy, plan.pilot)));
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (c.seed) {
    if (part != 0) return skip(absl::StrCat("--twinloop_seed=", *c.seed, " runs in part 0 of ", name));
    const bool failed = seed_fails(body, options, *c.seed);
    record_seed_properties(*c.seed, 1, 1, failed ? std::vector<uint64_t>{*c.seed} : std::vector<uint64_t>{});
    if (failed) report_seed(name, body, options, *c.seed);
    return;
  }
  if (c.exhaustive) return run_exhaustive(name, options, body, part, parts);
  if (c.branch) return run_branching(name, options, body, part);
  SweepOptions so;
  so.first_seed = c.first_seed;
  so.seeds = c.seeds;
  so.jobs = c.jobs;
  so.max_failures = c.max_failures;
  so.progress = c.progress;
  so.shard = Shard{part, parts};
  const std::function<bool(uint64_t)> run_seed = [&](uint64_t seed) { return seed_fails(body, options, seed); };
  // The probes this sweep's runs reach (with jobs > 1 the workers send
  // theirs as news).
  ProbeTally tally;
  sweep_tally() = &tally;
  sent_tally() = ProbeTally{};
  so.worker_news = probe_news;
  so.absorb_news = absorb_probe_news;
  SweepResult r;
  try {
    r = sweep_runner() ? sweep_runner()(so, run_seed) : run_sweep(so, run_seed);
  } catch (...) {
    sweep_tally() = nullptr;
    throw;
  }
  sweep_tally() = nullptr;
  if (c.progress || c.jobs != 1) std::fprintf(stderr, "twinloop: %s: %s\n", name.c_str(), format_rate(r).c_str());
  const std::vector<std::string> never = tally.never_hit();
  if (!tally.bits.empty()) ::testing::Test::RecordProperty("twinloop_probes", tally.summary());
  if (!never.empty() || !tally.draws_at_default().empty() || c.progress) std::fprintf(stderr, "twinloop: %s: %s\n", name.c_str(), tally.summary().c_str());
  // A sweep that found nothing must have run every seed it was given: a
  // test that passes without running its seeds would lie.
  const uint64_t asked = shard_seed_count(so.seeds, so.shard);
  record_seed_properties(so.first_seed, asked, r.seeds_run, r.failed_seeds);
  if (r.failed_seeds.empty() && r.seeds_run != asked) {
    add_report(absl::StrCat("\n======== twinloop: ", name, ": the sweep ran ", r.seeds_run, " of the ", asked,
                            " seeds it was asked to run (", so.seeds, " seeds from ", so.first_seed,
                            parts > 1 ? absl::StrCat(", part ", part, " of ", parts) : std::string(),
                            ") and found no failure: the seeds it did not run were not tested. This is a bug in the "
                            "harness (sim/harness/sweep.cc, sim/harness/testing.cc).\n========\n"));
    return;
  }
  // Must-hit probes never hit: a failure when required, if nothing else failed
  // (a failing sweep stopped early; its failures say more).
  if (r.failed_seeds.empty() && !never.empty() && probes_required(asked)) {
    std::string s = absl::StrCat("\n======== twinloop: ", name, ": ", never.size(), " must-hit probe",
                                 never.size() == 1 ? " was" : "s were", " never hit in ", r.seeds_run, " seeds (",
                                 tally.summary(), "):\n");
    for (const std::string& p : never) absl::StrAppend(&s, "  ", p, "\n");
    absl::StrAppend(&s,
                    "a sometimes() that never held, a fault kind that never fired or a draw that never left its "
                    "default means this sweep did not test what it seems to (docs/exploration.md, \"Probes\"); "
                    "run more seeds, fix the profile, or pass --twinloop_require_probes=0\n========\n");
    add_report(s);
  }
  size_t reported = 0;
  for (uint64_t seed : r.failed_seeds) {
    if (c.max_failures > 0 && reported >= static_cast<size_t>(c.max_failures)) break;
    ++reported;
    if (std::find(r.crashed_seeds.begin(), r.crashed_seeds.end(), seed) != r.crashed_seeds.end()) {
      // Re-running it here would crash this process too.
      std::string s = absl::StrCat("\n======== twinloop: ", name, " CRASHED at seed ", seed,
                                   ": the worker process running it died (a signal: a crash, an abort, a "
                                   "sanitizer report)\nreproduce (in a debugger):\n");
      for (const std::string& cmd : commands_for(name, absl::StrCat("--twinloop_seed=", seed))) {
        absl::StrAppend(&s, "  ", cmd, "\n");
      }
      add_report(s + "========\n");
      continue;
    }
    report_seed(name, body, options, seed);
  }
}

namespace internal {

void FatalFailureHelper::operator=(const ::testing::Message& message) const {
  ::testing::internal::AssertHelper(::testing::TestPartResult::kFatalFailure, file_, line_, message_) = message;
  throw FatalFailure{};
}

void set_sweep_runner_for_testing(SweepRunner runner) { sweep_runner() = std::move(runner); }

bool register_sim_test(const char* suite, const char* name, const char* file, int line, Options options,
                       Body body) {
  // The first simulated test registers the check of the flags, the
  // environment and the replay file, which runs once before any test.
  static const bool environment_added = [] {
    ::testing::AddGlobalTestEnvironment(new HarnessEnvironment);
    return true;
  }();
  static_cast<void>(environment_added);
  Shard shard;
  try {
    shard = shard_from_env();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twinloop: %s; running unsharded\n", e.what());
  }
  const std::string full = absl::StrCat(suite, ".", name);
  registry().push_back(SimTestEntry{full, suite, name});
  registered_parts() = shard.count;
  for (int part = 0; part < shard.count; ++part) {
    const std::string test_name =
        shard.count == 1 ? std::string(name) : absl::StrCat(name, "/part_", part, "_of_", shard.count);
    ::testing::RegisterTest(suite, test_name.c_str(), nullptr, nullptr, file, line,
                            [full, options, body, part, parts = shard.count, file, line]() -> ::testing::Test* {
                              class SimTest : public ::testing::Test {
                               public:
                                SimTest(std::string n, Options o, Body b, int p, int k, const char* f, int l)
                                    : n_(std::move(n)), o_(std::move(o)), b_(b), p_(p), k_(k), f_(f), l_(l) {}
                                void TestBody() override {
                                  current_location() = TestLocation{f_, l_};
                                  run_sim_test(n_.c_str(), o_, b_, p_, k_);
                                  current_location() = TestLocation{};
                                }

                               private:
                                std::string n_;
                                Options o_;
                                Body b_;
                                int p_;
                                int k_;
                                const char* f_;
                                int l_;
                              };
                              return new SimTest(full, options, body, part, parts, file, line);
                            });
  }
  return true;
}

}  // namespace internal
}  // namespace twinloop::sim::harness
