#include "sim/simulation.h"

namespace twinloop::sim {

Simulation::Simulation(Options options) : options_(options) {
  auto backend = std::make_unique<SimBackend>(options_);
  backend_ = backend.get();
  loop_ = internal::Ref<EventLoop>(new EventLoop(std::move(backend)));
  loop_->set_debug(options_.debug);
}

}  // namespace twinloop::sim
