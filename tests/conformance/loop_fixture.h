// twinloop/tests/conformance/loop_fixture.h: run one test body on both loops.
//
// The cross-loop conformance suite writes every case once, as a coroutine,
// and runs it on the real epoll loop and on the simulated loop (Seastar runs
// one suite per reactor backend; turmoil keeps a parity test):
//
//   class FutureConformance : public twinloop::conformance::LoopTest {};
//   TEST_P(FutureConformance, SetResultTwiceRaises) {
//     run([]() -> twinloop::Coro<void> { ... }());
//   }
//   TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(FutureConformance);
//
// Each case then exists as Loops/<Suite>.<Case>/Real, Loops/...Sim (seed 1)
// and, to show that nothing observable depends on the seed, SimSeeds/...
// SimSeed2 and SimSeed3.
//
// A loop of your own (a third LoopBackend, docs/extending.md) joins every
// suite of a test binary by registering its factory at static
// initialization; its cases are then Backends/<Suite>.<Case>/<name>:
//
//   const bool kRegistered = twinloop::conformance::register_loop(
//       "IoUring", [] { return twinloop::EventLoopRef(new twinloop::EventLoop(std::make_unique<IoUringBackend>())); });
//
// Rules for cases (they must hold on a loop whose clock is the wall clock):
//  - delays are short (1-50 ms); "never" is kNever (an hour), and whatever
//    waits that long is cancelled by the test or by run()'s shutdown;
//  - assert ordering and relative timing only, never exact timestamps;
//  - inside a coroutine use EXPECT_* (ASSERT_* would `return`), and never
//    co_await inside a catch handler (C++20 forbids it): set a flag there.
#ifndef TWINLOOP_TESTS_CONFORMANCE_LOOP_FIXTURE_H_
#define TWINLOOP_TESTS_CONFORMANCE_LOOP_FIXTURE_H_

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/task.h"
#include "gtest/gtest.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::conformance {

// kCustom: a loop registered with register_loop.
enum class LoopKind { kReal, kSim, kCustom };

struct LoopParam {
  LoopKind kind = LoopKind::kSim;
  uint64_t seed = 1;  // the simulated loop's seed; unused on the real loop
  // kCustom: the name that ends the cases' names, and the loop factory.
  std::string name = {};
  std::function<EventLoopRef()> factory = nullptr;
};

inline void PrintTo(const LoopParam& p, std::ostream* os) {
  if (p.kind == LoopKind::kReal) {
    *os << "real loop";
  } else if (p.kind == LoopKind::kCustom) {
    *os << p.name << " loop";
  } else {
    *os << "sim loop, seed " << p.seed;
  }
}

// "Real", "Sim" (seed 1), "SimSeed<n>", or a registered loop's name.
inline std::string loop_param_name(const ::testing::TestParamInfo<LoopParam>& info) {
  if (info.param.kind == LoopKind::kReal) return "Real";
  if (info.param.kind == LoopKind::kCustom) return info.param.name;
  if (info.param.seed == 1) return "Sim";
  return absl::StrCat("SimSeed", info.param.seed);
}

// The loops registered in this binary (register_loop).
inline std::vector<LoopParam>& registered_loops() {
  static std::vector<LoopParam>* const loops = new std::vector<LoopParam>();
  return *loops;
}

// Runs every suite instantiated with TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS in
// this binary on loops made by `factory` too (each case gets a new loop, as
// on the other kinds). Call it during static initialization, before
// GoogleTest lists the tests; `name` (letters, digits, '_') ends the cases'
// names. Returns true, for `const bool kRegistered = register_loop(...)`.
inline bool register_loop(std::string name, std::function<EventLoopRef()> factory) {
  registered_loops().push_back(
      LoopParam{.kind = LoopKind::kCustom, .seed = 1, .name = std::move(name), .factory = std::move(factory)});
  return true;
}

// asyncio.run(main) on the chosen loop: real::run, sim::run, or for a
// registered loop asyncio.run(main, loop_factory=factory).
template <class T>
T run_on(const LoopParam& p, Coro<T> main) {
  if (p.kind == LoopKind::kReal) return real::run(std::move(main));
  if (p.kind == LoopKind::kCustom) {
    Runner runner(RunnerOptions{.loop_factory = p.factory});
    return internal::run_main(runner, std::move(main));
  }
  return sim::run(std::move(main), sim::Options{.seed = p.seed});
}
template <class T>
T run_on(LoopKind kind, Coro<T> main) {
  return run_on(LoopParam{.kind = kind, .seed = 1}, std::move(main));
}

// A new, not running loop of the chosen kind (real::new_event_loop,
// sim::new_event_loop, or the registered factory), for cases that drive a
// loop themselves.
inline EventLoopRef new_loop(const LoopParam& p) {
  if (p.kind == LoopKind::kReal) return real::new_event_loop();
  if (p.kind == LoopKind::kCustom) return p.factory();
  return sim::new_event_loop(sim::Options{.seed = p.seed});
}

class LoopTest : public ::testing::TestWithParam<LoopParam> {
 protected:
  template <class T>
  T run(Coro<T> main) {
    return run_on(GetParam(), std::move(main));
  }
  bool on_real_loop() const { return GetParam().kind == LoopKind::kReal; }
  EventLoopRef new_loop() const { return conformance::new_loop(GetParam()); }
};

// Delivers signal `sig` to `loop` as its backend receives signals: the
// simulated loop through SimBackend::raise_signal (its signals are part of
// the schedule), any other loop as a real signal to this process.
inline void raise_test_signal(EventLoop& loop, int sig) {
  if (auto* simulated = dynamic_cast<sim::SimBackend*>(&loop.backend())) {
    simulated->raise_signal(sig);
  } else {
    ::kill(::getpid(), sig);
  }
}

// Long enough never to elapse during a test; things waiting this long are
// cancelled.
inline constexpr absl::Duration kNever = absl::Hours(1);

// ---- small coroutines shared by the cases (parameters, never captures, so
// ---- the frames do not outlive what they refer to)

inline Coro<int> value_after(absl::Duration delay, int value) {
  co_await sleep(delay);
  co_return value;
}

inline Coro<int> fail_after(absl::Duration delay, std::string message) {
  co_await sleep(delay);
  throw std::runtime_error(message);
  co_return 0;
}

// Fails in its first step, without suspending.
inline Coro<int> fail_now(std::string message) {
  throw std::runtime_error(message);
  co_return 0;
}

// Sleeps `delay`; records in *cancelled whether a CancelledError went through.
inline Coro<void> sleep_noting_cancel(absl::Duration delay, bool* cancelled) {
  try {
    co_await sleep(delay);
  } catch (const CancelledError&) {
    *cancelled = true;
    throw;
  }
}

// Sleeps until cancelled, then takes `cleanup` to clean up before raising
// CancelledError again (Python's `except CancelledError: await ...; raise`;
// C++ allows no co_await in a handler, so it comes after the try). *done is
// set when the clean-up is over.
inline Coro<void> clean_up_slowly_on_cancel(absl::Duration cleanup, bool* done) {
  bool cancelled = false;
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    co_await sleep(cleanup);
    *done = true;
    throw CancelledError();
  }
  *done = true;
}

// Records what the loop's exception handler receives. install() must run
// inside the test coroutine (it sets the handler of the running loop).
struct Reports {
  std::vector<ExceptionContext> contexts;

  void install() {
    get_running_loop().set_exception_handler(
        [this](EventLoop&, const ExceptionContext& c) { contexts.push_back(c); });
  }
  size_t count_starting_with(const std::string& prefix) const {
    size_t n = 0;
    for (const ExceptionContext& c : contexts) n += c.message.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
};

// The message of a runtime_error held by `e` ("" if it holds something else).
inline std::string runtime_error_message(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::runtime_error& r) {
    return r.what();
  } catch (...) {
  }
  return "";
}

}  // namespace twinloop::conformance

// Instantiates a LoopTest suite on the real loop and the simulated loop
// (seed 1), again on the simulated loop with seeds 2 and 3, and on every
// loop registered with register_loop (none in the suite's own binaries).
#define TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(Suite)                                               \
  INSTANTIATE_TEST_SUITE_P(                                                                     \
      Loops, Suite,                                                                             \
      ::testing::Values(                                                                        \
          ::twinloop::conformance::LoopParam{::twinloop::conformance::LoopKind::kReal, 1},      \
          ::twinloop::conformance::LoopParam{::twinloop::conformance::LoopKind::kSim, 1}),      \
      ::twinloop::conformance::loop_param_name);                                                \
  INSTANTIATE_TEST_SUITE_P(                                                                     \
      SimSeeds, Suite,                                                                          \
      ::testing::Values(                                                                        \
          ::twinloop::conformance::LoopParam{::twinloop::conformance::LoopKind::kSim, 2},       \
          ::twinloop::conformance::LoopParam{::twinloop::conformance::LoopKind::kSim, 3}),      \
      ::twinloop::conformance::loop_param_name);                                                \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                                                     \
                           ::testing::ValuesIn(::twinloop::conformance::registered_loops()),    \
                           ::twinloop::conformance::loop_param_name)

#endif  // TWINLOOP_TESTS_CONFORMANCE_LOOP_FIXTURE_H_
