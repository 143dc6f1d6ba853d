// twinloop/api/graph.h: call-graph introspection (asyncio.capture_call_graph,
// format_call_graph, print_call_graph; CPython 3.14 Lib/asyncio/graph.py).
//
//   twinloop::print_call_graph();                  // the current task
//   std::string s = twinloop::format_call_graph(task);
//
//   * Task(name='worker', id=3)
//     + Call stack:
//     |   File 'app/worker.cc', line 42, in async fetch()
//     |   File 'app/worker.cc', line 17, in async worker()
//     + Awaited by:
//         * Task(name='main', id=1)
//           + Call stack:
//           |   File 'app/main.cc', line 9, in async main_coro()
//
// The call stack lists the chain of awaiting coroutines inside the task,
// innermost first: each coroutine by its function name and the line of the
// co_await it is suspended at. For the current task, the place that asked
// for the graph comes first: asked from the innermost coroutine itself, its
// entry shows the asking line; asked from a plain function that the
// innermost coroutine called, that function is added as a frame of its own
// ("in f()", not "in async f()"), and the coroutine keeps the line of its
// last co_await (CPython test_graph.py test_stack_tgroup: c5() called by
// coroutine c4 gives c5, c4, c3, c2). Only the function that called
// capture_call_graph (or format_/print_call_graph) is known: a chain of
// several plain functions shows as that one alone, and a plain function
// named like the coroutine that called it (in the same file), such as a
// lambda called from a coroutine lambda (both "operator()"), is taken for
// the coroutine. "Awaited by" lists the tasks that
// await this one: a task blocked on it, and the edges asyncio records for
// gather (children awaited by the task that called gather), shield (inner
// awaited by the caller), wait (each future awaited by the waiting task) and
// TaskGroup (children awaited by the parent task).
//
// limit: as asyncio's, a positive value keeps that many innermost frames, a
// negative one that many outermost, 0 only the awaited_by edges.
// Deliberate differences: ids are the loop's task numbers, not addresses, so
// output is the same in every simulated run of a seed; functions are named
// unqualified (C++ has no __qualname__ for coroutines at run time).
#ifndef TWINLOOP_API_GRAPH_H_
#define TWINLOOP_API_GRAPH_H_

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "twinloop/api/future.h"
#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

struct FrameCallGraphEntry {
  std::string function;
  std::string file;
  int line = 0;
  // A coroutine's frame ("in async f()"), or the plain function that asked
  // for the current task's graph ("in f()").
  bool coroutine = true;
};

struct FutureCallGraph {
  bool is_task = false;
  std::string name;     // the task's name, or the future's label
  uint64_t id = 0;      // the task's id (0 for a plain future)
  std::vector<FrameCallGraphEntry> call_stack;  // innermost first
  std::vector<FutureCallGraph> awaited_by;
};

namespace internal {
std::optional<FutureCallGraph> capture_call_graph_of(FutureBase* future, std::optional<int> limit,
                                                     AwaitSite here);
std::string render_call_graph(const FutureCallGraph& graph);
}  // namespace internal

// The graph of the current task; nullopt outside a task. std::runtime_error
// outside a running loop.
inline std::optional<FutureCallGraph> capture_call_graph(std::optional<int> limit = std::nullopt,
                                                         const char* file = __builtin_FILE(),
                                                         int line = __builtin_LINE(),
                                                         const char* function = __builtin_FUNCTION()) {
  internal::TaskBase* t = internal::LoopAccess::current_task(get_running_loop());
  if (!t) return std::nullopt;
  return internal::capture_call_graph_of(&t->future(), limit, {file, line, function});
}
// The graph of `future` (a Future or a Task).
template <class T>
std::optional<FutureCallGraph> capture_call_graph(const Future<T>& future, std::optional<int> limit = std::nullopt,
                                                  const char* file = __builtin_FILE(), int line = __builtin_LINE(),
                                                  const char* function = __builtin_FUNCTION()) {
  return internal::capture_call_graph_of(future.state(), limit, {file, line, function});
}
inline std::optional<FutureCallGraph> capture_call_graph(const TaskRef& task, std::optional<int> limit = std::nullopt,
                                                         const char* file = __builtin_FILE(),
                                                         int line = __builtin_LINE(),
                                                         const char* function = __builtin_FUNCTION()) {
  return internal::capture_call_graph_of(&task.task->future(), limit, {file, line, function});
}

// The graph as text; "" when there is none.
inline std::string format_call_graph(std::optional<int> limit = std::nullopt, const char* file = __builtin_FILE(),
                                     int line = __builtin_LINE(), const char* function = __builtin_FUNCTION()) {
  auto g = capture_call_graph(limit, file, line, function);
  return g ? internal::render_call_graph(*g) : std::string();
}
template <class T>
std::string format_call_graph(const Future<T>& future, std::optional<int> limit = std::nullopt) {
  auto g = capture_call_graph(future, limit);
  return g ? internal::render_call_graph(*g) : std::string();
}
inline std::string format_call_graph(const TaskRef& task, std::optional<int> limit = std::nullopt) {
  auto g = capture_call_graph(task, limit);
  return g ? internal::render_call_graph(*g) : std::string();
}

// Writes format_call_graph(...) and a newline to `out` (stdout by default).
inline void print_call_graph(FILE* out = stdout, std::optional<int> limit = std::nullopt,
                             const char* file = __builtin_FILE(), int line = __builtin_LINE(),
                             const char* function = __builtin_FUNCTION()) {
  std::fprintf(out, "%s\n", format_call_graph(limit, file, line, function).c_str());
}
template <class T>
void print_call_graph(const Future<T>& future, FILE* out = stdout, std::optional<int> limit = std::nullopt) {
  std::fprintf(out, "%s\n", format_call_graph(future, limit).c_str());
}

// Every unfinished task of `loop`, what it waits on, and the await graph of
// each, for reports (a simulated deadlock, a failing test): one line per
// task, then the graphs; each line starts with a newline and two spaces.
//   Task 'worker' waits on <Future pending Lock.acquire() on 'db'>
std::string describe_live_tasks(EventLoop& loop);

}  // namespace twinloop

#endif  // TWINLOOP_API_GRAPH_H_
