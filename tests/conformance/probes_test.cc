// Probes on both loops (api/probes.h): a failed always and a reached
// unreachable raise twinloop::AssertionError (Python's `assert` raises
// AssertionError), which follows asyncio's rules like any exception: the
// awaiter of the task sees it, a callback's goes to the loop's exception
// handler. sometimes / reachable never raise; every probe records what it saw.
#include <exception>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::HasSubstr;

class ProbesConformance : public LoopTest {};

const internal::ProbeEntry* find(std::string_view name, ProbeKind kind) {
  for (const internal::ProbeEntry* e : internal::probe_catalog()) {
    if (e->name == name && e->kind == kind) return e;
  }
  return nullptr;
}

Coro<int> checked_half(int x) {
  co_await sleep(absl::ZeroDuration());
  TWINLOOP_ALWAYS(x % 2 == 0, "conformance: even before halving");
  co_return x / 2;
}

TEST_P(ProbesConformance, AFailedAlwaysRaisesAssertionErrorToTheAwaiter) {
  run([]() -> Coro<void> {
    EXPECT_EQ(co_await create_task(checked_half(4)), 2);
    Task<int> t = create_task(checked_half(3));
    try {
      co_await t;
      ADD_FAILURE() << "no exception";
    } catch (const AssertionError& e) {
      EXPECT_EQ(e.probe(), "conformance: even before halving");
      EXPECT_THAT(e.what(), HasSubstr("always probe 'conformance: even before halving' failed at "));
    }
    EXPECT_TRUE(t.done());
  }());
}

TEST_P(ProbesConformance, AReachedUnreachableInACallbackGoesToTheExceptionHandler) {
  run([]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    std::string seen;
    loop.set_exception_handler([&seen](EventLoop&, const ExceptionContext& c) {
      try {
        if (c.exception) std::rethrow_exception(c.exception);
      } catch (const AssertionError& e) {
        seen = e.probe();
      } catch (...) {
        seen = "another exception";
      }
    });
    loop.call_soon([] { TWINLOOP_UNREACHABLE("conformance: callback never runs"); });
    co_await sleep(absl::ZeroDuration());
    co_await sleep(absl::ZeroDuration());
    EXPECT_EQ(seen, "conformance: callback never runs");
    loop.set_exception_handler(nullptr);
  }());
}

TEST_P(ProbesConformance, SometimesAndReachableNeverRaiseAndAreRecorded) {
  run([]() -> Coro<void> {
    for (int i = 0; i < 3; ++i) {
      co_await sleep(absl::ZeroDuration());
      TWINLOOP_SOMETIMES(i == 2, "conformance: third iteration");
      TWINLOOP_REACHABLE("conformance: the loop body");
    }
  }());
  const internal::ProbeEntry* s = find("conformance: third iteration", ProbeKind::kSometimes);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->ever.load(), internal::kProbeSeenTrue | internal::kProbeSeenFalse);
  const internal::ProbeEntry* r = find("conformance: the loop body", ProbeKind::kReachable);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->ever.load() & internal::kProbeSeenTrue, internal::kProbeSeenTrue);
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ProbesConformance);

}  // namespace
}  // namespace twinloop::conformance
