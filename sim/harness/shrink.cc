#include "twinloop/sim/harness/shrink.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <set>
#include <memory>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {

RunSize run_size(const Recording& r) {
  constexpr uint64_t kCap = uint64_t{1} << 32;
  RunSize s;
  for (const Decision& d : r.decisions) {
    if (d.value == 0) continue;
    ++s.non_default;
    const uint64_t v = std::min(d.value, kCap);
    s.value_sum = s.value_sum > UINT64_MAX - v ? UINT64_MAX : s.value_sum + v;
  }
  s.events = r.events.size();
  s.virtual_time_ns = r.events.empty() ? 0 : r.events.back().time_ns;
  return s;
}

bool smaller(const RunSize& a, const RunSize& b) {
  return std::tie(a.non_default, a.value_sum, a.events, a.virtual_time_ns) <
         std::tie(b.non_default, b.value_sum, b.events, b.virtual_time_ns);
}

std::string describe(const RunSize& s) {
  return absl::StrCat(s.non_default, s.non_default == 1 ? " non-default choice, " : " non-default choices, ",
                      s.events, s.events == 1 ? " event" : " events", ", virtual time ",
                      absl::FormatDuration(absl::Nanoseconds(s.virtual_time_ns)));
}

namespace {

// Thrown inside the shrinker when the budget is spent; caught by shrink().
struct BudgetExhausted {};

// What a candidate means under Fallback::kDefault is its set of non-default
// decisions: two candidates with the same set are the same run. The cache
// keeps a 128-bit, order-independent hash of that set (the sum of two
// independently mixed hashes of each (task, site, occurrence, value)), so it
// stays small however long the recordings are.
using CandidateKey = std::pair<uint64_t, uint64_t>;

CandidateKey key_of(const std::vector<Decision>& decisions) {
  CandidateKey key{0, 0};
  for (const Decision& d : decisions) {
    if (d.value == 0) continue;
    const uint64_t site = fnv1a(d.site, fnv1a(d.task));
    const uint64_t h1 = mix64(mix64(mix64(site ^ 0x243F6A8885A308D3ull) ^ d.occurrence) ^ d.value);
    const uint64_t h2 = mix64(mix64(mix64(site ^ 0x13198A2E03707344ull) + d.occurrence) + d.value);
    key.first += h1;
    key.second += h2;
  }
  return key;
}

// Positions of the non-default decisions, in draw order.
std::vector<size_t> non_default_positions(const Recording& r) {
  std::vector<size_t> out;
  for (size_t i = 0; i < r.decisions.size(); ++i) {
    if (r.decisions[i].value != 0) out.push_back(i);
  }
  return out;
}

class Shrinker {
 public:
  Shrinker(const Recording& failing, const std::function<std::optional<Recording>(const Recording&)>& fails,
           const ShrinkOptions& options)
      : failing_(failing),
        fails_(fails),
        options_(options),
        start_(std::chrono::steady_clock::now()),
        current_(failing),
        current_size_(run_size(failing)) {
    cache_.insert(key_of(failing.decisions));
  }

  ShrinkResult run() {
    ShrinkResult result;
    result.before = current_size_;
    try {
      while (true) {
        const RunSize round_start = current_size_;
        zero_all();
        truncate();
        delta_debug();
        minimise_values();
        if (!smaller(current_size_, round_start)) break;  // a fixpoint
      }
    } catch (const BudgetExhausted&) {
      result.budget_exhausted = true;
    }
    result.minimal = current_;
    result.after = current_size_;
    result.runs = runs_;
    return result;
  }

 private:
  // Runs the candidate with these decisions (unless an equivalent one ran
  // already) and adopts the run's own recording if it failed and is
  // smaller than the current run. True if it was adopted: every search step
  // below either adopts (the current run strictly shrinks) or moves on, so
  // each pass ends even if `fails` does not honour the kDefault contract.
  bool try_candidate(std::vector<Decision> decisions) {
    CandidateKey key = key_of(decisions);
    if (cache_.count(key)) return false;  // ran before: nothing new to adopt
    if (runs_ >= options_.max_runs ||
        std::chrono::steady_clock::now() - start_ >= absl::ToChronoNanoseconds(options_.time_budget)) {
      throw BudgetExhausted{};
    }
    Recording candidate;
    candidate.seed = failing_.seed;
    candidate.test = failing_.test;
    candidate.command = failing_.command;
    candidate.failure = failing_.failure;
    candidate.options = failing_.options;
    candidate.decisions = std::move(decisions);
    ++runs_;
    std::optional<Recording> run = fails_(candidate);
    cache_.insert(std::move(key));
    if (!run) return false;
    const RunSize size = run_size(*run);
    if (!smaller(size, current_size_)) return false;
    if (run->test.empty()) run->test = failing_.test;
    if (run->command.empty()) run->command = failing_.command;
    if (run->failure.empty()) run->failure = failing_.failure;
    current_ = std::move(*run);
    current_size_ = size;
    return true;
  }

  // Pass 1: every decision 0.
  void zero_all() {
    if (current_size_.non_default == 0) return;
    std::vector<Decision> d = current_.decisions;
    for (Decision& x : d) x.value = 0;
    try_candidate(std::move(d));
  }

  // Pass 2: the shortest prefix of the non-default decisions that still
  // fails (binary search; the empty prefix is pass 1).
  void truncate() {
    std::vector<size_t> nd = non_default_positions(current_);
    size_t lo = 0;          // this many non-default decisions: assumed to pass
    size_t hi = nd.size();  // this many: fails (the current run)
    while (hi > lo + 1) {
      const size_t mid = lo + (hi - lo) / 2;
      std::vector<Decision> d(current_.decisions.begin(), current_.decisions.begin() + nd[mid]);
      if (try_candidate(std::move(d))) {
        nd = non_default_positions(current_);
        hi = std::min(mid, nd.size());
      } else {
        lo = mid;
      }
    }
  }

  // Pass 3: remove chunks of non-default decisions, chunk size halving.
  void delta_debug() {
    size_t k = std::max<size_t>(1, non_default_positions(current_).size() / 2);
    while (true) {
      size_t i = 0;
      while (true) {
        const std::vector<size_t> nd = non_default_positions(current_);
        if (i >= nd.size()) break;
        std::vector<Decision> d = current_.decisions;
        for (size_t j = i; j < std::min(i + k, nd.size()); ++j) d[nd[j]].value = 0;
        // On failure the chunk is gone and the next one is now at i.
        if (!try_candidate(std::move(d))) i += k;
      }
      if (k == 1) break;
      k /= 2;
    }
  }

  // Pass 4: each non-default decision to the smallest value that fails.
  void minimise_values() {
    size_t i = 0;
    while (true) {
      std::vector<size_t> nd = non_default_positions(current_);
      if (i >= nd.size()) break;
      const std::string task = current_.decisions[nd[i]].task;
      const std::string site = current_.decisions[nd[i]].site;
      const uint64_t occurrence = current_.decisions[nd[i]].occurrence;
      uint64_t hi = current_.decisions[nd[i]].value;  // fails
      if (try_with_value(task, site, occurrence, 0)) continue;  // gone; the next one is now at i
      uint64_t lo = 0;  // passes
      while (hi > lo + 1) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (!try_with_value(task, site, occurrence, mid)) {
          lo = mid;
          continue;
        }
        // Adopted: continue only while the run still has this decision at `mid`.
        const Decision* now = find(task, site, occurrence);
        if (now == nullptr || now->value != mid) break;
        hi = mid;
      }
      ++i;
    }
  }

  static bool same_draw(const Decision& x, const std::string& task, const std::string& site, uint64_t occurrence) {
    return x.occurrence == occurrence && x.site == site && x.task == task;
  }

  bool try_with_value(const std::string& task, const std::string& site, uint64_t occurrence, uint64_t value) {
    std::vector<Decision> d = current_.decisions;
    for (Decision& x : d) {
      if (same_draw(x, task, site, occurrence)) x.value = value;
    }
    return try_candidate(std::move(d));
  }

  const Decision* find(const std::string& task, const std::string& site, uint64_t occurrence) const {
    for (const Decision& x : current_.decisions) {
      if (same_draw(x, task, site, occurrence)) return &x;
    }
    return nullptr;
  }

  const Recording& failing_;
  const std::function<std::optional<Recording>(const Recording&)>& fails_;
  const ShrinkOptions& options_;
  const std::chrono::steady_clock::time_point start_;
  Recording current_;
  RunSize current_size_;
  int runs_ = 0;
  // Every candidate run (and the original).
  std::set<CandidateKey> cache_;
};

}  // namespace

ShrinkResult shrink(const Recording& failing, const std::function<std::optional<Recording>(const Recording& candidate)>& fails,
                    const ShrinkOptions& options) {
  return Shrinker(failing, fails, options).run();
}

std::optional<Recording> run_candidate(const Recording& candidate, const std::function<Coro<void>()>& make_main,
                                       const StillFails& still_fails, const Options& base) {
  Options o = options_for_replay(candidate, base);
  o.replay = std::make_shared<const Recording>(candidate);
  o.fallback = Options::Fallback::kDefault;
  o.record = true;
  o.chooser = nullptr;
  Simulation sim(o);
  std::optional<std::string> failure;
  try {
    sim.run(make_main());
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "an exception not derived from std::exception";
  }
  Recording r = sim.recording();
  if (!failure) {
    if (!still_fails || !still_fails(r)) return std::nullopt;
    failure = "still_fails";
  }
  r.test = candidate.test;
  r.command = candidate.command;
  r.failure = std::move(*failure);
  return r;
}

std::function<std::optional<Recording>(const Recording& candidate)> candidate_runner(
    std::function<Coro<void>()> make_main, StillFails still_fails, Options base) {
  return [make_main = std::move(make_main), still_fails = std::move(still_fails),
          base = std::move(base)](const Recording& candidate) {
    return run_candidate(candidate, make_main, still_fails, base);
  };
}

}  // namespace twinloop::sim
