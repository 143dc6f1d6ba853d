#include "twinloop/sim/world.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/disk.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/process.h"
#include "twinloop/sim/sim_backend.h"

namespace twinloop::sim {

namespace {

constexpr int64_t kBillion = 1'000'000'000;

int64_t saturate(__int128 v) {
  constexpr int64_t kMax = LoopBackend::kNoDeadline - 1;
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min() / 2;
  if (v > kMax) return kMax;
  if (v < kMin) return kMin;
  return static_cast<int64_t>(v);
}

// floor(a / b) for b > 0.
__int128 floor_div(__int128 a, __int128 b) {
  __int128 q = a / b;
  if (a % b != 0 && a < 0) --q;
  return q;
}

std::string at(int64_t ns) { return absl::FormatDuration(absl::Nanoseconds(ns)); }

}  // namespace

World::World(SimBackend& backend) : backend_(backend) {}

World::~World() = default;

World& World::of(EventLoop& loop) {
  auto* sim = dynamic_cast<SimBackend*>(&loop.backend());
  if (!sim) {
    throw std::runtime_error(
        "sim::World: simulated hosts exist only on the simulated loop (sim::run, sim::Simulation)");
  }
  return sim->world();
}

Network& World::network() const { return backend_.network(); }

EventLoop& World::loop() const { return *backend_.loop_; }

uint32_t World::id_of(std::string_view host) const {
  network().ensure_hosts();
  return network().host_id(host);
}

const std::string& World::name_of(uint32_t id) const { return network().host_name(id); }

std::string World::fault(std::string what) { return fault(std::move(what), network().faults().size()); }

std::string World::fault(std::string what, size_t net_before) {
  faults_.push_back(Fault{absl::Nanoseconds(backend_.time_ns()), what});
  net_before_.push_back(net_before);
  backend_.on_event(internal::EventKind::kFault, text_hash(what));
  return what;
}

// ---------------------------------------------------------------------------
// Clocks. Integer arithmetic only (a drift in parts per billion): the same
// run on every compiler and optimization level.

int64_t World::to_local(const Clock& c, int64_t loop_ns) {
  const __int128 d = static_cast<__int128>(loop_ns) - c.base_loop_ns;
  return saturate(c.base_local_ns + d + floor_div(d * c.drift_ppb, kBillion));
}

int64_t World::local_ns(int64_t loop_ns) const {
  const uint32_t id = network().current_host_id();
  const Clock* c = id < clock_by_id_.size() ? clock_by_id_[id] : nullptr;
  return c ? to_local(*c, loop_ns) : loop_ns;
}

int64_t World::loop_ns(int64_t local_ns, int64_t /*now_loop_ns*/) const {
  const uint32_t id = network().current_host_id();
  const Clock* c = id < clock_by_id_.size() ? clock_by_id_[id] : nullptr;
  if (!c) return local_ns;
  if (local_ns >= LoopBackend::kNoDeadline - 1) return LoopBackend::kNoDeadline - 1;
  // The least loop time t with to_local(t) >= local_ns: invert the line,
  // then step over the rounding of to_local's division.
  const __int128 dl = static_cast<__int128>(local_ns) - c->base_local_ns;
  __int128 d = floor_div(dl * kBillion, kBillion + c->drift_ppb);
  int64_t t = saturate(c->base_loop_ns + d);
  while (t > std::numeric_limits<int64_t>::min() / 2 && to_local(*c, t - 1) >= local_ns) --t;
  while (t < LoopBackend::kNoDeadline - 1 && to_local(*c, t) < local_ns) ++t;
  return t;
}

void World::set_clock(std::string_view host, const HostClock& clock) {
  if (!std::isfinite(clock.drift_ppm) || clock.drift_ppm <= -1e6 || clock.drift_ppm > 1e6) {
    throw std::invalid_argument(absl::StrFormat(
        "set_clock: drift_ppm must be in (-1000000, 1000000] (a clock that runs), got %g", clock.drift_ppm));
  }
  const uint32_t id = id_of(host);
  const int64_t now = backend_.time_ns();
  HostState& s = hosts_[id];
  const int64_t reads = s.clock ? to_local(*s.clock, now) : now;
  const int64_t want = saturate(static_cast<__int128>(now) + absl::ToInt64Nanoseconds(clock.offset));
  if (want < reads) {
    throw std::invalid_argument(absl::StrCat(
        "set_clock: host '", name_of(id), "''s clock reads ", at(reads), " and is monotonic (loop.time()); offset ",
        absl::FormatDuration(clock.offset), " would move it back to ", at(want)));
  }
  s.clock = Clock{now, want, std::llround(clock.drift_ppm * 1000)};
  if (clock_by_id_.size() <= id) clock_by_id_.resize(id + 1, nullptr);
  clock_by_id_[id] = &*s.clock;
  if (!clock_installed_) {
    SimBackend::set_clock_view(loop(), this);
    clock_installed_ = true;
  }
  fault(absl::StrFormat("clock of host '%s' set: offset %s, drift %+g ppm (reads %s)", name_of(id),
                        absl::FormatDuration(clock.offset), clock.drift_ppm, at(want)));
}

absl::Time World::clock_time(std::string_view host) const {
  const uint32_t id = id_of(host);
  const int64_t now = backend_.time_ns();
  auto it = hosts_.find(id);
  const int64_t t = it != hosts_.end() && it->second.clock ? to_local(*it->second.clock, now) : now;
  return absl::UnixEpoch() + absl::Nanoseconds(t);
}

// ---------------------------------------------------------------------------
// Mains, crashes, restarts.

void World::start(std::string_view host, std::function<Coro<void>()> main) {
  if (!main) throw std::invalid_argument("World::start: an empty main factory");
  const uint32_t id = id_of(host);
  HostState& s = hosts_[id];
  if (s.main) throw std::logic_error(absl::StrCat("World::start: host '", name_of(id), "' has a main already"));
  s.main = std::move(main);
  if (!s.down) run_main(id, s);
}

void World::run_main(uint32_t id, HostState& s) {
  // The run's main coroutine is done and the runner is cancelling what is
  // left: no host starts again (its main could use the test's state, gone).
  if (internal::LoopAccess::shutting_down(loop())) return;
  const std::string& name = name_of(id);
  TaskOptions options;
  options.name = absl::StrCat(name, ":main#", s.incarnation);
  // A fresh context on the host, as a new process starts with.
  options.context = network().context_on(name, Context());
  Task<void> task = loop().create_task(s.main(), std::move(options));
  // Reported at once rather than when the handle is dropped; in an empty
  // context (the implicit host), so that no crash cancels the report.
  task.add_done_callback(
      [name](Future<void> f) {
        if (f.cancelled()) return;
        if (std::exception_ptr e = f.exception()) {
          get_running_loop().call_exception_handler(
              ExceptionContext::of(absl::StrCat("host '", name, "': its main coroutine raised"), e));
        }
      },
      Context());
  s.main_task = std::move(task);
}

std::string World::crash(std::string_view host, const CrashOptions& options) {
  const uint32_t id = id_of(host);
  const std::string name = name_of(id);
  HostState& s = hosts_[id];
  if (s.down) throw std::logic_error(absl::StrCat("crash: host '", name, "' is down already"));
  if (options.restart_after && *options.restart_after < absl::ZeroDuration()) {
    throw std::invalid_argument("crash: a negative restart_after");
  }
  if (loop().is_running() && network().current_host_id() == id) {
    throw std::logic_error(absl::StrCat("crash: code running on host '", name,
                                        "' cannot crash it (call crash from another host or a plain callback)"));
  }
  const size_t net_before = network().faults().size();
  s.down = true;
  s.down_since_ns = backend_.time_ns();
  if (s.pending_restart) std::exchange(s.pending_restart, std::nullopt)->cancel();
  // The network first, so that what the ended tasks' destructors do to
  // their connections sends nothing.
  network_down(id);
  // Its processes (sim/process.h) die with it.
  const size_t killed = backend_.processes_ ? backend_.processes_->host_crashed(name) : 0;
  Network& net = network();
  const size_t ended = SimBackend::abandon(loop(), [&net, id](const Context& c) {
    return net.host_in(internal::ContextAccess::state(c)) == id;
  });
  tasks_ended_ += ended;
  s.main_task.reset();
  std::string what = absl::StrFormat("crash host '%s': %d task(s) ended", name, ended);
  if (killed > 0) absl::StrAppend(&what, ", ", killed, " process(es) killed");
  // Then its disk, if it has files: unsynced writes lost (or torn).
  if (backend_.disk_ && !backend_.disk_->list(name).empty()) {
    absl::StrAppend(&what, "; disk: ", backend_.disk_->crash(name, DiskCrashOptions{.torn = options.torn_writes}).description);
  }
  if (options.restart_after) {
    absl::StrAppend(&what, ", restart in ", absl::FormatDuration(*options.restart_after));
    // In a context of the implicit host (by its clock): the restart is the
    // world's, not the caller's, and no crash of the caller's host cancels it.
    Context world_context;
    world_context.run([&] {
      s.pending_restart = loop().call_later(*options.restart_after, [this, id] {
        hosts_[id].pending_restart.reset();
        restart(name_of(id));
      });
    });
  }
  return fault(std::move(what), net_before);
}

std::string World::crash_and_restart(std::string_view host, absl::Duration max_delay) {
  if (max_delay < absl::ZeroDuration()) throw std::invalid_argument("crash_and_restart: a negative max_delay");
  const uint64_t n = static_cast<uint64_t>(absl::ToInt64Milliseconds(max_delay)) + 1;
  const uint64_t ms = backend_.choose(draw_sites::kRestartDelayMs, n);
  return crash(host, CrashOptions{.restart_after = absl::Milliseconds(static_cast<int64_t>(ms))});
}

std::string World::restart(std::string_view host) {
  const uint32_t id = id_of(host);
  HostState& s = hosts_[id];
  if (!s.down) throw std::logic_error(absl::StrCat("restart: host '", name_of(id), "' is up"));
  if (s.pending_restart) std::exchange(s.pending_restart, std::nullopt)->cancel();
  const size_t net_before = network().faults().size();
  s.down = false;
  ++s.incarnation;
  network_up(id);
  const bool starts = s.main && !internal::LoopAccess::shutting_down(loop());
  std::string what = fault(absl::StrFormat("restart host '%s' (down %s)%s", name_of(id),
                                           at(backend_.time_ns() - s.down_since_ns),
                                           starts ? absl::StrCat(", main #", s.incarnation, " starts") : ""),
                           net_before);
  if (starts) run_main(id, s);
  return what;
}

// The network side of a crash and a restart (sim/network.h).
void World::network_down(uint32_t id) { network().host_down(name_of(id)); }
void World::network_up(uint32_t id) { network().host_up(name_of(id)); }

bool World::is_down(std::string_view host) const {
  auto it = hosts_.find(id_of(host));
  return it != hosts_.end() && it->second.down;
}

std::string World::describe() const {
  std::string out;
  const int64_t now = backend_.time_ns();
  for (const auto& [id, s] : hosts_) {
    if (s.down) {
      absl::StrAppend(&out, "\n  host '", name_of(id), "': down since t=", at(s.down_since_ns),
                      s.pending_restart ? ", restart pending" : "");
    }
    if (s.clock) {
      absl::StrAppendFormat(&out, "\n  host '%s': clock reads %s at loop time %s (drift %+g ppm)", name_of(id),
                            at(to_local(*s.clock, now)), at(now), static_cast<double>(s.clock->drift_ppb) / 1000);
    }
  }
  if (!faults_.empty()) absl::StrAppend(&out, "\n  world faults so far: ", faults_.size(), ", last: ", faults_.back().what);
  return out.empty() ? out : absl::StrCat("\nworld:", out);
}

std::string World::fault_log() const {
  // The world's and the network's, merged in the order they happened: the
  // world's fault i comes before the network's fault j if fewer than j + 1
  // network faults preceded it (a crash's own line before the network's
  // host_down, and a restart at the same virtual time after both).
  const std::vector<Network::AppliedFault>& net = network().faults();
  std::string out;
  size_t i = 0;
  size_t j = 0;
  while (i < faults_.size() || j < net.size()) {
    const bool world_next = j == net.size() || (i < faults_.size() && net_before_[i] <= j);
    const absl::Duration at = world_next ? faults_[i].at : net[j].at;
    const std::string& what = world_next ? faults_[i++].what : net[j++].what;
    absl::StrAppend(&out, "t=", absl::FormatDuration(at), " ", what, "\n");
  }
  return out;
}

void World::shutdown() {
  for (auto& [id, s] : hosts_) {
    if (s.pending_restart) std::exchange(s.pending_restart, std::nullopt)->cancel();
    s.main_task.reset();
  }
  // The injector's task holds the loop, which holds this world: let go.
  injector_.reset();
  if (clock_installed_) {
    SimBackend::set_clock_view(loop(), nullptr);
    clock_installed_ = false;
  }
}

}  // namespace twinloop::sim
