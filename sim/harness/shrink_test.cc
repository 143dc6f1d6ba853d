// The shrinker: planted bugs found by scanning seeds, shrunk to the decisions
// that matter, checked by replaying the result.
#include "twinloop/sim/harness/shrink.h"

#include "twinloop/sim/harness/replay_file.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {

void PrintTo(const RunSize& s, std::ostream* os) {
  *os << "{" << s.non_default << ", " << s.value_sum << ", " << s.events << ", " << s.virtual_time_ns << "}";
}

namespace {

using ::testing::HasSubstr;

using MakeMain = std::function<Coro<void>()>;

// ---- Workloads with planted bugs

// (a) Five tasks sleep the same 5 ms, so the timer tie-break draws decide
// who wakes first; the bug is "task 3 ran before task 1". Afterwards each
// task does executor work (latency draws), evaluates buggify sites and
// sleeps (more tie-breaks): noise that cannot matter.
Coro<void> sleeper(std::shared_ptr<std::vector<int>> order, int i) {
  co_await sleep(absl::Milliseconds(5));
  order->push_back(i);
  for (int round = 0; round < 8; ++round) {
    co_await to_thread([] {});
    if (buggify("noise.slow_disk")) co_await sleep(absl::Milliseconds(3));
    const bool hiccup = buggify("noise.hiccup");
    if (hiccup) co_await sleep(absl::Microseconds(100));
    co_await sleep(absl::Milliseconds(1));
  }
}

Coro<void> interleaving_bug() {
  auto order = std::make_shared<std::vector<int>>();
  std::vector<Task<void>> tasks;
  for (int i = 1; i <= 5; ++i) tasks.push_back(create_task(sleeper(order, i)));
  for (Task<void>& t : tasks) co_await t;
  const auto pos = [&](int i) { return std::find(order->begin(), order->end(), i) - order->begin(); };
  if (pos(3) < pos(1)) throw std::logic_error("task 3 ran before task 1");
}

// (b) A lost write when buggify("db.drop_write") fires, among many
// irrelevant draws. Reports the failure through a flag (still_fails).
Coro<void> noise_task() {
  for (int i = 0; i < 30; ++i) {
    co_await to_thread([] {});
    if (buggify("noise.network")) co_await sleep(absl::Milliseconds(2));
    co_await sleep(absl::Milliseconds(1));
  }
}

Coro<void> dropped_write(std::shared_ptr<bool> lost) {
  Task<void> noise = create_task(noise_task());
  for (int i = 0; i < 20; ++i) {
    co_await sleep(absl::Milliseconds(1));
    const bool drop = buggify("db.drop_write");
    if (drop) *lost = true;
    if (buggify("noise.slow_fsync")) co_await sleep(absl::Milliseconds(5));
  }
  co_await noise;
}

// (c) Executor work must finish within 7 ms; a latency above 7000 us fails.
// Executor latency is drawn in [0, 10000] us (the default maximum).
Coro<void> slow_executor() {
  Task<void> noise = create_task([]() -> Coro<void> {
    for (int i = 0; i < 20; ++i) {
      if (buggify("noise.gc_pause")) co_await sleep(absl::Milliseconds(4));
      co_await sleep(absl::Milliseconds(1));
    }
  }());
  EventLoop& loop = get_running_loop();
  for (int i = 0; i < 6; ++i) {
    const int64_t t0 = loop.time_ns();
    co_await to_thread([] {});
    if (loop.time_ns() - t0 > 7'000'000) throw std::runtime_error("executor work took longer than 7ms");
  }
  co_await noise;
}

// (d) A deadlock that needs a fault: a reply that never comes.
Coro<void> lost_reply() {
  for (int i = 0; i < 10; ++i) {
    co_await sleep(absl::Milliseconds(1));
    co_await to_thread([] {});  // noise: a drawn latency per request
    const bool lost = buggify("net.lose_reply");
    if (lost) {
      Future<void> reply = create_future<void>();
      co_await reply;
    }
  }
}

// ---- Helpers

// The first seed in [0, 500) whose ordinary seeded run fails; its recording.
Recording find_failing_seed(const MakeMain& make_main, const StillFails& still_fails = nullptr) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    Simulation sim({.seed = seed, .record = true});
    bool failed = false;
    try {
      sim.run(make_main());
    } catch (const std::exception&) {
      failed = true;
    }
    Recording r = sim.recording();
    if (failed || (still_fails && still_fails(r))) return r;
  }
  ADD_FAILURE() << "no failing seed in [0, 500)";
  return {};
}

// A fresh run replaying `r` with the default fallback: did it fail, and did
// it follow r's events exactly?
struct Replayed {
  bool failed = false;
  bool diverged = false;
};
Replayed replay(const Recording& r, const MakeMain& make_main, const StillFails& still_fails = nullptr) {
  Options o = options_for_replay(r);
  o.replay = std::make_shared<Recording>(r);
  o.fallback = Options::Fallback::kDefault;
  Simulation sim(o);
  Replayed out;
  try {
    sim.run(make_main());
  } catch (const std::exception&) {
    out.failed = true;
  }
  if (!out.failed && still_fails) out.failed = still_fails(sim.recording());
  out.diverged = sim.divergence().has_value();
  return out;
}

std::vector<Decision> non_default(const Recording& r) {
  std::vector<Decision> out;
  for (const Decision& d : r.decisions) {
    if (d.value != 0) out.push_back(d);
  }
  return out;
}

// Every single non-default decision of `r` is necessary: with it set to 0
// (and nothing else changed) the run passes.
void expect_one_minimal(const Recording& r, const MakeMain& make_main, const StillFails& still_fails = nullptr) {
  for (size_t i = 0; i < r.decisions.size(); ++i) {
    if (r.decisions[i].value == 0) continue;
    Recording without = r;
    without.decisions[i].value = 0;
    without.events.clear();
    EXPECT_FALSE(replay(without, make_main, still_fails).failed)
        << "decision " << r.decisions[i].site << " #" << r.decisions[i].occurrence << " = " << r.decisions[i].value
        << " is not needed";
  }
}

// Shrinks and checks what holds for every shrink: smaller, still failing
// (exactly reproduced by a fresh replay), a fixpoint within the budget.
ShrinkResult shrink_and_check(const Recording& failing, const MakeMain& make_main,
                              const StillFails& still_fails = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  ShrinkResult r = shrink(failing, candidate_runner(make_main, still_fails));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "shrunk " << describe(r.before) << " (" << failing.decisions.size() << " decisions) to "
            << describe(r.after) << " in " << r.runs << " runs, " << ms << " ms\n";
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_EQ(r.before, run_size(failing));
  EXPECT_EQ(r.after, run_size(r.minimal));
  EXPECT_LT(r.after.non_default, r.before.non_default);
  EXPECT_TRUE(smaller(r.after, r.before));
  EXPECT_FALSE(r.minimal.failure.empty());
  const Replayed again = replay(r.minimal, make_main, still_fails);
  EXPECT_TRUE(again.failed) << "the minimal recording does not fail when replayed";
  EXPECT_FALSE(again.diverged) << "the minimal recording is not what its run did";
  return r;
}

// ---- Size

TEST(RunSize, CountsNonDefaultDecisionsValuesEventsAndTime) {
  Recording r;
  r.decisions = {{"", "a", 0, 10, 0}, {"", "a", 1, 10, 7}, {"", "b", 0, uint64_t{1} << 40, (uint64_t{1} << 40) - 1}};
  r.events = {{5, internal::EventKind::kTaskStep, 1, 0}, {1500000000, internal::EventKind::kCallback, 2, 0}};
  const RunSize s = run_size(r);
  EXPECT_EQ(s.non_default, 2u);
  EXPECT_EQ(s.value_sum, 7 + (uint64_t{1} << 32));  // each value counts at most 2^32
  EXPECT_EQ(s.events, 2u);
  EXPECT_EQ(s.virtual_time_ns, 1500000000);
  EXPECT_EQ(describe(s), "2 non-default choices, 2 events, virtual time 1.5s");
  EXPECT_EQ(run_size(Recording{}), RunSize{});
  EXPECT_EQ(describe(RunSize{1, 1, 1, 0}), "1 non-default choice, 1 event, virtual time 0");
}

TEST(RunSize, ValueSumSaturates) {
  Recording r;
  for (uint64_t i = 0; i < 10; ++i) r.decisions.push_back({"", "x", i, UINT64_MAX, UINT64_MAX - 1});
  EXPECT_EQ(run_size(r).value_sum, 10 * (uint64_t{1} << 32));
  RunSize big{1, UINT64_MAX, 0, 0};
  EXPECT_TRUE(smaller(RunSize{1, 5, 0, 0}, big));
}

TEST(RunSize, SmallerIsLexicographic) {
  EXPECT_TRUE(smaller({1, 100, 100, 100}, {2, 0, 0, 0}));
  EXPECT_TRUE(smaller({2, 1, 100, 100}, {2, 2, 0, 0}));
  EXPECT_TRUE(smaller({2, 2, 9, 100}, {2, 2, 10, 0}));
  EXPECT_TRUE(smaller({2, 2, 10, 5}, {2, 2, 10, 6}));
  EXPECT_FALSE(smaller({2, 2, 10, 6}, {2, 2, 10, 6}));
  EXPECT_FALSE(smaller({3, 0, 0, 0}, {2, 9, 9, 9}));
}

// ---- The search itself, on synthetic programs (no simulator)

// A stand-in for a simulated run: draws through the candidate's decisions
// with the default fallback, recording what it drew (one event per draw).
class FakeRun {
 public:
  explicit FakeRun(const Recording& candidate) : plan_(candidate.decisions) { out_.seed = candidate.seed; }
  uint64_t draw(const std::string& site, uint64_t n) {
    const uint64_t occurrence = next_[site]++;
    const uint64_t value = std::min(plan_.find(draw_key(0, site, occurrence)).value_or(0), n - 1);
    out_.decisions.push_back({"", site, occurrence, n, value});
    out_.events.push_back({static_cast<int64_t>(out_.events.size()) * 1000, internal::EventKind::kCallback,
                           out_.events.size() + 1, 0});
    return value;
  }
  std::optional<Recording> result(bool failed) const {
    if (!failed) return std::nullopt;
    return out_;
  }

 private:
  DecisionMap plan_;
  std::map<std::string, uint64_t> next_;
  Recording out_;
};

// The recording of a fake program's run with every draw at the given value.
template <class Program>
Recording fake_failing(Program program, const std::function<uint64_t(uint64_t i, uint64_t n)>& value) {
  Recording all;
  // Answer every possible draw: the program reads at most 1000 per site.
  for (const char* site : {"x", "count", "tail"}) {
    for (uint64_t i = 0; i < 1000; ++i) all.decisions.push_back({"", site, i, 0, value(i, 1000)});
  }
  std::optional<Recording> r = program(all);
  EXPECT_TRUE(r.has_value()) << "the fake program must fail with these values";
  return r.value_or(Recording{});
}

TEST(ShrinkSearch, DeltaDebuggingFindsScatteredNecessaryDecisions) {
  // 200 draws; fails iff x#3 and x#199 are set, and x#120 >= 17.
  // (x#199 last: truncation cannot help, chunk removal has to.)
  const auto program = [](const Recording& c) {
    FakeRun run(c);
    std::vector<uint64_t> x;
    for (int i = 0; i < 200; ++i) x.push_back(run.draw("x", 1000));
    return run.result(x[3] != 0 && x[199] != 0 && x[120] >= 17);
  };
  const Recording failing = fake_failing(program, [](uint64_t i, uint64_t) { return 100 + i % 7; });
  ASSERT_EQ(non_default_choices(failing.decisions), 200u);
  const ShrinkResult r = shrink(failing, program);
  EXPECT_FALSE(r.budget_exhausted);
  std::vector<std::pair<uint64_t, uint64_t>> left;  // (occurrence, value)
  for (const Decision& d : non_default(r.minimal)) left.emplace_back(d.occurrence, d.value);
  EXPECT_EQ(left, (std::vector<std::pair<uint64_t, uint64_t>>{{3, 1}, {120, 17}, {199, 1}}));
  EXPECT_EQ(r.after.value_sum, 19u);
  EXPECT_LT(r.runs, 200);
}

TEST(ShrinkSearch, AdoptsTheRunsOwnRecordingWhenItsShapeChanges) {
  // Draws `count` in [0, 100), then that many x, then one tail; fails iff
  // count >= 5, x#4 is set and the tail is set. Lowering count drops the x
  // draws beyond it from the run (the tail, drawn last, keeps truncation
  // from cutting them off first).
  const auto program = [](const Recording& c) {
    FakeRun run(c);
    const uint64_t count = run.draw("count", 100);
    std::vector<uint64_t> x;
    for (uint64_t i = 0; i < count; ++i) x.push_back(run.draw("x", 1000));
    const uint64_t tail = run.draw("tail", 10);
    return run.result(count >= 5 && x[4] != 0 && tail != 0);
  };
  const Recording failing = fake_failing(program, [](uint64_t, uint64_t) { return 80; });
  ASSERT_EQ(failing.decisions.size(), 82u);
  int runs = 0;
  const ShrinkResult r = shrink(failing, [&](const Recording& c) {
    ++runs;
    return program(c);
  });
  EXPECT_EQ(runs, r.runs);
  // count, x#0..4 and the tail: what the run drew, not the candidate.
  ASSERT_EQ(r.minimal.decisions.size(), 7u);
  EXPECT_EQ(r.minimal.decisions[0].site, "count");
  EXPECT_EQ(r.minimal.decisions[0].value, 5u);
  EXPECT_EQ(r.minimal.decisions[5].value, 1u);
  EXPECT_EQ(r.minimal.decisions[6].site, "tail");
  EXPECT_EQ(r.minimal.decisions[6].value, 1u);
  EXPECT_EQ(r.after, (RunSize{3, 7, 7, 6000}));
}

TEST(ShrinkSearch, AFailureWithEveryDecisionAtTheDefaultTakesOneRun) {
  // Fails whatever the draws: the first candidate (all 0) is the answer.
  const auto program = [](const Recording& c) {
    FakeRun run(c);
    for (int i = 0; i < 100; ++i) run.draw("x", 1000);
    return run.result(true);
  };
  const Recording failing = fake_failing(program, [](uint64_t i, uint64_t) { return i + 1; });
  const ShrinkResult r = shrink(failing, program);
  EXPECT_EQ(r.runs, 1);
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_EQ(r.after, (RunSize{0, 0, 100, 99000}));
}

TEST(ShrinkSearch, ToleratesAFailsThatIgnoresTheDefaultFallback) {
  // A `fails` breaking the contract (its runs ignore the candidate and
  // draw what the failing run drew) cannot make the shrinker loop: nothing
  // smaller is ever adopted, and every candidate runs once.
  Recording failing;
  for (uint64_t i = 0; i < 50; ++i) failing.decisions.push_back({"", "x", i, 10, 1 + i % 3});
  const ShrinkResult r = shrink(failing, [&](const Recording&) { return std::optional<Recording>(failing); });
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_EQ(r.after, r.before);
  EXPECT_LT(r.runs, 200);
}

// ---- Shrinking planted bugs

TEST(Shrink, FindsTheTieBreakThatMatters) {
  const MakeMain make_main = [] { return interleaving_bug(); };
  const Recording failing = find_failing_seed(make_main);
  ASSERT_GT(non_default_choices(failing.decisions), 20u);
  const ShrinkResult r = shrink_and_check(failing, make_main);
  // What is left orders the five sleeps due at 5 ms so that task 3's runs
  // before task 1's: picks of that one tie's shuffle (a pick of 2 for the
  // first place, or 1 then 1: both 1-minimal), decided on behalf of the task
  // that scheduled the first of the tied timers (task 1, the first sleeper).
  // Every other decision is the default.
  const std::vector<Decision> left = non_default(r.minimal);
  ASSERT_GE(left.size(), 1u);
  ASSERT_LE(left.size(), 2u);
  for (const Decision& d : left) {
    EXPECT_EQ(d.task, "/interleaving_bug#0/sleeper#0");
    EXPECT_EQ(d.site, "loop.timer_tie");
    EXPECT_EQ(d.n, 5 - d.occurrence) << "a pick of the first tie's shuffle";
  }
  EXPECT_THAT(r.minimal.failure, HasSubstr("task 3 ran before task 1"));
  expect_one_minimal(r.minimal, make_main);
}

TEST(Shrink, KeepsExactlyTheBuggifyFaultThatMatters) {
  auto lost = std::make_shared<bool>(false);
  const MakeMain make_main = [lost] {
    *lost = false;
    return dropped_write(lost);
  };
  const StillFails still_fails = [lost](const Recording&) { return *lost; };
  const Recording failing = find_failing_seed(make_main, still_fails);
  ASSERT_GT(non_default_choices(failing.decisions), 20u);
  const ShrinkResult r = shrink_and_check(failing, make_main, still_fails);
  const std::vector<Decision> left = non_default(r.minimal);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].site, "buggify.enabled:db.drop_write");
  EXPECT_EQ(left[0].value, 3u);
  EXPECT_EQ(left[1].site, "buggify.fire:db.drop_write");
  EXPECT_EQ(left[1].value, 3u);
  EXPECT_EQ(r.minimal.failure, "still_fails");
  expect_one_minimal(r.minimal, make_main, still_fails);
}

TEST(Shrink, MinimisesALatencyToTheSmallestFailingValue) {
  const MakeMain make_main = [] { return slow_executor(); };
  const Recording failing = find_failing_seed(make_main);
  const ShrinkResult r = shrink_and_check(failing, make_main);
  const std::vector<Decision> left = non_default(r.minimal);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].site, "executor.latency_us");
  EXPECT_EQ(left[0].value, 7001u);  // 7000 us passes, 7001 us fails
  EXPECT_EQ(r.after.value_sum, 7001u);
  // One less passes: the binary search found the threshold.
  Recording one_less = r.minimal;
  for (Decision& d : one_less.decisions) {
    if (d.value != 0) d.value -= 1;
  }
  EXPECT_FALSE(replay(one_less, make_main).failed);
  EXPECT_THAT(r.minimal.failure, HasSubstr("longer than 7ms"));
}

TEST(Shrink, ADeadlockIsAFailureToo) {
  const MakeMain make_main = [] { return lost_reply(); };
  const Recording failing = find_failing_seed(make_main);
  const ShrinkResult r = shrink_and_check(failing, make_main);
  EXPECT_EQ(non_default(r.minimal).size(), 2u);
  EXPECT_THAT(r.minimal.failure, HasSubstr("deadlock"));
}

TEST(Shrink, AnAlreadyMinimalRunNeedsNoRuns) {
  const MakeMain make_main = [] { return interleaving_bug(); };
  const Recording failing = find_failing_seed(make_main);
  const ShrinkResult first = shrink(failing, candidate_runner(make_main));
  // Shrinking the result again: every single-decision reduction passes.
  const ShrinkResult second = shrink(first.minimal, candidate_runner(make_main));
  EXPECT_FALSE(second.budget_exhausted);
  EXPECT_EQ(second.after, first.after);
  EXPECT_EQ(second.minimal.decisions, first.minimal.decisions);
  EXPECT_LE(second.runs, 40);  // 0, and the binary search of the one value
  // A failing run with nothing to shrink is returned as it is, without a run.
  Recording trivial;
  trivial.decisions = {{"", "a", 0, 4, 0}};
  int calls = 0;
  const ShrinkResult none = shrink(trivial, [&](const Recording&) {
    ++calls;
    return std::optional<Recording>();
  });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(none.runs, 0);
  EXPECT_FALSE(none.budget_exhausted);
  EXPECT_EQ(none.minimal.decisions, trivial.decisions);
}

// ---- Budget and determinism

TEST(Shrink, StopsAtTheRunBudgetWithAFailingRun) {
  const MakeMain make_main = [] { return interleaving_bug(); };
  const Recording failing = find_failing_seed(make_main);
  const ShrinkResult r = shrink(failing, candidate_runner(make_main), {.max_runs = 3});
  EXPECT_TRUE(r.budget_exhausted);
  EXPECT_EQ(r.runs, 3);
  EXPECT_FALSE(smaller(r.before, r.after));
  EXPECT_TRUE(replay(r.minimal, make_main).failed);
  EXPECT_FALSE(replay(r.minimal, make_main).diverged);

  const ShrinkResult none = shrink(failing, candidate_runner(make_main), {.time_budget = absl::ZeroDuration()});
  EXPECT_TRUE(none.budget_exhausted);
  EXPECT_EQ(none.runs, 0);
  EXPECT_EQ(none.minimal.decisions, failing.decisions);
  EXPECT_EQ(none.after, none.before);
}

TEST(Shrink, IsDeterministic) {
  const MakeMain make_main = [] { return interleaving_bug(); };
  const Recording failing = find_failing_seed(make_main);
  const ShrinkResult a = shrink(failing, candidate_runner(make_main));
  const ShrinkResult b = shrink(failing, candidate_runner(make_main));
  EXPECT_EQ(a.runs, b.runs);
  EXPECT_EQ(a.after, b.after);
  EXPECT_EQ(a.minimal.seed, b.minimal.seed);
  EXPECT_EQ(a.minimal.decisions, b.minimal.decisions);
  EXPECT_EQ(a.minimal.events, b.minimal.events);
  EXPECT_EQ(format_recording(a.minimal), format_recording(b.minimal));
  // A budget stops the same search early: its result is on the same path.
  const ShrinkResult c = shrink(failing, candidate_runner(make_main), {.max_runs = 10});
  const ShrinkResult d = shrink(failing, candidate_runner(make_main), {.max_runs = 10});
  EXPECT_EQ(format_recording(c.minimal), format_recording(d.minimal));
}

TEST(Shrink, CandidatesCarryTheRunsSeedOptionsAndMetadataButNoEvents) {
  const MakeMain make_main = [] { return slow_executor(); };
  Recording failing = find_failing_seed(make_main);
  failing.test = "Suite.Test";
  failing.command = "bazel test //x:y";
  failing.failure = "the original failure";
  std::vector<Recording> seen;
  const auto runner = candidate_runner(make_main);
  const ShrinkResult r = shrink(failing, [&](const Recording& candidate) {
    seen.push_back(candidate);
    return runner(candidate);
  });
  ASSERT_FALSE(seen.empty());
  std::set<std::vector<std::tuple<std::string, uint64_t, uint64_t>>> distinct;  // each candidate runs once
  for (const Recording& c : seen) {
    std::vector<std::tuple<std::string, uint64_t, uint64_t>> set;
    for (const Decision& d : non_default(c)) set.emplace_back(d.site, d.occurrence, d.value);
    std::sort(set.begin(), set.end());
    EXPECT_TRUE(distinct.insert(set).second) << "a candidate ran twice";
    EXPECT_EQ(c.seed, failing.seed);
    EXPECT_EQ(c.options, failing.options);
    EXPECT_EQ(c.test, "Suite.Test");
    EXPECT_TRUE(c.events.empty());
    EXPECT_LT(non_default_choices(c.decisions), non_default_choices(failing.decisions));
  }
  EXPECT_EQ(static_cast<size_t>(r.runs), seen.size());
  EXPECT_EQ(r.minimal.test, "Suite.Test");
  EXPECT_EQ(r.minimal.command, "bazel test //x:y");
  EXPECT_THAT(r.minimal.failure, HasSubstr("longer than 7ms"));  // the minimal run's own failure
}

}  // namespace
}  // namespace twinloop::sim
