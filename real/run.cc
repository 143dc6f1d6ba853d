#include "twinloop/real/run.h"

#include <memory>

#include "twinloop/real/epoll_backend.h"

namespace twinloop::real {

::twinloop::internal::Ref<EventLoop> new_event_loop() {
  return ::twinloop::internal::Ref<EventLoop>(new EventLoop(std::make_unique<EpollBackend>()));
}

}  // namespace twinloop::real
