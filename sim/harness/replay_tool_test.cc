// replay_tool prints a recorded run and compares two.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;

std::string run(const std::string& args, int* code) {
  std::string out;
  // replay_tool, from the BUILD target's env (tests/subprocess.h).
  static const std::string tool = test_util::runfile_from_env("REPLAY_TOOL");
  FILE* p = popen(absl::StrCat(tool, " ", args, " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return out;
}

Coro<void> workload() {
  std::vector<Task<void>> ts;
  for (int i = 0; i < 4; ++i) ts.push_back(create_task(sleep(absl::Milliseconds(3))));
  for (Task<void>& t : ts) co_await t;
  co_await to_thread([] {});
}

std::string record(uint64_t seed, const std::string& name) {
  Simulation sim({.seed = seed, .record = true});
  sim.run(workload());
  Recording r = sim.recording();
  r.test = "Tool.Example";
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  write_recording_file(path, r);
  return path;
}

TEST(ReplayTool, PrintsASummaryWithTheNonDefaultDecisions) {
  const std::string path = record(5, "a.replay");
  int code = -1;
  const std::string out = run("print " + path, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("seed        5"));
  EXPECT_THAT(out, HasSubstr("test        Tool.Example"));
  EXPECT_THAT(out, HasSubstr("loop.timer_tie"));
  EXPECT_THAT(out, HasSubstr("non-default decisions"));
  const std::string events = run("events " + path, &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(events, HasSubstr("task_step"));
}

TEST(ReplayTool, DiffReportsIdenticalAndDivergentRuns) {
  const std::string a = record(5, "b.replay");
  const std::string same = record(5, "c.replay");
  const std::string other = record(6, "d.replay");
  int code = -1;
  EXPECT_THAT(run(absl::StrCat("diff ", a, " ", same), &code), HasSubstr("identical"));
  EXPECT_EQ(code, 0);
  EXPECT_THAT(run(absl::StrCat("diff ", a, " ", other), &code), HasSubstr("diverged from the recording at event"));
  EXPECT_EQ(code, 1);
}

TEST(ReplayTool, BadFilesAreClearErrors) {
  int code = -1;
  EXPECT_THAT(run("print /nonexistent.replay", &code), HasSubstr("cannot read replay file"));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(run("frobnicate x", &code), HasSubstr("usage"));
  EXPECT_EQ(code, 2);
}

}  // namespace
}  // namespace twinloop::sim
