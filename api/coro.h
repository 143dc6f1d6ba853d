// twinloop/api/coro.h: Coro<T>, the return type of a coroutine function
// (asyncio's coroutine object).
//
//   twinloop::Coro<int> answer() {
//     co_await twinloop::sleep(absl::Milliseconds(1));
//     co_return 42;
//   }
//   twinloop::Coro<void> caller() {
//     int v = co_await answer();          // runs inside the caller's task
//     twinloop::Task<int> t = twinloop::create_task(answer());  // its own task
//   }
//
// A Coro is lazy: calling the function creates the frame but runs nothing.
// It runs when awaited (inside the awaiting task, with no scheduling in
// between: a direct transfer) or when wrapped in a task by create_task. It
// can be awaited once; awaiting it again throws std::runtime_error ("cannot
// reuse already awaited coroutine", as Python). An exception escaping the
// coroutine propagates to the awaiter.
//
// Never awaited: destroying a Coro that never ran (neither awaited nor
// wrapped in a task) destroys its frame and reports "coroutine 'f' was
// never awaited" (Python's RuntimeWarning, CPython 3.14 Objects/genobject.c
// _PyErr_WarnUnawaitedCoroutine) through the exception handler of the loop
// running on this thread (or closing on it), naming the task that dropped it
// (ExceptionContext::task). In every mode, as Python warns in every mode:
// it is a bug, and the simulated test harness fails a seed on it. Unlike
// asyncio's debug mode, twinloop does not record where each coroutine was
// created: that would cost every coroutine creation, debug mode or not. With
// no loop running or closing, the report goes to standard error, in debug
// mode only (TWINLOOP_DEBUG=1). close() drops an unstarted coroutine on
// purpose, without a report (Python's coroutine.close()).
#ifndef TWINLOOP_API_CORO_H_
#define TWINLOOP_API_CORO_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "twinloop/api/internal/pool.h"
#include "twinloop/api/future.h"

namespace twinloop {

template <class T = void>
class Coro;

namespace internal {

// While set, coroutines destroyed without having run are not reported as
// never awaited: the frames of a crashed simulated host's tasks
// (EventLoop::abandon), whose code is gone with them.
inline constinit thread_local bool tls_abandoning = false;
struct AbandoningScope {
  bool prev = tls_abandoning;
  AbandoningScope() { tls_abandoning = true; }
  ~AbandoningScope() { tls_abandoning = prev; }
  AbandoningScope(const AbandoningScope&) = delete;
  AbandoningScope& operator=(const AbandoningScope&) = delete;
};

template <class T>
class TaskState;

// Where a coroutine awaits: recorded at every co_await for the call graph
// (api/graph.h). __builtin_FILE/LINE/FUNCTION, not std::source_location,
// which clang 14 with libstdc++ lacks.
struct AwaitSite {
  const char* file = nullptr;
  int line = 0;
  const char* function = nullptr;
};

// Only makes the promise constructor below impossible to call with a
// coroutine's own parameters: the compiler first tries to construct the
// promise from them, and a coroutine taking (const char*) would otherwise
// pass its argument as the function name.
struct PromiseTag {};

// The name of a coroutine's function as the call graph and the simulated
// loop's task keys use it: __builtin_FUNCTION() without template arguments
// (g++ spells a template "f<int>", clang "f").
std::string_view coroutine_function_name(const char* function);

// ---- A task is one block (issue 13)
//
// Every Coro<T> frame comes from the per-thread pool (api/internal/pool.h)
// with room in front of it for the state of the task it may become
// (TaskState<T>, api/task.h) and a small header:
//
//   [ room for TaskState<T> | FrameHeader | coroutine frame ]
//
// create_task constructs the task's state in the room, so a task costs one
// allocation (cppcoro and folly keep a task's state in its frame's promise
// the same way). The frame is still destroyed when the coroutine finishes
// (its parameters go then, as a Python coroutine's frame is cleared when it
// returns); the block is freed when the task state's last reference goes.
// A Coro that never becomes a task (an awaited one: lock.acquire()) frees
// its block with its frame; it pays the room in bytes only (the block is
// pooled), not in time.
//
// The frame must start 16-aligned (the block does); the header is 8 bytes
// and the room ends where the header then has to start, so the room takes
// what padding there is (a TaskState<void> fills its 232 bytes exactly:
// 240 bytes in front of the frame, where a 16-byte header took 256).
struct alignas(8) FrameHeader {
  uint32_t block_bytes;     // the whole block, for the task state's free
  bool task_lives = false;  // a task state lives in the room: it frees the block
};
static_assert(sizeof(FrameHeader) == 8);
// The room for a TaskState<T>: ValueHolder<T> (the future part) plus
// TaskBase (api/task.h checks that this is enough for every T).
inline constexpr size_t kTaskBaseBytes = 160;
template <class T>
constexpr size_t frame_offset() {
  return (sizeof(ValueHolder<T>) + kTaskBaseBytes + sizeof(FrameHeader) + 15) / 16 * 16;
}
template <class T>
constexpr size_t task_room_bytes() {
  return frame_offset<T>() - sizeof(FrameHeader);
}
inline FrameHeader* frame_header(void* frame) { return static_cast<FrameHeader*>(frame) - 1; }
// A promise's allocation functions, keyed by the room's size alone. They are
// not members of Promise<T>: g++ 12's -Wmismatched-new-delete demangles the
// allocation functions' names, and a T naming a class local to a coroutine
// lambda (a protocol declared in a test body) mangles to a name its demangler
// cannot read: an internal compiler error ("during GIMPLE pass: waccess").
// FrameAlloc<176>::operator new mangles the same for every T.
template <size_t Room>
struct FrameAlloc {
  static constexpr size_t kOffset = Room + sizeof(FrameHeader);
  static void* operator new(size_t bytes) {
    const size_t total = bytes + kOffset;
    char* block = static_cast<char*>(pool_allocate(total));
    FrameHeader* h = ::new (block + Room) FrameHeader{static_cast<uint32_t>(total)};
    return h + 1;
  }
  static void operator delete(void* frame, size_t bytes) noexcept {
    if (frame_header(frame)->task_lives) return;  // the task state frees the block
    pool_deallocate(static_cast<char*>(frame) - kOffset, bytes + kOffset);
  }
};

class PromiseBase;
// Destroys the frame of a Coro, reporting "coroutine 'f' was never awaited"
// first if it never ran (to the loop running, or closing, on this thread;
// else to standard error in debug mode). Out of line, so that ~Coro stays a
// test and a call, as small as before the report existed, and callers such
// as create_task are still inlined (measured: inlining the test cost spawn
// 24 instructions per task, this costs awaiting a Coro 7).
void drop_coroutine(std::coroutine_handle<> h, const PromiseBase& p);
// Where the code running now is: the running task and the coroutines it
// runs, outermost first ("task 'main', in main (app.cc:12) -> handle"), or
// "no task ...". For debug mode's reports.
std::string describe_running_code();

class PromiseBase {
 public:
  // `function`: __builtin_FUNCTION() evaluated where the compiler constructs
  // the promise, which is inside the coroutine itself, so it names the
  // coroutine's function before its body runs (the same name every
  // co_await in it records).
  explicit PromiseBase(const char* function) { site_.function = function; }

  std::suspend_always initial_suspend() noexcept { return {}; }

  // Every co_await in a twinloop coroutine passes through here: record the
  // site, and for an awaited Coro, the child (so a task's chain of awaiting
  // coroutines can be walked from its root).
  template <class A>
  decltype(auto) await_transform(A&& awaitable, const char* file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
    site_.file = file;
    site_.line = line;
    if constexpr (requires { awaitable.promise_base(); }) {
      return TrackedAwaiter<decltype(static_cast<A&&>(awaitable).operator co_await())>{
          static_cast<A&&>(awaitable).operator co_await(), this, awaitable.promise_base()};
    } else {
      return static_cast<A&&>(awaitable);
    }
  }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      std::coroutine_handle<> next = h.promise().continuation_;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  std::coroutine_handle<> continuation_;
  std::exception_ptr exception_;
  // The last (or current) co_await; `function` is the coroutine's own, set
  // at construction.
  AwaitSite site_;
  PromiseBase* child_ = nullptr;    // the coroutine awaited now, if any

 private:
  // Wraps a Coro's awaiter to keep child_ up to date.
  template <class Inner>
  struct TrackedAwaiter {
    Inner inner;
    PromiseBase* parent;
    PromiseBase* child;
    bool await_ready() { return inner.await_ready(); }
    auto await_suspend(std::coroutine_handle<> h) {
      parent->child_ = child;
      return inner.await_suspend(h);
    }
    decltype(auto) await_resume() {
      parent->child_ = nullptr;
      return inner.await_resume();
    }
  };
};

template <class T>
class Promise : public PromiseBase, public FrameAlloc<task_room_bytes<T>()> {
 public:
  Promise(PromiseTag = {}, const char* function = __builtin_FUNCTION()) : PromiseBase(function) {}
  // The frame, with room for a task (see FrameHeader).
  using FrameAlloc<task_room_bytes<T>()>::operator new;
  using FrameAlloc<task_room_bytes<T>()>::operator delete;
  Coro<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& v) {
    value_.emplace(std::forward<U>(v));
  }
  T take() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*value_);
  }
  std::optional<T> value_;
};

template <>
class Promise<void> : public PromiseBase, public FrameAlloc<task_room_bytes<void>()> {
 public:
  Promise(PromiseTag = {}, const char* function = __builtin_FUNCTION()) : PromiseBase(function) {}
  using FrameAlloc<task_room_bytes<void>()>::operator new;
  using FrameAlloc<task_room_bytes<void>()>::operator delete;
  Coro<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (exception_) std::rethrow_exception(exception_);
  }
};

}  // namespace internal

template <class T>
class [[nodiscard]] Coro {
 public:
  using promise_type = internal::Promise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      if (h_) drop_frame();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~Coro() {
    if (h_) drop_frame();
  }

  // Drops the coroutine without running it and without the "never awaited"
  // report (Python's coroutine.close() on a coroutine that never ran): for
  // code that refuses a coroutine it was given (TaskGroup::create_task on a
  // finished group). Also destroys a finished coroutine. std::runtime_error
  // if the coroutine is being awaited and has not finished.
  void close() {
    if (!h_) return;
    if (h_.promise().continuation_ && !h_.done()) throw std::runtime_error("cannot close a running coroutine");
    std::exchange(h_, nullptr).destroy();
  }

  class Awaiter {
   public:
    explicit Awaiter(handle_type h) : h_(h) {}
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
      h_.promise().continuation_ = caller;
      return h_;
    }
    T await_resume() { return h_.promise().take(); }

   private:
    handle_type h_;
  };
  Awaiter operator co_await() & { return Awaiter(checked()); }
  Awaiter operator co_await() && { return Awaiter(checked()); }

  // Gives up ownership of the frame (used by create_task).
  handle_type release() { return std::exchange(h_, nullptr); }
  // The promise, for the call graph (null once released).
  internal::PromiseBase* promise_base() const { return h_ ? &h_.promise() : nullptr; }
  bool valid() const { return bool(h_); }

 private:
  friend class internal::Promise<T>;
  explicit Coro(handle_type h) : h_(h) {}
  void drop_frame() noexcept { internal::drop_coroutine(h_, h_.promise()); }
  handle_type checked() {
    if (!h_ || h_.done() || h_.promise().continuation_)
      throw std::runtime_error("cannot reuse already awaited coroutine");
    return h_;
  }
  handle_type h_;
};

// An awaitable that can also become a Coro (sleep()'s SleepAwaitable, a
// queue's get() and put()): awaited directly it may finish without a
// coroutine frame; create_task, gather, wait_for, shield, Timeout::run and
// TaskGroup::create_task take it as the Coro that `std::move(a).as_coro()`
// makes, so it stays lazy there.
template <class A>
concept CoroConvertible = requires(A&& a) {
  { std::move(a).as_coro() };
};

namespace internal {
template <class T>
Coro<T> Promise<T>::get_return_object() noexcept {
  return Coro<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Coro<void> Promise<void>::get_return_object() noexcept {
  return Coro<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace internal

}  // namespace twinloop

#endif  // TWINLOOP_API_CORO_H_
