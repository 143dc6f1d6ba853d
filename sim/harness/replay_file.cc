#include "twinloop/sim/harness/replay_file.h"

#include <algorithm>
#include <cctype>
#include <cerrno>  // program_invocation_short_name (glibc, _GNU_SOURCE)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "twinloop/sim/choice.h"

namespace twinloop::sim {
namespace {

bool kind_from_name(absl::string_view name, internal::EventKind* kind) {
  for (internal::EventKind k : {internal::EventKind::kTaskStep, internal::EventKind::kCallback,
                                internal::EventKind::kTimerDue, internal::EventKind::kSignal,
                                internal::EventKind::kNetSend, internal::EventKind::kNetDeliver,
                                internal::EventKind::kFault}) {
    if (name == event_kind_name(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

// Debian's Abseil has its own string_view type.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

[[noreturn]] void bad_line(size_t line, const std::string& why) {
  throw std::invalid_argument(absl::StrCat("replay file line ", line, ": ", why));
}

// A malformed record: what was expected, and the line as it is (quoted).
[[noreturn]] void bad_record(size_t line, absl::string_view expected, absl::string_view text) {
  bad_line(line,
           absl::StrCat("expected '", expected, "', got ", quote_bytes(std::string_view(text.data(), text.size()))));
}

// A number token as it can be shown in a message: itself if it is short and
// made of digits (and a sign), else quoted and bounded.
std::string shown_number(absl::string_view tok) {
  const bool plain = !tok.empty() && tok.size() <= 24 &&
                     tok.find_first_not_of("+-0123456789") == absl::string_view::npos;
  return plain ? std::string(tok) : quote_bytes(std::string_view(tok.data(), tok.size()), 24);
}

// Whether `tok` is written as a decimal integer (whatever its size).
bool is_decimal(absl::string_view tok) {
  if (!tok.empty() && (tok[0] == '-' || tok[0] == '+')) tok.remove_prefix(1);
  return !tok.empty() && tok.find_first_not_of("0123456789") == absl::string_view::npos;
}

// Parses field `tok` of record `record` (written `form`) as an integer of
// type Int: a malformed token names the form, an integer out of Int's range
// names the range (`range`, e.g. "[0, 2^64)").
template <class Int>
Int int_field(size_t line, absl::string_view tok, absl::string_view what, absl::string_view form,
              absl::string_view text, absl::string_view range) {
  Int v{};
  if (absl::SimpleAtoi(tok, &v)) return v;
  if (is_decimal(tok)) {
    bad_line(line, absl::StrCat(what, " ", shown_number(tok), " out of range: must be in ", range));
  }
  bad_record(line, form, text);
}

}  // namespace

std::string format_recording(const Recording& r) {
  std::string out = absl::StrCat("twinloop-replay ", Recording::kVersion, "\n");
  absl::StrAppend(&out, "# A simulated run: its decisions (site occurrence n value) and its events\n",
                  "# (index time_ns kind id hash-after). Replay: --twinloop_replay=<this file>.\n");
  absl::StrAppend(&out, "seed ", r.seed, "\n");
  if (!r.test.empty()) absl::StrAppend(&out, "test ", percent_escape(r.test), "\n");
  if (!r.command.empty()) absl::StrAppend(&out, "command ", percent_escape(r.command), "\n");
  if (!r.failure.empty()) absl::StrAppend(&out, "failure ", percent_escape(r.failure), "\n");
  for (const auto& [name, value] : r.options) absl::StrAppend(&out, "option ", percent_escape(name), " ", value, "\n");
  absl::StrAppend(&out, "# ", r.decisions.size(), " decisions, ", non_default_choices(r.decisions),
                  " not default\n");
  for (const Decision& d : r.decisions) {
    absl::StrAppend(&out, "decision ", d.task.empty() ? "/" : d.task, " ", percent_escape(d.site), " ", d.occurrence, " ",
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
        bad_line(line_no, absl::StrCat("not a twinloop replay file (expected 'twinloop-replay <version>', got ",
                                       quote_bytes(std::string_view(line.data(), line.size())), ")"));
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
      if (f.size() != 2) bad_record(line_no, "seed <uint64>", line);
      r.seed = int_field<uint64_t>(line_no, f[1], "seed", "seed <uint64>", line, "[0, 2^64)");
    } else if (key == "test" || key == "command" || key == "failure") {
      if (f.size() != 2 || !percent_unescape(sv(f[1]), &s)) bad_record(line_no, absl::StrCat(key, " <percent-escaped text>"), line);
      (key == "test" ? r.test : key == "command" ? r.command : r.failure) = s;
    } else if (key == "option") {
      if (f.size() != 3 || !percent_unescape(sv(f[1]), &s)) bad_record(line_no, "option <name> <int64>", line);
      r.options[s] = int_field<int64_t>(line_no, f[2], "option value", "option <name> <int64>", line, "[-2^63, 2^63)");
    } else if (key == "decision") {
      Decision d;
      if (f.size() != 6 || !percent_unescape(sv(f[2]), &d.site) || !absl::SimpleAtoi(f[3], &d.occurrence) ||
          !absl::SimpleAtoi(f[4], &d.n) || !absl::SimpleAtoi(f[5], &d.value)) {
        bad_record(line_no, "decision <task> <site> <occurrence> <n> <value>", line);
      }
      d.task = f[1] == "/" ? std::string() : std::string(f[1]);
      try {
        task_key_of_path(d.task);
      } catch (const std::invalid_argument& e) {
        bad_line(line_no, e.what());
      }
      if (d.n == 0) bad_line(line_no, "decision n = 0: a draw has at least 1 possible answer");
      if (d.value >= d.n) {
        bad_line(line_no, absl::StrCat("decision value ", d.value, " out of range: must be in [0, ", d.n, ")"));
      }
      r.decisions.push_back(std::move(d));
    } else if (key == "event") {
      EventRecord e;
      constexpr absl::string_view kForm = "event <index> <time_ns> <kind> <id> <hash>";
      if (f.size() != 6) bad_record(line_no, kForm, line);
      const uint64_t index = int_field<uint64_t>(line_no, f[1], "event index", kForm, line, "[0, 2^64)");
      e.time_ns = int_field<int64_t>(line_no, f[2], "event time_ns", kForm, line, "[-2^63, 2^63)");
      if (!kind_from_name(f[3], &e.kind)) {
        bad_line(line_no, absl::StrCat("unknown event kind ", quote_bytes(std::string_view(f[3].data(), f[3].size())),
                                       " (expected task_step, callback, timer_due, signal, net_send, net_deliver or fault)"));
      }
      e.id = int_field<uint64_t>(line_no, f[4], "event id", kForm, line, "[0, 2^64)");
      if (f[5].size() > 16 || !absl::SimpleHexAtoi(f[5], &e.hash)) {
        bad_line(line_no, absl::StrCat("event hash ", quote_bytes(std::string_view(f[5].data(), f[5].size()), 24),
                                       ": expected at most 16 hex digits"));
      }
      if (index != r.events.size()) {
        bad_line(line_no, absl::StrCat("event index ", index, ": expected ", r.events.size(),
                                       " (events are numbered 0, 1, 2, ...)"));
      }
      r.events.push_back(e);
    } else if (key == "end") {
      ended = true;
    } else {
      bad_line(line_no, absl::StrCat("unknown record ", quote_bytes(std::string_view(key.data(), key.size()), 40)));
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
  const std::string shown = quote_bytes(path, 4096);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw std::runtime_error(absl::StrCat("cannot read replay file ", shown, ": it is a directory"));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw std::runtime_error(
        absl::StrCat("cannot read replay file ", shown, ": ", std::generic_category().message(errno)));
  }
  std::string text;
  char buf[1 << 14];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    throw std::runtime_error(
        absl::StrCat("cannot read replay file ", shown, ": ", std::generic_category().message(err)));
  }
  try {
    return parse_recording(text);
  } catch (const std::invalid_argument& e) {
    // "replay file line 3: ..." -> "replay file 'x.replay', line 3: ...";
    // "replay file is empty" -> "replay file 'x.replay' is empty".
    const absl::string_view what = e.what();
    constexpr absl::string_view kPrefix = "replay file ";
    if (!absl::StartsWith(what, kPrefix)) throw;
    const absl::string_view rest = what.substr(kPrefix.size());
    throw std::invalid_argument(
        absl::StrCat("replay file ", shown, absl::StartsWith(rest, "line ") ? ", " : " ", rest));
  }
}

std::string default_replay_dir() {
  if (const char* d = std::getenv("TWINLOOP_REPLAY_DIR")) return d;
  if (const char* d = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) return d;
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
  return ec ? std::string("/tmp") : tmp.string();
}

namespace {
// Characters other than letters, digits, '-', '_' and '.' become '_'.
std::string file_name_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  return out;
}
}  // namespace

std::string replay_file_path(const std::string& dir, std::string_view stem) {
  return absl::StrCat(dir, "/twinloop-", file_name_safe(stem), ".replay");
}

std::string target_slug() {
  std::string_view name;
  if (const char* target = std::getenv("TEST_TARGET"); target != nullptr && *target != '\0') {
    name = target;
    while (!name.empty() && (name.front() == '@' || name.front() == '/')) name.remove_prefix(1);
  } else {
    name = program_invocation_short_name;  // glibc: the program's file name
  }
  const std::string slug = file_name_safe(name);
  return slug.empty() ? std::string("test") : slug;
}

}  // namespace twinloop::sim
