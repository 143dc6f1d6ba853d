// Cross-loop conformance: the scoped constructs, timeout/timeout_at
// (CPython 3.14 Lib/asyncio/timeouts.py) and TaskGroup
// (Lib/asyncio/taskgroups.py), on the real and the simulated loop.
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/task.h"
#include "twinloop/api/task_group.h"
#include "twinloop/api/timeouts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::UnorderedElementsAre;

constexpr absl::Duration kZero = absl::ZeroDuration();
constexpr absl::Duration kMs = absl::Milliseconds(1);

Coro<int> value_now(int v) { co_return v; }

// sleep() as a Coro<void>, the body type Timeout::run takes.
Coro<void> nap(absl::Duration delay) { co_await sleep(delay); }

// ---------------------------------------------------------------- timeout

class TimeoutConformance : public LoopTest {};

// CPython test_timeouts.py test_timeout_basic / test_timeout_exception_cause:
// at the deadline the block raises TimeoutError (from the CancelledError)
// and expired() is true; the task's cancel count is back to its entry value
// (test_outer_task_is_not_cancelled).
TEST_P(TimeoutConformance, ExpiryRaisesTimeoutErrorAndExpiredIsTrue) {
  run([&]() -> Coro<void> {
    Timeout cm = timeout(5 * kMs);
    EXPECT_FALSE(cm.expired());
    bool timed_out = false;
    bool nested_cancel = false;
    try {
      co_await cm.run(nap(kNever));
    } catch (const TimeoutError& e) {
      timed_out = true;
      try {
        std::rethrow_if_nested(e);
      } catch (const CancelledError&) {
        nested_cancel = true;
      }
    }
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(nested_cancel);
    EXPECT_TRUE(cm.expired());
    EXPECT_EQ(cm.state(), Timeout::State::kExpired);
    EXPECT_EQ(current_task()->cancelling(), 0);
    co_await sleep(kMs);  // and the task is not left cancelled
  }());
}

// CPython test_timeouts.py test_nested_timeouts: two nested timeouts with the
// same deadline: only the outermost raises TimeoutError; the inner block
// lets the CancelledError through; both are expired.
TEST_P(TimeoutConformance, NestedTimeoutsWithEqualDeadlinesOnlyOutermostConverts) {
  run([&]() -> Coro<void> {
    const absl::Time deadline = get_running_loop().time() + 10 * kMs;
    Timeout cm1 = timeout_at(deadline);
    Timeout cm2 = timeout_at(deadline);
    bool inner_saw_cancelled = false;
    bool inner_saw_timeout = false;
    bool outer_timed_out = false;
    try {
      co_await cm1.run([&](Timeout&) -> Coro<void> {
        try {
          co_await cm2.run(nap(kNever));
        } catch (const CancelledError&) {
          inner_saw_cancelled = true;
          throw;
        } catch (const TimeoutError&) {
          inner_saw_timeout = true;
          throw;
        }
      });
    } catch (const TimeoutError&) {
      outer_timed_out = true;
    }
    EXPECT_TRUE(outer_timed_out);
    EXPECT_TRUE(inner_saw_cancelled);
    EXPECT_FALSE(inner_saw_timeout);
    EXPECT_TRUE(cm1.expired());
    EXPECT_TRUE(cm2.expired());
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// CPython test_timeouts.py test_reschedule: reschedule() while entered moves
// the deadline (when() follows); a later deadline lets the body finish.
TEST_P(TimeoutConformance, RescheduleExtendsTheDeadline) {
  run([&]() -> Coro<void> {
    Timeout cm = timeout(5 * kMs);
    absl::Time extended;
    co_await cm.run([&](Timeout& t) -> Coro<void> {
      extended = get_running_loop().time() + kNever;
      t.reschedule(extended);
      co_await sleep(20 * kMs);
    });
    EXPECT_FALSE(cm.expired());
    EXPECT_EQ(cm.when(), extended);
    EXPECT_EQ(cm.state(), Timeout::State::kExited);
  }());
}

// CPython timeouts.py Timeout.reschedule (test_reschedule goes to None and
// back): a block with no deadline can be given one, and then expires.
TEST_P(TimeoutConformance, RescheduleCanShortenTheDeadline) {
  run([&]() -> Coro<void> {
    Timeout cm = timeout(absl::InfiniteDuration());
    EXPECT_THROW(co_await cm.run([&](Timeout& t) -> Coro<void> {
      t.reschedule(get_running_loop().time() + 5 * kMs);
      co_await sleep(kNever);
    }),
                 TimeoutError);
    EXPECT_TRUE(cm.expired());
  }());
}

// CPython test_timeouts.py test_timeout_not_entered / test_timeout_finished /
// test_timeout_double_enter: reschedule() raises RuntimeError unless
// ENTERED (also when expiring/expired), and a Timeout cannot be entered
// twice.
TEST_P(TimeoutConformance, RescheduleOutsideTheBlockRaisesRuntimeError) {
  run([&]() -> Coro<void> {
    const absl::Time later = get_running_loop().time() + kNever;
    Timeout finished = timeout(kNever);
    EXPECT_THROW(finished.reschedule(later), std::runtime_error);  // not entered
    EXPECT_EQ(co_await finished.run(value_now(1)), 1);
    EXPECT_THROW(finished.reschedule(later), std::runtime_error);  // exited
    EXPECT_THROW(co_await finished.run(value_now(2)), std::runtime_error);  // re-entry

    Timeout expired = timeout(kMs);
    EXPECT_THROW(co_await expired.run(nap(kNever)), TimeoutError);
    EXPECT_THROW(expired.reschedule(later), std::runtime_error);  // expired
  }());
}

// What reschedule() raises now ("" if it raises nothing).
std::string reschedule_error(Timeout& cm, absl::Time when) {
  try {
    cm.reschedule(when);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// CPython 3.14 timeouts.py Timeout.reschedule: outside ENTERED it raises
// RuntimeError("Timeout has not been entered") in CREATED, else
// f"Cannot change state of {state.value} Timeout": "expiring" inside a
// block whose deadline passed, "expired" once that block is left, "finished"
// after a block left in time.
TEST_P(TimeoutConformance, RescheduleOutsideTheBlockNamesTheState) {
  run([&]() -> Coro<void> {
    const absl::Time later = get_running_loop().time() + kNever;
    Timeout cm = timeout(kMs);
    EXPECT_EQ(reschedule_error(cm, later), "Timeout has not been entered");
    std::string while_active = "not reached";
    std::string while_expiring = "not reached";
    EXPECT_THROW(co_await cm.run([&](Timeout& t) -> Coro<void> {
      while_active = reschedule_error(t, t.when());  // allowed: same deadline
      try {
        co_await nap(kNever);
      } catch (const CancelledError&) {
        while_expiring = reschedule_error(t, later);
        throw;
      }
    }),
                 TimeoutError);
    EXPECT_EQ(while_active, "");
    EXPECT_EQ(while_expiring, "Cannot change state of expiring Timeout");
    EXPECT_EQ(cm.state(), Timeout::State::kExpired);
    EXPECT_EQ(reschedule_error(cm, later), "Cannot change state of expired Timeout");

    Timeout in_time = timeout(kNever);
    co_await in_time.run(nap(kMs));
    EXPECT_EQ(reschedule_error(in_time, later), "Cannot change state of finished Timeout");
  }());
}

Coro<void> reschedule_then_sleep(Timeout& t, absl::Duration delay) {
  t.reschedule(get_running_loop().time() + delay);
  co_await nap(kNever);
}

// CPython timeouts.py: `async with timeout(d):` keeps the Timeout object
// alive for the block. Here run()'s Coro owns its own reference, so the
// Timeout handle it came from may be gone before it is awaited (ASan
// reports the use after scope without it).
TEST_P(TimeoutConformance, RunCoroOutlivesTheTimeoutItCameFrom) {
  run([&]() -> Coro<void> {
    Coro<int> in_time = timeout(kNever).run(value_after(kMs, 7));
    Coro<void> expiring = timeout(kMs).run(nap(kNever));
    Coro<void> with_handle = timeout(kNever).run([](Timeout& t) { return reschedule_then_sleep(t, kMs); });
    EXPECT_EQ(co_await std::move(in_time), 7);
    EXPECT_THROW(co_await std::move(expiring), TimeoutError);
    EXPECT_THROW(co_await std::move(with_handle), TimeoutError);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<void> sleep_under_timeout(Timeout* cm, bool* saw_cancelled, bool* saw_timeout) {
  try {
    co_await cm->run(nap(kNever));
  } catch (const CancelledError&) {
    *saw_cancelled = true;
    throw;
  } catch (const TimeoutError&) {
    *saw_timeout = true;
    throw;
  }
}

// CPython test_timeouts.py test_foreign_cancel_doesnt_timeout_if_not_expired:
// a cancel that is not the timeout's own stays a CancelledError, and the
// timeout is not expired.
TEST_P(TimeoutConformance, ForeignCancelBeforeTheDeadlineStaysCancelledError) {
  run([&]() -> Coro<void> {
    Timeout cm = timeout(kNever);
    bool saw_cancelled = false;
    bool saw_timeout = false;
    Task<void> t = create_task(sleep_under_timeout(&cm, &saw_cancelled, &saw_timeout));
    co_await sleep(2 * kMs);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(saw_cancelled);
    EXPECT_FALSE(saw_timeout);
    EXPECT_FALSE(cm.expired());
    EXPECT_TRUE(t.cancelled());
  }());
}

// CPython test_timeouts.py test_timeout_disabled: timeout(None) never
// expires and when() is None (absl::InfiniteFuture()).
TEST_P(TimeoutConformance, InfiniteDurationNeverExpires) {
  run([&]() -> Coro<void> {
    Timeout cm = timeout(absl::InfiniteDuration());
    EXPECT_EQ(cm.when(), absl::InfiniteFuture());
    co_await cm.run(nap(10 * kMs));
    EXPECT_FALSE(cm.expired());
    Timeout at = timeout_at(absl::InfiniteFuture());
    EXPECT_EQ(co_await at.run(value_after(kMs, 3)), 3);
    EXPECT_FALSE(at.expired());
  }());
}

Coro<void> mark_then_yield(bool* reached) {
  *reached = true;
  co_await sleep(kZero);
  *reached = false;  // never gets here
}

// CPython test_timeouts.py test_timeout_in_the_past_sleep_zero /
// test_timeout_zero: a deadline already past expires at the first
// suspension (even sleep(0)); the body runs up to it. A body that does not
// suspend finishes normally.
TEST_P(TimeoutConformance, DeadlineInThePastExpiresAtTheFirstSuspension) {
  run([&]() -> Coro<void> {
    bool reached = false;
    Timeout past = timeout_at(get_running_loop().time() - absl::Seconds(1));
    EXPECT_THROW(co_await past.run(mark_then_yield(&reached)), TimeoutError);
    EXPECT_TRUE(reached);
    EXPECT_TRUE(past.expired());

    Timeout zero = timeout(kZero);
    EXPECT_EQ(co_await zero.run(value_now(5)), 5);
    EXPECT_FALSE(zero.expired());
    co_await sleep(kMs);  // its pending expiry was withdrawn at exit
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// ---------------------------------------------------------------- TaskGroup

class TaskGroupConformance : public LoopTest {};

Coro<void> group_with_failing_child(bool* sibling_cancelled, bool* body_cancelled, bool* after_block) {
  co_await TaskGroup().run([=](TaskGroup& tg) -> Coro<void> {
    tg.create_task(fail_after(5 * kMs, "child failed"));
    tg.create_task(sleep_noting_cancel(kNever, sibling_cancelled));
    co_await sleep_noting_cancel(kNever, body_cancelled);
  });
  *after_block = true;
}

std::vector<std::string> messages_of(const ExceptionGroup& eg) {
  std::vector<std::string> out;
  for (const std::exception_ptr& e : eg.exceptions()) out.push_back(runtime_error_message(e));
  return out;
}

Coro<void> append_after(absl::Duration delay, int value, std::vector<int>* out) {
  co_await sleep(delay);
  out->push_back(value);
}

// CPython taskgroups.py: `async with TaskGroup() as tg:` keeps the group
// alive for the block. Here run()'s Coro owns its own reference to the
// group, so the TaskGroup it came from may be gone before it is awaited
// (ASan reports the use after free without it).
TEST_P(TaskGroupConformance, RunCoroOutlivesTheTaskGroupItCameFrom) {
  run([&]() -> Coro<void> {
    std::vector<int> done;
    Coro<int> block = TaskGroup().run([&done](TaskGroup& tg) -> Coro<int> {
      tg.create_task(append_after(2 * kMs, 2, &done));
      tg.create_task(append_after(kMs, 1, &done));
      co_return 42;
    });
    Coro<void> failing = TaskGroup().run([](TaskGroup& tg) -> Coro<void> {
      tg.create_task(fail_after(kMs, "child failed"));
      co_await nap(kNever);
    });
    EXPECT_EQ(co_await std::move(block), 42);
    EXPECT_THAT(done, ::testing::ElementsAre(1, 2));
    bool raised = false;
    try {
      co_await std::move(failing);
    } catch (const ExceptionGroup& eg) {
      raised = true;
      EXPECT_THAT(messages_of(eg), ::testing::ElementsAre("child failed"));
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// CPython test_taskgroups.py test_cancel_children_on_child_error /
// test_taskgroup_04: a failing child cancels its siblings and the body, and
// the block raises an ExceptionGroup holding the error.
TEST_P(TaskGroupConformance, ChildErrorCancelsSiblingsAndBodyAndRaisesExceptionGroup) {
  run([&]() -> Coro<void> {
    bool sibling_cancelled = false;
    bool body_cancelled = false;
    bool after_block = false;
    Task<void> r = create_task(group_with_failing_child(&sibling_cancelled, &body_cancelled, &after_block));
    std::vector<std::string> errors;
    std::string what;
    try {
      co_await r;
    } catch (const ExceptionGroup& eg) {
      errors = messages_of(eg);
      what = eg.what();
    }
    EXPECT_THAT(errors, ::testing::ElementsAre("child failed"));
    EXPECT_EQ(what, "unhandled errors in a TaskGroup");
    EXPECT_TRUE(sibling_cancelled);
    EXPECT_TRUE(body_cancelled);
    EXPECT_FALSE(after_block);
    EXPECT_FALSE(r.cancelled());
  }());
}

// CPython taskgroups.py _on_task_done collects every child error: two
// children failing in the same iteration are both in the ExceptionGroup
// (test_taskgroups.py test_taskgroup_19 aggregates several errors).
TEST_P(TaskGroupConformance, SeveralChildErrorsAreAggregated) {
  run([&]() -> Coro<void> {
    std::vector<std::string> errors;
    try {
      co_await task_group([](TaskGroup& tg) -> Coro<void> {
        tg.create_task(fail_now("a"));
        tg.create_task(fail_now("b"));
        co_await sleep(kNever);
      });
    } catch (const ExceptionGroup& eg) {
      errors = messages_of(eg);
    }
    EXPECT_THAT(errors, UnorderedElementsAre("a", "b"));
  }());
}

// CPython test_taskgroups.py test_taskgroup_19: an error raised by the body
// while it is being cancelled joins the children's errors.
TEST_P(TaskGroupConformance, BodyErrorJoinsChildErrors) {
  run([&]() -> Coro<void> {
    std::vector<std::string> errors;
    try {
      co_await task_group([](TaskGroup& tg) -> Coro<void> {
        tg.create_task(fail_after(2 * kMs, "child"));
        try {
          co_await sleep(kNever);
        } catch (const CancelledError&) {
          throw std::runtime_error("body");
        }
      });
    } catch (const ExceptionGroup& eg) {
      errors = messages_of(eg);
    }
    EXPECT_THAT(errors, UnorderedElementsAre("child", "body"));
  }());
}

Coro<void> sleep_counting_cancel(int* cancelled) {
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
    ++*cancelled;
    throw;
  }
}

Coro<void> group_of_sleepers(int* cancelled) {
  co_await task_group([=](TaskGroup& tg) -> Coro<void> {
    for (int i = 0; i < 5; ++i) tg.create_task(sleep_counting_cancel(cancelled));
    co_return;
  });
}

// CPython test_taskgroups.py test_cancellation: cancelling the parent from
// outside while the group waits (no child error) cancels every child and
// propagates CancelledError with the message.
TEST_P(TaskGroupConformance, ExternalCancelPropagatesCancelledErrorAndCancelsChildren) {
  run([&]() -> Coro<void> {
    int cancelled = 0;
    Task<void> r = create_task(group_of_sleepers(&cancelled));
    co_await sleep(2 * kMs);
    EXPECT_FALSE(r.done());
    r.cancel("test");
    std::string msg;
    bool raised = false;
    try {
      co_await r;
    } catch (const CancelledError& e) {
      raised = true;
      msg = e.what();
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(msg, "test");
    EXPECT_TRUE(r.cancelled());
    EXPECT_EQ(cancelled, 5);
  }());
}

Coro<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

// CPython taskgroups.py TaskGroup.create_task: RuntimeError ("TaskGroup ...
// is shutting down") once the group aborts, and ("... is finished") after
// it exited; the coroutine is closed without running.
TEST_P(TaskGroupConformance, CreateTaskAfterAbortOrFinishRaisesRuntimeError) {
  run([&]() -> Coro<void> {
    bool raised_while_aborting = false;
    bool late_ran = false;
    bool got_group = false;
    try {
      co_await task_group([&](TaskGroup& tg) -> Coro<void> {
        tg.create_task(fail_after(2 * kMs, "boom"));
        try {
          co_await sleep(kNever);
        } catch (const CancelledError&) {
          try {
            tg.create_task(set_flag(&late_ran));
          } catch (const std::runtime_error&) {
            raised_while_aborting = true;
          }
          throw;
        }
      });
    } catch (const ExceptionGroup&) {
      got_group = true;
    }
    EXPECT_TRUE(got_group);
    EXPECT_TRUE(raised_while_aborting);

    TaskGroup finished;
    co_await finished.run([](TaskGroup& tg) -> Coro<void> {
      tg.create_task(value_after(kMs, 1));
      co_return;
    });
    EXPECT_THROW(finished.create_task(set_flag(&late_ran)), std::runtime_error);
    co_await sleep(kMs);
    EXPECT_FALSE(late_ran);
  }());
}

Coro<void> spawn_later(TaskGroup* tg, bool* grandchild_done) {
  co_await sleep(5 * kMs);
  tg->create_task([](bool* done) -> Coro<void> {
    co_await sleep(5 * kMs);
    *done = true;
  }(grandchild_done));
}

// CPython taskgroups.py __aexit__ ("while self._tasks:"): tasks a child
// adds while the block is already exiting are awaited too.
TEST_P(TaskGroupConformance, TasksAddedWhileExitingAreAwaited) {
  run([&]() -> Coro<void> {
    bool grandchild_done = false;
    co_await task_group([&](TaskGroup& tg) -> Coro<void> {
      tg.create_task(spawn_later(&tg, &grandchild_done));
      co_return;  // exit right away: the group waits in __aexit__
    });
    EXPECT_TRUE(grandchild_done);
  }());
}

// CPython taskgroups.py __aexit__: "if self._parent_task.uncancel() <= ...":
// the cancel the group sent its parent is taken back, so after the
// ExceptionGroup the parent's cancelling() is 0 and it runs on normally.
TEST_P(TaskGroupConformance, ParentCancellingIsBackToZeroAfterGroupError) {
  run([&]() -> Coro<void> {
    bool got_group = false;
    try {
      co_await task_group([](TaskGroup& tg) -> Coro<void> {
        tg.create_task(fail_after(kMs, "x"));
        co_await sleep(kNever);
      });
    } catch (const ExceptionGroup&) {
      got_group = true;
    }
    EXPECT_TRUE(got_group);
    EXPECT_EQ(current_task()->cancelling(), 0);
    bool cancelled = false;
    co_await sleep_noting_cancel(2 * kMs, &cancelled);
    EXPECT_FALSE(cancelled);
  }());
}

// CPython test_taskgroups.py test_taskgroup_03: a child cancelled explicitly
// does not abort the group; the others finish and no error is raised.
TEST_P(TaskGroupConformance, ExplicitlyCancelledChildDoesNotAbortTheGroup) {
  run([&]() -> Coro<void> {
    Task<int> t1;
    Task<int> t2;
    co_await task_group([&](TaskGroup& tg) -> Coro<void> {
      t1 = tg.create_task(value_after(kNever, 42));
      co_await sleep(2 * kMs);
      t1.cancel();
      t2 = tg.create_task(value_after(2 * kMs, 11));
    });
    EXPECT_TRUE(t1.cancelled());
    EXPECT_EQ(t2.result(), 11);
  }());
}

// CPython test_taskgroups.py test_taskgroup_01: leaving the block waits for
// every child.
TEST_P(TaskGroupConformance, LeavingTheBlockWaitsForEveryChild) {
  run([&]() -> Coro<void> {
    Task<int> t1;
    Task<int> t2;
    co_await task_group([&](TaskGroup& tg) -> Coro<void> {
      t1 = tg.create_task(value_after(5 * kMs, 42));
      t2 = tg.create_task(value_after(10 * kMs, 11));
      co_return;
    });
    EXPECT_TRUE(t1.done());
    EXPECT_TRUE(t2.done());
    EXPECT_EQ(t1.result(), 42);
    EXPECT_EQ(t2.result(), 11);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(TimeoutConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(TaskGroupConformance);

}  // namespace
}  // namespace twinloop::conformance
