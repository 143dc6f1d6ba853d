#include "twinloop/sim/strategy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "twinloop/api/internal/check.h"

namespace twinloop::sim {

namespace {
constexpr std::string_view kNames[] = {"uniform", "pct", "pctcp", "urw", "portfolio"};
}  // namespace

std::string_view strategy_name(StrategyKind kind) { return kNames[static_cast<size_t>(kind)]; }

std::optional<StrategyKind> parse_strategy(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (kNames[i] == name) return static_cast<StrategyKind>(i);
  }
  return std::nullopt;
}

StrategyKind portfolio_strategy(uint64_t seed) { return static_cast<StrategyKind>(seed % 4); }

StrategyOptions strategy_options(StrategyKind kind, const Pilot& pilot, uint32_t depth) {
  StrategyOptions s;
  s.kind = kind;
  if (kind == StrategyKind::kUniform) return s;
  s.depth = depth;
  s.draws = pilot.draws;
  s.sources = pilot.source_draws.size();
  s.chains_named = pilot.chains_named;
  s.source_draws = pilot.source_draws;
  return s;
}

uint64_t draw_source(std::string_view site, uint64_t task_key, bool* named) {
  const size_t at = site.rfind('@');
  if (at == std::string_view::npos || at + 1 == site.size()) {
    if (named) *named = false;
    return task_key;
  }
  if (named) *named = true;
  // A chain's source is its name, whichever task draws for it.
  return mix64(text_hash(site.substr(at + 1)) ^ 0x636861696eull);
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
      // PCT: 1/(n k^(d-1)); PCTCP: 1/(w^2 k^(d-1)) with w chains.
      const double p = 1.0 / ((chains ? n * n : n) * std::pow(k, s.depth - 1.0));
      std::string out = absl::StrCat(std::string(strategy_name(s.kind)), " d=", s.depth, " k=", s.draws, chains ? " chains=" : " sources=",
                                     s.sources, absl::StrFormat(": a bug of depth %d is found with probability >= ", s.depth),
                                     chains ? absl::StrCat("1/(", s.sources, "^2*", s.draws, "^", s.depth - 1, ")")
                                            : absl::StrCat("1/(", s.sources, "*", s.draws, "^", s.depth - 1, ")"),
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
    // Every source the pilot run met has its priority from the start (as
    // PCT's threads do), so a low-priority source is held back even before
    // the highest one first draws.
    for (const auto& [source, count] : options_.source_draws) priority(source);
  }
  if (options_.kind == StrategyKind::kUrw) {
    for (const auto& [source, count] : options_.source_draws) remaining_total_ += count;
  }
}

uint64_t Strategy::priority(uint64_t source) {
  auto [it, inserted] = priorities_.try_emplace(source, 0);
  if (inserted) {
    // Above every change point's priority (< depth).
    it->second = (mix64(salt_ ^ source) >> 2) | (uint64_t{1} << 62);
    highest_ = std::max(highest_, it->second);
  }
  return it->second;
}

uint64_t Strategy::non_default(const ChoiceSource& choices, uint64_t key, uint64_t n) const {
  return 1 + choices.value(mix64(key ^ salt_), n - 1);
}

uint64_t Strategy::value(const ChoiceSource& choices, uint64_t key, uint64_t source, uint64_t n, uint64_t draw_index) {
  switch (options_.kind) {
    case StrategyKind::kUniform:
    case StrategyKind::kPortfolio:
      return choices.value(key, n);
    case StrategyKind::kPct:
    case StrategyKind::kPctcp: {
      uint64_t p = priority(source);
      // A change point: the drawing source drops below every other priority
      // (the i-th to d - i, so a later one goes lower, as in PCT).
      while (next_change_ < change_points_.size() && change_points_[next_change_] <= draw_index) {
        ++next_change_;
        const bool was_highest = p == highest_;
        p = priorities_[source] = options_.depth - next_change_;
        if (was_highest) {
          highest_ = 0;
          for (const auto& [s, q] : priorities_) highest_ = std::max(highest_, q);
        }
      }
      return p == highest_ ? 0 : non_default(choices, key, n);
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
