#include "twinloop/sim/harness/explore.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "twinloop/sim/choice.h"

namespace twinloop::sim {
namespace {

uint64_t fnv_word(uint64_t h, uint64_t w) {
  for (int i = 0; i < 8; ++i) h = (h ^ ((w >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  return h;
}

// Whether `run` began with `prefix` (same draws, same values).
bool starts_with(const std::vector<Decision>& run, const std::vector<Decision>& prefix) {
  if (run.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    const Decision& a = run[i];
    const Decision& b = prefix[i];
    if (a.task != b.task || a.site != b.site || a.occurrence != b.occurrence || a.value != b.value) return false;
  }
  return true;
}

uint64_t hash_decisions(const std::vector<Decision>& d) {
  uint64_t h = kFnvBasis;
  for (const Decision& x : d) {
    h = fnv1a(x.task, h);
    h = fnv1a(x.site, fnv_word(h, 0x5e));
    h = fnv_word(fnv_word(h, x.occurrence), x.value);
  }
  return h;
}

}  // namespace

uint64_t branch_seed(uint64_t root, uint64_t prefix, uint64_t child) {
  return mix64(fnv_word(fnv_word(fnv_word(kFnvBasis, root), prefix), child));
}

int value_bucket(uint64_t value) {
  int b = 0;
  while (value != 0) {
    ++b;
    value >>= 1;
  }
  return b;
}

BranchResult explore_branches(const BranchOptions& options, const ExploreRunner& run) {
  if (options.energy == 0) throw std::invalid_argument("branching: energy must be at least 1");
  struct Prefix {
    std::vector<Decision> decisions;
    uint64_t energy = 0;
    uint64_t used = 0;
  };
  BranchResult result;
  std::vector<Prefix> prefixes;
  std::map<uint64_t, size_t> by_hash;  // prefix hash -> id
  std::set<std::string> seen;
  // Probes that held: in how many runs by the runs' own draws, and the
  // first prefix that may have been kept for them.
  struct Rare {
    uint64_t found = 0;
    size_t first_prefix = 0;
  };
  std::map<std::string, Rare> rare;
  constexpr uint64_t kRareRuns = 100;
  const uint64_t low_energy = std::max<uint64_t>(1, options.energy / 50);
  uint64_t digest = kFnvBasis;
  for (uint64_t i = 0; i < options.runs; ++i) {
    // The newest prefix with energy left (depth first: build on the latest
    // discovery), else a fresh seed.
    int64_t pick = -1;
    for (size_t j = prefixes.size(); j-- > 0;) {
      if (prefixes[j].used < prefixes[j].energy) {
        pick = static_cast<int64_t>(j);
        break;
      }
    }
    BranchStep step;
    static const std::vector<Decision> kNone;
    const std::vector<Decision>* forced = &kNone;
    if (pick < 0) {
      step.seed = options.first_seed + result.fresh_runs++;
    } else {
      Prefix& p = prefixes[static_cast<size_t>(pick)];
      step.seed = branch_seed(options.first_seed, static_cast<uint64_t>(pick), p.used++);
      step.prefix = pick;
      step.prefix_decisions = p.decisions.size();
      forced = &p.decisions;
    }
    // Its length, kept: `forced` points into `prefixes`, which the prefixes
    // kept below may reallocate.
    const size_t forced_size = forced->size();
    result.runs.push_back(step);
    digest = fnv_word(fnv_word(fnv_word(digest, step.seed), static_cast<uint64_t>(step.prefix)), step.prefix_decisions);
    const ExploreRun r = run(step.seed, *forced, false);
    if (!starts_with(r.decisions, *forced)) ++result.diverged;
    if (r.failed) {
      result.failed = true;
      result.failed_run = i;
      result.failing_seed = step.seed;
      result.failing_decisions = r.decisions;
      break;
    }
    // What is new, and where it happened (in decisions drawn).
    std::vector<std::pair<size_t, uint64_t>> keep;  // (length, energy)
    for (const auto& [name, at] : r.hits) {
      const bool held = name.size() >= 7 && name.compare(name.size() - 7, 7, " = true") == 0;
      const std::string feature = absl::StrCat("probe ", name);
      if (seen.insert(feature).second) {
        keep.emplace_back(at, held ? options.energy : low_energy);
        if (held) rare[feature] = Rare{1, prefixes.size()};
        continue;
      }
      // A probe that held is kept again when this run made it hold by its
      // own draws (not inherited from its prefix), it held so in fewer
      // than 1 in kRareRuns runs, and every prefix kept for it has run dry:
      // a rare state is built on whenever it is found again.
      auto it = rare.find(feature);
      if (it == rare.end() || at <= forced_size) continue;
      ++it->second.found;
      if (it->second.found * kRareRuns > i + 1) continue;
      bool dry = true;
      for (size_t j = it->second.first_prefix; j < prefixes.size() && dry; ++j) {
        dry = prefixes[j].used >= prefixes[j].energy;
      }
      if (dry) {
        keep.emplace_back(at, options.energy);
        it->second.first_prefix = prefixes.size();
      }
    }
    for (size_t d = 0; d < r.decisions.size(); ++d) {
      const Decision& x = r.decisions[d];
      if (x.value == 0) continue;
      if (!seen.insert(absl::StrCat("draw ", x.site, " ", value_bucket(x.value))).second) continue;
      keep.emplace_back(d + 1, low_energy);  // the new value included
    }
    for (auto [length, energy] : keep) {
      length = std::max(length, forced_size);
      // Nothing left to draw after it: its children would all be this run.
      if (length >= r.decisions.size()) continue;
      std::vector<Decision> prefix(r.decisions.begin(), r.decisions.begin() + static_cast<std::ptrdiff_t>(length));
      const uint64_t h = hash_decisions(prefix);
      auto it = by_hash.find(h);
      if (it != by_hash.end()) {
        Prefix& p = prefixes[it->second];
        p.energy = std::max(p.energy, energy);
        continue;
      }
      by_hash.emplace(h, prefixes.size());
      prefixes.push_back(Prefix{std::move(prefix), energy, 0});
    }
    if (options.progress) options.progress(i + 1, prefixes.size());
  }
  result.prefixes = prefixes.size();
  result.features = seen.size();
  result.digest = digest;
  return result;
}

namespace {

class Exhaustive {
 public:
  Exhaustive(const ExhaustiveOptions& o, const ExploreRunner& run) : o_(o), run_(run) {}

  ExhaustiveResult go() {
    if (o_.bound < 0) throw std::invalid_argument("exhaustive: the bound must be at least 0");
    if (o_.values_per_draw == 0) throw std::invalid_argument("exhaustive: values per draw must be at least 1");
    if (o_.shard.count < 1 || o_.shard.index < 0 || o_.shard.index >= o_.shard.count) {
      throw std::invalid_argument("exhaustive: invalid shard");
    }
    const bool counts = o_.shard.index == 0;
    const ExploreRun root = execute({}, counts);
    if (root.failed) {
      if (!counts) result_.root_failed_elsewhere = true;
      return finish();
    }
    if (done() || o_.bound == 0) return finish();
    // First-level branches, dealt round robin over the shards.
    uint64_t branch = 0;
    for (size_t i = 0; i < root.decisions.size() && !done(); ++i) {
      for (uint64_t v : values(root.decisions[i])) {
        if (done()) break;
        if (branch++ % static_cast<uint64_t>(o_.shard.count) != static_cast<uint64_t>(o_.shard.index)) continue;
        visit(with(root.decisions, i, v), 1);
      }
    }
    return finish();
  }

 private:
  bool done() const { return result_.failed || result_.stopped; }

  ExhaustiveResult finish() {
    result_.capped.assign(capped_.begin(), capped_.end());
    result_.digest = digest_;
    return std::move(result_);
  }

  // `run`'s first i decisions, then decision i answering v.
  static std::vector<Decision> with(const std::vector<Decision>& run, size_t i, uint64_t v) {
    std::vector<Decision> f(run.begin(), run.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    f.back().value = v;
    return f;
  }

  // The non-default values tried at a draw.
  std::vector<uint64_t> values(const Decision& d) {
    std::vector<uint64_t> out;
    if (d.n <= 1) return out;
    const uint64_t m = d.n - 1;  // answers 1..m
    if (m <= o_.values_per_draw) {
      for (uint64_t v = 1; v <= m; ++v) out.push_back(v);
      return out;
    }
    capped_.insert(absl::StrCat(d.site, " (n=", d.n, ")"));
    const uint64_t k = o_.values_per_draw;
    for (uint64_t j = 0; j < k; ++j) {
      const uint64_t v = k == 1 ? 1 : 1 + static_cast<uint64_t>((static_cast<unsigned __int128>(m - 1) * j) / (k - 1));
      if (out.empty() || out.back() != v) out.push_back(v);
    }
    return out;
  }

  ExploreRun execute(const std::vector<Decision>& forced, bool counts) {
    ExploreRun r = run_(o_.seed, forced, true);
    if (!starts_with(r.decisions, forced)) ++result_.diverged;
    if (!counts) return r;
    ++result_.runs;
    digest_ = fnv_word(digest_, hash_decisions(forced));
    if (r.failed) {
      result_.failed = true;
      result_.failing_decisions = r.decisions;
    } else if (o_.max_runs != 0 && result_.runs >= o_.max_runs) {
      result_.stopped = true;
    }
    if (o_.progress) o_.progress(result_.runs);
    return r;
  }

  void visit(const std::vector<Decision>& forced, int k) {
    const ExploreRun r = execute(forced, true);
    if (done() || k >= o_.bound) return;
    for (size_t i = forced.size(); i < r.decisions.size() && !done(); ++i) {
      for (uint64_t v : values(r.decisions[i])) {
        if (done()) break;
        visit(with(r.decisions, i, v), k + 1);
      }
    }
  }

  const ExhaustiveOptions& o_;
  const ExploreRunner& run_;
  ExhaustiveResult result_;
  std::set<std::string> capped_;
  uint64_t digest_ = kFnvBasis;
};

}  // namespace

ExhaustiveResult explore_exhaustive(const ExhaustiveOptions& options, const ExploreRunner& run) {
  return Exhaustive(options, run).go();
}

std::string ExhaustiveResult::verdict(int bound, uint64_t values_per_draw) const {
  const std::string runs_text = absl::StrCat(runs, runs == 1 ? " run" : " runs");
  if (failed) return absl::StrCat("failure within bound ", bound, " after ", runs_text);
  if (root_failed_elsewhere) return "the all-default run fails (shard 0 reports it)";
  std::string s;
  if (stopped) {
    s = absl::StrCat("stopped: ", runs_text, ", no failure, the run limit was reached before the bound ", bound,
                     " was exhausted");
  } else if (!capped.empty()) {
    s = absl::StrCat("capped: ", runs_text, ", no failure within bound ", bound, ", but only ", values_per_draw,
                     " of the non-default values of each of these draws were tried: ", absl::StrJoin(capped, ", "));
  } else {
    s = absl::StrCat("exhausted: ", runs_text, ", no failure within bound ", bound);
  }
  if (diverged) absl::StrAppend(&s, "; WARNING: ", diverged, " runs did not repeat their forced decisions (nondeterminism)");
  return s;
}

}  // namespace twinloop::sim
