#include "twinloop/sim/simulation.h"

#include "absl/strings/str_cat.h"

namespace twinloop::sim {

Simulation::Simulation(Options options)
    : options_(options), runner_(RunnerOptions{.loop_factory = [this] { return EventLoopRef(loop_.get()); }}) {
  auto backend = std::make_unique<SimBackend>(options_);
  backend_ = backend.get();
  loop_ = internal::Ref<EventLoop>(new EventLoop(std::move(backend)));
  apply_debug_options(*loop_, options_);
}

void apply_debug_options(EventLoop& loop, const Options& options) {
  if (options.debug) loop.set_debug(*options.debug);
  loop.set_slow_callback_duration(options.slow_callback_duration);
}

EventLoopRef new_event_loop(Options options) {
  EventLoopRef loop(new EventLoop(std::make_unique<SimBackend>(options)));
  apply_debug_options(*loop, options);
  return loop;
}

Recording Simulation::recording() const {
  Recording r;
  r.seed = options_.seed;
  r.options = recorded_options(options_);
  r.decisions = backend_->decisions();
  r.events = backend_->events();
  r.event_tasks = backend_->event_tasks();
  r.event_decisions = backend_->event_decisions();
  return r;
}

std::optional<Divergence> Simulation::divergence() const {
  if (!options_.replay) return std::nullopt;
  return first_divergence(options_.replay->events, backend_->events());
}

std::string Simulation::network_report() const {
  const Network& net = backend_->network();
  return net.active() ? net.describe() : std::string();
}

std::string Simulation::buggify_summary() const {
  std::string out;
  for (const auto& [site, s] : backend_->buggify_sites()) {
    if (!s.enabled) continue;
    absl::StrAppend(&out, out.empty() ? "buggify sites enabled in this run: " : ", ", site, " (fired ", s.fired,
                    " of ", s.evaluations, ")");
  }
  return out;
}

}  // namespace twinloop::sim
