// Simulated tests for exploration (sim/harness/explore.h), driven by
// explore_driver_test (tagged "manual": some fail on purpose).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"

namespace twinloop::explore_subject {
namespace {

uint64_t draw(std::string_view site, uint64_t n) { return get_running_loop().backend().choose(site, n); }

// A planted bug that needs two independent 1-in-N events: the first draw of
// subject.first_rare answering 1, then (a millisecond and an executor call
// later) the first draw of subject.second_rare answering 1. The first event
// is marked by a sometimes probe, as a user marks a rare state worth
// building on. Executor calls around them (executor.latency_us, 10,001
// answers) add ordinary draws.
template <uint64_t N>
Coro<void> two_rare_events() {
  co_await to_thread([] {});
  const bool first = draw("subject.first_rare", N) == 1;
  TWINLOOP_SOMETIMES(first, "subject: the first rare event");
  co_await sleep(absl::Milliseconds(1));
  co_await to_thread([] {});
  const bool second = draw("subject.second_rare", N) == 1;
  if (first && second) ADD_FAILURE() << "planted: both rare events happened";
}

TWINLOOP_SIM_TEST(Explore, TwoRareEvents) { co_await two_rare_events<1000>(); }
// The same at 1 in 100, where a plain sweep's figure can be measured.
TWINLOOP_SIM_TEST(Explore, TwoRareEventsIn100) { co_await two_rare_events<100>(); }

// Three draws of 3 answers in two tasks, at different times; writes "x y z"
// to $TWINLOOP_PROBE_LOG per run.
Coro<uint64_t> later_draw() {
  co_await sleep(absl::Milliseconds(2));
  co_return draw("subject.z", 3);
}

Coro<std::pair<uint64_t, uint64_t>> three_draws(uint64_t* z) {
  Task<uint64_t> t = create_task(later_draw());
  const uint64_t x = draw("subject.x", 3);
  co_await sleep(absl::Milliseconds(1));
  const uint64_t y = draw("subject.y", 3);
  *z = co_await t;
  co_return std::pair<uint64_t, uint64_t>(x, y);
}

TWINLOOP_SIM_TEST(Explore, LogsItsDraws) {
  uint64_t z = 0;
  const auto [x, y] = co_await three_draws(&z);
  if (const char* path = std::getenv("TWINLOOP_PROBE_LOG")) {
    if (FILE* f = std::fopen(path, "a")) {
      std::fprintf(f, "%llu %llu %llu\n", static_cast<unsigned long long>(x), static_cast<unsigned long long>(y),
                   static_cast<unsigned long long>(z));
      std::fclose(f);
    }
  }
}

// Fails when the first and the last of the three draws are both non-default.
TWINLOOP_SIM_TEST(Explore, FailsWithTwoNonDefaultDraws) {
  uint64_t z = 0;
  const auto [x, y] = co_await three_draws(&z);
  static_cast<void>(y);
  EXPECT_FALSE(x == 2 && z == 1) << "planted: x = 2 and z = 1";
}

// A draw of 100 answers: bounded runs try only some of them.
TWINLOOP_SIM_TEST(Explore, WideDraw) {
  const uint64_t v = draw("subject.wide", 100);
  co_await sleep(absl::Milliseconds(1));
  EXPECT_NE(v, 50u) << "planted: 50 is not among the 8 values tried per draw (1, 15, 29, ..., 99)";
}

// Three hosts: a counter per connection on "b"; clients on "a" and "c" each send three
// increments over their own connection and read the answers.
constexpr uint16_t kPort = 7000;

Coro<void> serve(StreamReader reader, StreamWriter writer) {
  int count = 0;
  for (;;) {
    const std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(absl::StrCat(++count, "\n"));
    co_await writer.drain();
  }
  writer.close();
}

Coro<Server> start_counter() {
  ClientConnected handler = &serve;
  co_return co_await start_server(std::move(handler), "0.0.0.0", kPort);
}

Coro<void> client() {
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("b", kPort);
  for (int i = 0; i < 3; ++i) {
    conn.second.write("inc\n");
    const std::string answer = co_await conn.first.readline();
    EXPECT_FALSE(answer.empty());
  }
  conn.second.close();
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(Explore, ThreeHosts,
                               (sim::Options{.net_latency_min = absl::Microseconds(50),
                                             .net_latency_max = absl::Microseconds(52),
                                             .net_max_segments = 2})) {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("a", "10.0.0.1");
  net.add_host("b", "10.0.0.2");
  net.add_host("c", "10.0.0.3");
  Task<Server> b = sim::spawn_on("b", start_counter());
  Server server = co_await b;
  Task<void> a = sim::spawn_on("a", client());
  Task<void> c = sim::spawn_on("c", client());
  co_await a;
  co_await c;
  server.close();
}

}  // namespace
}  // namespace twinloop::explore_subject
