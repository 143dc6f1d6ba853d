#include "twinloop/api/contextvars.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop {
namespace internal {
namespace {

std::atomic<uint64_t> context_var_ids{0};

// The thread's own context, once a set() outside any task, callback or
// Context::run created it (tls_context was null): released when the thread
// exits. Touched only then, so other threads pay nothing for it.
struct ThreadContext {
  ContextState* context = nullptr;
  ~ThreadContext() {
    if (!context) return;
    if (tls_context == context) tls_context = nullptr;
    context->leave();
    context->release();
  }
};
thread_local ThreadContext tls_thread_context;

std::string describe_var(const std::string& name) { return absl::StrCat("<ContextVar name='", name, "'>"); }
std::string describe_token(const std::string& var_name) {
  return absl::StrCat("<Token var=", describe_var(var_name), ">");
}

}  // namespace

void ContextData::destroy() noexcept { delete this; }

void ContextState::destroy() noexcept { delete this; }

const ContextData::Entry* ContextData::find(uint64_t var_id) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), var_id,
                             [](const Entry& e, uint64_t id) { return e.var_id < id; });
  return it != entries_.end() && it->var_id == var_id ? &*it : nullptr;
}

Ref<ContextData> ContextData::with(const ContextData* base, uint64_t var_id, std::shared_ptr<const void> value) {
  std::vector<Entry> entries;
  if (base) {
    entries.reserve(base->entries_.size() + 1);
    entries.assign(base->entries_.begin(), base->entries_.end());
  }
  auto it = std::lower_bound(entries.begin(), entries.end(), var_id,
                             [](const Entry& e, uint64_t id) { return e.var_id < id; });
  const bool present = it != entries.end() && it->var_id == var_id;
  if (value) {
    if (present) {
      it->value = std::move(value);
    } else {
      entries.insert(it, Entry{var_id, std::move(value)});
    }
  } else if (present) {
    entries.erase(it);
  }
  if (entries.empty()) return nullptr;
  return Ref<ContextData>(new ContextData(std::move(entries)));
}

ContextState* copy_context_slow(const ContextState& current) {
  auto* c = new ContextState(current.data());
  c->add_ref();
  return c;
}

TaskBase* running_task() {
  EventLoop* loop = running_loop_or_null();
  return loop ? LoopAccess::current_task(*loop) : nullptr;
}

ContextState* running_task_context() {
  TaskBase* t = running_task();
  return t ? t->context_slot().get() : nullptr;
}

ContextState& current_context_for_set() {
  ContextState* c = tls_context;
  if (is_context(c)) return *c;
  // PEP 567's context_get: the current context is created on first use.
  TaskBase* task = c ? nullptr : running_task();
  if (task && task->context_slot()) return *task->context_slot();
  auto* created = new ContextState(nullptr);
  created->add_ref();  // the owner's: the task's, the scope's (then its slot's), or the thread's
  if (task) {
    // A step of a task whose context was empty, run without switching
    // (TaskBase::step_in_context): this is the task's context now, and its
    // later steps switch to it.
    task->context_slot() = Ref<ContextState>::adopt(created);
    return *created;
  }
  if (!c) tls_thread_context.context = created;
  created->enter();
  tls_context = created;
  return *created;
}

uint64_t next_context_var_id() { return context_var_ids.fetch_add(1, std::memory_order_relaxed) + 1; }

std::shared_ptr<TokenState> context_set(uint64_t var_id, std::shared_ptr<const void> value) {
  context_values_set.store(true, std::memory_order_relaxed);
  ContextState& c = current_context_for_set();
  auto token = std::make_shared<TokenState>();
  token->context = Ref<ContextState>(&c);
  token->var_id = var_id;
  if (const ContextData::Entry* e = c.find(var_id)) token->old_value = e->value;
  c.set_data(ContextData::with(c.data().get(), var_id, std::move(value)));
  return token;
}

void context_reset(TokenState& token, uint64_t var_id, const std::string& token_var_name) {
  // CPython 3.14 Python/context.c PyContextVar_Reset, in its order.
  if (token.used) throw std::runtime_error(describe_token(token_var_name) + " has already been used once");
  if (token.var_id != var_id) {
    throw std::invalid_argument(describe_token(token_var_name) + " was created by a different ContextVar");
  }
  if (current_context() != token.context.get()) {
    throw std::invalid_argument(describe_token(token_var_name) + " was created in a different Context");
  }
  token.used = true;
  ContextState& c = *token.context;
  c.set_data(ContextData::with(c.data().get(), var_id, token.old_value));
}

void throw_lookup_error(const std::string& var_name) { throw LookupError(describe_var(var_name)); }

void throw_empty_token() { throw std::invalid_argument("an empty (moved-from) Token"); }

}  // namespace internal

Context::Context() : state_(new internal::ContextState(nullptr)) {}

namespace internal {
Context ContextAccess::of(const Ref<ContextState>& state) { return state ? Context(state) : Context(); }
}  // namespace internal

Context Context::copy() const { return Context(internal::Ref<internal::ContextState>(new internal::ContextState(state_->data()))); }

Context copy_context() {
  const internal::ContextState* c = internal::current_context();
  return Context(internal::Ref<internal::ContextState>(
      new internal::ContextState(c ? c->data() : internal::Ref<internal::ContextData>())));
}

Context::RunScope::RunScope(internal::ContextState& state) : state_(state), prev_(internal::tls_context) {
  // PyContext_Enter: "cannot enter context: %R is already entered".
  if (!state_.try_enter_once()) throw std::runtime_error("cannot enter context: <Context> is already entered");
  internal::tls_context = &state_;
}

Context::RunScope::~RunScope() {
  internal::tls_context = prev_;
  state_.leave();
}

}  // namespace twinloop
