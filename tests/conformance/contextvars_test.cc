// Cross-loop conformance: context variables (api/contextvars.h) as asyncio
// uses them, on the real and the simulated loop. The spec is CPython 3.14:
// PEP 567 and Python/context.c for ContextVar / Context / Token, and
// Lib/asyncio (tasks.py Task._context, events.py Handle._context,
// futures.py add_done_callback(context=), threads.py to_thread) for who runs
// in which context. Each case names the CPython test it mirrors.
#include <unistd.h>

#include <csignal>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/executor.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/locks.h"
#include "twinloop/api/task.h"
#include "twinloop/api/task_group.h"
#include "twinloop/api/timeouts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/sim_backend.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kZero = absl::ZeroDuration();

// The message of the exception `fn` throws as E, or "<nothing thrown>".
template <class E, class F>
std::string message_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "<nothing thrown>";
}

class ContextVarsConformance : public LoopTest {};

// ---------------------------------------------------------------- tasks

Coro<void> context_1_sub(ContextVar<std::string>* cvar, std::string* seen) {
  co_await sleep(absl::Milliseconds(10));
  *seen = cvar->get();
  cvar->set("something else");
}

// CPython test_tasks.py BaseTaskTests.test_context_1: a task sees its
// creator's context as it was at create_task ("nope": the creator set "yes"
// after creating it), and the task's set does not reach the creator. Outside
// any run the variable still has its default (the run's contexts are copies).
TEST_P(ContextVarsConformance, TaskCopiesItsCreatorsContextAtCreation) {
  ContextVar<std::string> cvar("cvar", "nope");
  std::string seen;
  run([&]() -> Coro<void> {
    EXPECT_EQ(cvar.get(), "nope");
    Task<void> sub = create_task(context_1_sub(&cvar, &seen));
    cvar.set("yes");
    EXPECT_EQ(cvar.get(), "yes");
    co_await sub;
    EXPECT_EQ(cvar.get(), "yes");
  }());
  EXPECT_EQ(seen, "nope");
  EXPECT_EQ(cvar.get(), "nope");
}

Coro<int> context_3_sub(ContextVar<int>* cvar, int num) {
  int mismatches = 0;
  for (int i = 0; i < 5; ++i) {
    cvar->set(num + i);
    co_await sleep(absl::Milliseconds(1 + (num * 7 + i * 3) % 9));
    if (cvar->get() != num + i) ++mismatches;
  }
  co_return mismatches;
}

// CPython test_tasks.py test_context_3: many tasks in parallel, each setting
// the variable and reading it back after sleeps that interleave them: every
// task sees only its own value, and the creator keeps the default.
TEST_P(ContextVarsConformance, ParallelTasksEachSeeTheirOwnValue) {
  ContextVar<int> cvar("cvar", -1);
  run([&]() -> Coro<void> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 30; ++i) tasks.push_back(create_task(context_3_sub(&cvar, i * 100)));
    std::vector<int> mismatches = co_await gather(tasks);
    for (int m : mismatches) EXPECT_EQ(m, 0);
    EXPECT_EQ(cvar.get(), -1);
  }());
  EXPECT_EQ(cvar.get(), -1);
}

Coro<std::string> set_then_read(ContextVar<std::string>* cvar, std::string value, Event* both_set) {
  const std::string before = cvar->get("unset");
  cvar->set(value);
  if (!both_set->is_set()) {
    co_await both_set->wait();
  }
  co_return before + "->" + cvar->get();
}

// PEP 567: a task's set() changes its own context only: a sibling started
// from the same creator keeps seeing the creator's value until it sets its
// own, and neither reaches the creator.
TEST_P(ContextVarsConformance, TaskSetDoesNotLeakToSiblingsOrCreator) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    Event both_set;
    cvar.set("parent");
    Task<std::string> a = create_task(set_then_read(&cvar, "a", &both_set));
    Task<std::string> b = create_task(set_then_read(&cvar, "b", &both_set));
    co_await sleep(kZero);  // both have run their first step and set
    both_set.set();
    EXPECT_EQ(co_await a, "parent->a");
    EXPECT_EQ(co_await b, "parent->b");
    EXPECT_EQ(cvar.get(), "parent");
  }());
}

Coro<void> set_value(ContextVar<int>* cvar, int value) {
  co_await sleep(kZero);
  cvar->set(value);
}

// CPython test_tasks.py test_context_4 / test_context_5 / test_context_6:
// create_task(coro, context=ctx) runs the task in ctx itself, not a copy: its
// sets are in ctx afterwards.
TEST_P(ContextVarsConformance, TaskWithExplicitContextRunsInThatContext) {
  ContextVar<int> cvar("cvar");
  std::vector<std::optional<int>> got;
  run([&]() -> Coro<void> {
    Context ctx = copy_context();
    got.push_back(ctx.get(cvar));
    TaskOptions first;
    first.context = ctx;
    co_await create_task(set_value(&cvar, 1), first);
    got.push_back(ctx.get(cvar));
    TaskOptions second;
    second.context = ctx;
    co_await get_running_loop().create_task(set_value(&cvar, 2), second);
    got.push_back(ctx.get(cvar));
    // The creator's own context was not ctx: untouched.
    EXPECT_EQ(cvar.get(0), 0);
  }());
  EXPECT_THAT(got, ElementsAre(std::nullopt, 1, 2));
}

Coro<std::string> read_var(ContextVar<std::string>* cvar) {
  co_await sleep(kZero);
  co_return cvar->get("unset");
}

// An explicit context's values are what the task sees, whatever its creator
// has (asyncio Task.__init__: self._context = context).
TEST_P(ContextVarsConformance, TaskWithExplicitContextSeesItsValues) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    Context ctx;
    ctx.run([&] { cvar.set("in ctx"); });
    cvar.set("creator");
    TaskOptions options;
    options.context = ctx;
    EXPECT_EQ(co_await create_task(read_var(&cvar), options), "in ctx");
    EXPECT_EQ(co_await create_task(read_var(&cvar)), "creator");
  }());
}

Coro<std::string> eager_body(ContextVar<std::string>* cvar) {
  const std::string seen = cvar->get("unset");
  cvar->set("child");
  co_await sleep(kZero);
  co_return seen + "," + cvar->get();
}

// asyncio 3.12 eager tasks: the first step runs inside create_task, still in
// the task's own context (Task.__eager_start: self._context.run(...)), so
// its set does not reach the creator that is on the same stack. Once in the
// step that first set the creator's value, once in a later step.
TEST_P(ContextVarsConformance, EagerTaskFirstStepRunsInTheTasksContext) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    TaskOptions options;
    options.eager_start = true;
    cvar.set("parent");
    Task<std::string> first = create_task(eager_body(&cvar), options);
    EXPECT_EQ(cvar.get(), "parent");
    co_await sleep(kZero);
    cvar.set("parent later");
    Task<std::string> second = create_task(eager_body(&cvar), options);
    EXPECT_EQ(cvar.get(), "parent later");
    EXPECT_EQ(co_await first, "parent,child");
    EXPECT_EQ(co_await second, "parent later,child");
  }());
}

Coro<void> set_inner(ContextVar<int>* cvar) {
  cvar->set(7);
  co_return;
}

// `await coro()` runs the coroutine inside the awaiting task: one context,
// so the coroutine's set is the caller's (a Coro is not a task).
TEST_P(ContextVarsConformance, AwaitedCoroutineSharesTheTasksContext) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    co_await set_inner(&cvar);
    EXPECT_EQ(cvar.get(), 7);
  }());
}

Coro<std::string> child_reads_then_sets(ContextVar<std::string>* cvar, std::string mine) {
  const std::string inherited = cvar->get("unset");
  cvar->set(mine);
  co_await sleep(absl::Milliseconds(2));
  co_return inherited + "/" + cvar->get();
}

// gather wraps each coroutine in a task (ensure_future), so the children get
// copies of the gathering task's context (CPython test_context.py
// test_asyncio_task_decimal_context: gathered coroutines keep their own
// decimal context).
TEST_P(ContextVarsConformance, GatherChildrenInheritACopy) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    cvar.set("parent");
    auto [a, b] = co_await gather(child_reads_then_sets(&cvar, "a"), child_reads_then_sets(&cvar, "b"));
    EXPECT_EQ(a, "parent/a");
    EXPECT_EQ(b, "parent/b");
    EXPECT_EQ(cvar.get(), "parent");
  }());
}

// TaskGroup.create_task is create_task: children copy the context current
// when they are created.
TEST_P(ContextVarsConformance, TaskGroupChildrenInheritACopy) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    cvar.set("parent");
    Task<std::string> first;
    Task<std::string> second;
    co_await task_group([&](TaskGroup& tg) -> Coro<void> {
      first = tg.create_task(child_reads_then_sets(&cvar, "1"));
      cvar.set("parent again");
      second = tg.create_task(child_reads_then_sets(&cvar, "2"));
      co_return;
    });
    EXPECT_EQ(first.result(), "parent/1");
    EXPECT_EQ(second.result(), "parent again/2");
    EXPECT_EQ(cvar.get(), "parent again");
  }());
}

// asyncio.run (runners.py Runner) runs the main task in a copy of the
// thread's context: what the thread set before run() is visible in it, and
// what the run sets is not visible after. On a thread of its own, so that
// this thread's context stays as it was for the other cases.
TEST_P(ContextVarsConformance, MainTaskCopiesTheThreadsContext) {
  ContextVar<std::string> cvar("cvar");
  std::string in_main;
  std::string in_child;
  std::string after;
  std::thread runner([&] {
    cvar.set("thread");
    run([&]() -> Coro<void> {
      in_main = cvar.get();
      cvar.set("main");
      in_child = co_await create_task(read_var(&cvar));
    }());
    after = cvar.get();
  });
  runner.join();
  EXPECT_EQ(in_main, "thread");
  EXPECT_EQ(in_child, "main");
  EXPECT_EQ(after, "thread");
  EXPECT_EQ(cvar.get("unset"), "unset");  // another thread's context
}

Coro<std::string> read_then_set(ContextVar<std::string>* cvar, std::string value) {
  const std::string seen = cvar->get("unset");
  co_await sleep(kZero);
  cvar->set(std::move(value));
  co_await sleep(kZero);
  co_return seen + "," + cvar->get();
}

// A loop driven inside Context::run (base_events.py run_until_complete makes
// a task, which copies the current context, here ctx): the task sees ctx's
// values, and its sets stay in the task, not in ctx.
TEST_P(ContextVarsConformance, LoopRunInsideContextRunCopiesThatContext) {
  ContextVar<std::string> cvar("cvar");
  EventLoopRef loop = new_loop();
  Context ctx;
  ctx.run([&] { cvar.set("outer"); });
  const std::string got = ctx.run([&] { return loop->run_until_complete(read_then_set(&cvar, "task")); });
  loop->close();
  EXPECT_EQ(got, "outer,task");
  EXPECT_EQ(ctx.get(cvar), "outer");
}

// ---------------------------------------------------------------- callbacks

// asyncio's Handle copies the context when the callback is scheduled
// (events.py Handle.__init__: contextvars.copy_context()) and runs the
// callback in the copy: it sees the value at call_soon time, not the later
// one, and its set reaches neither the task nor the next callback.
TEST_P(ContextVarsConformance, CallSoonRunsInTheContextAtSchedulingTime) {
  ContextVar<std::string> cvar("cvar");
  std::vector<std::string> seen;
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    cvar.set("at call_soon");
    loop.call_soon([&] {
      seen.push_back(cvar.get());
      cvar.set("set by callback");
    });
    loop.call_soon([&] { seen.push_back(cvar.get()); });
    cvar.set("later");
    co_await sleep(kZero);
    EXPECT_EQ(cvar.get(), "later");
  }());
  EXPECT_THAT(seen, ElementsAre("at call_soon", "at call_soon"));
}

// The same for timers (call_later / call_at make TimerHandles, which are
// Handles).
TEST_P(ContextVarsConformance, CallLaterAndCallAtRunInTheContextAtSchedulingTime) {
  ContextVar<int> cvar("cvar", 0);
  std::vector<int> seen;
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    cvar.set(1);
    loop.call_later(absl::Milliseconds(2), [&] { seen.push_back(cvar.get()); });
    cvar.set(2);
    loop.call_at(loop.time() + absl::Milliseconds(4), [&] { seen.push_back(cvar.get()); });
    cvar.set(3);
    co_await sleep(absl::Milliseconds(10));
  }());
  EXPECT_THAT(seen, ElementsAre(1, 2));
}

// call_soon(cb, context=ctx): the callback runs in ctx itself, so what it
// sets is in ctx afterwards (Handle._run: self._context.run(...)).
TEST_P(ContextVarsConformance, CallbackWithExplicitContextRunsInIt) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    Context ctx;
    ctx.run([&] { cvar.set(10); });
    cvar.set(1);
    int seen_soon = -1;
    int seen_later = -1;
    loop.call_soon(
        [&] {
          seen_soon = cvar.get();
          cvar.set(11);
        },
        ctx);
    loop.call_later(absl::Milliseconds(1), [&] { seen_later = cvar.get(); }, ctx);
    co_await sleep(absl::Milliseconds(5));
    EXPECT_EQ(seen_soon, 10);
    EXPECT_EQ(seen_later, 11);
    EXPECT_EQ(ctx.get(cvar), 11);
    EXPECT_EQ(cvar.get(), 1);
  }());
}

// CPython test_tasks.py test_context_2: a done callback runs in the context
// current when it was added (futures.py add_done_callback:
// context = contextvars.copy_context()); its set does not pollute the task;
// the task sees its own later value after awaiting the future.
TEST_P(ContextVarsConformance, DoneCallbackRunsInTheContextAtAddTime) {
  ContextVar<std::string> cvar("cvar", "nope");
  std::vector<std::string> seen;
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    EXPECT_EQ(cvar.get(), "nope");
    for (int j = 0; j < 2; ++j) {
      Future<void> fut = create_future<void>();
      fut.add_done_callback([&](Future<void>) {
        seen.push_back(cvar.get());
        cvar.set("something else");
      });
      cvar.set("yes" + std::to_string(j));
      loop.call_soon([fut]() mutable { fut.set_result(); });
      co_await fut;
      EXPECT_EQ(cvar.get(), "yes" + std::to_string(j));
      for (int i = 0; i < 3; ++i) {
        const std::string mine = "yes" + std::to_string(i) + "-" + std::to_string(j);
        cvar.set(mine);
        co_await sleep(absl::Milliseconds(1));
        EXPECT_EQ(cvar.get(), mine);
      }
    }
  }());
  // The first callback was added before any set; the second after "yes0"'s
  // inner loop left "yes2-0".
  EXPECT_THAT(seen, ElementsAre("nope", "yes2-0"));
  EXPECT_EQ(cvar.get(), "nope");
}

// add_done_callback(fn, context=ctx) runs fn in ctx itself.
TEST_P(ContextVarsConformance, DoneCallbackWithExplicitContextRunsInIt) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    Context ctx;
    int seen = -1;
    Future<int> fut = create_future<int>();
    fut.add_done_callback(
        [&](Future<int> f) {
          seen = cvar.get();
          cvar.set(f.result());
        },
        ctx);
    cvar.set(5);
    fut.set_result(42);
    co_await sleep(kZero);
    EXPECT_EQ(seen, 0);
    EXPECT_EQ(ctx.get(cvar), 42);
    EXPECT_EQ(cvar.get(), 5);
  }());
}

// events.py Handle: call_soon_threadsafe copies the calling thread's context.
// Called from a to_thread function (a worker thread on the real loop, the
// loop thread in simulation), whose context is a copy of the caller's.
TEST_P(ContextVarsConformance, CallSoonThreadsafeRunsInTheCallingThreadsContext) {
  ContextVar<std::string> cvar("cvar", "none");
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    Future<std::string> seen = create_future<std::string>();
    cvar.set("caller");
    // The worker touches no loop object: it captures the future by address
    // (a Future's reference count belongs to the loop thread).
    Future<std::string>* seen_at = &seen;
    auto post = [&loop, &cvar, seen_at] {
      cvar.set("worker");
      loop.call_soon_threadsafe([&cvar, seen_at] { seen_at->set_result(cvar.get()); });
    };
    co_await to_thread(std::move(post));
    cvar.set("caller later");
    EXPECT_EQ(co_await seen, "worker");
  }());
}

// Unix events: add_signal_handler makes the handler's Handle at once, so
// the handler runs in a copy of the context current then.
TEST_P(ContextVarsConformance, SignalHandlerRunsInTheContextAtAddTime) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    Event delivered;
    int seen = -1;
    cvar.set(1);
    loop.add_signal_handler(SIGUSR1, [&] {
      seen = cvar.get();
      delivered.set();
    });
    cvar.set(2);
    raise_test_signal(loop, SIGUSR1);
    co_await wait_for(delivered.wait(), absl::Seconds(5));
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_EQ(seen, 1);
  }());
}

// ---------------------------------------------------------------- executor

std::string read_and_overwrite(ContextVar<std::string>* cvar) {
  const std::string seen = cvar->get("unset");
  cvar->set("set in thread");
  return seen;
}

// asyncio.to_thread (threads.py): ctx = contextvars.copy_context(); the
// function runs as ctx.run(func): it sees the caller's values, and its sets
// stay in the copy.
TEST_P(ContextVarsConformance, ToThreadRunsInACopyOfTheCallersContext) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    cvar.set("caller");
    EXPECT_EQ(co_await to_thread(read_and_overwrite, &cvar), "caller");
    EXPECT_EQ(cvar.get(), "caller");
    // A second call gets a fresh copy, not the first call's.
    EXPECT_EQ(co_await to_thread(read_and_overwrite, &cvar), "caller");
  }());
}

// loop.run_in_executor does not copy the context (asyncio's does not):
// the function does not see the caller's value, and (twinloop: a fresh
// context per call, on both loops) a set inside does not reach later calls.
TEST_P(ContextVarsConformance, RunInExecutorDoesNotCopyTheContext) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    cvar.set("caller");
    auto first = [&cvar] { return read_and_overwrite(&cvar); };
    EXPECT_EQ(co_await run_in_executor(first), "unset");
    auto second = [&cvar] { return read_and_overwrite(&cvar); };
    EXPECT_EQ(co_await run_in_executor(second), "unset");
    EXPECT_EQ(cvar.get(), "caller");
  }());
}

// ---------------------------------------------------------------- ContextVar, Token, Context

// Python/context.c: get() without a value or default raises LookupError;
// get(default) returns the given default even over the variable's own.
TEST_P(ContextVarsConformance, GetWithoutValueOrDefaultRaisesLookupError) {
  ContextVar<int> bare("bare");
  ContextVar<int> with_default("with_default", 3);
  run([&]() -> Coro<void> {
    EXPECT_EQ(message_of<LookupError>([&] { bare.get(); }), "<ContextVar name='bare'>");
    EXPECT_EQ(bare.get(9), 9);
    EXPECT_EQ(with_default.get(), 3);
    EXPECT_EQ(with_default.get(9), 9);
    bare.set(1);
    EXPECT_EQ(bare.get(), 1);
    EXPECT_EQ(bare.get(9), 1);
    co_return;
  }());
}

// PEP 567 ContextVar.reset: restores the value before the set() that made
// the token, or removes the variable if it had none (Token.MISSING).
TEST_P(ContextVarsConformance, ResetRestoresThePreviousValue) {
  ContextVar<std::string> cvar("cvar");
  run([&]() -> Coro<void> {
    auto t1 = cvar.set("one");
    EXPECT_EQ(t1.old_value(), std::nullopt);
    EXPECT_EQ(&t1.var(), &cvar);
    auto t2 = cvar.set("two");
    EXPECT_EQ(t2.old_value(), "one");
    co_await sleep(kZero);  // a token survives suspension: same task, same context
    cvar.reset(t2);
    EXPECT_EQ(cvar.get(), "one");
    cvar.reset(t1);
    EXPECT_THROW(cvar.get(), LookupError);
    EXPECT_FALSE(copy_context().contains(cvar));
  }());
}

// Python/context.c PyContextVar_Reset: a used token is a RuntimeError
// (checked first), another variable's token a ValueError.
TEST_P(ContextVarsConformance, TokenMisuseRaisesAsPython) {
  ContextVar<int> a("a");
  ContextVar<int> b("b");
  run([&]() -> Coro<void> {
    auto token = a.set(1);
    a.reset(token);
    EXPECT_EQ(message_of<std::runtime_error>([&] { a.reset(token); }),
              "<Token var=<ContextVar name='a'>> has already been used once");
    auto copy = token;  // copies are the same token
    EXPECT_THROW(a.reset(copy), std::runtime_error);
    auto fresh = a.set(2);
    EXPECT_EQ(message_of<std::invalid_argument>([&] { b.reset(fresh); }),
              "<Token var=<ContextVar name='a'>> was created by a different ContextVar");
    EXPECT_EQ(a.get(), 2);  // a failed reset changes nothing
    a.reset(fresh);
    co_return;
  }());
}

Coro<std::string> reset_foreign(ContextVar<int>* cvar, ContextVar<int>::Token token) {
  std::string error = message_of<std::invalid_argument>([&] { cvar->reset(token); });
  co_return error;
}

// A token reset in another context than the one its set() ran in is a
// ValueError: another task (its own context), a callback (a copy), a
// Context::run (PyContextVar_Reset: "was created in a different Context").
TEST_P(ContextVarsConformance, TokenFromAnotherContextIsRejected) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    auto token = cvar.set(1);
    const std::string expected = "<Token var=<ContextVar name='cvar'>> was created in a different Context";
    EXPECT_EQ(co_await create_task(reset_foreign(&cvar, token)), expected);
    std::string from_callback;
    get_running_loop().call_soon(
        [&] { from_callback = message_of<std::invalid_argument>([&] { cvar.reset(token); }); });
    co_await sleep(kZero);
    EXPECT_EQ(from_callback, expected);
    EXPECT_EQ(copy_context().run([&] { return message_of<std::invalid_argument>([&] { cvar.reset(token); }); }),
              expected);
    EXPECT_EQ(cvar.get(), 1);
    cvar.reset(token);  // still unused: the failures did not consume it
    EXPECT_EQ(cvar.get(), 0);
  }());
}

// PEP 567 Context.run: sets inside run() land in that context, not the
// caller's; running a context that is already entered is a RuntimeError
// ("cannot enter context: ... is already entered"); copy() is independent.
TEST_P(ContextVarsConformance, ContextRunIsolatesAndRejectsReentry) {
  ContextVar<int> cvar("cvar", 0);
  run([&]() -> Coro<void> {
    cvar.set(1);
    Context ctx = copy_context();
    EXPECT_EQ(ctx.get(cvar), 1);
    const int inside = ctx.run([&](int add) {
      cvar.set(cvar.get() + add);
      return cvar.get();
    }, 10);
    EXPECT_EQ(inside, 11);
    EXPECT_EQ(ctx.get(cvar), 11);
    EXPECT_EQ(ctx.at(cvar), 11);
    EXPECT_EQ(ctx.size(), 1u);
    EXPECT_EQ(cvar.get(), 1);
    Context copy = ctx.copy();
    copy.run([&] { cvar.set(99); });
    EXPECT_EQ(ctx.get(cvar), 11);
    EXPECT_EQ(copy.get(cvar), 99);
    EXPECT_EQ(message_of<std::runtime_error>([&] { ctx.run([&] { ctx.run([] {}); }); }),
              "cannot enter context: <Context> is already entered");
    // A failed run leaves the caller's context current.
    EXPECT_EQ(cvar.get(), 1);
    ContextVar<int> other("other");
    EXPECT_THROW(ctx.at(other), LookupError);
    EXPECT_FALSE(ctx.contains(other));
    co_return;
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ContextVarsConformance);

}  // namespace
}  // namespace twinloop::conformance
