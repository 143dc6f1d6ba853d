// twinloop-replay: prints a replay file (sim/harness/replay_file.h) for people.
//
//   bazel run //sim/harness:replay_tool -- print FILE      summary + non-default decisions
//   bazel run //sim/harness:replay_tool -- decisions FILE  every decision
//   bazel run //sim/harness:replay_tool -- events FILE     every event
//   bazel run //sim/harness:replay_tool -- diff A B        where two recordings' events part
//   ./twinloop replay print FILE                   the same through the entry script
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "twinloop/sim/harness/replay_file.h"

namespace {

using twinloop::sim::Decision;
using twinloop::sim::EventRecord;
using twinloop::sim::Recording;

int usage() {
  std::fprintf(stderr,
               "usage: replay_tool print FILE | decisions FILE | events FILE | diff FILE_A FILE_B\n");
  return 2;
}

void print_summary(const Recording& r) {
  std::printf("seed        %llu\n", static_cast<unsigned long long>(r.seed));
  if (!r.test.empty()) std::printf("test        %s\n", r.test.c_str());
  if (!r.failure.empty()) std::printf("failure     %s\n", r.failure.c_str());
  if (!r.command.empty()) std::printf("command     %s\n", r.command.c_str());
  for (const auto& [name, v] : r.options) std::printf("option      %s = %lld\n", name.c_str(), static_cast<long long>(v));
  std::printf("events      %zu", r.events.size());
  if (!r.events.empty()) {
    std::printf(", virtual time %s",
                absl::FormatDuration(absl::Nanoseconds(r.events.back().time_ns)).c_str());
  }
  std::printf("\ndecisions   %zu, %zu not default\n", r.decisions.size(),
              twinloop::sim::non_default_choices(r.decisions));
  std::map<std::string, std::pair<size_t, size_t>> by_site;  // draws, non-default
  for (const Decision& d : r.decisions) {
    auto& c = by_site[d.site];
    ++c.first;
    c.second += d.value != 0;
  }
  for (const auto& [site, c] : by_site) {
    std::printf("  %-40s %6zu draws, %6zu not default\n", site.c_str(), c.first, c.second);
  }
  std::printf("non-default decisions (task: site occurrence: value of n):\n");
  for (const Decision& d : r.decisions) {
    if (d.value == 0) continue;
    std::printf("  %s: %s %llu: %llu of %llu\n", d.task.empty() ? "/" : d.task.c_str(), d.site.c_str(),
                static_cast<unsigned long long>(d.occurrence), static_cast<unsigned long long>(d.value),
                static_cast<unsigned long long>(d.n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  if (cmd != "print" && cmd != "decisions" && cmd != "events" && cmd != "diff") return usage();
  try {
    if (cmd == "diff") {
      if (argc != 4) return usage();
      const Recording a = twinloop::sim::read_recording_file(argv[2]);
      const Recording b = twinloop::sim::read_recording_file(argv[3]);
      auto d = twinloop::sim::first_divergence(a.events, b.events);
      if (!d) {
        std::printf("identical: %zu events\n", a.events.size());
        return 0;
      }
      std::printf("%s\n", twinloop::sim::describe_divergence(*d).c_str());
      return 1;
    }
    if (argc != 3) return usage();
    const Recording r = twinloop::sim::read_recording_file(argv[2]);
    if (cmd == "print") {
      print_summary(r);
    } else if (cmd == "decisions") {
      for (const Decision& d : r.decisions) {
        std::printf("%s %s %llu %llu %llu\n", d.task.empty() ? "/" : d.task.c_str(), d.site.c_str(),
                    static_cast<unsigned long long>(d.occurrence), static_cast<unsigned long long>(d.n),
                    static_cast<unsigned long long>(d.value));
      }
    } else if (cmd == "events") {
      for (size_t i = 0; i < r.events.size(); ++i) {
        std::printf("%6zu  %s\n", i, twinloop::sim::describe_event(r.events[i]).c_str());
      }
    } else {
      return usage();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replay_tool: %s\n", e.what());
    return 1;
  }
  return 0;
}
