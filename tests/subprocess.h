// Running a command (a test binary) from a test and capturing its output.
#ifndef TWINLOOP_TESTS_SUBPROCESS_H_
#define TWINLOOP_TESTS_SUBPROCESS_H_

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"

namespace twinloop::test_util {

struct CommandResult {
  int exit_code = -1;  // 128 if killed by a signal
  std::string output;  // stdout and stderr
};

// The absolute path of a helper binary that the test's BUILD target names in
// the environment variable `var`:
//
//   cc_test(..., data = [":probe"], env = {"PROBE": "$(rootpath :probe)"})
//
// $(rootpath) is relative to the test's working directory (the main
// repository's runfiles directory) both when twinloop is the main repository
// ("tests/x/probe") and when it is an external one, whatever the name the
// depending project gave it ("external/<name>/tests/x/probe"), so
// `bazel test @twinloop//...` finds the same binaries as `bazel test //...`.
// An unset variable is a loud error, never a guess.
inline std::string runfile_from_env(const char* var) {
  const char* value = std::getenv(var);
  if (value == nullptr || *value == '\0') {
    std::fprintf(stderr,
                 "error: $%s is not set: the test's BUILD target passes the helper binary as "
                 "env = {\"%s\": \"$(rootpath :binary)\"}\n",
                 var, var);
    std::abort();
  }
  return std::filesystem::absolute(value).string();
}

// Runs `command` through /bin/sh with the variables `env` ("A=1 B=2") set
// and the Bazel/GoogleTest variables that would make the child behave as
// part of this test (its target, its shard) unset.
inline CommandResult run_command(const std::string& command, const std::string& env = "") {
  CommandResult r;
  const std::string line = absl::StrCat(
      "env -u TEST_TARGET -u GTEST_SHARD_INDEX -u GTEST_TOTAL_SHARDS -u TEST_SHARD_INDEX -u TEST_TOTAL_SHARDS "
      "-u TEST_SHARD_STATUS_FILE ",
      env, " ", command, " 2>&1");
  FILE* p = popen(line.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

// A fresh directory `name` under the test's temporary directory
// ($TEST_TMPDIR, else /tmp), created if needed.
inline std::string test_dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/", name);
  std::filesystem::create_directories(dir);
  return dir;
}

// The first match of `pattern`'s group 1 in `output`, or "".
inline std::string first_match(const std::string& output, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(output, m, std::regex(pattern)) ? std::string(m[1]) : std::string();
}

}  // namespace twinloop::test_util

#endif  // TWINLOOP_TESTS_SUBPROCESS_H_
