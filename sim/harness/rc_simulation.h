// twinloop/sim/harness/rc_simulation.h: simulated runs inside RapidCheck properties,
// so that a failing case shrinks its workload AND its schedule together.
//
//   TWINLOOP_RC_GTEST_PROP(Bank, TransfersConserveMoney, ()) {   // or RC_GTEST_PROP
//     const auto transfers = *rc::gen::container<std::vector<Transfer>>(gen_transfer());
//     twinloop::sim::RcSimulation sim("Bank.TransfersConserveMoney");
//     const int total = sim.run(run_transfers(transfers));   // every decision is a RapidCheck draw
//     RC_ASSERT(total == 300);
//   }
//
// Every decision of the simulated loop (timer tie-breaks, executor
// latencies, step jitter, buggify sites) is a RapidCheck pick of a
// twinloop::sim::RcDecision, drawn uniformly from [0, n) whatever the test
// case's size (the seeded loop's distribution: RapidCheck's size-scaled
// `inRange` would answer 0 to every two-way decision below size 50) and
// shrunk towards 0, the default behaviour. When the property fails,
// RapidCheck shrinks the generated workload and these picks together, so
// the counterexample is a small workload under a simple schedule.
//
// What a failing property prints: RapidCheck's counterexample, that is the
// property's own picks (the workload, each shown with its showValue) and
// the simulator's decisions in draw order, each a pick ("twinloop
// decision: loop.timer_tie: 1 of 2"); TWINLOOP_RC_GTEST_PROP (below; the
// arguments of RC_GTEST_PROP) folds those into one line, "twinloop
// decisions: 76 in draw order, 12 not the default", since a run with step
// jitter makes hundreds. Then the failure; then, from the RcSimulation, the
// failing run's non-default decisions by stable key and its replay file.
// RcSimulation writes those lines to the test case's RapidCheck log, which
// RapidCheck prints under the failure ("Log:") for the minimal test case
// only, so they appear once per property:
//
//   Log:
//   twinloop: the schedule of this failing run (RcSimulation 'BankProperty.UnlockedTransfersConserveMoney'):
//     8 decisions, 3 not the default (task: site occurrence: value of n):
//       /run_transfers#0/transfer#0: executor.latency_us 0: 2947 of 10001
//       /run_transfers#0/transfer#1: executor.latency_us 1: 6340 of 10001
//       /run_transfers#0/transfer#0: executor.latency_us 2: 1826 of 10001
//     replay file: twinloop-rc-examples_rapidcheck_property_test-BankProperty.UnlockedTransfersConserveMoney.replay
//       (the first failing run: ...) saved in bazel-testlogs/examples/rapidcheck_property_test/test.outputs/
//       outputs.zip when the test ends; get it out (from the workspace root): unzip -o ...
//
// (at most 20 decisions are listed). Outside a RapidCheck property (a
// plain test replaying a schedule) the same lines go to stderr.
//
// Replay files: while the property fails (the RcSimulation is destroyed
// while an exception propagates, as RC_ASSERT, RC_FAIL and a failing run
// throw: keep it alive until the property's last check), the run is
// written as a replay file, "twinloop-rc-<target>-<name>.first.replay" for
// the first failing run and "twinloop-rc-<target>-<name>.replay" for the
// latest, which after shrinking is the minimal one (RapidCheck runs the
// minimal case once more at the end). <target> is a slug of $TEST_TARGET
// ("//tests/properties:sync_test" -> "tests_properties_sync_test"), else
// the binary's name, so that two targets with the same property name do
// not overwrite each other's files. They go to $TWINLOOP_REPLAY_DIR, else
// $TEST_UNDECLARED_OUTPUTS_DIR (which Bazel zips into the target's
// test.outputs/outputs.zip), else the temporary directory. The file holds
// the schedule; the workload is RapidCheck's (reproduce both with
// RapidCheck's printed `reproduce` string, or replay the schedule over a
// fixed workload by setting TWINLOOP_RC_REPLAY=<file>: draws then come from
// the file by key, 0 where it has none).
//
// Deadlocks, virtual-time limits and exceptions escaping the run propagate
// out of run() and fail the property like any exception.
#ifndef TWINLOOP_SIM_HARNESS_RC_SIMULATION_H_
#define TWINLOOP_SIM_HARNESS_RC_SIMULATION_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "twinloop/api/coro.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {

// One decision of the simulated loop as RapidCheck picks it; a
// counterexample lists them in draw order as "twinloop decision:
// loop.timer_tie: 1 of 2".
struct RcDecision {
  uint64_t value = 0;
  uint64_t n = 0;
  std::string site;
};
inline void showValue(const RcDecision& d, std::ostream& os) { os << d.site << ": " << d.value << " of " << d.n; }

class RcSimulation {
 public:
  explicit RcSimulation(std::string name, Options options = {})
      : name_(std::move(name)), options_(std::move(options)), exceptions_(std::uncaught_exceptions()) {
    options_.record = true;
    if (const char* replay = std::getenv("TWINLOOP_RC_REPLAY")) {
      auto rec = std::make_shared<Recording>(read_recording_file(replay));
      options_ = options_for_replay(*rec, options_);
      options_.replay = std::move(rec);
      options_.fallback = Options::Fallback::kDefault;
    } else {
      options_.chooser = [](std::string_view site, uint64_t n) { return draw(site, n); };
    }
  }
  RcSimulation(const RcSimulation&) = delete;
  RcSimulation& operator=(const RcSimulation&) = delete;

  // Runs `main` to completion under the simulated loop (once per object).
  template <class T>
  T run(Coro<T> main) {
    sim_.emplace(options_);
    return sim_->run(std::move(main));
  }

  Simulation& simulation() { return *sim_; }
  Recording recording() const { return sim_ ? sim_->recording() : Recording{}; }

  ~RcSimulation() {
    if (std::uncaught_exceptions() <= exceptions_ || !sim_) return;
    try {
      Recording r = sim_->recording();
      r.test = name_;
      r.failure = "RapidCheck property failed";
      const bool first = first_failure();
      std::string first_error;
      if (first) first_error = write(replay_path(name_, /*first=*/true), r);
      const std::string error = write(replay_path(name_), r);
      const std::string report = describe_failing_run(r, error, first ? first_error : std::string(), first);
      if (in_property()) {
        rc::detail::log() << report;
      } else {
        std::fputs(report.c_str(), stderr);
      }
    } catch (...) {
      // Never throw from a destructor during unwinding.
    }
  }

  // Where the replay files of `name` go (sim/harness/replay_file.h's
  // default_replay_dir): "<dir>/twinloop-rc-<target>-<name>[.first].replay".
  static std::string replay_path(const std::string& name, bool first = false) {
    return replay_file_path(default_replay_dir(),
                            std::string("rc-") + target_slug() + "-" + name + (first ? ".first" : ""));
  }

  // "N decisions, K not the default (...):" and the non-default ones (at
  // most `max_listed`), one per line, as replay_tool prints them.
  static std::string describe_schedule(const Recording& r, size_t max_listed = 20) {
    const size_t non_default = non_default_choices(r.decisions);
    std::string out = std::to_string(r.decisions.size()) + " decision" + (r.decisions.size() == 1 ? "" : "s") + ", " +
                      std::to_string(non_default) + " not the default";
    if (non_default == 0) return out + " (the default schedule)\n";
    out += " (task: site occurrence: value of n):\n";
    size_t listed = 0;
    for (const Decision& d : r.decisions) {
      if (d.value == 0) continue;
      if (listed++ == max_listed) {
        out += "    ... and " + std::to_string(non_default - max_listed) + " more (replay_tool print FILE lists them)\n";
        break;
      }
      out += "    " + (d.task.empty() ? std::string("/") : d.task) + ": " + d.site + " " + std::to_string(d.occurrence) +
             ": " + std::to_string(d.value) + " of " + std::to_string(d.n) + "\n";
    }
    return out;
  }

 private:
  static uint64_t draw(std::string_view site, uint64_t n) {
    // At full size: inRange scales its range with the test case's size (at
    // size s it draws from about [0, 1 + (n - 1) * s / 100)), which would
    // answer 0 to every two-way decision (a tie of two timers) below size 50
    // and seldom enable a buggify site (3 of [0, 4)).
    auto decision = [n, site = std::string(site)](uint64_t v) { return RcDecision{v, n, site}; };
    return (*rc::gen::resize(100, rc::gen::map(rc::gen::inRange<uint64_t>(0, n), decision))).value;
  }

  // Inside a RapidCheck test case (RC_LOG goes to its report), rather than
  // in a plain test replaying a file.
  static bool in_property() {
    using Param = rc::detail::param::CurrentPropertyContext;
    return rc::detail::ImplicitParam<Param>::value() != Param::defaultValue();
  }

  // Writes `r` to `path`; "" or why it could not.
  static std::string write(const std::string& path, const Recording& r) {
    try {
      write_recording_file(path, r);
      return "";
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  // Under `bazel test`, with the files in $TEST_UNDECLARED_OUTPUTS_DIR: the
  // outputs.zip (relative to the workspace root) Bazel moves them into when
  // the test ends; "" when they stay where they were written.
  static std::string bazel_outputs_zip() {
    const char* target = std::getenv("TEST_TARGET");
    const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
    if (target == nullptr || outputs == nullptr || *target == '\0' || std::getenv("TWINLOOP_REPLAY_DIR") != nullptr) {
      return "";
    }
    std::string label(target);
    if (label.rfind("@", 0) == 0) {
      const size_t slashes = label.find("//");
      if (slashes == std::string::npos) return "";
      label = "external/" + label.substr(1, slashes - 1) + "/" + label.substr(slashes + 2);
    }
    while (!label.empty() && label.front() == '/') label.erase(0, 1);
    const size_t colon = label.rfind(':');
    if (colon != std::string::npos) label[colon] = '/';
    std::string dir = "bazel-testlogs/" + label + "/";
    const char* total = std::getenv("TEST_TOTAL_SHARDS");
    const char* index = std::getenv("TEST_SHARD_INDEX");
    if (total != nullptr && index != nullptr && std::atoi(total) > 1) {
      dir += "shard_" + std::to_string(std::atoi(index) + 1) + "_of_" + std::string(total) + "/";
    }
    return dir + "test.outputs/outputs.zip";
  }

  static std::string file_name(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
  }

  // Where the replay files of this run are, for the report.
  std::string describe_files(const std::string& error, const std::string& first_error, bool first) const {
    const std::string path = replay_path(name_);
    const std::string first_path = replay_path(name_, /*first=*/true);
    if (!error.empty()) return "  replay file: (not written: " + error + ")\n";
    std::string out;
    const std::string zip = bazel_outputs_zip();
    const std::string shown = zip.empty() ? path : file_name(path);
    out += "  replay file: " + shown;
    if (first && !first_error.empty()) {
      out += " (the first failing run's was not written: " + first_error + ")";
    } else if (!first) {
      out += " (the first failing run: " + (zip.empty() ? first_path : file_name(first_path)) + ")";
    }
    out += "\n";
    if (!zip.empty()) {
      out += "    saved in " + zip + " when the test ends; get it out (from the workspace root):\n    unzip -o " + zip +
             " " + file_name(path) + " -d /tmp/twinloop\n";
    }
    return out;
  }

  std::string describe_failing_run(const Recording& r, const std::string& error, const std::string& first_error,
                                   bool first) const {
    return "twinloop: the schedule of this failing run (RcSimulation '" + name_ + "'):\n  " + describe_schedule(r) +
           describe_files(error, first_error, first);
  }

  // True the first time a run of this process fails for this name.
  bool first_failure() {
    static std::set<std::string>* seen = new std::set<std::string>();
    return seen->insert(name_).second;
  }

  std::string name_;
  Options options_;
  int exceptions_;
  std::optional<Simulation> sim_;
};

// RapidCheck's report of `result` (rc::detail::printResultMessage), except
// that each run of consecutive RcDecision picks in a counterexample is one
// entry, "twinloop decisions: 121 in draw order, 18 not the default (by key
// under Log: below)": the failing run's log lists the non-default ones by
// key, and a run with step jitter makes hundreds of picks.
inline std::string rc_report(rc::detail::TestResult result) {
  if (result.is<rc::detail::FailureResult>()) {
    rc::detail::Example& example = result.get<rc::detail::FailureResult>().counterExample;
    const std::string type = rc::detail::typeToString<RcDecision>();
    rc::detail::Example folded;
    for (size_t i = 0; i < example.size();) {
      if (example[i].first != type) {
        folded.push_back(std::move(example[i++]));
        continue;
      }
      size_t picks = 0;
      size_t non_default = 0;
      for (; i < example.size() && example[i].first == type; ++i) {
        ++picks;
        // showValue(RcDecision): "<site>: <value> of <n>".
        const std::string& shown = example[i].second;
        const size_t colon = shown.rfind(": ");
        if (colon == std::string::npos || shown.compare(colon, 5, ": 0 o") != 0) ++non_default;
      }
      folded.emplace_back("twinloop decisions",
                          std::to_string(picks) + " in draw order, " + std::to_string(non_default) +
                              " not the default (by key under Log: below)");
    }
    example = std::move(folded);
  }
  std::ostringstream os;
  rc::detail::printResultMessage(result, os);
  return os.str();
}

// Checks `testable` as rc::check and RC_GTEST_PROP do (RC_PARAMS applies;
// `id` is the key of RC_PARAMS="reproduce=..."), and prints a passing
// property's tag distribution to stdout as RC_GTEST_PROP does. Returns ""
// if the property holds, else its rc_report.
template <class Testable>
std::string rc_check(const std::string& id, const std::string& description, Testable&& testable) {
  rc::detail::TestMetadata metadata;
  metadata.id = id;
  metadata.description = description;
  const rc::detail::TestResult result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata);
  if (result.is<rc::detail::SuccessResult>()) {
    if (!result.get<rc::detail::SuccessResult>().distribution.empty()) {
      rc::detail::printResultMessage(result, std::cout);
      std::cout << std::endl;
    }
    return "";
  }
  return rc_report(result);
}

}  // namespace twinloop::sim

// RC_GTEST_PROP (rapidcheck/gtest.h) for properties that run an
// RcSimulation: the same arguments and RapidCheck behaviour, the failure
// reported by rc_report (the decision picks folded into one line). Expands
// to a GoogleTest TEST: include gtest/gtest.h.
#define TWINLOOP_RC_GTEST_PROP(TestCase, Name, ArgList)                                                 \
  void twinloop_rc_prop_##TestCase##_##Name ArgList;                                                    \
  TEST(TestCase, Name) {                                                                                \
    const std::string twinloop_rc_failure =                                                             \
        ::twinloop::sim::rc_check(#TestCase "/" #Name, #Name, &twinloop_rc_prop_##TestCase##_##Name);   \
    if (!twinloop_rc_failure.empty()) FAIL() << twinloop_rc_failure;                                    \
  }                                                                                                     \
  void twinloop_rc_prop_##TestCase##_##Name ArgList

// How RapidCheck names the picks in a counterexample.
template <>
struct rc::ShowType<twinloop::sim::RcDecision> {
  static void showType(std::ostream& os) { os << "twinloop decision"; }
};

#endif  // TWINLOOP_SIM_HARNESS_RC_SIMULATION_H_
