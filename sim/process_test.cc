// The simulated loop's child processes (sim/process.h), at the seam
// (api/process_backend.h: spawn, pipes as StreamChannels, on_exit,
// send_signal) and from the program's side (ProgramContext).
#include "twinloop/sim/process.h"

#include <csignal>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/network_test_util.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using net_test::ChannelPtr;
using net_test::Stream;
using net_test::virtual_now;

ProcessBackend& procs() { return *get_running_loop().backend().processes(); }

// A started child as a parent sees it through the seam.
struct Child {
  std::unique_ptr<ProcessChannel> channel;
  Future<int> exit;
  std::shared_ptr<Stream> in;   // fd 0, if piped
  std::shared_ptr<Stream> out;  // fd 1
  std::shared_ptr<Stream> err;  // fd 2
};

Child start(const SpawnRequest& request) {
  Child c;
  c.channel = procs().spawn(request);
  c.exit = get_running_loop().create_future<int>();
  Future<int> f = c.exit;
  c.channel->on_exit([f](int rc) mutable { f.set_result(rc); });
  std::shared_ptr<Stream>* slots[] = {&c.in, &c.out, &c.err};
  for (int fd = 0; fd < 3; ++fd) {
    if (std::unique_ptr<StreamChannel> p = c.channel->take_pipe(fd)) *slots[fd] = std::make_shared<Stream>(ChannelPtr(std::move(p)));
  }
  return c;
}

SpawnRequest piped(std::vector<std::string> argv) {
  SpawnRequest r;
  r.argv = std::move(argv);
  r.stdin_mode = Redirect::kPipe;
  r.stdout_mode = Redirect::kPipe;
  r.stderr_mode = Redirect::kPipe;
  return r;
}

// Programs used below.
Coro<int> cat(ProgramContext& p) {
  while (true) {
    std::string chunk = co_await p.stdin().read(4096);
    if (chunk.empty()) break;
    p.stdout().write(chunk);
    co_await p.stdout().drain();
  }
  co_return 0;
}

Coro<int> echo_args(ProgramContext& p) {
  std::string line;
  for (const std::string& a : p.argv()) absl::StrAppend(&line, a, "|");
  absl::StrAppend(&line, "cwd=", p.cwd(), "|FOO=", p.getenv("FOO").value_or("<none>"), "|n=", p.env().size(), "\n");
  p.stdout().write(line);
  co_return 0;
}

Coro<int> sleep_forever(ProgramContext&) {
  co_await sleep(absl::Hours(1000));
  co_return 0;
}

void register_common(EventLoop& loop) {
  register_program(loop, "/bin/cat", cat);
  register_program(loop, "/bin/echo", echo_args);
  register_program(loop, "/bin/sleep", sleep_forever);
}

template <class F>
void run_sim(uint64_t seed, F body) {
  Simulation sim({.seed = seed});
  register_common(sim.loop());
  sim.run(body(sim));
}

// ---------------------------------------------------------------- lookup

TEST(SimProcess, LookupExactPathAndMissing) {
  run_sim(1, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/opt/tools/tool", echo_args);
    // Exact.
    Child a = start(piped({"/bin/echo", "x"}));
    EXPECT_EQ(co_await a.out->read_to_eof(), "/bin/echo|x|cwd=/|FOO=<none>|n=1\n");
    EXPECT_EQ(co_await a.exit, 0);
    // A bare name through the default PATH (/usr/bin:/bin).
    Child b = start(piped({"echo"}));
    EXPECT_EQ(co_await b.out->read_to_eof(), "echo|cwd=/|FOO=<none>|n=1\n");
    // Through the request's PATH.
    SpawnRequest r = piped({"tool"});
    r.env = std::vector<std::string>{"PATH=/nowhere:/opt/tools"};
    Child c = start(r);
    EXPECT_EQ(co_await c.out->read_to_eof(), "tool|cwd=/|FOO=<none>|n=1\n");
    // The default PATH does not have /opt/tools.
    EXPECT_THROW(procs().spawn(piped({"tool"})), std::system_error);
    // executable= runs another file than argv[0] names.
    SpawnRequest e = piped({"renamed"});
    e.executable = "/bin/echo";
    Child d = start(e);
    EXPECT_EQ(co_await d.out->read_to_eof(), "renamed|cwd=/|FOO=<none>|n=1\n");
    // Missing: ENOENT from spawn, as a missing binary; a path is not searched.
    try {
      procs().spawn(piped({"nosuch"}));
      ADD_FAILURE() << "spawned a missing program";
    } catch (const std::system_error& x) {
      EXPECT_EQ(x.code().value(), ENOENT);
      EXPECT_TRUE(absl::StrContains(x.what(), "nosuch")) << x.what();
    }
    try {
      procs().spawn(piped({"/usr/local/echo"}));
      ADD_FAILURE() << "spawned a missing path";
    } catch (const std::system_error& x) {
      EXPECT_EQ(x.code().value(), ENOENT);
    }
    EXPECT_THROW(procs().spawn(piped({})), std::invalid_argument);
    SpawnRequest bad = piped({"/bin/echo"});
    bad.stdout_mode = Redirect::kStdout;
    EXPECT_THROW(procs().spawn(bad), std::invalid_argument);
  });
}

TEST(SimProcess, ArgvEnvCwdAndHostEnvironment) {
  run_sim(2, [](Simulation& sim) -> Coro<void> {
    SpawnRequest r = piped({"/bin/echo", "a b", "c"});
    r.env = std::vector<std::string>{"FOO=bar=baz", "X=1"};
    r.cwd = "/srv/data";
    Child c = start(r);
    EXPECT_EQ(co_await c.out->read_to_eof(), "/bin/echo|a b|c|cwd=/srv/data|FOO=bar=baz|n=2\n");
    // env = nullopt: the host's environment.
    set_host_environment(sim.loop(), "localhost", {"FOO=host", "PATH=/bin"});
    Child d = start(piped({"echo"}));
    EXPECT_EQ(co_await d.out->read_to_eof(), "echo|cwd=/|FOO=host|n=2\n");
    EXPECT_GT(d.channel->pid(), c.channel->pid());
  });
}

// ---------------------------------------------------------------- exits

TEST(SimProcess, ExitStatusesAndUncaughtException) {
  run_sim(3, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/status", [](ProgramContext& p) -> Coro<int> {
      co_return std::stoi(p.argv()[1]);
    });
    register_program(sim.loop(), "/bin/throws", [](ProgramContext&) -> Coro<int> {
      co_await sleep(absl::Milliseconds(1));
      throw std::runtime_error("boom");
    });
    for (int s : {0, 1, 3, 255, 256 + 7}) {
      Child c = start(piped({"/bin/status", std::to_string(s)}));
      EXPECT_FALSE(c.channel->exited());
      EXPECT_EQ(co_await c.exit, s & 0xff) << s;
      EXPECT_TRUE(c.channel->exited());
    }
    Child t = start(piped({"/bin/throws"}));
    EXPECT_EQ(co_await t.err->read_to_eof(), "/bin/throws: uncaught exception: boom\n");
    EXPECT_EQ(co_await t.exit, 1);
    // After the exit was observed, a signal does nothing.
    t.channel->send_signal(SIGKILL);
    EXPECT_THROW(t.channel->send_signal(-1), std::invalid_argument);
    EXPECT_THROW(t.channel->send_signal(65), std::invalid_argument);
  });
}

// ---------------------------------------------------------------- signals

TEST(SimProcess, SigtermDefaultEndsHandledQueues) {
  run_sim(4, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/graceful", [](ProgramContext& p) -> Coro<int> {
      p.handle_signal(SIGTERM);
      p.stdout().write("ready\n");
      const int sig = co_await p.next_signal();
      p.stdout().write(absl::StrCat("got ", sig, "\n"));
      co_return 0;
    });
    Child plain = start(piped({"/bin/sleep"}));
    co_await sleep(absl::Milliseconds(1));
    plain.channel->send_signal(0);  // existence only
    co_await sleep(absl::Milliseconds(1));
    EXPECT_FALSE(plain.exit.done());
    plain.channel->send_signal(SIGTERM);
    EXPECT_EQ(co_await plain.exit, -SIGTERM);
    EXPECT_EQ(co_await plain.out->read_to_eof(), "");

    Child g = start(piped({"/bin/graceful"}));
    EXPECT_EQ(co_await g.out->read_some(), "ready\n");
    g.channel->send_signal(SIGTERM);
    EXPECT_EQ(co_await g.out->read_to_eof(), "got 15\n");
    EXPECT_EQ(co_await g.exit, 0);
  });
}

TEST(SimProcess, SigkillCannotBeHandledAndEndsChildTasks) {
  auto ticks = std::make_shared<int>(0);
  run_sim(5, [ticks](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/stubborn", [ticks](ProgramContext& p) -> Coro<int> {
      p.handle_signal(SIGTERM);
      for (int sig : {SIGKILL, SIGSTOP, 0, 65}) {
        try {
          p.handle_signal(sig);
          p.stdout().write("handled?\n");
        } catch (const std::invalid_argument&) {
          p.stdout().write("refused\n");
        }
      }
      // A child task of the process.
      Task<void> ticker = create_task([](std::shared_ptr<int> t) -> Coro<void> {
        while (true) {
          co_await sleep(absl::Milliseconds(1));
          ++*t;
        }
      }(ticks));
      while (true) {
        const int sig = co_await p.next_signal();
        p.stdout().write(absl::StrCat("ignoring ", sig, "\n"));
      }
    });
    Child c = start(piped({"/bin/stubborn"}));
    std::string seen;
    while (seen.size() < 4 * 8) seen += co_await c.out->read_some();
    EXPECT_EQ(seen, "refused\nrefused\nrefused\nrefused\n");
    c.channel->send_signal(SIGTERM);
    EXPECT_EQ(co_await c.out->read_some(), "ignoring 15\n");
    co_await sleep(absl::Milliseconds(10));
    EXPECT_FALSE(c.exit.done());
    c.channel->send_signal(SIGKILL);
    EXPECT_EQ(co_await c.exit, -SIGKILL);
    const int at_kill = *ticks;
    EXPECT_GT(at_kill, 0);
    co_await sleep(absl::Milliseconds(50));
    EXPECT_EQ(*ticks, at_kill) << "the process's child task outlived it";
    EXPECT_EQ(co_await c.out->read_to_eof(), "");
    // Its stdin is gone: the parent's end reads the end, writes break.
    EXPECT_EQ(co_await c.in->read_some(), "");
    EXPECT_THROW(c.in->write("late"), BrokenPipeError);
  });
}

// ---------------------------------------------------------------- pipes

TEST(SimProcess, LargeTransfersBothWaysWithBackpressure) {
  run_sim(6, [](Simulation&) -> Coro<void> {
    std::string input;
    for (int i = 0; input.size() < 300 * 1024; ++i) absl::StrAppend(&input, "line ", i, "\n");
    Child c = start(piped({"/bin/cat"}));
    // The pipe holds 64 KiB: the first write takes exactly that.
    EXPECT_EQ(c.in->write(input), 64u * 1024);
    EXPECT_EQ(c.in->write("more"), 0u);
    // Read and write concurrently: cat writes back as it reads.
    Task<std::string> reader = create_task(c.out->read_to_eof());
    co_await c.in->write_all(input.substr(64 * 1024));
    c.in->channel().shutdown_write();
    const std::string output = co_await reader;
    EXPECT_EQ(output.size(), input.size());
    EXPECT_TRUE(output == input);
    EXPECT_EQ(co_await c.exit, 0);
  });
}

TEST(SimProcess, ProgramWriterBlocksUntilTheParentReads) {
  run_sim(7, [](Simulation& sim) -> Coro<void> {
    auto drained_at = std::make_shared<absl::Duration>();
    register_program(sim.loop(), "/bin/flood", [drained_at](ProgramContext& p) -> Coro<int> {
      p.stdout().write(std::string(300 * 1024, 'x'));
      co_await p.stdout().drain();
      *drained_at = virtual_now();
      co_return 0;
    });
    Child c = start(piped({"/bin/flood"}));
    co_await sleep(absl::Seconds(1));
    EXPECT_FALSE(c.exit.done()) << "exited with its output unread";
    EXPECT_EQ(*drained_at, absl::ZeroDuration());
    const std::string all = co_await c.out->read_to_eof();
    EXPECT_EQ(all.size(), 300u * 1024);
    EXPECT_GE(*drained_at, absl::Seconds(1));
    EXPECT_EQ(co_await c.exit, 0);
  });
}

TEST(SimProcess, EofBrokenStdinAndOutputKeptAfterExit) {
  run_sim(8, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/head1", [](ProgramContext& p) -> Coro<int> {
      std::string line = co_await p.stdin().readline();
      p.stdout().write(absl::StrCat("first: ", line));
      co_return 0;  // without reading the rest
    });
    Child c = start(piped({"/bin/head1"}));
    c.in->write("one\ntwo\n");
    EXPECT_EQ(co_await c.exit, 0);
    // Written before the exit, still readable after it.
    EXPECT_EQ(co_await c.out->read_to_eof(), "first: one\n");
    // The child's stdin is closed: read() 0 on the parent's end, then EPIPE.
    EXPECT_EQ(co_await c.in->read_some(), "");
    try {
      c.in->write("three\n");
      ADD_FAILURE() << "wrote to a closed pipe";
    } catch (const BrokenPipeError& e) {
      EXPECT_EQ(e.code().value(), EPIPE);
    }
    // EOF on stdin: cat sees the end of its input.
    Child k = start(piped({"/bin/cat"}));
    k.in->write("abc");
    k.in->channel().close(false);
    EXPECT_EQ(co_await k.out->read_to_eof(), "abc");
    EXPECT_EQ(co_await k.exit, 0);
  });
}

TEST(SimProcess, SigpipeWhenTheParentClosesItsEnd) {
  run_sim(9, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/yes", [](ProgramContext& p) -> Coro<int> {
      // 4 KiB a write: drain() returns without suspending until the pipe
      // is full, and g++ 12 at -O0 nests each such resumption on the stack.
      const std::string block(4096, 'y');
      while (true) {
        p.stdout().write(block);
        co_await p.stdout().drain();
      }
    });
    Child c = start(piped({"/bin/yes"}));
    // Bound first: g++ 12 miscompiles a co_await in an `if` condition,
    // which EXPECT_FALSE expands to (docs/design.md, "Compilers").
    const std::string first = co_await c.out->read_some();
    EXPECT_FALSE(first.empty());
    c.out->channel().close(false);
    EXPECT_EQ(co_await c.exit, -SIGPIPE);
  });
}

TEST(SimProcess, DevNullInheritAndStdoutMerge) {
  run_sim(10, [](Simulation& sim) -> Coro<void> {
    register_program(sim.loop(), "/bin/both", [](ProgramContext& p) -> Coro<int> {
      const std::string in = co_await p.stdin().read();
      p.stdout().write(absl::StrCat("out:", in, "\n"));
      co_await p.stdout().drain();
      p.stderr().write("err\n");
      co_return 0;
    });
    // DEVNULL everywhere: no pipes; empty input; output discarded.
    SpawnRequest n;
    n.argv = {"/bin/both"};
    n.stdin_mode = n.stdout_mode = n.stderr_mode = Redirect::kDevNull;
    Child a = start(n);
    EXPECT_EQ(a.in, nullptr);
    EXPECT_EQ(a.out, nullptr);
    EXPECT_EQ(a.err, nullptr);
    EXPECT_EQ(co_await a.exit, 0);
    EXPECT_EQ(console_output(sim.loop(), "localhost"), "");
    // Inherit: the host's console; stdin empty.
    SpawnRequest i;
    i.argv = {"/bin/both"};
    Child b = start(i);
    EXPECT_EQ(co_await b.exit, 0);
    EXPECT_EQ(console_output(sim.loop(), "localhost"), "out:\nerr\n");
    // STDOUT: stderr into stdout's pipe.
    SpawnRequest m = piped({"/bin/both"});
    m.stderr_mode = Redirect::kStdout;
    Child c = start(m);
    EXPECT_EQ(c.err, nullptr);
    c.in->write("x");
    c.in->channel().shutdown_write();
    EXPECT_EQ(co_await c.out->read_to_eof(), "out:x\nerr\n");
    EXPECT_EQ(co_await c.exit, 0);
    // A pipe is taken once.
    EXPECT_EQ(c.channel->take_pipe(1), nullptr);
    EXPECT_THROW(c.channel->take_pipe(3), std::invalid_argument);
  });
}

// ---------------------------------------------------------------- hosts

TEST(SimProcess, HostCrashKillsItsProcesses) {
  Simulation sim({.seed = 11});
  register_common(sim.loop());
  sim.network().add_host("a", "10.0.0.1");
  auto rc = std::make_shared<int>(1000);
  auto spawned = std::make_shared<std::unique_ptr<ProcessChannel>>();
  sim.run([&]() -> Coro<void> {
    Task<void> on_a = spawn_on("a", [](std::shared_ptr<int> rc, std::shared_ptr<std::unique_ptr<ProcessChannel>> keep)
                                        -> Coro<void> {
      SpawnRequest r;
      r.argv = {"/bin/sleep"};
      *keep = procs().spawn(r);
      (*keep)->on_exit([rc](int code) { *rc = code; });
      co_await sleep(absl::Hours(1));
    }(rc, spawned));
    co_await sleep(absl::Seconds(1));
    Processes& table = Processes::of(get_running_loop());
    EXPECT_EQ(table.running(), 1u);
    // Another host's process survives.
    Child here = start(piped({"/bin/sleep"}));
    co_await sleep(absl::Milliseconds(1));
    const std::string what = World::of(get_running_loop()).crash("a");
    EXPECT_TRUE(absl::StrContains(what, "1 process(es) killed")) << what;
    co_await sleep(absl::Milliseconds(10));
    EXPECT_EQ(*rc, -SIGKILL);
    EXPECT_TRUE((*spawned)->exited());
    EXPECT_EQ(table.running(), 1u);
    EXPECT_FALSE(here.exit.done());
    here.channel->send_signal(SIGKILL);
    EXPECT_EQ(co_await here.exit, -SIGKILL);
    EXPECT_TRUE(absl::StrContains(sim.world().fault_log(), "process(es) killed")) << sim.world().fault_log();
  }());
}

// ---------------------------------------------------------------- faults

// Runs `body` with every spawn drawing the one process fault `set` turns on
// (chance 1), and returns the world's fault log.
template <class F>
std::string with_fault(uint64_t seed, void (*set)(FaultProfile&), F body) {
  Simulation sim({.seed = seed});
  register_common(sim.loop());
  sim.run([&]() -> Coro<void> {
    FaultProfile p;
    set(p);
    World::of(get_running_loop()).inject(p);
    co_await body();
  }());
  return sim.world().fault_log();
}

TEST(SimProcessFaults, SpawnFailure) {
  const std::string log = with_fault(
      12, [](FaultProfile& p) { p.process_spawn_failures = 1; },
      []() -> Coro<void> {
        try {
          procs().spawn(piped({"/bin/echo"}));
          ADD_FAILURE() << "the spawn did not fail";
        } catch (const std::system_error& e) {
          EXPECT_TRUE(e.code().value() == ENOENT || e.code().value() == EAGAIN) << e.what();
        }
        co_return;
      });
  EXPECT_TRUE(absl::StrContains(log, "spawn of process")) << log;
}

TEST(SimProcessFaults, CrashBySignal) {
  const std::string log = with_fault(
      13, [](FaultProfile& p) { p.process_crashes = 1; },
      []() -> Coro<void> {
        Child c = start(piped({"/bin/sleep"}));
        const int rc = co_await c.exit;
        EXPECT_TRUE(rc == -SIGKILL || rc == -SIGSEGV || rc == -SIGABRT) << rc;
        EXPECT_LE(virtual_now(), absl::Seconds(1) + absl::Milliseconds(1));
      });
  EXPECT_TRUE(absl::StrContains(log, "crashes: SIG")) << log;
}

TEST(SimProcessFaults, HangUntilKilled) {
  const std::string log = with_fault(
      14, [](FaultProfile& p) { p.process_hangs = 1; },
      []() -> Coro<void> {
        Child c = start(piped({"/bin/echo"}));
        co_await sleep(absl::Seconds(30));
        EXPECT_FALSE(c.exit.done());
        c.channel->send_signal(SIGKILL);
        EXPECT_EQ(co_await c.exit, -SIGKILL);
        EXPECT_EQ(co_await c.out->read_to_eof(), "");
      });
  EXPECT_TRUE(absl::StrContains(log, "hangs")) << log;
}

TEST(SimProcessFaults, SlowOutput) {
  absl::Duration slow_took;
  const std::string log = with_fault(
      15, [](FaultProfile& p) { p.process_slow_output = 1; },
      [&]() -> Coro<void> {
        Child c = start(piped({"/bin/cat"}));
        const absl::Duration t0 = virtual_now();
        for (int i = 0; i < 20; ++i) {
          c.in->write("ping\n");
          EXPECT_EQ(co_await c.out->read_some(), "ping\n");
        }
        slow_took = virtual_now() - t0;
        c.in->channel().shutdown_write();
        EXPECT_EQ(co_await c.exit, 0);
      });
  EXPECT_TRUE(absl::StrContains(log, "slow output")) << log;
  // Pipe latencies alone are at most 20 us a transfer (40 round trips).
  EXPECT_GT(slow_took, absl::Milliseconds(1)) << slow_took;
}

TEST(SimProcessFaults, ChunkedOutput) {
  const std::string log = with_fault(
      16, [](FaultProfile& p) { p.process_chunked_output = 1; },
      []() -> Coro<void> {
        Child c = start(piped({"/bin/cat"}));
        const std::string data(4000, 'c');
        c.in->write(data);
        c.in->channel().shutdown_write();
        std::string got;
        int pieces = 0;
        while (true) {
          std::string s = co_await c.out->read_some();
          if (s.empty()) break;
          EXPECT_LE(s.size(), 512u);
          got += s;
          ++pieces;
        }
        EXPECT_EQ(got, data);
        EXPECT_GE(pieces, 8);
        EXPECT_EQ(co_await c.exit, 0);
      });
  EXPECT_TRUE(absl::StrContains(log, "chunked output")) << log;
}

TEST(SimProcessFaults, NonZeroExit) {
  const std::string log = with_fault(
      17, [](FaultProfile& p) { p.process_exit_failures = 1; },
      []() -> Coro<void> {
        Child c = start(piped({"/bin/echo"}));
        const int rc = co_await c.exit;
        EXPECT_GE(rc, 1);
        EXPECT_LE(rc, 255);
      });
  EXPECT_TRUE(absl::StrContains(log, "instead of 0")) << log;
}

TEST(SimProcessFaults, ProfileChecksChances) {
  Simulation sim({.seed = 18});
  sim.run([]() -> Coro<void> {
    FaultProfile p;
    p.process_crashes = 1.5;
    EXPECT_THROW(World::of(get_running_loop()).inject(p), std::invalid_argument);
    p.process_crashes = 0.5;
    p.process_crash_max = absl::Seconds(-1);
    EXPECT_THROW(World::of(get_running_loop()).inject(p), std::invalid_argument);
    co_return;
  }());
}

// ---------------------------------------------------------------- determinism

uint64_t workload_hash(uint64_t seed, absl::Duration* took) {
  Simulation sim({.seed = seed});
  register_common(sim.loop());
  sim.run([]() -> Coro<void> {
    std::vector<Child> children;
    for (int i = 0; i < 3; ++i) children.push_back(start(piped({"/bin/cat"})));
    for (Child& c : children) {
      c.in->write(std::string(100 * 1024, 'd'));
      c.in->channel().shutdown_write();
    }
    for (Child& c : children) {
      std::string all = co_await c.out->read_to_eof();
      EXPECT_EQ(all.size(), 64u * 1024);  // what the first write took
      EXPECT_EQ(co_await c.exit, 0);
    }
    Child s = start(piped({"/bin/sleep"}));
    s.channel->send_signal(SIGTERM);
    EXPECT_EQ(co_await s.exit, -SIGTERM);
  }());
  *took = sim.elapsed();
  return sim.event_hash();
}

TEST(SimProcess, SameSeedSameRunOtherSeedsVary) {
  absl::Duration t1;
  absl::Duration t2;
  EXPECT_EQ(workload_hash(42, &t1), workload_hash(42, &t2));
  EXPECT_EQ(t1, t2);
  bool varied = false;
  for (uint64_t seed = 43; seed < 48 && !varied; ++seed) {
    absl::Duration t;
    const uint64_t h = workload_hash(seed, &t);
    varied = h != workload_hash(42, &t2) && t != t1;
  }
  EXPECT_TRUE(varied) << "the pipes' and exits' timing does not depend on the seed";
}

}  // namespace
}  // namespace twinloop::sim
