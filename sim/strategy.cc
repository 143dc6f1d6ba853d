#include "twinloop/sim/strategy.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twinloop/api/internal/check.h"

namespace twinloop::sim {

namespace {
constexpr std::string_view kNames[] = {"uniform", "pct", "pctcp", "urw", "portfolio"};

// The simulated loop runs on one thread; these are per thread so that two
// loops on two threads (the real tests' executor, a tool) never mix.
// The open ChainScope's chain, as given (hashed only when a draw asks for
// its source: uniform runs never do, and network draws open one per segment).
struct OpenChain {
  std::string_view kind;  // empty: none
  uint64_t id = 0;
};
thread_local OpenChain t_chain;
thread_local Pilot* t_pilot = nullptr;      // the open PilotScope's pilot
// The draw draw_source last answered: its source and its task (pct's source).
thread_local uint64_t t_last_source = 0;
thread_local uint64_t t_last_task = 0;
thread_local bool t_last_valid = false;
}  // namespace

PilotScope::PilotScope(Pilot* pilot) : previous_(t_pilot) { t_pilot = pilot; }
PilotScope::~PilotScope() { t_pilot = previous_; }

ChainScope::ChainScope(std::string_view kind, uint64_t chain)
    : previous_kind_(t_chain.kind), previous_id_(t_chain.id) {
  t_chain = OpenChain{kind, chain};
}
ChainScope::~ChainScope() { t_chain = OpenChain{previous_kind_, previous_id_}; }

std::string_view strategy_name(StrategyKind kind) { return kNames[static_cast<size_t>(kind)]; }

std::optional<StrategyKind> parse_strategy(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (kNames[i] == name) return static_cast<StrategyKind>(i);
  }
  return std::nullopt;
}

StrategyKind portfolio_strategy(uint64_t seed, bool chains_named) {
  const auto kind = static_cast<StrategyKind>(seed % 4);
  return kind == StrategyKind::kPct && chains_named ? StrategyKind::kPctcp : kind;
}

StrategyOptions strategy_options(StrategyKind kind, const Pilot& pilot, uint32_t depth) {
  StrategyOptions s;
  s.kind = kind;
  if (kind == StrategyKind::kUniform) return s;
  s.depth = depth;
  s.draws = pilot.draws;
  // pct's sources are tasks; pctcp's and urw's are chains where draws name
  // them (else tasks: then both maps are the same).
  const bool tasks = kind == StrategyKind::kPct && !pilot.task_draws.empty();
  s.source_draws = tasks ? pilot.task_draws : pilot.source_draws;
  s.sources = s.source_draws.size();
  s.chains_named = kind != StrategyKind::kPct && pilot.chains_named;
  return s;
}

uint64_t draw_source(std::string_view site, uint64_t task_key, bool* named) {
  const size_t at = site.rfind('@');
  uint64_t source = task_key;
  bool chain = false;
  if (at != std::string_view::npos && at + 1 != site.size()) {
    // A chain's source is its name, whichever task draws for it.
    source = mix64(text_hash(site.substr(at + 1)) ^ 0x636861696eull);
    chain = true;
  } else if (!t_chain.kind.empty()) {
    source = mix64(text_hash(t_chain.kind) ^ mix64(t_chain.id + 0x636861696eull)) | 1;  // never 0 (none)
    chain = true;
  }
  if (named) *named = chain;
  // The backend's pilot run calls this once per draw with `named` (and a
  // non-uniform run once per draw without).
  if (named && t_pilot) ++t_pilot->task_draws[task_key];
  t_last_source = source;
  t_last_task = task_key;
  t_last_valid = true;
  return source;
}

std::string describe_strategy(const StrategyOptions& s) {
  switch (s.kind) {
    case StrategyKind::kUniform:
    case StrategyKind::kPortfolio:
      return std::string(strategy_name(s.kind));
    case StrategyKind::kPct:
    case StrategyKind::kPctcp: {
      const bool chains = s.kind == StrategyKind::kPctcp && s.chains_named;
      const double n = static_cast<double>(std::max<uint64_t>(s.sources, 1));
      const double k = static_cast<double>(std::max<uint64_t>(s.draws, 1));
      // PCT: 1/(n k^(d-1)); PCTCP: 1/(w^2 k^(d-1)) with w chains; a third
      // of it: the classic one-fast-source shape (h = 1) is a third of the
      // runs.
      const double p = 1.0 / (3 * (chains ? n * n : n) * std::pow(k, s.depth - 1.0));
      std::string out = absl::StrCat(std::string(strategy_name(s.kind)), " d=", s.depth, " k=", s.draws, chains ? " chains=" : " sources=",
                                     s.sources, absl::StrFormat(": a bug of depth %d is found with probability >= ", s.depth),
                                     chains ? absl::StrCat("1/(3*", s.sources, "^2*", s.draws, "^", s.depth - 1, ")")
                                            : absl::StrCat("1/(3*", s.sources, "*", s.draws, "^", s.depth - 1, ")"),
                                     absl::StrFormat(" = %.2g per run", p));
      if (s.kind == StrategyKind::kPctcp && !chains) {
        absl::StrAppend(&out, " (pctcp: no draw site names a host or connection, so it ran as pct over tasks)");
      }
      return out;
    }
    case StrategyKind::kUrw:
      return absl::StrCat("urw k=", s.draws, " sources=", s.sources,
                          ": a source's draw answers the default with probability (its remaining draws)/(all "
                          "remaining draws), counts from the pilot run");
  }
  return "?";
}

Strategy::Strategy(const StrategyOptions& options, uint64_t seed)
    : options_(options), salt_(mix64(seed ^ 0x7374726174656779ull)) {
  TWINLOOP_CHECK(options.kind != StrategyKind::kPortfolio, "the portfolio is resolved per seed before a run");
  if (options_.kind == StrategyKind::kPct || options_.kind == StrategyKind::kPctcp) {
    if (options_.draws > 0) {
      const ChoiceSource points(salt_);
      for (uint32_t i = 1; i < options_.depth; ++i) change_points_.push_back(points.value(i, options_.draws));
      std::sort(change_points_.begin(), change_points_.end());
    }
    // How many of the highest-priority sources run fast, a third of the runs
    // each: 1 (PCT's shape); all but one (the one connection or task that
    // must be slow for a message to be overtaken: the stale read of
    // docs/exploration.md went from a median of 20 seeds to 8 under pctcp);
    // 2 .. sources - 1.
    const uint64_t n = options_.sources;
    const ChoiceSource h(salt_ ^ 0x66617374ull);
    upper_ = h.value(2, 2) == 1;
    const uint64_t shape = h.value(0, 3);
    if (n >= 3 && shape == 1) fast_ = 2 + h.value(1, n - 2);
    if (n >= 3 && shape == 2) fast_ = n - 1;
    // Every source the pilot run met has its priority from the start (as
    // PCT's threads do), so a low-priority source is held back even before
    // the highest one first draws.
    for (const auto& [source, count] : options_.source_draws) priorities_.try_emplace(source, initial_priority(source));
    update_threshold();
  }
  if (options_.kind == StrategyKind::kUrw) {
    upper_ = ChoiceSource(salt_ ^ 0x66617374ull).value(2, 2) == 1;
    for (const auto& [source, count] : options_.source_draws) remaining_total_ += count;
  }
}

uint64_t Strategy::initial_priority(uint64_t source) const {
  // Above every change point's priority (< depth).
  return (mix64(salt_ ^ source) >> 2) | (uint64_t{1} << 62);
}

void Strategy::update_threshold() {
  std::vector<uint64_t> p;
  p.reserve(priorities_.size());
  for (const auto& [s, q] : priorities_) p.push_back(q);
  std::sort(p.begin(), p.end(), std::greater<>());
  threshold_ = p.empty() ? 0 : p[std::min<size_t>(fast_, p.size()) - 1];
}

uint64_t Strategy::priority(uint64_t source) {
  auto [it, inserted] = priorities_.try_emplace(source, 0);
  if (inserted) {
    it->second = initial_priority(source);
    update_threshold();
  }
  return it->second;
}

uint64_t Strategy::non_default(const ChoiceSource& choices, uint64_t key, uint64_t n) const {
  const uint64_t low = upper_ ? std::max<uint64_t>(1, n / 2) : 1;
  return low + choices.value(mix64(key ^ salt_), n - low);
}

uint64_t Strategy::value(const ChoiceSource& choices, uint64_t key, uint64_t source, uint64_t n, uint64_t draw_index) {
  switch (options_.kind) {
    case StrategyKind::kUniform:
    case StrategyKind::kPortfolio:
      return choices.value(key, n);
    case StrategyKind::kPct:
    case StrategyKind::kPctcp: {
      // pct's source is the drawing task even when the draw names a chain.
      if (options_.kind == StrategyKind::kPct && t_last_valid && t_last_source == source) source = t_last_task;
      uint64_t p = priority(source);
      // A change point: the drawing source drops below every other priority
      // (the i-th to d - i, so a later one goes lower, as in PCT).
      bool changed = false;
      while (next_change_ < change_points_.size() && change_points_[next_change_] <= draw_index) {
        ++next_change_;
        p = priorities_[source] = options_.depth - next_change_;
        changed = true;
      }
      if (changed) update_threshold();
      return p >= threshold_ ? 0 : non_default(choices, key, n);
    }
    case StrategyKind::kUrw: {
      uint64_t& made = made_[source];
      auto it = options_.source_draws.find(source);
      const uint64_t pilot = it == options_.source_draws.end() ? 0 : it->second;
      const uint64_t r = pilot > made ? pilot - made : 1;
      const uint64_t total = std::max(remaining_total_, r);
      if (pilot > made) --remaining_total_;
      ++made;
      const bool keep = choices.value(mix64(key + salt_), total) < r;
      return keep ? 0 : non_default(choices, key, n);
    }
  }
  return 0;
}

}  // namespace twinloop::sim
