#include "twinloop/sim/recording.h"

#include <algorithm>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "twinloop/sim/choice.h"

namespace twinloop::sim {
namespace {

// Debian's Abseil has its own string_view type.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string percent_escape(std::string_view s, bool slash) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '%' || c <= ' ' || c == 0x7f || (slash && c == '/')) {
      absl::StrAppendFormat(&out, "%%%02X", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

bool percent_unescape(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex_digit(s[i + 1]);
    const int lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

const char* event_kind_name(internal::EventKind kind) {
  switch (kind) {
    case internal::EventKind::kTaskStep:
      return "task_step";
    case internal::EventKind::kCallback:
      return "callback";
    case internal::EventKind::kTimerDue:
      return "timer_due";
    case internal::EventKind::kSignal:
      return "signal";
    case internal::EventKind::kNetSend:
      return "net_send";
    case internal::EventKind::kNetDeliver:
      return "net_deliver";
    case internal::EventKind::kFault:
      return "fault";
  }
  return "unknown";
}

std::string describe_event(const EventRecord& e) {
  return absl::StrCat("t=", absl::FormatDuration(absl::Nanoseconds(e.time_ns)), " ", event_kind_name(e.kind), " #",
                      e.id);
}

size_t non_default_choices(const std::vector<Decision>& decisions) {
  size_t n = 0;
  for (const Decision& d : decisions) n += d.value != 0;
  return n;
}

std::string quote_bytes(std::string_view s, size_t max_bytes) {
  std::string out = "'";
  const size_t shown = std::min(s.size(), max_bytes);
  for (size_t i = 0; i < shown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '\'') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('\'');
  if (shown < s.size()) absl::StrAppend(&out, "... (", s.size() - shown, " more bytes)");
  return out;
}

uint64_t task_key_of_path(std::string_view path) {
  if (path.empty() || path == "/") return 0;
  if (path[0] != '/') throw std::invalid_argument(absl::StrCat("task path ", quote_bytes(path), " does not start with '/'"));
  uint64_t key = 0;
  std::string base;
  for (absl::string_view part : absl::StrSplit(av(path.substr(1)), '/')) {
    const size_t hash = part.rfind('#');
    uint64_t index = 0;
    if (hash == absl::string_view::npos || hash + 1 == part.size() ||
        part.find_first_not_of("0123456789", hash + 1) != absl::string_view::npos ||
        !absl::SimpleAtoi(part.substr(hash + 1), &index) || !percent_unescape(sv(part.substr(0, hash)), &base)) {
      throw std::invalid_argument(
          absl::StrCat("task path ", quote_bytes(path), ": component ",
                       quote_bytes(std::string_view(part.data(), part.size())), " is not <name>#<index>"));
    }
    key = child_key(key, text_hash(base), index);
  }
  return key;
}

DecisionMap::DecisionMap(const std::vector<Decision>& decisions) {
  for (const Decision& d : decisions) values_[draw_key(task_key_of_path(d.task), d.site, d.occurrence)] = d.value;
}

std::optional<uint64_t> DecisionMap::find(uint64_t draw_key) const {
  auto it = values_.find(draw_key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::optional<Divergence> first_divergence(const std::vector<EventRecord>& expected,
                                           const std::vector<EventRecord>& actual) {
  const size_t n = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (!(expected[i] == actual[i])) return Divergence{i, expected[i], actual[i]};
  }
  if (expected.size() == actual.size()) return std::nullopt;
  Divergence d{n, std::nullopt, std::nullopt};
  if (n < expected.size()) d.expected = expected[n];
  if (n < actual.size()) d.actual = actual[n];
  return d;
}

std::string describe_divergence(const Divergence& d) {
  if (d.expected && d.actual && d.expected->time_ns == d.actual->time_ns && d.expected->kind == d.actual->kind &&
      d.expected->id == d.actual->id) {
    return absl::StrFormat(
        "the run diverged from the recording at event %d: both have %s there, but the running event hash differs "
        "(expected %016x, got %016x); the hash covers every event's virtual time, kind and id since the start of "
        "the run, so the runs differ earlier in a way the event list does not show, or the file was edited",
        d.index, describe_event(*d.expected), d.expected->hash, d.actual->hash);
  }
  return absl::StrCat("the run diverged from the recording at event ", d.index, ": expected ",
                      d.expected ? describe_event(*d.expected) : std::string("the end of the run"), ", got ",
                      d.actual ? describe_event(*d.actual) : std::string("the end of the run"));
}

namespace {

// "  [task /a#0]  draws: site = v of n, ..." for event i of `r` (what it
// knows of it).
std::string event_context(const Recording& r, size_t i) {
  std::string out;
  if (i < r.event_tasks.size()) {
    absl::StrAppend(&out, "  [", r.event_tasks[i].empty() ? std::string("the loop") : "task " + r.event_tasks[i], "]");
  }
  if (i < r.event_decisions.size()) {
    const uint64_t from = i == 0 ? 0 : r.event_decisions[i - 1];
    const uint64_t to = std::min<uint64_t>(r.event_decisions[i], r.decisions.size());
    std::string draws;
    for (uint64_t k = from; k < to; ++k) {
      const Decision& d = r.decisions[k];
      absl::StrAppend(&draws, draws.empty() ? "" : ", ", d.site, " = ", d.value, " of ", d.n,
                      d.task.empty() ? std::string() : " in " + d.task);
    }
    if (!draws.empty()) absl::StrAppend(&out, "  draws before it: ", draws);
  }
  return out;
}

std::string event_line(const Recording& r, size_t i) {
  if (i >= r.events.size()) return absl::StrCat("#", i, " (the run had ended)");
  return absl::StrCat("#", i, " ", describe_event(r.events[i]), event_context(r, i));
}

}  // namespace

std::string describe_nondeterminism(uint64_t seed, const Recording& previous, const Recording& current,
                                    const Divergence& d, size_t recent) {
  std::string s = absl::StrCat("two runs of seed ", seed, " differ at event ", d.index, " (of ",
                               previous.events.size(), " and ", current.events.size(), "):\n");
  absl::StrAppend(&s, "  previous run:  ", event_line(previous, d.index), "\n");
  absl::StrAppend(&s, "  current run:   ", event_line(current, d.index), "\n");
  if (d.expected && d.actual && d.expected->time_ns == d.actual->time_ns && d.expected->kind == d.actual->kind &&
      d.expected->id == d.actual->id) {
    absl::StrAppendFormat(&s,
                          "  (the same event, but the running event hash differs: %016x against %016x; the runs "
                          "differ earlier in a way the events do not show)\n",
                          d.expected->hash, d.actual->hash);
  }
  const size_t first = d.index > recent ? d.index - recent : 0;
  if (first < d.index) {
    absl::StrAppend(&s, "recent events (the same in both runs):\n");
    for (size_t i = first; i < d.index; ++i) absl::StrAppend(&s, "  ", event_line(current, i), "\n");
  } else {
    absl::StrAppend(&s, "(no event before it: the runs differ from the start)\n");
  }
  return s;
}

}  // namespace twinloop::sim
