// A workload that exercises every decision the simulated loop makes
// (equal-deadline timer order, executor latency, step jitter, and the
// simulated network's latencies, segment cuts and ephemeral ports), used to
// check that a seed gives the same event hash on every compiler and
// optimisation level. Shared by sim_determinism_test and the
// sim_determinism_print tool that the test script runs under g++/clang++ x
// -O0/-O2.
//
// Written for g++ 12 too (docs/design.md, "Compilers"): no aggregate or
// lambda temporaries inside co_await, no structured bindings from co_await,
// every string argument of a coroutine built first and moved in.
#ifndef TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_
#define TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/process.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::testing {

inline Coro<uint64_t> determinism_worker(int id, int rounds) {
  uint64_t acc = static_cast<uint64_t>(id);
  for (int i = 0; i < rounds; ++i) {
    // Equal deadlines across workers: their order is a seeded choice.
    co_await sleep(absl::Milliseconds(1 + (i % 3)));
    acc = acc * 31 + co_await to_thread([id, i] { return static_cast<uint64_t>(id * 1000 + i); });
  }
  co_return acc;
}

// Six callbacks due at one deadline: their order is a drawn permutation
// (the workers' sleeps rarely tie under step jitter). Returns the order.
inline Coro<uint64_t> determinism_ties() {
  auto order = std::make_shared<std::vector<int>>();
  EventLoop& loop = get_running_loop();
  const absl::Time when = loop.time() + absl::Milliseconds(3);
  for (int i = 0; i < 6; ++i) loop.call_at(when, [order, i] { order->push_back(i); });
  co_await sleep(absl::Milliseconds(4));
  uint64_t folded = 0;
  for (int i : *order) folded = folded * 10 + static_cast<uint64_t>(i);
  co_return folded;
}

// ---- The network part: a server host, three client hosts, links with
// drawn latencies and the default segment cutting (up to 4 segments), an
// echo service, a refused connection and a reset one.

inline constexpr uint16_t kDeterminismEchoPort = 9000;
inline constexpr uint16_t kDeterminismClosedPort = 9001;  // nothing listens
inline constexpr uint16_t kDeterminismResetPort = 9002;
inline constexpr uint64_t kDeterminismRefused = 1'000'001;
inline constexpr uint64_t kDeterminismReset = 1'000'002;
inline constexpr int kDeterminismClients = 3;

// Echoes lines until the end of the stream.
inline Coro<void> determinism_echo(StreamReader reader, StreamWriter writer) {
  while (true) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
}

// Reads a line, then resets the connection (RST).
inline Coro<void> determinism_reset_after_a_line(StreamReader reader, StreamWriter writer) {
  std::string line = co_await reader.readline();
  writer.transport()->reset();
}

inline Coro<Server> determinism_listen(uint16_t port, ClientConnected handler) {
  std::string any = "0.0.0.0";
  Server server = co_await start_server(std::move(handler), std::move(any), port);
  co_return server;
}

inline Coro<std::pair<StreamReader, StreamWriter>> determinism_connect(uint16_t port) {
  std::string host = "srv";
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection(std::move(host), port);
  co_return conn;
}

// The lines client `id` sends: short and long ones, so that cuts fall
// inside lines and several lines share a segment.
inline std::vector<std::string> determinism_lines(int id) {
  std::vector<std::string> lines;
  for (int i = 0; i < 4; ++i) {
    const size_t length = static_cast<size_t>(1 + (id * 37 + i * 500) % 1500);
    lines.push_back(std::string(length, static_cast<char>('a' + (id + i) % 26)) + "\n");
  }
  return lines;
}

// Sends two lines one at a time, then two in one write; returns how many
// bytes came back as sent (all of them, unless echoing is broken).
inline Coro<uint64_t> determinism_echo_client(int id) {
  std::pair<StreamReader, StreamWriter> conn = co_await determinism_connect(kDeterminismEchoPort);
  StreamReader reader = conn.first;
  StreamWriter writer = conn.second;
  const std::vector<std::string> lines = determinism_lines(id);
  uint64_t echoed = 0;
  for (int i = 0; i < 2; ++i) {
    writer.write(lines[i]);
    co_await writer.drain();
    std::string back = co_await reader.readline();
    if (back == lines[i]) echoed += back.size();
  }
  writer.write(lines[2] + lines[3]);
  co_await writer.drain();
  for (int i = 2; i < 4; ++i) {
    std::string back = co_await reader.readline();
    if (back == lines[i]) echoed += back.size();
  }
  writer.write_eof();
  std::string rest = co_await reader.read(-1);
  writer.close();
  co_return echoed + rest.size();
}

inline Coro<uint64_t> determinism_refused_client() {
  uint64_t out = 0;
  try {
    std::pair<StreamReader, StreamWriter> conn = co_await determinism_connect(kDeterminismClosedPort);
  } catch (const ConnectionRefusedError&) {
    out = kDeterminismRefused;
  }
  co_return out;
}

inline Coro<uint64_t> determinism_reset_client() {
  std::pair<StreamReader, StreamWriter> conn = co_await determinism_connect(kDeterminismResetPort);
  StreamReader reader = conn.first;
  StreamWriter writer = conn.second;
  writer.write("hello\n");
  co_await writer.drain();
  uint64_t out = 0;
  try {
    std::string line = co_await reader.readline();
    out = line.size();
  } catch (const ConnectionResetError&) {
    out = kDeterminismReset;
  }
  writer.close();
  co_return out;
}

// The clients' results in order: each echo client's echoed bytes, then the
// refused client's and the reset client's markers.
inline Coro<std::vector<uint64_t>> determinism_network_results() {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("srv", "10.1.0.1");
  for (int i = 0; i < kDeterminismClients; ++i) {
    net.add_host(absl::StrCat("cli", i), absl::StrCat("10.1.1.", i + 1));
  }
  sim::LinkConfig jittery;
  jittery.latency_min = absl::Microseconds(20);
  jittery.latency_max = absl::Microseconds(900);
  net.set_default_link(jittery);
  ClientConnected echo = &determinism_echo;
  ClientConnected reset = &determinism_reset_after_a_line;
  Task<Server> echo_server = sim::spawn_on("srv", determinism_listen(kDeterminismEchoPort, std::move(echo)));
  Task<Server> reset_server = sim::spawn_on("srv", determinism_listen(kDeterminismResetPort, std::move(reset)));
  Server echoing = co_await echo_server;
  Server resetting = co_await reset_server;
  std::vector<Task<uint64_t>> clients;
  for (int i = 0; i < kDeterminismClients; ++i) {
    clients.push_back(sim::spawn_on(absl::StrCat("cli", i), determinism_echo_client(i)));
  }
  clients.push_back(sim::spawn_on("cli0", determinism_refused_client()));
  clients.push_back(sim::spawn_on("cli1", determinism_reset_client()));
  std::vector<uint64_t> results = co_await gather(std::move(clients));
  echoing.close();
  resetting.close();
  co_await echoing.wait_closed();
  co_await resetting.wait_closed();
  co_return results;
}

inline Coro<uint64_t> determinism_network() {
  std::vector<uint64_t> results = co_await determinism_network_results();
  uint64_t folded = 0;
  for (uint64_t r : results) folded = folded * 1000003 + r;
  co_return folded;
}

// The fault part (sim/world.h, sim/faults.h): three hosts with drawn clock
// offsets and drifts, crashes and restarts of a main that reads its clock,
// partitions; then everything healed. Folds the hosts' clock readings (the
// integer clock arithmetic), the mains' starts and the faults applied.
inline Coro<uint64_t> determinism_faults() {
  sim::Network& net = sim::Network::of(get_running_loop());
  sim::World& world = sim::World::of(get_running_loop());
  for (int i = 0; i < 3; ++i) net.add_host(absl::StrCat("f", i), absl::StrCat("10.2.0.", i + 1));
  auto folded = std::make_shared<uint64_t>(0);
  for (int i = 0; i < 3; ++i) {
    world.start(absl::StrCat("f", i), [folded]() -> Coro<void> {
      while (true) {
        *folded = *folded * 31 + static_cast<uint64_t>(get_running_loop().time_ns());
        co_await sleep(absl::Milliseconds(70));
      }
    });
  }
  sim::FaultProfile profile;
  profile.hosts = {"f0", "f1", "f2"};
  profile.clock_offset_max = absl::Seconds(2);
  profile.clock_drift_max_ppm = 500;
  profile.clock_jumps_per_s = 0.5;
  profile.crashes_per_s = 1;
  profile.restart_max = absl::Milliseconds(300);
  profile.partitions_per_s = 1;
  profile.duration = absl::Seconds(3);
  world.inject(profile);
  co_await sleep(absl::Seconds(4));
  // Named before the co_await (g++ 12: docs/design.md, "Compilers").
  const std::function<bool()> all_up = [&world] {
    return !world.is_down("f0") && !world.is_down("f1") && !world.is_down("f2");
  };
  const std::string what = "every host up";
  Coro<void> converged = world.converge(all_up, absl::Seconds(5), what);
  co_await std::move(converged);
  uint64_t out = *folded;
  for (int i = 0; i < 3; ++i) {
    out = out * 1000003 + static_cast<uint64_t>(absl::ToUnixNanos(world.clock_time(absl::StrCat("f", i))));
  }
  co_return out * 1000003 + world.faults().size();
}

// Simulated child processes (sim/process.h): a cat fed 100 KiB through its
// 64 KiB stdin pipe while its output is read (pipe latencies, backpressure),
// and a sleeper ended by SIGTERM (a signal's latency, exit notices).
inline Coro<int> determinism_cat(sim::ProgramContext& p) {
  while (true) {
    std::string chunk = co_await p.stdin().read(8192);
    if (chunk.empty()) break;
    p.stdout().write(chunk);
    co_await p.stdout().drain();
  }
  co_return 0;
}

inline Coro<int> determinism_sleeper(sim::ProgramContext& p) {
  p.stdout().write("up\n");
  co_await sleep(absl::Seconds(100));
  co_return 0;
}

inline Coro<uint64_t> determinism_processes() {
  EventLoop& loop = get_running_loop();
  sim::register_program(loop, "/bin/cat", determinism_cat);
  sim::register_program(loop, "/bin/sleeper", determinism_sleeper);
  ProcessBackend& procs = *loop.backend().processes();
  SpawnRequest cat_request;
  cat_request.argv = {"cat"};
  cat_request.stdin_mode = Redirect::kPipe;
  cat_request.stdout_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> cat = procs.spawn(cat_request);
  Future<int> cat_exit = loop.create_future<int>();
  cat->on_exit([cat_exit](int rc) mutable { cat_exit.set_result(rc); });
  std::pair<StreamReader, StreamWriter> to_cat = internal::stream_over_channel(loop, cat->take_pipe(0), StreamOptions{});
  std::pair<StreamReader, StreamWriter> from_cat = internal::stream_over_channel(loop, cat->take_pipe(1), StreamOptions{});
  std::string input;
  for (int i = 0; input.size() < 100 * 1024; ++i) absl::StrAppend(&input, "row ", i, "\n");
  to_cat.second.write(input);
  to_cat.second.write_eof();
  const std::string output = co_await from_cat.first.read();
  const int cat_rc = co_await cat_exit;

  SpawnRequest sleeper_request;
  sleeper_request.argv = {"/bin/sleeper"};
  sleeper_request.stdout_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> sleeper = procs.spawn(sleeper_request);
  Future<int> sleeper_exit = loop.create_future<int>();
  sleeper->on_exit([sleeper_exit](int rc) mutable { sleeper_exit.set_result(rc); });
  std::pair<StreamReader, StreamWriter> from_sleeper =
      internal::stream_over_channel(loop, sleeper->take_pipe(1), StreamOptions{});
  const std::string up = co_await from_sleeper.first.readline();
  sleeper->send_signal(SIGTERM);
  const int sleeper_rc = co_await sleeper_exit;
  if (output != input || cat_rc != 0 || sleeper_rc != -SIGTERM || up != "up\n") {
    throw std::runtime_error(absl::StrCat("determinism_processes: cat gave ", output.size(), " of ", input.size(),
                                          " bytes, exit ", cat_rc, "; sleeper exit ", sleeper_rc));
  }
  const uint64_t folded = 1000 + static_cast<uint64_t>(cat_rc) * 100 +
                          static_cast<uint64_t>(-sleeper_rc) + up.size();
  to_cat.second.close();
  from_cat.second.close();
  from_sleeper.second.close();
  co_return folded;
}

// Runs the workload and folds the results into one value.
inline Coro<uint64_t> determinism_main() {
  const uint64_t ties = co_await determinism_ties();
  std::vector<Task<uint64_t>> tasks;
  // The network part runs alongside the workers: its arrivals tie with
  // their timers.
  tasks.push_back(create_task(determinism_network()));
  for (int id = 0; id < 8; ++id) tasks.push_back(create_task(determinism_worker(id, 20)));
  std::vector<uint64_t> results = co_await gather(std::move(tasks));
  uint64_t folded = ties;
  for (uint64_t r : results) folded = folded * 1099511628211ull + r;
  // Then the faults, on hosts of their own.
  const uint64_t faults = co_await determinism_faults();
  folded = folded * 1099511628211ull + faults;
  // Then child processes.
  const uint64_t processes = co_await determinism_processes();
  co_return folded * 1099511628211ull + processes;
}

inline sim::Options determinism_options(uint64_t seed) {
  sim::Options o;
  o.seed = seed;
  o.step_jitter_max = absl::Microseconds(50);
  return o;
}

}  // namespace twinloop::testing

#endif  // TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_
