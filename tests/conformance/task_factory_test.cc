// Cross-loop conformance: task factories (CPython 3.14 Lib/asyncio/
// base_events.py set_task_factory / get_task_factory / create_task, and
// Lib/asyncio/tasks.py eager_task_factory), on the real and the simulated
// loop.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kMs = absl::Milliseconds(1);

Coro<int> mark_and_return(bool* started, int v) {
  *started = true;
  co_return v;
}

// Holds `token` in its frame: token.use_count() tells whether the frame
// is gone.
Coro<void> holding(std::shared_ptr<int> token, bool* ran) {
  *ran = true;
  co_await sleep(kMs);
  static_cast<void>(token);
}

class TaskFactoryConformance : public LoopTest {};

// CPython test_base_events.py test_set_task_factory: None by default; a
// factory set is returned by get_task_factory; setting None restores the
// default.
TEST_P(TaskFactoryConformance, SetAndGetTaskFactory) {
  run([]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    EXPECT_FALSE(loop.get_task_factory());
    loop.set_task_factory(eager_task_factory);
    EXPECT_TRUE(loop.get_task_factory());
    loop.set_task_factory(nullptr);
    EXPECT_FALSE(loop.get_task_factory());
    bool started = false;
    Task<int> t = create_task(mark_and_return(&started, 1));
    EXPECT_FALSE(started);  // the default factory schedules
    EXPECT_EQ(co_await t, 1);
  }());
}

// CPython test_eager_task_factory.py EagerTaskFactoryLoopTests
// test_eager_task_factory_set / test_eager_completion: create_task runs the
// first step at once; a coroutine that finishes there gives a done task.
TEST_P(TaskFactoryConformance, EagerTaskFactoryStartsTasksAtOnce) {
  run([]() -> Coro<void> {
    get_running_loop().set_task_factory(eager_task_factory);
    bool started = false;
    Task<int> t = create_task(mark_and_return(&started, 7));
    EXPECT_TRUE(started);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 7);
    get_running_loop().set_task_factory(nullptr);
    co_return;
  }());
}

// CPython 3.14 base_events.py create_task / tasks.py
// create_eager_task_factory: eager_start=False given to create_task wins
// over the eager factory; eager_start=True without a factory is eager.
TEST_P(TaskFactoryConformance, EagerStartFalseOverridesTheEagerFactory) {
  run([]() -> Coro<void> {
    get_running_loop().set_task_factory(eager_task_factory);
    bool lazy_started = false;
    Task<int> lazy = create_task(mark_and_return(&lazy_started, 1), TaskOptions{.eager_start = false});
    EXPECT_FALSE(lazy_started);
    EXPECT_FALSE(lazy.done());
    get_running_loop().set_task_factory(nullptr);
    bool eager_started = false;
    Task<int> eager = create_task(mark_and_return(&eager_started, 2), TaskOptions{.eager_start = true});
    EXPECT_TRUE(eager_started);
    EXPECT_EQ(co_await lazy, 1);
    EXPECT_EQ(co_await eager, 2);
  }());
}

// CPython base_events.py create_task: `return self._task_factory(self,
// coro, **kwargs)`: the factory sees every task made on the loop, with the
// options given, and its options take effect. gather's tasks too.
TEST_P(TaskFactoryConformance, FactorySeesEveryTaskWithItsOptions) {
  std::vector<std::string> seen;
  run([&]() -> Coro<void> {
    get_running_loop().set_task_factory([&](EventLoop& loop, TaskCoro& coro, TaskOptions options) {
      seen.push_back(std::string(coro.function()) + ":" + options.name + ":" +
                     (options.eager_start ? (*options.eager_start ? "eager" : "lazy") : "unset"));
      if (options.name.empty()) options.name = "made-" + std::to_string(seen.size());
      return new_task(loop, coro, std::move(options));
    });
    bool started = false;
    Task<int> named = create_task(mark_and_return(&started, 1), TaskOptions{.name = "named", .eager_start = false});
    Task<int> unnamed = create_task(mark_and_return(&started, 2));
    EXPECT_EQ(named.get_name(), "named");
    EXPECT_EQ(unnamed.get_name(), "made-2");
    std::vector<Task<int>> tasks{named, unnamed};
    std::vector<int> both = co_await gather(std::move(tasks));
    EXPECT_THAT(both, ElementsAre(1, 2));
    const std::tuple<int, int> pair = co_await gather(mark_and_return(&started, 3), mark_and_return(&started, 4));
    EXPECT_EQ(std::get<0>(pair) + std::get<1>(pair), 7);
    get_running_loop().set_task_factory(nullptr);
  }());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], "mark_and_return:named:lazy");
  EXPECT_EQ(seen[1], "mark_and_return::unset");
  EXPECT_EQ(seen[2], "mark_and_return::unset");
  EXPECT_EQ(seen[3], "mark_and_return::unset");
}

// The runner's main task is made by the loop's factory as well (asyncio:
// Runner.run calls self._loop.create_task).
TEST_P(TaskFactoryConformance, RunnersMainTaskGoesThroughTheFactory) {
  int made = 0;
  Runner runner(RunnerOptions{.loop_factory = [p = GetParam()] { return conformance::new_loop(p); }});
  runner.get_loop().set_task_factory([&made](EventLoop& loop, TaskCoro& coro, TaskOptions options) {
    ++made;
    return new_task(loop, coro, std::move(options));
  });
  bool started = false;
  EXPECT_EQ(runner.run(mark_and_return(&started, 5)), 5);
  EXPECT_EQ(made, 1);
}

// A factory must make the task it was given, once: anything else is a loud
// error, and a coroutine that never became a task is destroyed unrun.
TEST_P(TaskFactoryConformance, FactoryThatMakesNoTaskIsAnError) {
  run([]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    auto token = std::make_shared<int>(0);
    bool ran = false;
    loop.set_task_factory([](EventLoop&, TaskCoro&, TaskOptions) { return TaskRef{nullptr}; });
    EXPECT_THROW(create_task(holding(token, &ran)), std::logic_error);
    EXPECT_EQ(token.use_count(), 1) << "the coroutine frame was not destroyed";

    loop.set_task_factory([](EventLoop&, TaskCoro&, TaskOptions) -> TaskRef { throw std::runtime_error("no"); });
    EXPECT_THROW(create_task(holding(token, &ran)), std::runtime_error);
    EXPECT_EQ(token.use_count(), 1);

    // Makes the task, but hands back another one.
    loop.set_task_factory([](EventLoop& l, TaskCoro& coro, TaskOptions options) {
      new_task(l, coro, std::move(options));
      return *current_task();
    });
    EXPECT_THROW(create_task(holding(token, &ran)), std::logic_error);

    // Makes it twice.
    loop.set_task_factory([](EventLoop& l, TaskCoro& coro, TaskOptions options) {
      new_task(l, coro, options);
      return new_task(l, coro, options);
    });
    EXPECT_THROW(create_task(holding(token, &ran)), std::logic_error);
    loop.set_task_factory(nullptr);
    EXPECT_FALSE(ran);
    co_await sleep(5 * kMs);  // the two tasks made above run and finish
    EXPECT_TRUE(ran);
    EXPECT_EQ(token.use_count(), 1);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(TaskFactoryConformance);

}  // namespace
}  // namespace twinloop::conformance
