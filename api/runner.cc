#include "twinloop/api/runner.h"
#include "twinloop/api/internal/loop_access.h"

#include <vector>

namespace twinloop::internal {

void shutdown_loop(EventLoop& loop) {
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

}  // namespace twinloop::internal
