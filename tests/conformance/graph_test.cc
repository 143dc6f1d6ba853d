// Call-graph introspection on both loops (asyncio 3.14 graph.py;
// CPython Lib/test/test_asyncio/test_graph.py).
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class GraphConformance : public LoopTest {};

std::vector<std::string> functions_of(const FutureCallGraph& g) {
  std::vector<std::string> out;
  for (const FrameCallGraphEntry& e : g.call_stack) out.push_back(e.function);
  return out;
}

constexpr int kLeafLine = __LINE__ + 1;
Coro<int> graph_leaf(Future<int> f) { co_return co_await f; }
constexpr int kMiddleLine = __LINE__ + 1;
Coro<int> graph_middle(Future<int> f) { co_return co_await graph_leaf(f); }
Coro<int> graph_outer(Future<int> f) { co_return co_await graph_middle(f); }

// test_graph.py test_stack_tgroup / capture of another task: the chain of
// awaiting coroutines, innermost first, each at the line it awaits.
TEST_P(GraphConformance, CallStackListsAwaitingCoroutinesInnermostFirst) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> t = create_task(graph_outer(f), {.name = "chain"});
    co_await sleep(absl::ZeroDuration());
    auto g = capture_call_graph(t);
    EXPECT_TRUE(g.has_value());
    if (!g) co_return;
    EXPECT_TRUE(g->is_task);
    EXPECT_EQ(g->name, "chain");
    EXPECT_THAT(functions_of(*g), ElementsAre("graph_leaf", "graph_middle", "graph_outer"));
    EXPECT_THAT(g->call_stack[0].file, HasSubstr("conformance/graph_test.cc"));
    EXPECT_EQ(g->call_stack[0].line, kLeafLine);  // graph_leaf's co_await
    f.set_result(1);
    EXPECT_EQ(co_await t, 1);
  }());
}

// test_graph.py: limit > 0 keeps the innermost frames, < 0 the outermost,
// 0 only the awaited_by edges.
TEST_P(GraphConformance, LimitKeepsInnermostOutermostOrNone) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> t = create_task(graph_outer(f));
    co_await sleep(absl::ZeroDuration());
    EXPECT_THAT(functions_of(*capture_call_graph(t, 1)), ElementsAre("graph_leaf"));
    EXPECT_THAT(functions_of(*capture_call_graph(t, -1)), ElementsAre("graph_outer"));
    EXPECT_TRUE(capture_call_graph(t, 0)->call_stack.empty());
    t.cancel();
  }());
}

constexpr int kDescribeLine = __LINE__ + 3;
Coro<std::string> describe_myself() {
  co_await sleep(absl::ZeroDuration());
  co_return format_call_graph();  // this line's number appears in the graph
}

// graph.py capture_call_graph(): for the current task the innermost entry is
// where the graph was asked for; the awaiting task appears under "Awaited by".
TEST_P(GraphConformance, CurrentTaskGraphShowsTheCallSiteAndItsAwaiter) {
  run([]() -> Coro<void> {
    Task<std::string> t = create_task(describe_myself(), {.name = "me"});
    std::string text = co_await t;
    EXPECT_THAT(text, HasSubstr("* Task(name='me', id="));
    EXPECT_THAT(text, HasSubstr(absl::StrCat("line ", kDescribeLine, ", in async describe_myself()")));
    EXPECT_THAT(text, HasSubstr("  + Awaited by:\n    * Task(name='Task-1', id=1)"));
  }());
}

TEST_P(GraphConformance, OutsideATaskThereIsNoGraph) {
  run([]() -> Coro<void> {
    std::optional<FutureCallGraph> g;
    get_running_loop().call_soon([&g] { g = capture_call_graph(); });
    co_await sleep(absl::ZeroDuration());
    EXPECT_FALSE(g.has_value());
    EXPECT_EQ(format_call_graph(create_future<int>()), "* Future()");
  }());
}

// asyncio records awaited_by edges for a task blocked on another task.
TEST_P(GraphConformance, TaskAwaitingATaskIsItsAwaiter) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> inner = create_task(graph_leaf(f), {.name = "inner"});
    Task<int> outer = create_task([](Task<int> t) -> Coro<int> { co_return co_await t; }(inner), {.name = "outer"});
    co_await sleep(absl::ZeroDuration());
    auto g = capture_call_graph(inner);
    EXPECT_EQ(g->awaited_by.size(), 1u);
    if (g->awaited_by.size() == 1) {
      EXPECT_EQ(g->awaited_by[0].name, "outer");
    }
    f.set_result(2);
    EXPECT_EQ(co_await outer, 2);
    EXPECT_TRUE(capture_call_graph(inner)->awaited_by.empty());
  }());
}

// asyncio.gather: future_add_to_awaited_by(child, current task).
TEST_P(GraphConformance, GatherChildrenAreAwaitedByTheCaller) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> child = create_task(graph_leaf(f), {.name = "child"});
    Task<void> caller = create_task(
        [](Task<int> c) -> Coro<void> { co_await gather(c, sleep(absl::Milliseconds(1))); }(child),
        {.name = "gatherer"});
    co_await sleep(absl::ZeroDuration());
    auto g = capture_call_graph(child);
    EXPECT_EQ(g->awaited_by.size(), 1u);
    if (!g->awaited_by.empty()) {
      EXPECT_EQ(g->awaited_by[0].name, "gatherer");
    }
    f.set_result(3);
    co_await caller;
  }());
}

// asyncio.shield and TaskGroup record edges too.
TEST_P(GraphConformance, ShieldAndTaskGroupRecordEdges) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> shielded = create_task(graph_leaf(f), {.name = "shielded"});
    Task<int> shielder = create_task(
        [](Task<int> s) -> Coro<int> { co_return co_await shield(s); }(shielded), {.name = "shielder"});
    Future<int> g2 = create_future<int>();
    Task<int> child;
    Task<void> parent = create_task(
        [](Future<int> g2, Task<int>* child) -> Coro<void> {
          co_await task_group([&](TaskGroup& tg) -> Coro<void> {
            *child = tg.create_task(graph_leaf(g2), {.name = "grouped"});
            co_return;
          });
        }(g2, &child),
        {.name = "parent"});
    co_await sleep(absl::ZeroDuration());
    co_await sleep(absl::ZeroDuration());
    auto a = capture_call_graph(shielded);
    EXPECT_EQ(a->awaited_by.size(), 1u);
    if (!a->awaited_by.empty()) {
      EXPECT_EQ(a->awaited_by[0].name, "shielder");
    }
    auto b = capture_call_graph(child);
    EXPECT_EQ(b->awaited_by.size(), 1u);
    if (!b->awaited_by.empty()) {
      EXPECT_EQ(b->awaited_by[0].name, "parent");
    }
    f.set_result(1);
    g2.set_result(2);
    co_await shielder;
    co_await parent;
  }());
}

// asyncio.wait records each future as awaited by the waiting task, and
// forgets it once the wait is over.
TEST_P(GraphConformance, WaitRecordsEdgesForItsDuration) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> t = create_task(graph_leaf(f), {.name = "waited"});
    Task<void> waiter = create_task(
        [](Task<int> t) -> Coro<void> {
          std::vector<Task<int>> ts{t};
          co_await wait(std::move(ts));
        }(t),
        {.name = "waiter"});
    co_await sleep(absl::ZeroDuration());
    auto g = capture_call_graph(t);
    EXPECT_EQ(g->awaited_by.size(), 1u);
    if (!g->awaited_by.empty()) {
      EXPECT_EQ(g->awaited_by[0].name, "waiter");
    }
    f.set_result(4);
    co_await waiter;
    EXPECT_TRUE(capture_call_graph(t)->awaited_by.empty());
  }());
}

// The text format is asyncio's (graph.py format_call_graph).
TEST_P(GraphConformance, FormatMatchesAsyncioLayout) {
  run([]() -> Coro<void> {
    Future<int> f = create_future<int>();
    Task<int> t = create_task(graph_middle(f), {.name = "fmt"});
    Task<int> w = create_task([](Task<int> t) -> Coro<int> { co_return co_await t; }(t), {.name = "awaiter"});
    co_await sleep(absl::ZeroDuration());
    std::vector<std::string> lines = absl::StrSplit(format_call_graph(t), '\n');
    EXPECT_EQ(lines.size(), 8u);
    if (lines.size() == 8) {
      EXPECT_EQ(lines[0], absl::StrCat("* Task(name='fmt', id=", t.id(), ")"));
      EXPECT_EQ(lines[1], "  + Call stack:");
      EXPECT_THAT(lines[2], ::testing::MatchesRegex(absl::StrCat(
                                "  \\|   File '.*conformance/graph_test.cc', line ", kLeafLine, ", in async graph_leaf\\(\\)")));
      EXPECT_THAT(lines[3], ::testing::MatchesRegex(
                                absl::StrCat("  \\|   File '.*', line ", kMiddleLine, ", in async graph_middle\\(\\)")));
      EXPECT_EQ(lines[4], "  + Awaited by:");
      EXPECT_EQ(lines[5], absl::StrCat("    * Task(name='awaiter', id=", w.id(), ")"));
      EXPECT_EQ(lines[6], "      + Call stack:");
      EXPECT_THAT(lines[7], ::testing::MatchesRegex("      \\|   File '.*', line [0-9]+, in async operator\\(\\)\\(\\)"));
    }
    f.set_result(5);
    EXPECT_EQ(co_await w, 5);
  }());
}

// CPython test_graph.py test_stack_tgroup, line for line: a plain function
// c5() called by coroutine c4 captures the current task's graph.
std::optional<FutureCallGraph> stack_for_c5;
constexpr int kC5Line = __LINE__ + 1;
void c5() { stack_for_c5 = capture_call_graph(); }
constexpr int kC4Line = __LINE__ + 2;
Coro<void> c4() {
  co_await sleep(absl::ZeroDuration());
  c5();
}
Coro<void> c3() { co_await c4(); }
Coro<void> c2() { co_await c3(); }
Coro<void> c1(Task<void> task) { co_await task; }

std::vector<bool> coroutine_flags_of(const FutureCallGraph& g) {
  std::vector<bool> out;
  for (const FrameCallGraphEntry& e : g.call_stack) out.push_back(e.coroutine);
  return out;
}

TEST_P(GraphConformance, PlainFunctionCalledByACoroutineIsItsOwnFrame) {
  run([]() -> Coro<void> {
    stack_for_c5.reset();
    co_await task_group([](TaskGroup& tg) -> Coro<void> {
      Task<void> task = tg.create_task(c2(), {.name = "c2_root"});
      tg.create_task(c1(task), {.name = "sub_main_1"});
      tg.create_task(c1(task), {.name = "sub_main_2"});
      co_return;
    });
    EXPECT_TRUE(stack_for_c5.has_value());
    if (!stack_for_c5) co_return;
    const FutureCallGraph& g = *stack_for_c5;
    EXPECT_EQ(g.name, "c2_root");
    // ['s c5', 'a c4', 'a c3', 'a c2']
    EXPECT_THAT(functions_of(g), ElementsAre("c5", "c4", "c3", "c2"));
    EXPECT_THAT(coroutine_flags_of(g), ElementsAre(false, true, true, true));
    EXPECT_EQ(g.call_stack[0].line, kC5Line);
    EXPECT_THAT(g.call_stack[0].file, HasSubstr("conformance/graph_test.cc"));
    EXPECT_EQ(g.call_stack[1].line, kC4Line);  // c4's last co_await
    // Awaited by the task running the group (asyncio: T<anon>) and both c1s.
    std::vector<std::string> awaiters;
    for (const FutureCallGraph& a : g.awaited_by) awaiters.push_back(a.name);
    EXPECT_THAT(awaiters, ElementsAre("Task-1", "sub_main_1", "sub_main_2"));
    // The text names a plain frame without "async".
    const std::string text = internal::render_call_graph(g);
    EXPECT_THAT(text, HasSubstr(absl::StrCat("line ", kC5Line, ", in c5()\n")));
    EXPECT_THAT(text, HasSubstr(absl::StrCat("line ", kC4Line, ", in async c4()\n")));
    stack_for_c5.reset();
  }());
}

// The direct case: asked from the innermost coroutine itself, its own entry
// moves to the asking line; nothing is added.
std::optional<FutureCallGraph> stack_for_d4;
constexpr int kD4CaptureLine = __LINE__ + 3;
Coro<void> d4() {
  co_await sleep(absl::ZeroDuration());
  stack_for_d4 = capture_call_graph();
}
Coro<void> d3() { co_await d4(); }

TEST_P(GraphConformance, CoroutineAskingItselfShowsTheAskingLine) {
  run([]() -> Coro<void> {
    stack_for_d4.reset();
    Task<void> t = create_task(d3(), {.name = "direct"});  // not inside the co_await: g++ 12
    co_await t;
    EXPECT_TRUE(stack_for_d4.has_value());
    if (!stack_for_d4) co_return;
    EXPECT_THAT(functions_of(*stack_for_d4), ElementsAre("d4", "d3"));
    EXPECT_THAT(coroutine_flags_of(*stack_for_d4), ElementsAre(true, true));
    EXPECT_EQ(stack_for_d4->call_stack[0].line, kD4CaptureLine);
    stack_for_d4.reset();
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(GraphConformance);

}  // namespace
}  // namespace twinloop::conformance
