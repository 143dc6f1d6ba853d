#include "sim/testing.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "api/errors.h"
#include "api/event_loop.h"
#include "gtest/gtest-spi.h"
#include "sim/choice.h"
#include "sim/shrink.h"
#include "sim/simulation.h"
#include "sim/sweep.h"

namespace twinloop::sim::testing {
namespace {

// ---------------------------------------------------------------- config

struct Knob {
  const char* flag;  // without the leading "--"
  const char* env;
};

// The value of --flag=value (or of a bare --flag: "1"), else of $ENV.
std::optional<std::string> lookup(const std::vector<std::string>& argv, const Knob& k) {
  const std::string flag = absl::StrCat("--", k.flag);
  std::optional<std::string> found;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == flag) found = "1";
    if (absl::StartsWith(a, flag + "=")) found = a.substr(flag.size() + 1);
  }
  if (found) return found;
  if (const char* v = std::getenv(k.env)) return std::string(v);
  return std::nullopt;
}

[[noreturn]] void bad_knob(const Knob& k, const std::string& value, const char* expected) {
  throw std::invalid_argument(absl::StrCat("twinloop: bad value '", value, "' for --", k.flag, " / ", k.env,
                                           ": expected ", expected));
}

template <class Int>
void read_int(const std::vector<std::string>& argv, const Knob& k, Int* out, Int min) {
  if (auto v = lookup(argv, k)) {
    Int x{};
    if (!absl::SimpleAtoi(*v, &x) || x < min) bad_knob(k, *v, min == 0 ? "an integer >= 0" : "an integer >= 1");
    *out = x;
  }
}

void read_bool(const std::vector<std::string>& argv, const Knob& k, bool* out) {
  if (auto v = lookup(argv, k)) {
    if (*v == "1" || *v == "true" || *v == "yes") {
      *out = true;
    } else if (*v == "0" || *v == "false" || *v == "no") {
      *out = false;
    } else {
      bad_knob(k, *v, "0 or 1");
    }
  }
}

void read_fraction(const std::vector<std::string>& argv, const Knob& k, double* out, double max) {
  if (auto v = lookup(argv, k)) {
    double x = 0;
    if (!absl::SimpleAtod(*v, &x) || !(x >= 0) || x > max) bad_knob(k, *v, "a number in range");
    *out = x;
  }
}

// ---------------------------------------------------------------- running one seed

// Captures GoogleTest failures of one run (instead of reporting them) and,
// at the first one, what every live task was doing.
class Capture : public ::testing::ScopedFakeTestPartResultReporter {
 public:
  Capture(::testing::TestPartResultArray* results, SeedOutcome* out)
      : ScopedFakeTestPartResultReporter(INTERCEPT_ONLY_CURRENT_THREAD, results), out_(out) {}

  void ReportTestPartResult(const ::testing::TestPartResult& r) override {
    ScopedFakeTestPartResultReporter::ReportTestPartResult(r);
    if (r.failed() && out_->tasks.empty()) {
      if (EventLoop* loop = running_loop_or_null()) out_->tasks = describe_live_tasks(*loop);
    }
  }

 private:
  SeedOutcome* out_;
};

Coro<void> guarded(Body body, SeedOutcome* out) {
  std::exception_ptr error;
  try {
    co_await body();
  } catch (...) {
    error = std::current_exception();
    if (out->tasks.empty()) out->tasks = describe_live_tasks(get_running_loop());
  }
  if (error) std::rethrow_exception(error);
}

std::string exception_text(const std::exception& e) { return absl::StrCat(typeid(e).name(), ": ", e.what()); }

void set_failure(SeedOutcome* out, std::string kind, std::string what) {
  if (out->failed) {
    absl::StrAppend(&out->what, "\n", what);
    return;
  }
  out->failed = true;
  out->kind = std::move(kind);
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

// ---------------------------------------------------------------- reporting

std::string replay_dir() {
  const Config& c = config();
  return c.replay_dir.empty() ? default_replay_dir() : c.replay_dir;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string::npos) {
    return s;
  }
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

std::string filter_for(const std::string& name) { return absl::StrCat(name, ":", name, "/*"); }

// Commands that rerun `name` with `arg` (e.g. "--twinloop_seed=7").
std::vector<std::string> commands_for(const std::string& name, const std::string& arg) {
  std::vector<std::string> out;
  if (const char* target = std::getenv("TEST_TARGET")) {
    out.push_back(absl::StrCat("bazel test ", target, " --test_output=streamed --test_filter=",
                               shell_quote(filter_for(name)), " --test_arg=", shell_quote(arg)));
  }
  const std::vector<std::string>& argv = ::testing::internal::GetArgvs();
  std::string binary = argv.empty() ? std::string("<test binary>") : argv[0];
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(binary, ec);
  if (!ec) binary = abs.lexically_normal().string();
  out.push_back(absl::StrCat(shell_quote(binary), " --gtest_filter=", shell_quote(filter_for(name)), " ",
                             shell_quote(arg)));
  return out;
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

constexpr size_t kReportEvents = 20;

std::string format_report(const std::string& name, const std::string& run_label, const SeedOutcome& o,
                          const std::string& replay_path, const std::vector<std::string>& commands,
                          const std::string& extra) {
  std::string s = absl::StrCat("\n======== twinloop: ", name, " FAILED at ", run_label, ", virtual time ",
                               absl::FormatDuration(absl::Nanoseconds(o.virtual_time_ns)), "\n");
  absl::StrAppend(&s, "what failed (", o.kind, "):\n", indent(o.what, "  "));
  if (!o.tasks.empty()) absl::StrAppend(&s, "live tasks at the failure:", o.tasks, "\n");
  if (!o.buggify.empty()) absl::StrAppend(&s, o.buggify, "\n");
  if (!o.last_events.empty()) {
    const size_t n = std::min(o.last_events.size(), kReportEvents);
    absl::StrAppend(&s, "last ", n, " events:\n");
    for (size_t i = o.last_events.size() - n; i < o.last_events.size(); ++i) {
      const Event& e = o.last_events[i];
      absl::StrAppend(&s, "  ", describe_event(EventRecord{e.time_ns, e.kind, e.id, 0}), "\n");
    }
  }
  if (!extra.empty()) absl::StrAppend(&s, extra);
  if (!replay_path.empty()) {
    absl::StrAppend(&s, "replay file: ", replay_path, "\n");
    if (std::getenv("TEST_UNDECLARED_OUTPUTS_DIR") && config().replay_dir.empty()) {
      absl::StrAppend(&s, "  (under Bazel it is saved in the test's outputs: bazel-testlogs/<package>/<target>/",
                      "test.outputs/, zipped as outputs.zip)\n");
    }
  }
  absl::StrAppend(&s, "reproduce:\n");
  for (const std::string& c : commands) absl::StrAppend(&s, "  ", c, "\n");
  absl::StrAppend(&s, "========\n");
  return s;
}

std::string write_replay(const std::string& name, const std::string& suffix, Recording r, const std::string& failure,
                         const std::string& command) {
  r.test = name;
  r.failure = failure;
  r.command = command;
  const std::string path = replay_file_path(replay_dir(), absl::StrCat(name, "-", suffix));
  try {
    write_recording_file(path, r);
  } catch (const std::exception& e) {
    return absl::StrCat("(not written: ", e.what(), ")");
  }
  return path;
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

void report_failure(const SeedOutcome& o, const std::string& report) {
  for (const ::testing::TestPartResult& r : o.failures) {
    if (!r.failed()) continue;
    ::testing::internal::AssertHelper(::testing::TestPartResult::kNonFatalFailure,
                                      r.file_name() ? r.file_name() : "unknown file", r.line_number(),
                                      r.message()) = ::testing::Message();
  }
  add_report(report);
}

Options seeded(Options options, uint64_t seed, bool record) {
  options.seed = seed;
  options.record = record;
  return options;
}

// Runs `seed` twice (recording) and compares the event streams.
std::optional<std::string> determinism_mismatch(Body body, const Options& options, uint64_t seed) {
  const SeedOutcome a = run_once(body, seeded(options, seed, true));
  const SeedOutcome b = run_once(body, seeded(options, seed, true));
  std::optional<Divergence> d = first_divergence(a.recording.events, b.recording.events);
  if (!d) return std::nullopt;
  return absl::StrCat("nondeterministic: two runs of seed ", seed, " differ at event ", d->index, ": run 1 ",
                      d->expected ? describe_event(*d->expected) : std::string("ended"), ", run 2 ",
                      d->actual ? describe_event(*d->actual) : std::string("ended"),
                      " (something other than the seed decides: the wall clock, an address, an unordered "
                      "container, a thread, OS randomness?)");
}

// One seed as the sweep sees it: failed, or (when sampled) nondeterministic.
bool seed_fails(Body body, const Options& options, uint64_t seed) {
  if (run_once(body, seeded(options, seed, false)).failed) return true;
  if (sampled(seed, config().check_determinism)) return determinism_mismatch(body, options, seed).has_value();
  return false;
}

// Re-runs a failing seed with recording, writes its replay file, shrinks it
// if asked, and reports it.
void report_seed(const std::string& name, Body body, const Options& options, uint64_t seed) {
  const Config& c = config();
  SeedOutcome o = run_once(body, seeded(options, seed, true));
  if (!o.failed) {
    if (std::optional<std::string> mismatch = determinism_mismatch(body, options, seed)) {
      set_failure(&o, "nondeterminism", *mismatch);
    } else {
      // It failed in the sweep but not now: the test itself is not
      // deterministic (or failed in a worker process only).
      set_failure(&o, "nondeterminism",
                  absl::StrCat("seed ", seed, " failed in the sweep but passed when run again"));
    }
  }
  const std::string seed_arg = absl::StrCat("--twinloop_seed=", seed);
  std::vector<std::string> commands = commands_for(name, seed_arg);
  const std::string path =
      write_replay(name, absl::StrCat("seed", seed), o.recording, absl::StrCat(o.kind, ": ", o.what), commands[0]);
  for (const std::string& cmd : commands_for(name, absl::StrCat("--twinloop_replay=", path))) commands.push_back(cmd);

  std::string extra;
  if (c.shrink && o.kind != "nondeterminism") {
    const std::string kind = o.kind;
    auto fails = [&](const Recording& candidate) -> std::optional<Recording> {
      Options r = options_for_replay(candidate, options);
      r.replay = std::make_shared<Recording>(candidate);
      r.fallback = Options::Fallback::kDefault;
      r.record = true;
      SeedOutcome co = run_once(body, r);
      if (co.failed && co.kind == kind) return co.recording;
      return std::nullopt;
    };
    ShrinkOptions so;
    so.time_budget = absl::Seconds(c.shrink_seconds);
    ShrinkResult sr = shrink(o.recording, fails, so);
    const std::string min_path = write_replay(name, absl::StrCat("seed", seed, ".min"), sr.minimal,
                                              absl::StrCat(o.kind, ": ", o.what), "");
    absl::StrAppend(&extra, "shrunk in ", sr.runs, " runs", sr.budget_exhausted ? " (budget exhausted)" : "",
                    ":\n  before: ", describe(sr.before), "\n  after:  ", describe(sr.after),
                    "\nminimal replay file: ", min_path, "\n");
    for (const std::string& cmd : commands_for(name, absl::StrCat("--twinloop_replay=", min_path))) {
      commands.push_back(cmd);
    }
  }
  report_failure(o, format_report(name, absl::StrCat("seed ", seed), o, path, commands, extra));
}

void run_replay(const std::string& name, Body body, const Options& options) {
  const Config& c = config();
  Recording rec = read_recording_file(c.replay);
  Options o = options_for_replay(rec, options);
  o.replay = std::make_shared<Recording>(rec);
  SeedOutcome out = run_once(body, o);
  std::string extra;
  // Divergence: compare the events of this run with the recording's.
  if (std::optional<Divergence> d = first_divergence(rec.events, out.recording.events)) {
    absl::StrAppend(&extra, describe_divergence(*d), "\n");
    std::fprintf(stderr, "twinloop: replaying %s: %s\n", c.replay.c_str(), describe_divergence(*d).c_str());
  } else {
    std::fprintf(stderr, "twinloop: replaying %s: the run matches the recording (%zu events)\n", c.replay.c_str(),
                 out.recording.events.size());
  }
  if (out.failed) {
    report_failure(out, format_report(name, absl::StrCat("replay of ", c.replay), out, c.replay,
                                      commands_for(name, absl::StrCat("--twinloop_replay=", c.replay)), extra));
  }
}

}  // namespace

// ---------------------------------------------------------------- public

Config config_from_flags_and_env(const std::vector<std::string>& argv) {
  Config c;
  read_int(argv, {"twinloop_seeds", "TWINLOOP_SEEDS"}, &c.seeds, uint64_t{1});
  read_int(argv, {"twinloop_first_seed", "TWINLOOP_FIRST_SEED"}, &c.first_seed, uint64_t{0});
  uint64_t seed = 0;
  const Knob seed_knob{"twinloop_seed", "TWINLOOP_SEED"};
  if (lookup(argv, seed_knob)) {
    read_int(argv, seed_knob, &seed, uint64_t{0});
    c.seed = seed;
  }
  if (auto v = lookup(argv, {"twinloop_replay", "TWINLOOP_REPLAY"})) c.replay = *v;
  read_bool(argv, {"twinloop_shrink", "TWINLOOP_SHRINK"}, &c.shrink);
  read_fraction(argv, {"twinloop_shrink_seconds", "TWINLOOP_SHRINK_SECONDS"}, &c.shrink_seconds, 1e9);
  read_fraction(argv, {"twinloop_check_determinism", "TWINLOOP_CHECK_DETERMINISM"}, &c.check_determinism, 1);
  read_int(argv, {"twinloop_jobs", "TWINLOOP_JOBS"}, &c.jobs, 0);
  read_int(argv, {"twinloop_max_failures", "TWINLOOP_MAX_FAILURES"}, &c.max_failures, 0);
  read_bool(argv, {"twinloop_progress", "TWINLOOP_PROGRESS"}, &c.progress);
  if (auto v = lookup(argv, {"twinloop_replay_dir", "TWINLOOP_REPLAY_DIR"})) c.replay_dir = *v;
  return c;
}

const Config& config() {
  static const Config c = config_from_flags_and_env(::testing::internal::GetArgvs());
  return c;
}

SeedOutcome run_once(Body body, const Options& options) {
  SeedOutcome out;
  ::testing::TestPartResultArray results;
  {
    Capture capture(&results, &out);
    Simulation sim(options);
    // Errors nobody retrieved (a failed task never awaited, an exception in
    // a callback) fail the run: under simulation they are bugs.
    sim.loop().set_exception_handler([&out](EventLoop&, const ExceptionContext& context) {
      std::string what = context.message;
      if (context.exception) {
        try {
          std::rethrow_exception(context.exception);
        } catch (const FatalFailure&) {
          return;  // an ASSERT_* in a task: already recorded
        } catch (const std::exception& e) {
          absl::StrAppend(&what, ": ", exception_text(e));
        } catch (...) {
          absl::StrAppend(&what, ": an exception of unknown type");
        }
      }
      if (!context.task.empty()) absl::StrAppend(&what, " [task ", context.task, "]");
      set_failure(&out, "unhandled error", what);
    });
    try {
      sim.run(guarded(body, &out));
    } catch (const FatalFailure&) {
      // Recorded by the capture.
    } catch (const DeadlockError& e) {
      set_failure(&out, "deadlock", e.what());
    } catch (const TimeLimitError& e) {
      set_failure(&out, "time limit", e.what());
    } catch (const CancelledError& e) {
      set_failure(&out, "exception", absl::StrCat("the test body was cancelled: CancelledError(", e.what(), ")"));
    } catch (const std::exception& e) {
      set_failure(&out, "exception", absl::StrCat("the test body raised ", exception_text(e)));
    } catch (...) {
      set_failure(&out, "exception", "the test body raised an exception of unknown type");
    }
    out.virtual_time_ns = absl::ToInt64Nanoseconds(sim.elapsed());
    out.last_events = sim.last_events();
    out.buggify = sim.buggify_summary();
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
      set_failure(&out, "assertion", messages);
    }
  }
  return out;
}

void run_sim_test(const char* name_c, Options options, Body body, int part, int parts) {
  const Config& c = config();
  const std::string name = name_c;
  if (!c.replay.empty()) {
    if (part == 0) run_replay(name, body, options);
    return;
  }
  if (c.seed) {
    if (part != 0) return;
    if (seed_fails(body, options, *c.seed)) report_seed(name, body, options, *c.seed);
    return;
  }
  SweepOptions so;
  so.first_seed = c.first_seed;
  so.seeds = c.seeds;
  so.jobs = c.jobs;
  so.max_failures = c.max_failures;
  so.progress = c.progress;
  so.shard = Shard{part, parts};
  SweepResult r = run_sweep(so, [&](uint64_t seed) { return seed_fails(body, options, seed); });
  if (c.progress || c.jobs != 1) std::fprintf(stderr, "twinloop: %s: %s\n", name.c_str(), format_rate(r).c_str());
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

bool register_sim_test(const char* suite, const char* name, const char* file, int line, Options options,
                       Body body) {
  Shard shard;
  try {
    shard = shard_from_env();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twinloop: %s; running unsharded\n", e.what());
  }
  const std::string full = absl::StrCat(suite, ".", name);
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
}  // namespace twinloop::sim::testing
