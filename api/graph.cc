#include "twinloop/api/graph.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop::internal {
namespace {

FrameCallGraphEntry entry_of(const AwaitSite& site) {
  return FrameCallGraphEntry{std::string(coroutine_function_name(site.function)), site.file ? site.file : "?",
                             site.line, true};
}

// Whether the place that asked for the graph is inside the coroutine
// `innermost` (same function name and, when the coroutine has awaited
// something, same file) rather than in a plain function it called.
bool same_function(const AwaitSite& innermost, const AwaitSite& here) {
  if (coroutine_function_name(innermost.function) != coroutine_function_name(here.function)) return false;
  return !innermost.file || !here.file || std::string_view(innermost.file) == here.file;
}

void apply_limit(std::vector<FrameCallGraphEntry>& stack, std::optional<int> limit) {
  if (!limit) return;
  const size_t n = static_cast<size_t>(std::abs(*limit));
  if (*limit > 0 && stack.size() > n) stack.resize(n);
  if (*limit < 0 && stack.size() > n) stack.erase(stack.begin(), stack.end() - n);
}

// The tasks that await `f`, in creation order: tasks blocked on it, and the
// explicit edges (gather, shield, wait, TaskGroup) whose task still runs.
std::vector<TaskBase*> awaiters_of(FutureBase& f) {
  std::vector<TaskBase*> tasks = internal::LoopAccess::registered_tasks(f.loop());
  std::vector<uint64_t> ids = f.awaited_by_ids();
  std::vector<TaskBase*> out;
  for (TaskBase* t : tasks) {
    const bool blocked = t->fut_waiter() == &f;
    const bool edge = std::find(ids.begin(), ids.end(), t->id()) != ids.end();
    if ((blocked || edge) && &t->future() != &f) out.push_back(t);
  }
  return out;
}

FutureCallGraph build(FutureBase& f, std::optional<int> limit, const AwaitSite* here, std::vector<uint64_t>& path,
                      int depth) {
  FutureCallGraph g;
  if (TaskBase* t = f.as_task()) {
    g.is_task = true;
    g.name = t->get_name();
    g.id = t->id();
    if (!limit || *limit != 0) {
      // Outermost to innermost along child_, then reversed (asyncio lists
      // the innermost frame first).
      const PromiseBase* innermost = nullptr;
      for (PromiseBase* p = t->root_promise(); p; p = p->child_) {
        g.call_stack.push_back(entry_of(p->site_));
        innermost = p;
      }
      if (here && innermost) {
        // The current task: asyncio walks the real frames from the caller of
        // capture_call_graph. Asked from the innermost coroutine itself, its
        // entry moves to the asking line; asked from a plain function (which
        // a coroutine called, directly or not), that function is a new
        // innermost frame, not an "async" one (test_graph.py
        // test_stack_tgroup: c5() called by coroutine c4 gives c5, c4, ...).
        if (same_function(innermost->site_, *here)) {
          g.call_stack.back() = entry_of(*here);
        } else {
          FrameCallGraphEntry plain = entry_of(*here);
          plain.coroutine = false;
          g.call_stack.push_back(std::move(plain));
        }
      }
      std::reverse(g.call_stack.begin(), g.call_stack.end());
      apply_limit(g.call_stack, limit);
    }
  } else {
    g.name = f.label();
  }
  if (depth > 64) return g;  // a bound on what a report prints
  for (TaskBase* parent : awaiters_of(f)) {
    if (std::find(path.begin(), path.end(), parent->id()) != path.end()) continue;  // no cycles
    path.push_back(parent->id());
    g.awaited_by.push_back(build(parent->future(), limit, nullptr, path, depth + 1));
    path.pop_back();
  }
  return g;
}

void render(const FutureCallGraph& g, std::vector<std::string>& buf, int level) {
  const std::string indent(static_cast<size_t>(level) * 4, ' ');
  if (g.is_task) {
    buf.push_back(absl::StrFormat("%s* Task(name='%s', id=%d)", indent, g.name, g.id));
  } else if (g.name.empty()) {
    buf.push_back(absl::StrCat(indent, "* Future()"));
  } else {
    buf.push_back(absl::StrFormat("%s* Future(%s)", indent, g.name));
  }
  if (!g.call_stack.empty()) {
    buf.push_back(indent + "  + Call stack:");
    for (const FrameCallGraphEntry& e : g.call_stack)
      buf.push_back(absl::StrFormat("%s  |   File '%s', line %d, in %s%s()", indent, e.file, e.line,
                                    e.coroutine ? "async " : "", e.function));
  }
  if (!g.awaited_by.empty()) {
    buf.push_back(indent + "  + Awaited by:");
    for (const FutureCallGraph& p : g.awaited_by) render(p, buf, level + 1);
  }
}

}  // namespace

std::optional<FutureCallGraph> capture_call_graph_of(FutureBase* future, std::optional<int> limit, AwaitSite here) {
  if (!future) return std::nullopt;
  EventLoop* running = running_loop_or_null();
  const bool is_current = running && internal::LoopAccess::current_task(*running) && &internal::LoopAccess::current_task(*running)->future() == future;
  std::vector<uint64_t> path;
  if (TaskBase* t = future->as_task()) path.push_back(t->id());
  return build(*future, limit, is_current ? &here : nullptr, path, 0);
}

std::string render_call_graph(const FutureCallGraph& graph) {
  std::vector<std::string> buf;
  render(graph, buf, 0);
  std::string out;
  for (size_t i = 0; i < buf.size(); ++i) {
    if (i) out += '\n';
    out += buf[i];
  }
  return out;
}

}  // namespace twinloop::internal

namespace twinloop {

std::string describe_live_tasks(EventLoop& loop) {
  std::vector<internal::TaskBase*> tasks = internal::LoopAccess::registered_tasks(loop);
  std::string s;
  for (internal::TaskBase* t : tasks) {
    absl::StrAppend(&s, "\n  Task '", t->get_name(), "' waits on ", t->waiting_on());
  }
  absl::StrAppend(&s, "\nThe await graph of every waiting task:");
  for (internal::TaskBase* t : tasks) {
    auto graph = internal::capture_call_graph_of(&t->future(), std::nullopt, {});
    if (!graph) continue;
    for (absl::string_view line : absl::StrSplit(internal::render_call_graph(*graph), '\n'))
      absl::StrAppend(&s, "\n  ", line);
  }
  return s;
}


}  // namespace twinloop
