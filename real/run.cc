#include "twinloop/real/run.h"

#include <memory>

#include "twinloop/real/epoll_backend.h"

namespace twinloop::real {

EventLoopRef new_event_loop() { return EventLoopRef(new EventLoop(std::make_unique<EpollBackend>())); }

}  // namespace twinloop::real
