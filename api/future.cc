#include "twinloop/api/future.h"

#include <cxxabi.h>

#include <cstdlib>
#include <stdexcept>
#include <typeinfo>

#include "absl/strings/str_format.h"
#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop::internal {

namespace {

// A done callback on its way through the ready queue: the future and the
// callback, in one pooled block, behind a pointer small enough for
// AnyInvocable's inline storage (a lambda capturing both would not fit and
// would cost a malloc per callback).
struct PendingCallback {
  Ref<FutureBase> future;
  FutureBase::Callback fn;

  static void* operator new(size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* p, size_t bytes) noexcept { pool_deallocate(p, bytes); }

  static absl::AnyInvocable<void()> make(FutureBase* f, FutureBase::Callback fn) {
    return [p = std::unique_ptr<PendingCallback>(new PendingCallback{Ref<FutureBase>(f), std::move(fn)})]() {
      p->fn(*p->future);
    };
  }
};

// The type of the exception `e` holds, demangled ("std::runtime_error"), or
// "" if it cannot be told.
std::string exception_type_name(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    if (!type) return std::string();
    int status = 0;
    char* name = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
    std::string out = status == 0 && name ? name : "";
    std::free(name);
    return out;
  }
}

// CPython 3.14 tasks.py _log_on_exception.
void log_shielded_exception(FutureBase& f) {
  if (f.cancelled()) return;
  std::exception_ptr e = f.exception();  // marks it retrieved: no "never retrieved" report
  if (!e) return;
  const std::string type = exception_type_name(e);
  ExceptionContext c = ExceptionContext::of(
      type.empty() ? "exception in shielded future" : type + " exception in shielded future", e);
  c.future = f.describe();
  f.loop().call_exception_handler(c);
}

}  // namespace

namespace {
// Out of line, so that the destructor's common path builds no string (and
// gets no stack protector for it).
[[gnu::noinline]] void report_unretrieved_future(FutureBase& f) { f.report_unretrieved(std::string()); }
}  // namespace

FutureBase::~FutureBase() {
  // A task reports from its own destructor, while its name still exists.
  if (!task_ && has_unretrieved_exception()) [[unlikely]] report_unretrieved_future(*this);
}

void FutureBase::report_unretrieved(const std::string& task_name) {
  // asyncio reports "exception was never retrieved" when the future is
  // garbage-collected; we report it when the last reference goes away, which
  // is deterministic.
  retrieved_ = true;
  const bool is_task = task_ != nullptr;
  ExceptionContext c = ExceptionContext::of(
      is_task ? "Task exception was never retrieved" : "Future exception was never retrieved", exception_);
  c.task = task_name;
  c.future = describe();
  loop_->call_exception_handler(c);
}

bool FutureBase::cancel(std::string msg) { return cancel_future(std::move(msg)); }

bool FutureBase::cancel_future(std::string msg) {
  if (state_ != State::kPending) return false;
  state_ = State::kCancelled;
  set_cancel_message(std::move(msg));
  schedule_callbacks();
  return true;
}

void FutureBase::set_cancel_message(std::string msg) {
  if (!extras_) {
    if (msg.empty()) return;
    extras_ = std::make_unique<Extras>();
  }
  extras_->cancel_message = std::move(msg);
}

void FutureBase::add_awaited_by(uint64_t task_id) {
  if (!extras_) extras_ = std::make_unique<Extras>();
  extras_->awaited_by.push_back(task_id);
}

void FutureBase::discard_awaited_by(uint64_t task_id) {
  if (!extras_) return;
  auto& v = extras_->awaited_by;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (*it == task_id) {
      v.erase(it);
      return;
    }
  }
}

void FutureBase::set_label(std::string label) {
  if (!extras_) extras_ = std::make_unique<Extras>();
  extras_->label = std::move(label);
}

void FutureBase::add_shield_logger() {
  if (!extras_) extras_ = std::make_unique<Extras>();
  if (extras_->shield_logger) remove_done_callback(extras_->shield_logger);
  extras_->shield_logger = add_done_callback(&log_shielded_exception);
}

// CPython 3.14 futures.py _make_cancelled_error: the saved _cancelled_exc
// if any (asyncio then forgets it, to break reference cycles through its
// traceback; an exception_ptr makes none, so it is kept for every retrieval).
std::exception_ptr FutureBase::make_cancelled_error() const {
  if (extras_ && extras_->cancelled_error) return extras_->cancelled_error;
  return std::make_exception_ptr(CancelledError(cancel_message()));
}

bool FutureBase::cancel_with_error(std::exception_ptr error, std::string msg) {
  if (state_ != State::kPending) return false;
  if (!extras_) extras_ = std::make_unique<Extras>();
  extras_->cancelled_error = std::move(error);
  return cancel_future(std::move(msg));
}

std::exception_ptr FutureBase::exception() {
  if (state_ == State::kCancelled) std::rethrow_exception(make_cancelled_error());
  if (state_ == State::kPending) throw InvalidStateError("Exception is not set.");
  retrieved_ = true;
  return exception_;
}

void FutureBase::throw_result() {
  if (state_ == State::kFinished) {
    retrieved_ = true;
    std::rethrow_exception(exception_);
  }
  if (state_ == State::kCancelled) std::rethrow_exception(make_cancelled_error());
  throw InvalidStateError("Result is not set.");
}

void FutureBase::throw_invalid_state() const { throw InvalidStateError("invalid state: " + describe()); }

void FutureBase::set_exception(std::exception_ptr e) {
  if (state_ != State::kPending) throw_invalid_state();
  if (!e) throw std::invalid_argument("set_exception needs an exception");
  exception_ = std::move(e);
  state_ = State::kFinished;
  schedule_callbacks();
}

void FutureBase::mark_finished() {
  if (state_ != State::kPending) [[unlikely]] throw_invalid_state();
  state_ = State::kFinished;
  schedule_callbacks();
}

uint64_t FutureBase::add_done_callback(Callback cb) {
  // asyncio's add_done_callback: context = contextvars.copy_context().
  return add_done_callback_in(std::move(cb), capture_context());
}

uint64_t FutureBase::add_done_callback(Callback cb, const Context& context) {
  ContextState* c = ContextAccess::state(context).get();
  c->add_ref();
  return add_done_callback_in(std::move(cb), c);
}

uint64_t FutureBase::add_done_callback_in(Callback cb, ContextState* context) {
  Ref<ContextState> owned = Ref<ContextState>::adopt(context);
  const uint64_t token = internal::LoopAccess::next_token(*loop_);
  if (done()) {
    // asyncio: a callback added to a done future is scheduled at once.
    internal::LoopAccess::call_soon_in(*loop_, PendingCallback::make(this, std::move(cb)), owned.detach());
    return token;
  }
  if (!more_) {
    more_ = std::make_unique<Entries>();
    if (waiter_) more_->list.push_back(Entry{std::exchange(waiter_, 0), nullptr, 0, nullptr});
  }
  more_->list.push_back(Entry{0, std::move(cb), token, std::move(owned)});
  return token;
}

size_t FutureBase::remove_done_callback(uint64_t token) {
  if (!more_) return 0;
  size_t removed = 0;
  for (auto it = more_->list.begin(); it != more_->list.end();) {
    if (!it->waiter && it->token == token) {
      it = more_->list.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

void FutureBase::add_waiter_bits_slow(WaiterBits w) {
  if (more_) {
    more_->list.push_back(Entry{w, nullptr, 0, nullptr});
  } else if (waiter_) {
    more_ = std::make_unique<Entries>();
    more_->list.push_back(Entry{std::exchange(waiter_, 0), nullptr, 0, nullptr});
    more_->list.push_back(Entry{w, nullptr, 0, nullptr});
  } else {
    waiter_ = w;
  }
}

void FutureBase::schedule_task_now(TaskBase* task) { internal::LoopAccess::schedule(*loop_, task); }

void FutureBase::add_link(FutureLink* link) {
  if (done()) {
    schedule_waiter(link_bits(link));
  } else {
    add_waiter_bits(link_bits(link));
  }
}

void FutureBase::remove_link(FutureLink* link) {
  const WaiterBits w = link_bits(link);
  if (waiter_ == w) {
    waiter_ = 0;
    return;
  }
  if (!more_) return;
  for (auto it = more_->list.begin(); it != more_->list.end(); ++it) {
    if (it->waiter == w) {
      more_->list.erase(it);
      return;
    }
  }
}

std::vector<uint64_t> FutureBase::awaited_by_ids() const {
  std::vector<uint64_t> ids;
  if (extras_) ids.assign(extras_->awaited_by.begin(), extras_->awaited_by.end());
  auto add = [&ids](WaiterBits w) {
    if (FutureLink* l = as_link(w)) {
      if (const uint64_t id = l->awaiting_task_id()) ids.push_back(id);
    }
  };
  add(waiter_);
  if (more_) {
    for (const Entry& e : more_->list) add(e.waiter);
  }
  return ids;
}

void FutureBase::schedule_link(FutureLink* l) {
  // As call_soon would: a handle id now, the callback next iteration.
  l->future_ = this;
  l->handle_id_ = internal::LoopAccess::next_handle_id(*loop_);
  l->hold();
  internal::LoopAccess::schedule(*loop_, l);
}

void FutureBase::schedule_waiter(WaiterBits w) {
  if (FutureLink* l = as_link(w)) [[unlikely]] {
    schedule_link(l);
  } else {
    internal::LoopAccess::schedule(*loop_, reinterpret_cast<TaskBase*>(w));
  }
}

void FutureBase::schedule_callbacks() {
  if (const WaiterBits w = std::exchange(waiter_, 0)) {
    if (!loop_->is_closed()) [[likely]] schedule_waiter(w);
    return;
  }
  if (more_) [[unlikely]] schedule_more();
}

void FutureBase::schedule_more() {
  std::unique_ptr<Entries> entries = std::move(more_);
  if (loop_->is_closed()) return;  // nothing runs on a closed loop
  for (Entry& e : entries->list) {
    if (e.waiter) {
      schedule_waiter(e.waiter);
    } else {
      internal::LoopAccess::call_soon_in(*loop_, PendingCallback::make(this, std::move(e.fn)), e.context.detach());
    }
  }
}

void FutureLink::run() {
  EventLoop& loop = future_->loop();
  internal::LoopAccess::note(loop, EventKind::kCallback, handle_id_);
  try {
    on_done(*future_);
  } catch (...) {
    ExceptionContext c = ExceptionContext::of(absl::StrFormat("Exception in callback <Handle #%d>", handle_id_),
                                              std::current_exception());
    c.handle = absl::StrFormat("<Handle #%d>", handle_id_);
    loop.call_exception_handler(c);
  }
  unhold();  // may destroy the owner, and this link with it
}

std::string FutureBase::describe() const {
  const char* state = state_ == State::kPending ? "pending" : state_ == State::kCancelled ? "cancelled" : "finished";
  if (task_) return absl::StrFormat("<Task %s name='%s'>", state, task_->get_name());
  if (shared_label_) return absl::StrFormat("<Future %s %s>", state, shared_label_->text);
  if (extras_ && !extras_->label.empty()) return absl::StrFormat("<Future %s %s>", state, extras_->label);
  return absl::StrFormat("<Future %s>", state);
}

}  // namespace twinloop::internal
