#include "sim/replay.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "sim/choice.h"

namespace twinloop::sim {
namespace {

// Site names and metadata are written with '%', whitespace and control
// characters percent-escaped, so every record stays one line of tokens.
std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '%' || c <= ' ' || c == 0x7f) {
      absl::StrAppendFormat(&out, "%%%02X", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool unescape(absl::string_view s, std::string* out) {
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

bool kind_from_name(absl::string_view name, internal::EventKind* kind) {
  for (internal::EventKind k : {internal::EventKind::kTaskStep, internal::EventKind::kCallback,
                                internal::EventKind::kTimerDue, internal::EventKind::kSignal}) {
    if (name == event_kind_name(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

// Debian's Abseil has its own string_view type.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

[[noreturn]] void bad_line(size_t line, const std::string& why) {
  throw std::invalid_argument(absl::StrCat("replay file line ", line, ": ", why));
}

}  // namespace

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

std::string format_recording(const Recording& r) {
  std::string out = absl::StrCat("twinloop-replay ", Recording::kVersion, "\n");
  absl::StrAppend(&out, "# A simulated run: its decisions (site occurrence n value) and its events\n",
                  "# (index time_ns kind id hash-after). Replay: --twinloop_replay=<this file>.\n");
  absl::StrAppend(&out, "seed ", r.seed, "\n");
  if (!r.test.empty()) absl::StrAppend(&out, "test ", escape(r.test), "\n");
  if (!r.command.empty()) absl::StrAppend(&out, "command ", escape(r.command), "\n");
  if (!r.failure.empty()) absl::StrAppend(&out, "failure ", escape(r.failure), "\n");
  for (const auto& [name, value] : r.options) absl::StrAppend(&out, "option ", escape(name), " ", value, "\n");
  absl::StrAppend(&out, "# ", r.decisions.size(), " decisions, ", non_default_choices(r.decisions),
                  " not default\n");
  for (const Decision& d : r.decisions) {
    absl::StrAppend(&out, "decision ", d.task.empty() ? "/" : d.task, " ", escape(d.site), " ", d.occurrence, " ",
                    d.n, " ", d.value, "\n");
  }
  absl::StrAppend(&out, "# ", r.events.size(), " events\n");
  for (size_t i = 0; i < r.events.size(); ++i) {
    const EventRecord& e = r.events[i];
    absl::StrAppendFormat(&out, "event %d %d %s %d %016x\n", i, e.time_ns, event_kind_name(e.kind), e.id, e.hash);
  }
  absl::StrAppend(&out, "end\n");
  return out;
}

Recording parse_recording(std::string_view text) {
  Recording r;
  size_t line_no = 0;
  bool header = false;
  bool ended = false;
  for (absl::string_view line : absl::StrSplit(av(text), '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    if (ended) bad_line(line_no, "text after 'end'");
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (!header) {
      int version = 0;
      if (f.size() != 2 || f[0] != "twinloop-replay" || !absl::SimpleAtoi(f[1], &version)) {
        bad_line(line_no, "not a twinloop replay file (expected 'twinloop-replay <version>')");
      }
      if (version == 1) {
        bad_line(line_no, absl::StrCat("replay file version 1 was written by an older twinloop, which keyed "
                                       "decisions by site only; this build reads version ",
                                       Recording::kVersion, ": record the run again"));
      }
      if (version != Recording::kVersion) {
        bad_line(line_no, absl::StrCat("replay file version ", version, " is not supported (this build reads ",
                                       Recording::kVersion, ")"));
      }
      header = true;
      continue;
    }
    const absl::string_view key = f[0];
    std::string s;
    if (key == "seed") {
      if (f.size() != 2 || !absl::SimpleAtoi(f[1], &r.seed)) bad_line(line_no, "expected 'seed <uint64>'");
    } else if (key == "test" || key == "command" || key == "failure") {
      if (f.size() != 2 || !unescape(f[1], &s)) bad_line(line_no, absl::StrCat("expected '", key, " <text>'"));
      (key == "test" ? r.test : key == "command" ? r.command : r.failure) = s;
    } else if (key == "option") {
      int64_t v = 0;
      if (f.size() != 3 || !unescape(f[1], &s) || !absl::SimpleAtoi(f[2], &v)) {
        bad_line(line_no, "expected 'option <name> <int64>'");
      }
      r.options[s] = v;
    } else if (key == "decision") {
      Decision d;
      if (f.size() != 6 || !unescape(f[2], &d.site) || !absl::SimpleAtoi(f[3], &d.occurrence) ||
          !absl::SimpleAtoi(f[4], &d.n) || !absl::SimpleAtoi(f[5], &d.value)) {
        bad_line(line_no, "expected 'decision <task> <site> <occurrence> <n> <value>'");
      }
      d.task = f[1] == "/" ? std::string() : std::string(f[1]);
      try {
        task_key_of_path(d.task);
      } catch (const std::invalid_argument& e) {
        bad_line(line_no, e.what());
      }
      if (d.n == 0 || d.value >= d.n) bad_line(line_no, "a decision's value must be in [0, n)");
      r.decisions.push_back(std::move(d));
    } else if (key == "event") {
      EventRecord e;
      size_t index = 0;
      if (f.size() != 6 || !absl::SimpleAtoi(f[1], &index) || !absl::SimpleAtoi(f[2], &e.time_ns) ||
          !kind_from_name(f[3], &e.kind) || !absl::SimpleAtoi(f[4], &e.id) || !absl::SimpleHexAtoi(f[5], &e.hash)) {
        bad_line(line_no, "expected 'event <index> <time_ns> <kind> <id> <hash>'");
      }
      if (index != r.events.size()) bad_line(line_no, "events must be numbered 0, 1, 2, ...");
      r.events.push_back(e);
    } else if (key == "end") {
      ended = true;
    } else {
      bad_line(line_no, absl::StrCat("unknown record '", key, "'"));
    }
  }
  if (!header) throw std::invalid_argument("replay file is empty");
  if (!ended) throw std::invalid_argument("replay file is truncated (no 'end' line)");
  return r;
}

void write_recording_file(const std::string& path, const Recording& r) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << format_recording(r);
  out.close();
  if (!out) throw std::runtime_error(absl::StrCat("cannot write replay file ", path));
}

Recording read_recording_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(absl::StrCat("cannot read replay file ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_recording(buf.str());
}

std::string default_replay_dir() {
  if (const char* d = std::getenv("TWINLOOP_REPLAY_DIR")) return d;
  if (const char* d = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) return d;
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
  return ec ? std::string("/tmp") : tmp.string();
}

std::string replay_file_path(const std::string& dir, std::string_view stem) {
  std::string file(stem);
  for (char& c : file) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  return absl::StrCat(dir, "/twinloop-", file, ".replay");
}

std::string escape_path_component(std::string_view base) {
  std::string out;
  for (unsigned char c : base) {
    if (c == '%' || c == '/' || c <= ' ' || c == 0x7f) {
      absl::StrAppendFormat(&out, "%%%02X", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

uint64_t task_key_of_path(std::string_view path) {
  if (path.empty() || path == "/") return 0;
  if (path[0] != '/') throw std::invalid_argument(absl::StrCat("task path '", av(path), "' does not start with '/'"));
  uint64_t key = 0;
  std::string base;
  for (absl::string_view part : absl::StrSplit(av(path.substr(1)), '/')) {
    const size_t hash = part.rfind('#');
    uint64_t index = 0;
    if (hash == absl::string_view::npos || hash + 1 == part.size() ||
        part.find_first_not_of("0123456789", hash + 1) != absl::string_view::npos ||
        !absl::SimpleAtoi(part.substr(hash + 1), &index) || !unescape(part.substr(0, hash), &base)) {
      throw std::invalid_argument(
          absl::StrCat("task path '", av(path), "': component '", part, "' is not <name>#<index>"));
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
  return absl::StrCat("the run diverged from the recording at event ", d.index, ": expected ",
                      d.expected ? describe_event(*d.expected) : std::string("the end of the run"), ", got ",
                      d.actual ? describe_event(*d.actual) : std::string("the end of the run"));
}

}  // namespace twinloop::sim
