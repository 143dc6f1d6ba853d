#include "twinloop/api/wait.h"

#include <memory>

namespace twinloop::internal {

Coro<void> wait_until(std::vector<Ref<FutureBase>> fs, absl::Duration timeout, ReturnWhen return_when) {
  EventLoop& loop = get_running_loop();
  Future<void> waiter = create_future<void>(loop);
  TimerHandle timer;
  if (timeout != absl::InfiniteDuration()) {
    timer = loop.call_later(timeout, [waiter]() mutable {
      if (!waiter.done()) waiter.set_result();
    });
  }
  // Call graph: each future is awaited by the waiting task.
  const uint64_t caller_id = current_task_or_throw("wait()")->id();
  for (auto& f : fs) f->add_awaited_by(caller_id);
  auto counter = std::make_shared<size_t>(fs.size());
  std::vector<uint64_t> tokens;
  for (auto& f : fs) {
    tokens.push_back(f->add_done_callback([=](FutureBase& done) mutable {
      --*counter;
      if (*counter == 0 || return_when == ReturnWhen::FIRST_COMPLETED ||
          (return_when == ReturnWhen::FIRST_EXCEPTION && !done.cancelled() && done.exception())) {
        timer.cancel();
        if (!waiter.done()) waiter.set_result();
      }
    }));
  }
  std::exception_ptr error;
  try {
    co_await waiter;
  } catch (...) {
    error = std::current_exception();
  }
  timer.cancel();
  for (size_t i = 0; i < fs.size(); ++i) {
    fs[i]->remove_done_callback(tokens[i]);
    fs[i]->discard_awaited_by(caller_id);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace twinloop::internal
