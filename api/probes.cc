#include "twinloop/api/probes.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace twinloop {
namespace internal {

std::atomic<uint64_t> probe_run_tag{0};

namespace {

struct Catalog {
  std::mutex mu;
  // Sorted by (name, kind): the catalog's order.
  std::map<std::pair<std::string, ProbeKind>, std::unique_ptr<ProbeEntry>, std::less<>> entries;
};

Catalog& catalog() {
  // Never destroyed: probes may be hit from static destructors.
  static Catalog* const c = new Catalog;
  return *c;
}

std::atomic<ProbeObserver*> observer{nullptr};

// "path/file.cc:42" ordering: by file, then line.
bool earlier(std::string_view file, int line, const ProbeEntry& e) {
  return file < e.file || (file == e.file && line < e.line);
}

}  // namespace

ProbeEntry& probe_entry(ProbeKind kind, std::string_view name, const char* file, int line, bool declared) {
  Catalog& c = catalog();
  std::lock_guard<std::mutex> lock(c.mu);
  auto [it, inserted] = c.entries.try_emplace(std::pair<std::string, ProbeKind>(std::string(name), kind));
  if (inserted) {
    it->second = std::make_unique<ProbeEntry>();
    ProbeEntry& e = *it->second;
    e.kind = kind;
    e.name = std::string(name);
    e.file = file ? file : "";
    e.line = line;
  } else if (file != nullptr && earlier(file, line, *it->second)) {
    it->second->file = file;
    it->second->line = line;
  }
  it->second->declared = it->second->declared || declared;
  return *it->second;
}

void probe_first_hit(ProbeEntry& e, uint64_t bit) {
  const uint64_t tag = probe_run_tag.load(std::memory_order_relaxed);
  uint64_t s = e.state.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    const uint64_t bits = (s & ~uint64_t{3}) == tag ? (s & 3) : 0;
    if (bits & bit) return;  // another thread saw it first
    next = tag | bits | bit;
  } while (!e.state.compare_exchange_weak(s, next, std::memory_order_relaxed));
  e.ever.fetch_or(static_cast<uint8_t>(bit), std::memory_order_relaxed);
  if (ProbeObserver* o = observer.load(std::memory_order_acquire)) o->on_first_hit(e, bit == kProbeSeenTrue);
}

void probe_fail(ProbeEntry& e, const char* file, int line) {
  // Reached: an unreachable counts as seen (true), a failed always as seen false.
  probe_hit(e, e.kind == ProbeKind::kUnreachable);
  const std::string message =
      e.kind == ProbeKind::kUnreachable
          ? absl::StrCat("unreachable probe '", e.name, "' was reached at ", file, ":", line)
          : absl::StrCat("always probe '", e.name, "' failed at ", file, ":", line);
  if (ProbeObserver* o = observer.load(std::memory_order_acquire)) o->on_failure(e, message);
  throw AssertionError(message, e.name);
}

ProbeObserver* set_probe_observer(ProbeObserver* o) { return observer.exchange(o, std::memory_order_acq_rel); }

void begin_probe_run() { probe_run_tag.fetch_add(4, std::memory_order_relaxed); }

void reset_probe_totals() {
  Catalog& c = catalog();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [key, e] : c.entries) e->ever.store(0, std::memory_order_relaxed);
}

std::vector<const ProbeEntry*> probe_catalog() {
  Catalog& c = catalog();
  std::lock_guard<std::mutex> lock(c.mu);
  std::vector<const ProbeEntry*> out;
  out.reserve(c.entries.size());
  for (const auto& [key, e] : c.entries) out.push_back(e.get());
  return out;
}

}  // namespace internal

const char* probe_kind_name(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kAlways:
      return "always";
    case ProbeKind::kSometimes:
      return "sometimes";
    case ProbeKind::kReachable:
      return "reachable";
    case ProbeKind::kUnreachable:
      return "unreachable";
  }
  return "unknown";
}

void always(bool condition, std::string_view name, const char* file, int line) {
  internal::probe_always(internal::probe_entry(ProbeKind::kAlways, name, file, line, false), condition, file, line);
}

void sometimes(bool condition, std::string_view name, const char* file, int line) {
  internal::probe_hit(internal::probe_entry(ProbeKind::kSometimes, name, file, line, false), condition);
}

void reachable(std::string_view name, const char* file, int line) {
  internal::probe_hit(internal::probe_entry(ProbeKind::kReachable, name, file, line, false), true);
}

void unreachable(std::string_view name, const char* file, int line) {
  internal::probe_fail(internal::probe_entry(ProbeKind::kUnreachable, name, file, line, false), file, line);
}

}  // namespace twinloop
