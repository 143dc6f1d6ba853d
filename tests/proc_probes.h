// What /proc says about this process, for tests that count leaks: its open
// file descriptors and its zombie children (real/net_test, real/net_stress_test,
// real/process_test, tests/subprocess_stress_test).
#ifndef TWINLOOP_TESTS_PROC_PROBES_H_
#define TWINLOOP_TESTS_PROC_PROBES_H_

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace twinloop::test_util {

// What /proc/self/fd/<fd> points to ("socket:[123]", "anon_inode:[pidfd]",
// "pipe:[7]", a path); "" if nothing.
inline std::string fd_target(int fd) {
  char buf[256];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The open file descriptors of this process, each with what it is, by
// number (the listing's own descriptor left out).
inline std::map<int, std::string> open_fds() {
  std::map<int, std::string> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds[fd] = fd_target(fd);
  }
  ::closedir(dir);
  return fds;
}

// State and parent of `pid` from /proc/<pid>/stat; false if there is none.
// (The command name may hold spaces and parentheses: parse after the last
// ')'.)
inline bool proc_stat(int pid, char* state, int* ppid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream rest(line.substr(paren + 1));
  rest >> *state >> *ppid;
  return static_cast<bool>(rest);
}

// This process's children that are zombies (exited, not reaped).
inline std::vector<int> zombie_children() {
  std::vector<int> zombies;
  DIR* dir = ::opendir("/proc");
  if (!dir) return zombies;
  while (const dirent* entry = ::readdir(dir)) {
    const int pid = std::atoi(entry->d_name);
    if (pid <= 0) continue;
    char state = 0;
    int ppid = 0;
    if (proc_stat(pid, &state, &ppid) && ppid == ::getpid() && state == 'Z') zombies.push_back(pid);
  }
  ::closedir(dir);
  return zombies;
}

}  // namespace twinloop::test_util

#endif  // TWINLOOP_TESTS_PROC_PROBES_H_
