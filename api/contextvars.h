// twinloop/api/contextvars.h: context variables (Python's contextvars,
// PEP 567, as asyncio uses them: CPython 3.14 Python/context.c,
// Lib/asyncio/tasks.py, events.py Handle, futures.py, threads.py).
//
//   twinloop::ContextVar<std::string> request_id("request_id", "-");
//
//   twinloop::Coro<void> handle(std::string id) {
//     request_id.set(id);                // this task's context only
//     co_await twinloop::gather(log_step(), log_step());  // children see `id`
//     auto token = request_id.set(id + "/retry");
//     ...
//     request_id.reset(token);           // back to `id`
//   }
//   std::string log_line() { return request_id.get() + ": ..."; }  // "-" outside
//
// A context is a mapping from variables to values. Every thread has a
// current context; ContextVar::get reads it and ContextVar::set changes it.
// Who makes which context current (asyncio's rules):
//  - A task: create_task takes a copy of the creator's current context (or
//    the context given in TaskOptions::context, itself, not a copy); every
//    step of the task runs with it current. So a task sees the values its
//    creator had when it created it, never the creator's later changes, and
//    the task's own sets reach neither its creator nor its siblings.
//    gather / TaskGroup / ensure_future children are tasks: the same rule.
//  - A callback: loop.call_soon / call_later / call_at /
//    call_soon_threadsafe and Future::add_done_callback take a copy of the
//    current context when the callback is scheduled or added (or use the
//    Context passed to them), and the callback runs in it.
//  - to_thread(fn) runs fn in a copy of the caller's context (on the worker
//    thread; the simulated loop runs it on the loop thread). run_in_executor
//    does not copy the context, as asyncio's does not: its function starts in
//    an empty context (see api/executor.h).
//  - Context::run(fn) runs fn with that context current.
// A Coro awaited directly runs inside the awaiting task's step, so it shares
// the task's context (as `await coro()` does in Python).
//
// Errors (Python's types mapped as in docs/asyncio_mapping.md):
//  - get() of a variable with no value and no default: twinloop::LookupError
//    (a std::out_of_range), "<ContextVar name='x'>".
//  - reset(token): std::runtime_error "<Token var=<ContextVar name='x'>> has
//    already been used once" for a token used before; std::invalid_argument
//    "... was created by a different ContextVar" for another variable's token
//    and "... was created in a different Context" for a token that was set in
//    another context (another task, another callback) than the current one.
//    Checked in that order (context.c PyContextVar_Reset).
//  - Context::run of a context that is already running (entered) on some
//    thread: std::runtime_error "cannot enter context: <Context> is already
//    entered".
//
// Costs: a context is an immutable sorted vector of (variable, value) behind
// an atomic reference count, so copying a context (what every create_task and
// call_soon does) is O(1) and shares the values; set() copies the vector,
// O(n) in the number of variables set in that context, and allocates a token;
// get() is a binary search. PEP 567's HAMT makes set O(log n); with the handful
// of variables programs use, a vector is faster. A task or callback handle
// holds one pointer, null while its context is empty: programs that never set
// a variable allocate nothing, copy nothing, and pay a load and a branch per
// task step (docs/design.md, "Context variables", has the numbers).
//
// Threads: each thread has its own current context. Values are shared (not
// copied) between contexts, including across threads (to_thread): store
// immutable or thread-safe values, as in Python. A Context object may be
// passed between threads, but one context is current on one thread at a
// time (running it on a second thread at once raises, as in Python). A
// ContextVar must outlive the tokens its set() returned.
#ifndef TWINLOOP_API_CONTEXTVARS_H_
#define TWINLOOP_API_CONTEXTVARS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "twinloop/api/internal/pool.h"
#include "twinloop/api/internal/ref.h"

namespace twinloop {

// Python's LookupError: ContextVar::get found no value and no default; also
// Context::at for a variable the context has no value for (Python's KeyError,
// a LookupError). A std::out_of_range, the standard library's "no such key".
class LookupError : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

template <class T>
class ContextVar;
class Context;

namespace internal {

// An immutable mapping from variable ids to type-erased values, sorted by id.
// Shared between contexts (and threads): the count is atomic.
class ContextData {
 public:
  struct Entry {
    uint64_t var_id;
    std::shared_ptr<const void> value;
  };

  explicit ContextData(std::vector<Entry> entries) : entries_(std::move(entries)) {}
  ContextData(const ContextData&) = delete;
  ContextData& operator=(const ContextData&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  // The entry for `var_id`, or null.
  const Entry* find(uint64_t var_id) const;
  size_t size() const { return entries_.size(); }
  // A new mapping: this one (null: the empty one) with `var_id` set to
  // `value`, or without `var_id` if `value` is null (null if that is empty).
  static Ref<ContextData> with(const ContextData* base, uint64_t var_id, std::shared_ptr<const void> value);

 private:
  // Out of line, so that releasing a reference inlines to a decrement.
  void destroy() noexcept;

  std::atomic<uint32_t> refs_{0};
  std::vector<Entry> entries_;
};

// A context (Python's Context object): a mutable cell holding the current
// immutable mapping. set() replaces the mapping of the current context.
// `entered_` counts how many times it is current on the call stacks of
// threads (Context::run allows one; the loop's own switches nest).
class ContextState {
 public:
  explicit ContextState(Ref<ContextData> data) : data_(std::move(data)) {}
  ContextState(const ContextState&) = delete;
  ContextState& operator=(const ContextState&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  static void* operator new(size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* p, size_t bytes) noexcept { pool_deallocate(p, bytes); }

  void enter() noexcept { entered_.fetch_add(1, std::memory_order_relaxed); }
  void leave() noexcept { entered_.fetch_sub(1, std::memory_order_relaxed); }
  // Enters unless entered already; false then.
  bool try_enter_once() noexcept {
    uint32_t expected = 0;
    return entered_.compare_exchange_strong(expected, 1, std::memory_order_relaxed);
  }

  const ContextData::Entry* find(uint64_t var_id) const { return data_ ? data_->find(var_id) : nullptr; }
  size_t size() const { return data_ ? data_->size() : 0; }
  bool empty() const { return !data_; }
  const Ref<ContextData>& data() const { return data_; }
  void set_data(Ref<ContextData> data) { data_ = std::move(data); }

 private:
  // Out of line, so that releasing a reference (every task's destructor
  // does) inlines to a test and a decrement.
  void destroy() noexcept;

  std::atomic<uint32_t> refs_{0};
  std::atomic<uint32_t> entered_{0};
  Ref<ContextData> data_;  // null: empty
};

// This thread's current context:
//  - null: the running task's context if a task is running (a task whose
//    context is empty runs without switching, TaskBase::step_in_context),
//    else the thread's own context, never used (empty). A set() creates the
//    task's context, or the thread's, which lives until the thread exits;
//  - lazy_context(): inside a task step, callback or executor call whose
//    context is still empty and not created; a set() creates it, and the
//    scope hands it to its owner (ContextScope);
//  - else the context.
// Constant-initialised: no guard to read it.
inline constinit thread_local ContextState* tls_context = nullptr;

// Whether any ContextVar::set ran in this process. Until then every context
// is empty, and reading or copying the current one is a load and a branch.
inline constinit std::atomic<bool> context_values_set{false};

inline ContextState* lazy_context() { return reinterpret_cast<ContextState*>(uintptr_t{1}); }
inline bool is_context(const ContextState* c) { return reinterpret_cast<uintptr_t>(c) > 1; }

// The running task's context (null: empty), for a null tls_context.
ContextState* running_task_context();
// The current context, null if it is empty and not created.
inline ContextState* current_context() {
  ContextState* c = tls_context;
  if (is_context(c)) return c;
  if (c) return nullptr;  // lazy_context()
  return running_task_context();
}

// A copy of the current context (asyncio's contextvars.copy_context() in
// create_task and Handle), or null while it is empty. Owned by the caller
// (one reference counted).
ContextState* copy_context_slow(const ContextState& current);
inline ContextState* capture_context() {
  if (!context_values_set.load(std::memory_order_relaxed)) return nullptr;
  const ContextState* c = current_context();
  if (!c || c->empty()) return nullptr;
  return copy_context_slow(*c);
}

// The current context, created if it is still empty and not created.
ContextState& current_context_for_set();

// Makes the context in `slot` current for the scope (what a task step, a
// callback, an executor call runs in). A null slot is the empty context: a
// set() inside the scope creates it, and the scope then stores it in `slot`,
// so a task keeps what its steps set.
class ContextScope {
 public:
  explicit ContextScope(Ref<ContextState>& slot) noexcept
      : slot_(slot), entered_(slot.get()), prev_(tls_context) {
    if (entered_) {
      entered_->enter();
      tls_context = entered_;
    } else {
      tls_context = lazy_context();
    }
  }
  ~ContextScope() {
    ContextState* now = tls_context;
    tls_context = prev_;
    if (entered_) {
      entered_->leave();
    } else if (now != lazy_context()) {
      // Created by a set() in the scope, current (entered once) and owned by
      // the scope until now.
      now->leave();
      slot_ = Ref<ContextState>::adopt(now);
    }
  }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Ref<ContextState>& slot_;
  ContextState* entered_;
  ContextState* prev_;
};

// What ContextVar<T>'s set() leaves behind for reset(), untyped.
struct TokenState {
  Ref<ContextState> context;  // where set() ran
  uint64_t var_id = 0;
  std::shared_ptr<const void> old_value;  // null: the variable had none
  bool used = false;
};

uint64_t next_context_var_id();
std::shared_ptr<TokenState> context_set(uint64_t var_id, std::shared_ptr<const void> value);
// reset(token) for the variable `var_id` named `var_name`, whose token is of
// the variable named `token_var_name`: the checks of PyContextVar_Reset, then
// the old value back (or the variable removed).
void context_reset(TokenState& token, uint64_t var_id, const std::string& token_var_name);
[[noreturn]] void throw_lookup_error(const std::string& var_name);
[[noreturn]] void throw_empty_token();

// The value of `var_id` in the current context, or null.
inline const void* context_find(uint64_t var_id) {
  if (!context_values_set.load(std::memory_order_relaxed)) return nullptr;
  const ContextState* c = current_context();
  if (!c) return nullptr;
  const ContextData::Entry* e = c->find(var_id);
  return e ? e->value.get() : nullptr;
}

// Context's internals for twinloop's own code (tasks, handles, to_thread).
struct ContextAccess;

}  // namespace internal

// A context variable (contextvars.ContextVar): its value depends on the
// current context. T is any copyable type; get() returns a copy. Not
// copyable or movable: the object is the variable's identity (declare it
// where it lives, typically at namespace scope). Thread-safe: get/set act on
// the calling thread's current context.
template <class T>
class ContextVar {
  static_assert(std::is_copy_constructible_v<T>, "ContextVar values are copied out by get()");

 public:
  // What set() returns, for reset() (contextvars.Token). Copies share one
  // token: a token is used once, whichever copy is passed.
  class Token {
   public:
    // The variable whose set() made this token (Token.var).
    const ContextVar& var() const { return *var_; }
    // The value the variable had before that set(), or nullopt if it had
    // none (Token.old_value, Token.MISSING).
    std::optional<T> old_value() const {
      if (!state_) internal::throw_empty_token();
      if (!state_->old_value) return std::nullopt;
      return *static_cast<const T*>(state_->old_value.get());
    }

   private:
    friend class ContextVar;
    Token(const ContextVar* var, std::shared_ptr<internal::TokenState> state)
        : var_(var), state_(std::move(state)) {}
    const ContextVar* var_;
    std::shared_ptr<internal::TokenState> state_;
  };

  // A variable without a default: get() raises LookupError until set.
  explicit ContextVar(std::string name) : id_(internal::next_context_var_id()), name_(std::move(name)) {}
  // A variable whose get() returns `default_value` until set.
  ContextVar(std::string name, T default_value)
      : id_(internal::next_context_var_id()), name_(std::move(name)), default_(std::move(default_value)) {}
  ContextVar(const ContextVar&) = delete;
  ContextVar& operator=(const ContextVar&) = delete;

  const std::string& name() const { return name_; }

  // The value in the current context, else the default given to the
  // constructor; LookupError if neither.
  T get() const {
    if (const void* v = internal::context_find(id_)) return *static_cast<const T*>(v);
    if (default_) return *default_;
    internal::throw_lookup_error(name_);
  }
  // The value in the current context, else `default_value` (the variable's
  // own default is not consulted, as ContextVar.get(default)).
  T get(T default_value) const {
    if (const void* v = internal::context_find(id_)) return *static_cast<const T*>(v);
    return default_value;
  }

  // Gives the variable `value` in the current context; the token restores
  // the previous value with reset().
  Token set(T value) {
    return Token(this, internal::context_set(id_, std::make_shared<const T>(std::move(value))));
  }

  // Restores the value the variable had before the set() that returned
  // `token`, in the context that set() ran in, which must be the current
  // one. Errors: see the top of this file.
  void reset(const Token& token) {
    if (!token.state_) internal::throw_empty_token();
    internal::context_reset(*token.state_, id_, token.var_->name_);
  }

 private:
  friend class Context;
  const uint64_t id_;
  const std::string name_;
  const std::optional<T> default_;
};

// A context (contextvars.Context): a mapping from variables to values that
// can be made current with run(). Copies of a Context object refer to the
// same context (as Python's references do); copy() makes an independent one.
class Context {
 public:
  // A new, empty context (contextvars.Context()).
  Context();

  // An independent context with the same values, O(1) (Context.copy()).
  Context copy() const;

  // Calls fn(args...) with this context current and returns its result
  // (Context.run). The variables fn sets are set in this context: visible
  // to later runs and to get() below, not to the caller. std::runtime_error
  // if this context is already entered (running) on some thread.
  template <class F, class... A>
  decltype(auto) run(F&& fn, A&&... args) {
    RunScope scope(*state_);
    return std::invoke(std::forward<F>(fn), std::forward<A>(args)...);
  }

  // The value of `var` in this context, or nullopt (Context.get(var)).
  template <class T>
  std::optional<T> get(const ContextVar<T>& var) const {
    const internal::ContextData::Entry* e = state_->find(var.id_);
    if (!e) return std::nullopt;
    return *static_cast<const T*>(e->value.get());
  }
  // The value of `var` in this context; LookupError if it has none
  // (Context[var], which raises KeyError, a LookupError).
  template <class T>
  T at(const ContextVar<T>& var) const {
    const internal::ContextData::Entry* e = state_->find(var.id_);
    if (!e) internal::throw_lookup_error(var.name_);
    return *static_cast<const T*>(e->value.get());
  }
  // Whether `var` has a value in this context (`var in ctx`).
  template <class T>
  bool contains(const ContextVar<T>& var) const {
    return state_->find(var.id_) != nullptr;
  }
  // How many variables have a value in this context (len(ctx)).
  size_t size() const { return state_->size(); }

  // Whether a and b are the same context (Python's `is`; Python's == compares
  // the values, which type-erased values cannot).
  bool is(const Context& other) const { return state_ == other.state_; }

 private:
  friend struct internal::ContextAccess;
  friend Context copy_context();
  explicit Context(internal::Ref<internal::ContextState> state) : state_(std::move(state)) {}

  class RunScope {
   public:
    explicit RunScope(internal::ContextState& state);
    ~RunScope();
    RunScope(const RunScope&) = delete;
    RunScope& operator=(const RunScope&) = delete;

   private:
    internal::ContextState& state_;
    internal::ContextState* prev_;
  };

  internal::Ref<internal::ContextState> state_;  // never null
};

// A copy of the current context (contextvars.copy_context()).
Context copy_context();

namespace internal {
struct ContextAccess {
  static const Ref<ContextState>& state(const Context& c) { return c.state_; }
  // The context `state` as a Context; a null state (an empty context not
  // created yet) as a new empty one.
  static Context of(const Ref<ContextState>& state);
};
}  // namespace internal

}  // namespace twinloop

#endif  // TWINLOOP_API_CONTEXTVARS_H_
