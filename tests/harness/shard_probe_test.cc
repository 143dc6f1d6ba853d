// A simulated test that writes one line per seed it runs: the seed's first
// draw of a probe site (a function of the seed), to $TWINLOOP_PROBE_LOG.
// harness_driver_test runs it unsharded and as shards and compares the sets.
// Tagged "manual".
#include <cstdio>
#include <cstdlib>

#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::harness {
namespace {

TWINLOOP_SIM_TEST(ShardProbe, LogsItsSeed) {
  const uint64_t probe = get_running_loop().backend().choose("test.probe", uint64_t{1} << 62);
  co_await sleep(absl::Milliseconds(1));
  if (const char* path = std::getenv("TWINLOOP_PROBE_LOG")) {
    if (FILE* f = std::fopen(path, "a")) {
      std::fprintf(f, "%llu\n", static_cast<unsigned long long>(probe));
      std::fclose(f);
    }
  }
}

}  // namespace
}  // namespace twinloop::harness
