// The loop's invariant checks (api/internal/check.h; docs/design.md,
// "Invariants"): each test breaks one invariant the way a bug in twinloop
// would (a release too many, a second wake-up, a timer behind the heap's
// back) and expects the process to stop with the check's message.
// TWINLOOP_DCHECK cases run where DCHECKs are on (fastbuild, the sanitizer
// configs) and are skipped in --config=opt.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "twinloop/api/internal/check.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/internal/ring.h"
#include "twinloop/api/twinloop.h"
#include "gtest/gtest.h"

namespace twinloop::internal {
namespace {

// A loop backend with a clock that jumps to the next deadline, and nothing
// else: enough to step a loop by hand without //sim or //real.
class JumpingClock final : public LoopBackend {
 public:
  void attach(EventLoop&) override {}
  int64_t time_ns() override { return now_ns_; }
  void wait(int64_t deadline_ns) override {
    if (deadline_ns == kPollOnly) return;
    if (deadline_ns == kNoDeadline) throw std::runtime_error("nothing can ever happen");
    if (deadline_ns > now_ns_) now_ns_ = deadline_ns;
  }
  void wake() override {}
  void submit(absl::AnyInvocable<void()>, absl::AnyInvocable<void()>) override {}
  uint64_t choose(std::string_view, uint64_t) override { return 0; }
  void watch_signal(int, bool) override {}
  void close() override {}

 private:
  int64_t now_ns_ = 0;
};

EventLoopRef new_loop() { return EventLoopRef(new EventLoop(std::make_unique<JumpingClock>())); }

// A sleep's timer in the heap of `loop` at `when_ns`: one reference is the
// heap's, the other the caller's.
Ref<SleepState> timer_at(EventLoop& loop, int64_t when_ns) {
  Ref<SleepState> s(new SleepState(loop));
  s->add_ref();
  LoopAccess::add_timer(loop, s.get(), when_ns);
  return s;
}

#define SKIP_UNLESS_DCHECKS() \
  if (!TWINLOOP_DCHECK_IS_ON) GTEST_SKIP() << "a TWINLOOP_DCHECK: compiled out in this build"

// ---------------------------------------------------------------- reference counts

class Counted final : public RefCounted {
 public:
  explicit Counted(int* deleted) : deleted_(deleted) {}
  ~Counted() override { ++*deleted_; }

 private:
  int* deleted_;
};

TEST(RefCounted, TheLastReleaseDeletesOnce) {
  int deleted = 0;
  auto* c = new Counted(&deleted);
  c->add_ref();
  c->add_ref();
  c->release();
  EXPECT_EQ(deleted, 0);
  c->release();
  EXPECT_EQ(deleted, 1);
}

TEST(InvariantsDeathTest, ReleasingWithoutAReferenceStops) {
  int deleted = 0;
  EXPECT_DEATH((new Counted(&deleted))->release(),
               "^twinloop: invariant violated: an object is released at most as often as it was referenced "
               "\\(refs_ == 0\\) at [^ ]*api/internal/ref.h:[0-9]+\n");
}

// ---------------------------------------------------------------- the ready queue

TEST(InvariantsDeathTest, PoppingAnEmptyReadyQueueStops) {
  Ring<int> ring;
  ring.push(1);
  EXPECT_EQ(ring.pop(), 1);
  EXPECT_DEATH(ring.pop(),
               "^twinloop: invariant violated: the ready queue is popped only when it is not empty "
               "\\(!empty\\(\\)\\) at [^ ]*api/internal/ring.h:[0-9]+\n");
}

// ---------------------------------------------------------------- task steps

Coro<void> steps_itself() {
  current_task_or_throw("steps_itself")->run();
  co_return;
}

TEST(InvariantsDeathTest, ATaskThatStepsWhileRunningStops) {
  EXPECT_DEATH(new_loop()->run_until_complete(steps_itself()),
               "^twinloop: invariant violated: a task steps only while parked \\(never while it runs\\) "
               "\\(parked_\\) at [^ ]*api/task.cc:[0-9]+\n");
}

Coro<void> awaits_two(Future<void> first, Future<void> second) {
  co_await first;
  co_await second;
}

TEST(Invariants, ATaskWokenOnceStepsOnce) {
  EventLoopRef loop = new_loop();
  Future<void> first = loop->create_future<void>();
  Future<void> second = loop->create_future<void>();
  Task<void> t = loop->create_task(awaits_two(first, second));
  loop->run_once();  // parks on `first`
  first.set_result();
  loop->run_once();  // parks on `second`
  EXPECT_EQ(t.base().fut_waiter(), second.state());
  second.set_result();
  loop->run_once();
  EXPECT_TRUE(t.done());
  loop->close();
}

TEST(InvariantsDeathTest, ATaskWokenTwiceStops) {
  SKIP_UNLESS_DCHECKS();
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Future<void> first = loop->create_future<void>();
        Future<void> second = loop->create_future<void>();
        Task<void> t = loop->create_task(awaits_two(first, second));
        loop->run_once();  // parks on `first`
        first.set_result();  // its wake-up
        LoopAccess::schedule(*loop, &t.base());  // and a second one, as a bug in a waker would
        loop->run_once();  // resumed, parks on `second`; then stepped again
      },
      "^twinloop: invariant violated: a task is resumed at most once per wake-up \\(.*\\) at [^ ]*api/task.cc:[0-9]+\n");
}

// ---------------------------------------------------------------- the timer heap

TEST(InvariantsDeathTest, ATimerPushedTwiceStops) {
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Ref<SleepState> s = timer_at(*loop, 10);
        s->add_ref();
        LoopAccess::add_timer(*loop, s.get(), 20);
      },
      "^twinloop: invariant violated: a timer is in the timer heap at most once \\(!t->in_heap_\\) at "
      "[^ ]*api/event_loop.cc:[0-9]+\n");
}

TEST(InvariantsDeathTest, ACancelledTimerTheHeapWasNotToldAboutStopsWhenDue) {
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Ref<SleepState> s = timer_at(*loop, 10);
        s->cancelled_ = true;  // behind the heap's back: its count of cancelled timers stays 0
        loop->run_once();      // the timer falls due
      },
      "^twinloop: invariant violated: the heap counts its cancelled timers \\(timers_cancelled_ != 0\\) at "
      "[^ ]*api/event_loop.cc:[0-9]+\n");
}

TEST(InvariantsDeathTest, ACancelledTimerTheHeapWasNotToldAboutStopsWhenPurged) {
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Ref<SleepState> counted = timer_at(*loop, 10);
        Ref<SleepState> uncounted = timer_at(*loop, 20);
        counted->cancel("");           // the heap counts it
        uncounted->cancelled_ = true;  // behind the heap's back
        loop->run_once();              // purges the top of the heap: both
      },
      "^twinloop: invariant violated: the heap counts its cancelled timers \\(timers_cancelled_ != 0\\) at "
      "[^ ]*api/event_loop.cc:[0-9]+\n");
}

TEST(InvariantsDeathTest, MiscountedCancelledTimersStopWhenTheHeapIsRebuilt) {
  SKIP_UNLESS_DCHECKS();
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        std::vector<Ref<SleepState>> timers;
        for (int i = 0; i < 150; ++i) timers.push_back(timer_at(*loop, 1000 + i));
        for (int i = 0; i < 100; ++i) timers[i]->cancel("");
        for (int i = 100; i < 110; ++i) timers[i]->cancelled_ = true;  // behind the heap's back
        loop->run_once();  // more than half cancelled: the heap is rebuilt
      },
      "^twinloop: invariant violated: the heap counts its cancelled timers "
      "\\(timers_.size\\(\\) - kept.size\\(\\) == timers_cancelled_\\) at [^ ]*api/event_loop.cc:[0-9]+\n");
}

TEST(InvariantsDeathTest, ATimerInTheHeapThatDoesNotKnowItStops) {
  SKIP_UNLESS_DCHECKS();
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Ref<SleepState> s = timer_at(*loop, 10);
        s->in_heap_ = false;
        loop->run_once();
      },
      "^twinloop: invariant violated: a timer in the timer heap is marked in_heap_ \\(h->in_heap_\\) at "
      "[^ ]*api/event_loop.cc:[0-9]+\n");
}

TEST(InvariantsDeathTest, ATimerThatRunsWhileInTheHeapStops) {
  SKIP_UNLESS_DCHECKS();
  EXPECT_DEATH(
      {
        EventLoopRef loop = new_loop();
        Ref<SleepState> s = timer_at(*loop, 10);
        s->add_ref();
        LoopAccess::schedule(*loop, s.get());  // queued while still in the heap
        loop->run_once();
      },
      "^twinloop: invariant violated: a timer runs only once it left the timer heap \\(!in_heap_\\) at "
      "[^ ]*api/task.cc:[0-9]+\n");
}

TEST(Invariants, TimersThatFollowTheRulesRunAndPurgeQuietly) {
  EventLoopRef loop = new_loop();
  std::vector<Ref<SleepState>> timers;
  for (int i = 0; i < 150; ++i) timers.push_back(timer_at(*loop, 1000 + i));
  for (int i = 0; i < 100; ++i) timers[i]->cancel("");
  loop->run_once();  // rebuilds the heap, then runs the first live timer
  EXPECT_EQ(LoopAccess::timer_count(*loop), 49u);
  while (LoopAccess::timer_count(*loop) > 0) loop->run_once();
  for (int i = 100; i < 150; ++i) EXPECT_TRUE(timers[i]->done());
  loop->close();
}

}  // namespace
}  // namespace twinloop::internal
