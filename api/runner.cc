#include "twinloop/api/runner.h"

#include <memory>
#include <vector>

#include "twinloop/api/errors.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

Runner::Runner(RunnerOptions options) : options_(std::move(options)) {
  if (!options_.loop_factory) {
    throw std::invalid_argument(
        "Runner needs a loop_factory (real::new_event_loop, sim::new_event_loop, ...); "
        "real::Runner and sim::Runner supply one");
  }
}

Runner::~Runner() {
  if (state_ != State::kInitialized) return;
  EventLoopRef loop = loop_;
  try {
    close();
  } catch (...) {
    loop->call_exception_handler(
        ExceptionContext::of("Runner::close() failed in the Runner's destructor", std::current_exception()));
  }
}

void Runner::lazy_init() {
  if (state_ == State::kClosed) throw std::runtime_error("Runner is closed");
  if (state_ == State::kInitialized) return;
  EventLoopRef loop = options_.loop_factory();
  if (!loop) throw std::invalid_argument("Runner's loop_factory returned no loop");
  if (options_.debug) loop->set_debug(*options_.debug);
  // asyncio copies the contextvars context here, once
  // (self._context = contextvars.copy_context()), and every run's task runs
  // in it (test_run_keeps_context).
  context_ = copy_context();
  loop_ = std::move(loop);
  state_ = State::kInitialized;
}

EventLoop& Runner::get_loop() {
  lazy_init();
  return *loop_;
}

void Runner::on_sigint(internal::FutureBase& main) {
  // asyncio's Runner._on_sigint.
  ++interrupt_count_;
  if (interrupt_count_ == 1 && !main.done()) {
    main.cancel();
    // asyncio also wakes the loop (call_soon_threadsafe): here the hook runs
    // on the loop thread, from the loop's own poll, so it is awake.
    return;
  }
  // asyncio raises KeyboardInterrupt from the signal handler, out of
  // run_until_complete; the nearest C++ equivalent ends the run after this
  // iteration and throws from run().
  interrupt_now_ = true;
  loop_->stop();
}

void Runner::run_main_task(internal::FutureBase& main) {
  EventLoopRef keep = loop_;  // close() below may drop the runner's reference
  EventLoop& loop = *keep;
  interrupt_count_ = 0;
  interrupt_now_ = false;
  struct SigintScope {
    EventLoop& loop;
    bool taken;
    ~SigintScope() {
      if (taken) internal::LoopAccess::release_sigint(loop);
    }
  } sigint{loop, internal::LoopAccess::take_sigint(loop, [this, &main] { on_sigint(main); })};

  // run_until_complete(task), with a loop failure told apart from a stop().
  const uint64_t token = main.add_done_callback([&loop](internal::FutureBase&) { loop.stop(); });
  try {
    loop.run_forever();
  } catch (...) {
    main.remove_done_callback(token);
    // The loop itself failed (a simulated deadlock, an epoll error): it
    // cannot shut down in order, so drop everything.
    internal::LoopAccess::release_sigint(loop);
    sigint.taken = false;
    loop_ = EventLoopRef();
    state_ = State::kClosed;
    loop.close();
    throw;
  }
  main.remove_done_callback(token);
  if (interrupt_now_) throw KeyboardInterrupt();
  if (!main.done()) throw std::runtime_error("Event loop stopped before Future completed.");
  // Cancelled by our SIGINT alone: the interrupt, not the cancellation, is
  // what the caller must see (asyncio: `if uncancel() == 0: raise
  // KeyboardInterrupt()`).
  if (main.cancelled() && interrupt_count_ > 0 && main.as_task()->uncancel() == 0) throw KeyboardInterrupt();
}

void Runner::close() {
  if (state_ != State::kInitialized) return;
  if (loop_->is_running()) throw std::runtime_error("Runner.close() cannot be called while its loop is running");
  EventLoopRef loop = std::move(loop_);
  state_ = State::kClosed;
  internal::shutdown_loop(*loop);  // closes the loop, also when it throws
}

namespace internal {

void shutdown_loop(EventLoop& loop) {
  LoopAccess::begin_shutdown(loop);
  std::vector<Ref<FutureBase>> leftovers;
  for (TaskBase* t : internal::LoopAccess::registered_tasks(loop)) leftovers.emplace_back(&t->future());
  if (!leftovers.empty()) {
    for (auto& f : leftovers) f->cancel();
    // One future that completes when every leftover task has finished.
    auto all_done = make_ref<ValueHolder<void>>(loop);
    auto remaining = std::make_shared<size_t>(leftovers.size());
    for (auto& f : leftovers) {
      f->add_done_callback([all_done, remaining](FutureBase&) {
        if (--*remaining == 0 && !all_done->done()) all_done->set_value(std::monostate{});
      });
    }
    try {
      LoopAccess::run_until_done(loop, *all_done);
    } catch (...) {
      loop.close();
      throw;
    }
    for (auto& f : leftovers) {
      if (f->cancelled()) continue;
      std::exception_ptr e = f->exception();
      if (!e) continue;
      ExceptionContext c = ExceptionContext::of("unhandled exception during twinloop run() shutdown", e);
      c.task = f->as_task()->get_name();
      loop.call_exception_handler(c);
    }
  }
  loop.close();
}

}  // namespace internal

}  // namespace twinloop
