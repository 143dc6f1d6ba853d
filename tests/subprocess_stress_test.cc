// Real-loop robustness of create_subprocess_exec (docs/subprocess.md): 1,000
// sequential and 100 concurrent spawns of /bin/true through the public API,
// and afterwards no zombie child and no file descriptor more than before
// (both counted from /proc).
#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/tests/proc_probes.h"

namespace twinloop {
namespace {

using ::twinloop::test_util::open_fds;
using ::twinloop::test_util::zombie_children;

Coro<int> spawn_true() {
  Process p = co_await create_subprocess_exec("/bin/true");
  co_return co_await p.wait();
}

Coro<int> sequential(int n) {
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    const int rc = co_await spawn_true();
    failures += rc != 0;
  }
  co_return failures;
}

Coro<int> concurrent(int n) {
  std::vector<Coro<int>> all;
  for (int i = 0; i < n; ++i) all.push_back(spawn_true());
  std::vector<int> codes = co_await gather(std::move(all));
  int failures = 0;
  for (int rc : codes) failures += rc != 0;
  co_return failures;
}

// Pipes too: each child's three pipes are opened and closed.
Coro<int> concurrent_with_pipes(int n) {
  std::vector<Coro<int>> all;
  for (int i = 0; i < n; ++i) {
    all.push_back([]() -> Coro<int> {
      SubprocessOptions o;
      o.stdin = subprocess::PIPE;
      o.stdout = subprocess::PIPE;
      o.stderr = subprocess::PIPE;
      std::vector<std::string> no_args;
      Process p = co_await create_subprocess_exec("/bin/cat", std::move(no_args), o);
      auto out = co_await p.communicate("x");
      co_return out.first == "x" ? *p.returncode() : -1000;
    }());
  }
  std::vector<int> codes = co_await gather(std::move(all));
  int failures = 0;
  for (int rc : codes) failures += rc != 0;
  co_return failures;
}

TEST(SubprocessStress, ThousandSequentialSpawnsLeaveNoZombieAndNoFd) {
  const int fds_before = static_cast<int>(open_fds().size());
  ASSERT_GT(fds_before, 0);
  EXPECT_EQ(real::run(sequential(1000)), 0);
  EXPECT_EQ(static_cast<int>(zombie_children().size()), 0);
  EXPECT_EQ(static_cast<int>(open_fds().size()), fds_before);
}

TEST(SubprocessStress, HundredConcurrentSpawnsLeaveNoZombieAndNoFd) {
  const int fds_before = static_cast<int>(open_fds().size());
  EXPECT_EQ(real::run(concurrent(100)), 0);
  EXPECT_EQ(static_cast<int>(zombie_children().size()), 0);
  EXPECT_EQ(static_cast<int>(open_fds().size()), fds_before);
}

TEST(SubprocessStress, HundredConcurrentSpawnsWithPipesLeaveNoZombieAndNoFd) {
  const int fds_before = static_cast<int>(open_fds().size());
  EXPECT_EQ(real::run(concurrent_with_pipes(100)), 0);
  EXPECT_EQ(static_cast<int>(zombie_children().size()), 0);
  EXPECT_EQ(static_cast<int>(open_fds().size()), fds_before);
}

}  // namespace
}  // namespace twinloop
