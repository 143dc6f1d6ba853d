// World's random faults, swarm mode and liveness (sim/faults.h).
#include "twinloop/sim/faults.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "twinloop/api/graph.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/sim_backend.h"
#include "twinloop/sim/world.h"

namespace twinloop::sim {

namespace {

constexpr uint64_t kChanceScale = 1'000'000;

void check_rate(double rate, const char* name) {
  if (!std::isfinite(rate) || rate < 0) {
    throw std::invalid_argument(absl::StrFormat("FaultProfile: %s must be a finite rate >= 0, got %g", name, rate));
  }
}

void check_chance(double chance, const char* name) {
  if (!std::isfinite(chance) || chance < 0 || chance > 1) {
    throw std::invalid_argument(
        absl::StrFormat("FaultProfile: %s must be a chance per spawn in [0, 1], got %g", name, chance));
  }
}

void check_duration(absl::Duration d, const char* name) {
  if (d < absl::ZeroDuration()) {
    throw std::invalid_argument(absl::StrCat("FaultProfile: ", name, " must be >= 0, got ", absl::FormatDuration(d)));
  }
}

// A kind of fault the profile may draw.
struct Kind {
  const char* name;  // as enabled_kinds() and the draw sites say it
  double rate;
  bool network;  // needs two hosts
};

}  // namespace

bool World::fires(std::string_view site, double rate, absl::Duration tick) {
  const double p = std::min(1.0, rate * absl::ToDoubleSeconds(tick));
  const auto k = static_cast<uint64_t>(std::llround(p * static_cast<double>(kChanceScale)));
  if (k == 0) return false;
  // 0 (the default, and where shrinking goes) never fires.
  const bool fired = backend_.choose(site, kChanceScale) >= kChanceScale - k;
  // Every kind drawn here has its probe (docs/exploration.md, "Probes").
  if (site.substr(0, draw_sites::kFaultFirePrefix.size()) == draw_sites::kFaultFirePrefix) {
    backend_.note_probe(absl::StrCat("fault fired: ", std::string(site.substr(draw_sites::kFaultFirePrefix.size()))), fired);
  }
  return fired;
}

const std::string& World::draw_host(const std::vector<std::string>& hosts) {
  return hosts[backend_.choose(draw_sites::kFaultHost, hosts.size())];
}

void World::inject(const FaultProfile& profile) {
  check_rate(profile.partitions_per_s, "partitions_per_s");
  check_rate(profile.holds_per_s, "holds_per_s");
  check_rate(profile.resets_per_s, "resets_per_s");
  check_rate(profile.slow_links_per_s, "slow_links_per_s");
  check_rate(profile.crashes_per_s, "crashes_per_s");
  check_rate(profile.clock_jumps_per_s, "clock_jumps_per_s");
  check_chance(profile.process_spawn_failures, "process_spawn_failures");
  check_chance(profile.process_crashes, "process_crashes");
  check_chance(profile.process_hangs, "process_hangs");
  check_chance(profile.process_slow_output, "process_slow_output");
  check_chance(profile.process_chunked_output, "process_chunked_output");
  check_chance(profile.process_exit_failures, "process_exit_failures");
  check_duration(profile.process_crash_max, "process_crash_max");
  check_duration(profile.process_slow_max, "process_slow_max");
  if (profile.tick <= absl::ZeroDuration()) throw std::invalid_argument("FaultProfile: tick must be > 0");
  check_duration(profile.duration, "duration");
  check_duration(profile.partition_max, "partition_max");
  check_duration(profile.hold_max, "hold_max");
  check_duration(profile.slow_max, "slow_max");
  check_duration(profile.slow_latency_max, "slow_latency_max");
  check_duration(profile.restart_max, "restart_max");
  check_duration(profile.clock_jump_max, "clock_jump_max");
  check_duration(profile.clock_offset_max, "clock_offset_max");
  if (!std::isfinite(profile.clock_drift_max_ppm) || profile.clock_drift_max_ppm < 0 ||
      profile.clock_drift_max_ppm >= 1e6) {
    throw std::invalid_argument(
        absl::StrFormat("FaultProfile: clock_drift_max_ppm must be in [0, 1000000), got %g", profile.clock_drift_max_ppm));
  }
  Network& net = network();
  net.ensure_hosts();
  std::vector<std::string> hosts;
  if (profile.hosts.empty()) {
    for (const std::string& h : net.hosts()) {
      if (h != Network::kImplicitHost) hosts.push_back(h);
    }
  } else {
    for (const std::string& h : profile.hosts) hosts.push_back(name_of(id_of(h)));  // unknown: invalid_argument
  }
  const bool network_kinds = profile.partitions_per_s > 0 || profile.holds_per_s > 0 || profile.resets_per_s > 0 ||
                             profile.slow_links_per_s > 0;
  if (network_kinds && hosts.size() < 2) {
    throw std::invalid_argument("FaultProfile: network faults need at least two hosts (Network::add_host)");
  }
  if ((profile.crashes_per_s > 0 || profile.clock_jumps_per_s > 0 || profile.clock_drift_max_ppm > 0 ||
       profile.clock_offset_max > absl::ZeroDuration()) &&
      hosts.empty()) {
    throw std::invalid_argument("FaultProfile: host faults need a host (Network::add_host)");
  }
  stop_injecting();
  torn_writes_ = profile.torn_writes;
  // The process kinds apply per spawn, from now on (so that a spawn right
  // after inject() draws them); swarm mode draws their subset here.
  ProcessFaultChances chances{
      .spawn_failures = profile.process_spawn_failures,
      .crashes = profile.process_crashes,
      .crash_max = profile.process_crash_max,
      .hangs = profile.process_hangs,
      .slow_output = profile.process_slow_output,
      .slow_max = profile.process_slow_max,
      .chunked_output = profile.process_chunked_output,
      .exit_failures = profile.process_exit_failures,
  };
  process_kinds_.clear();
  for (auto [name, chance] : std::initializer_list<std::pair<const char*, double*>>{
           {"process_spawn_failures", &chances.spawn_failures},
           {"process_crashes", &chances.crashes},
           {"process_hangs", &chances.hangs},
           {"process_slow_output", &chances.slow_output},
           {"process_chunked_output", &chances.chunked_output},
           {"process_exit_failures", &chances.exit_failures},
       }) {
    if (*chance == 0) continue;
    if (profile.swarm && backend_.choose(std::string(draw_sites::kFaultSwarmPrefix) + name, 2) == 0) {
      *chance = 0;
      continue;
    }
    process_kinds_.push_back(name);
  }
  process_faults_ = chances;
  // The injector is the world's: a task on the implicit host, in a fresh
  // context, so that no crash ends it.
  TaskOptions options;
  options.name = "fault-injector";
  options.context = Context();
  injector_ = loop().create_task(inject_faults(profile, std::move(hosts)), std::move(options));
}

void World::stop_injecting() {
  if (injector_) std::exchange(injector_, std::nullopt)->cancel();
}

Coro<void> World::inject_faults(FaultProfile p, std::vector<std::string> hosts) {
  std::vector<Kind> kinds = {
      {"partitions", p.partitions_per_s, true}, {"holds", p.holds_per_s, true},
      {"resets", p.resets_per_s, true},         {"slow_links", p.slow_links_per_s, true},
      {"crashes", p.crashes_per_s, false},      {"clock_jumps", p.clock_jumps_per_s, false},
  };
  std::vector<std::string> enabled;
  for (Kind& k : kinds) {
    if (k.rate == 0) continue;
    if (p.swarm && backend_.choose(std::string(draw_sites::kFaultSwarmPrefix) + k.name, 2) == 0) {
      k.rate = 0;  // this run leaves the kind out
      continue;
    }
    enabled.push_back(k.name);
    // Reached from the start, whether or not a tick comes.
    backend_.note_probe(absl::StrCat("fault fired: ", k.name), false);
  }
  for (const std::string& k : process_kinds_) {
    enabled.push_back(k);
    // A process fault kind is drawn per spawn: reached from the start too.
    backend_.note_probe(absl::StrCat("fault fired: ", k), false);
  }
  enabled_kinds_ = absl::StrJoin(enabled, " ");
  // The report shows which kinds this run drew from (swarm mode's subset).
  fault(absl::StrCat("fault injection for ", absl::FormatDuration(p.duration), p.swarm ? " (swarm)" : "", ": ",
                     enabled.empty() ? std::string("no kind enabled") : enabled_kinds_));
  if (p.clock_drift_max_ppm > 0 || p.clock_offset_max > absl::ZeroDuration()) {
    const auto range = static_cast<uint64_t>(std::llround(p.clock_drift_max_ppm));
    const auto offset_ms = static_cast<uint64_t>(absl::ToInt64Milliseconds(p.clock_offset_max));
    for (const std::string& h : hosts) {
      // 0 (the default): no drift; then alternately faster and slower.
      const uint64_t v = range > 0 ? backend_.choose(draw_sites::kFaultClockDrift, 2 * range + 1) : 0;
      const uint64_t ahead = offset_ms > 0 ? backend_.choose(draw_sites::kFaultClockOffsetMs, offset_ms + 1) : 0;
      if (v == 0 && ahead == 0) continue;
      const double ppm = v == 0 ? 0.0 : (v % 2 == 1) ? static_cast<double>((v + 1) / 2) : -static_cast<double>(v / 2);
      const absl::Duration offset = clock_time(h) - (absl::UnixEpoch() + absl::Nanoseconds(backend_.time_ns()));
      set_clock(h, HostClock{.offset = offset + absl::Milliseconds(static_cast<int64_t>(ahead)), .drift_ppm = ppm});
    }
  }
  const int64_t end_ns = backend_.time_ns() + absl::ToInt64Nanoseconds(p.duration);
  while (true) {
    co_await sleep(p.tick);
    if (backend_.time_ns() > end_ns) break;
    for (const Kind& k : kinds) {
      if (k.rate == 0 || !fires(std::string(draw_sites::kFaultFirePrefix) + k.name, k.rate, p.tick)) continue;
      const std::string_view name = k.name;
      if (name == "crashes") {
        const std::string& h = draw_host(hosts);
        if (is_down(h)) continue;
        const uint64_t ms = backend_.choose(draw_sites::kFaultRestartMs,
                                            static_cast<uint64_t>(absl::ToInt64Milliseconds(p.restart_max)) + 1);
        crash(h, CrashOptions{.restart_after = absl::Milliseconds(static_cast<int64_t>(ms)), .torn_writes = torn_writes_});
      } else if (name == "clock_jumps") {
        const std::string& h = draw_host(hosts);
        const uint64_t ms =
            backend_.choose(draw_sites::kFaultClockJumpMs, static_cast<uint64_t>(absl::ToInt64Milliseconds(p.clock_jump_max)) + 1);
        const absl::Duration offset =
            clock_time(h) - (absl::UnixEpoch() + absl::Nanoseconds(backend_.time_ns())) + absl::Milliseconds(static_cast<int64_t>(ms) + 1);
        const auto it = hosts_.find(id_of(h));
        const double drift = it != hosts_.end() && it->second.clock
                                 ? static_cast<double>(it->second.clock->drift_ppb) / 1000
                                 : 0.0;
        set_clock(h, HostClock{.offset = offset, .drift_ppm = drift});
      } else {
        apply_network_fault(name, p, hosts);
      }
    }
  }
  injector_.reset();
}

void World::later(absl::Duration delay, absl::AnyInvocable<void()> action) {
  // On the implicit host, by its clock: the world's timers, not a host's.
  Context world_context;
  world_context.run([&] { pending_heals_.push_back(loop().call_later(delay, std::move(action))); });
}

void World::apply_network_fault(std::string_view kind, const FaultProfile& p, const std::vector<std::string>& hosts) {
  Network& net = network();
  // How long a fault lasts: [tick, max] in whole milliseconds; 0: one tick.
  const auto lasting = [&](absl::Duration max) {
    const int64_t tick_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(p.tick));
    const int64_t max_ms = std::max(tick_ms, absl::ToInt64Milliseconds(max));
    const uint64_t extra = backend_.choose(draw_sites::kFaultDurationMs, static_cast<uint64_t>(max_ms - tick_ms) + 1);
    return absl::Milliseconds(tick_ms + static_cast<int64_t>(extra));
  };
  // Two different hosts; 0, 0: the first two.
  const auto two_hosts = [&]() {
    const uint64_t i = backend_.choose(draw_sites::kFaultHost, hosts.size());
    uint64_t j = backend_.choose(draw_sites::kFaultHost, hosts.size() - 1);
    if (j >= i) ++j;
    return std::pair<std::string, std::string>(hosts[i], hosts[j]);
  };
  if (kind == "partitions") {
    // A nonempty proper subset of the hosts against the rest; 0: the first
    // host alone. (Past 20 hosts: one host against the rest.)
    std::vector<std::string> a;
    std::vector<std::string> b;
    if (hosts.size() <= 20) {
      const uint64_t mask = backend_.choose(draw_sites::kFaultPartitionSet, (uint64_t{1} << hosts.size()) - 2) + 1;
      for (size_t i = 0; i < hosts.size(); ++i) ((mask >> i) & 1 ? a : b).push_back(hosts[i]);
    } else {
      const uint64_t alone = backend_.choose(draw_sites::kFaultPartitionSet, hosts.size());
      for (size_t i = 0; i < hosts.size(); ++i) (i == alone ? a : b).push_back(hosts[i]);
    }
    PartitionOptions options;
    options.mode = backend_.choose(draw_sites::kFaultPartitionMode, 2) == 0 ? PartitionMode::kHold : PartitionMode::kLose;
    options.one_way = backend_.choose(draw_sites::kFaultOneWay, 2) == 1;
    net.partition(a, b, options);
    later(lasting(p.partition_max), [this, a, b] { network().heal(a, b); });
  } else if (kind == "holds") {
    // Named, not a structured binding: clang 14 cannot capture one.
    const std::pair<std::string, std::string> ends = two_hosts();
    const std::string from = ends.first;
    const std::string to = ends.second;
    try {
      net.hold(from, to);
    } catch (const std::logic_error&) {
      return;  // held already: this draw changes nothing
    }
    later(lasting(p.hold_max), [this, from, to] {
      try {
        network().release(from, to);
      } catch (const std::logic_error&) {
        // Released or healed meanwhile.
      }
    });
  } else if (kind == "resets") {
    // Named, not a structured binding: clang 14 cannot capture one.
    const std::pair<std::string, std::string> ends = two_hosts();
    const std::string a = ends.first;
    const std::string b = ends.second;
    net.reset_connections(a, b);
  } else if (kind == "slow_links") {
    // Named, not a structured binding: clang 14 cannot capture one.
    const std::pair<std::string, std::string> ends = two_hosts();
    const std::string from = ends.first;
    const std::string to = ends.second;
    const LinkConfig was = net.link(from, to);
    slowed_.try_emplace({from, to}, was);  // the configuration to restore
    const int64_t min_us = absl::ToInt64Microseconds(slowed_.at({from, to}).latency_min);
    const int64_t max_us = std::max(min_us, absl::ToInt64Microseconds(p.slow_latency_max));
    const int64_t us =
        min_us + static_cast<int64_t>(backend_.choose(draw_sites::kFaultLatencyUs, static_cast<uint64_t>(max_us - min_us) + 1));
    LinkConfig slow = was;
    slow.latency_min = slow.latency_max = absl::Microseconds(us);
    const absl::Duration d = lasting(p.slow_max);
    // The network logs a change of a link a connection has used; the
    // profile's slowed links are faults either way.
    const size_t logged = net.faults().size();
    net.set_link(from, to, slow);
    if (net.faults().size() == logged) {
      fault(absl::StrCat("set_link ", from, " -> ", to, ": latency ", absl::FormatDuration(absl::Microseconds(us)),
                         " for ", absl::FormatDuration(d)));
    }
    later(d, [this, from, to] {
      auto it = slowed_.find({from, to});
      if (it == slowed_.end()) return;
      network().set_link(from, to, it->second);
      slowed_.erase(it);
    });
  }
}

std::string World::heal_network() {
  for (TimerHandle& h : pending_heals_) h.cancel();
  pending_heals_.clear();
  std::vector<std::string> done;
  for (const auto& [link, config] : slowed_) {
    network().set_link(link.first, link.second, config);
    done.push_back(absl::StrCat("link ", link.first, " -> ", link.second, " restored"));
  }
  slowed_.clear();
  done.push_back(network().heal_all());
  return absl::StrJoin(done, "; ");
}

std::string World::heal_everything() {
  stop_injecting();
  std::vector<std::string> done;
  std::string net = heal_network();
  if (!net.empty()) done.push_back(std::move(net));
  for (auto& [id, s] : hosts_) {
    if (s.down) done.push_back(restart(name_of(id)));
  }
  return done.empty() ? "nothing to heal" : absl::StrJoin(done, "; ");
}

Coro<void> World::converge(std::function<bool()> condition, absl::Duration within, std::string what) {
  return converge(std::move(condition), within, std::move(what), absl::Milliseconds(10));
}

Coro<void> World::converge(std::function<bool()> condition, absl::Duration within, std::string what,
                           absl::Duration poll) {
  if (!condition) throw std::invalid_argument("converge: an empty condition");
  if (within < absl::ZeroDuration() || poll <= absl::ZeroDuration()) {
    throw std::invalid_argument("converge: need within >= 0 and poll > 0");
  }
  heal_everything();
  const int64_t start = backend_.time_ns();
  const int64_t deadline = start + absl::ToInt64Nanoseconds(within);
  while (!condition()) {
    const int64_t now = backend_.time_ns();
    if (now >= deadline) {
      throw DidNotConvergeError(absl::StrCat(
          "did not converge: '", what, "' still false ", absl::FormatDuration(within),
          " after every fault was healed (at virtual time ", absl::FormatDuration(absl::Nanoseconds(now)),
          "); live tasks:", describe_live_tasks(loop()), network().active() ? "\n" + network().describe() : "",
          describe()));
    }
    co_await sleep(std::min(poll, absl::Nanoseconds(deadline - now)));
  }
}

}  // namespace twinloop::sim
