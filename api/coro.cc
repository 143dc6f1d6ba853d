#include "twinloop/api/coro.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop::internal {

std::string_view coroutine_function_name(const char* function) {
  if (!function) return "?";
  std::string_view name(function);
  // g++ appends a template's arguments ("f<int>"); clang does not.
  if (name.empty() || name.back() != '>') return name;
  int depth = 0;
  for (size_t i = name.size(); i-- > 0;) {
    if (name[i] == '>') ++depth;
    if (name[i] == '<' && --depth == 0) return name.substr(0, i);
  }
  return name;
}

std::string describe_running_code() {
  EventLoop* loop = tls_running_loop;
  TaskBase* task = loop ? LoopAccess::current_task(*loop) : nullptr;
  if (!task) return "no task (a callback, or the code that started the loop)";
  // The task's coroutines from its root to the innermost, which runs now:
  // the outer ones are suspended at a co_await (their site); the line the
  // innermost is at is not known.
  std::string s = absl::StrCat("task '", task->get_name(), "'");
  const char* sep = ", in ";
  int depth = 0;
  for (const PromiseBase* p = task->root_promise(); p && depth < 10; p = p->child_, ++depth) {
    absl::StrAppend(&s, sep, std::string(coroutine_function_name(p->site_.function)));
    if (p->child_ && p->site_.file) absl::StrAppend(&s, " (", p->site_.file, ":", p->site_.line, ")");
    sep = " -> ";
  }
  return s;
}

namespace {
void report_never_awaited(const PromiseBase& p) noexcept {
  if (tls_abandoning) return;
  try {
    // CPython: RuntimeWarning(f"coroutine '{qualname}' was never awaited").
    const std::string message =
        absl::StrCat("coroutine '", std::string(coroutine_function_name(p.site_.function)), "' was never awaited");
    if (EventLoop* loop = tls_running_loop) {
      ExceptionContext c = ExceptionContext::of(message);
      if (TaskBase* t = LoopAccess::current_task(*loop)) c.task = t->get_name();
      loop->call_exception_handler(c);
      return;
    }
    if (EventLoop* loop = tls_closing_loop) {
      loop->call_exception_handler(ExceptionContext::of(message));
      return;
    }
    // No loop, no handler: Python's warning goes to standard error; ours
    // only in debug mode, since a program outside a loop may be tearing
    // down (static destructors) with nothing left to blame.
    if (debug_mode_default_or_false()) std::fprintf(stderr, "twinloop: %s\n", message.c_str());
  } catch (...) {
    // A report must not throw out of a destructor (an allocation failed, or
    // a logger threw).
  }
}

// Both ends of drop_coroutine are tail calls, so it needs no stack frame:
// ~Coro costs a test and a jump more than the bare destroy it replaces.
[[gnu::noinline, gnu::cold]] void drop_never_awaited(std::coroutine_handle<> h, const PromiseBase& p) {
  report_never_awaited(p);
  h.destroy();
}
}  // namespace

void drop_coroutine(std::coroutine_handle<> h, const PromiseBase& p) {
  // A coroutine that ran was awaited (an awaiter set its continuation) or
  // handed to a task (create_task released it from its Coro).
  if (p.continuation_) [[likely]] return h.destroy();
  drop_never_awaited(h, p);
}

}  // namespace twinloop::internal
