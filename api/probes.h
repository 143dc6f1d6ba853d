// twinloop/api/probes.h: always / sometimes / reachable / unreachable, the
// vocabulary of Antithesis's SDK (antithesis_sdk.h), on both loops.
//
//   TWINLOOP_ALWAYS(balance >= 0, "balance never negative");
//   TWINLOOP_SOMETIMES(queue.full(), "the queue fills up");
//   TWINLOOP_REACHABLE("leader stepped down");
//   TWINLOOP_UNREACHABLE("two leaders in one term");
//
//   twinloop::sometimes(retries > 3, absl::StrCat("retries>3 on ", shard));   // a name made at run time
//
// What each says, and when it is "hit" (Antithesis's "must hit" column):
//   always(cond)       cond holds every time it is reached. Hit: reached.
//   sometimes(cond)    cond holds at least once. Hit: reached with cond true.
//   reachable()        reached at least once. Hit: reached.
//   unreachable()      never reached. Never counted as a must-hit.
//
// Failures. A failed `always` and a reached `unreachable` throw
// twinloop::AssertionError (the probe's name, kind and source position in
// what()), on every loop and outside a loop: they are Python's `assert`,
// which raises AssertionError. In a task the exception ends the task like any
// other (asyncio's rules: whoever awaits it sees it, or the loop's exception
// handler reports it if nobody does); nothing is aborted. Under the
// simulation harness (sim/harness/testing.h) the run also FAILS with the
// failure kind "probe" and the probe's name, even if the code caught the
// exception (as a failed ASSERT_* stays recorded), and the run is recorded,
// replayed and shrunk like any failure. (TWINLOOP_CHECK, api/internal/check.h,
// aborts instead: it is for twinloop's own invariants, where a broken one
// means corrupted memory; a probe states a property of the user's program.)
//
// Cost. `sometimes` and `reachable` (and an `always` that holds) cost one
// predictable branch once the probe has been seen with this value in the
// current run: each probe keeps 2 bits (seen true, seen false) tagged with a
// run number, and only a value not seen yet in the run takes the slow path,
// which tells the observer (the harness) "first hit". On the real loop the
// run number never changes, so after the first hit it is one load and one
// compare for the life of the process.
//
// The catalog. Every probe is an entry of one process-wide catalog keyed by
// (name, kind), listed sorted by name then kind (never by address or by
// registration order), so that reports are the same on every run.
//  - The macros register their probe when the program starts (static
//    initialisation), before any run: a probe no run reached is known, and
//    reported ("never reached"). Each macro expands to a lambda holding a
//    local class (the call site); the class template StaticProbe<Site> has an
//    inline static member initialised by registering the site, and like any
//    implicitly instantiated static member it is initialised before main()
//    runs (by GCC and Clang: unordered dynamic initialisation). The name must
//    be a string literal (it is returned by a constexpr function).
//  - The function forms take any name, so they register a probe only when it
//    is first called, and each call looks the name up in the catalog (a lock
//    and a map lookup): use them for names made at run time and off hot
//    paths. A probe that only a function form names is unknown until reached.
//  Two sites with the same name and kind are one probe (first position kept:
//  the lowest file:line, so that it does not depend on initialisation order).
#ifndef TWINLOOP_API_PROBES_H_
#define TWINLOOP_API_PROBES_H_

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace twinloop {

enum class ProbeKind : uint8_t { kAlways, kSometimes, kReachable, kUnreachable };
// "always", "sometimes", "reachable", "unreachable".
const char* probe_kind_name(ProbeKind kind);

// A failed always(), a reached unreachable() (Python's AssertionError).
class AssertionError : public std::logic_error {
 public:
  AssertionError(const std::string& message, std::string probe)
      : std::logic_error(message), probe_(std::move(probe)) {}
  // The probe's name.
  const std::string& probe() const { return probe_; }

 private:
  std::string probe_;
};

void always(bool condition, std::string_view name, const char* file = __builtin_FILE(), int line = __builtin_LINE());
void sometimes(bool condition, std::string_view name, const char* file = __builtin_FILE(),
               int line = __builtin_LINE());
void reachable(std::string_view name, const char* file = __builtin_FILE(), int line = __builtin_LINE());
[[noreturn]] void unreachable(std::string_view name, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE());

namespace internal {

// One probe of the catalog.
struct ProbeEntry {
  ProbeKind kind = ProbeKind::kSometimes;
  std::string name;
  std::string file;
  int line = 0;
  // Named by a macro (registered at static initialisation), not only by a
  // function form.
  bool declared = false;
  // (run number << 2) | bits seen in that run (1: true, 2: false).
  std::atomic<uint64_t> state{0};
  // Bits seen since the process started (or reset_probe_totals).
  std::atomic<uint8_t> ever{0};
};

inline constexpr uint64_t kProbeSeenTrue = 1;
inline constexpr uint64_t kProbeSeenFalse = 2;

// (the current run number) << 2.
extern std::atomic<uint64_t> probe_run_tag;

// The entry of (kind, name), registered if new.
ProbeEntry& probe_entry(ProbeKind kind, std::string_view name, const char* file, int line, bool declared);
// The slow path: the first time this value is seen in this run.
void probe_first_hit(ProbeEntry& e, uint64_t bit);
// A failed always / a reached unreachable: tells the observer, throws.
[[noreturn]] void probe_fail(ProbeEntry& e, const char* file, int line);

// The hot path: one load, one compare.
inline void probe_hit(ProbeEntry& e, bool value) {
  const uint64_t bit = value ? kProbeSeenTrue : kProbeSeenFalse;
  const uint64_t other = bit ^ 3;
  const uint64_t s = e.state.load(std::memory_order_relaxed);
  // The run number matches and `bit` is set (the other bit does not matter).
  if (__builtin_expect(((s ^ (probe_run_tag.load(std::memory_order_relaxed) | bit)) & ~other) == 0, 1)) return;
  probe_first_hit(e, bit);
}

inline void probe_always(ProbeEntry& e, bool condition, const char* file, int line) {
  if (__builtin_expect(!condition, 0)) probe_fail(e, file, line);
  probe_hit(e, true);
}

// Sees first hits and failures (the simulation harness). Called on the
// thread that hit the probe.
class ProbeObserver {
 public:
  virtual ~ProbeObserver() = default;
  virtual void on_first_hit(const ProbeEntry& e, bool value) = 0;
  // Before AssertionError(message) is thrown.
  virtual void on_failure(const ProbeEntry& e, const std::string& message) = 0;
};
// Installs `observer` (nullptr: none); returns the previous one.
ProbeObserver* set_probe_observer(ProbeObserver* observer);
// A new run: every probe's per-run bits read as unseen.
void begin_probe_run();
// Clears every probe's `ever` bits.
void reset_probe_totals();
// Every probe registered so far, sorted by (name, kind).
std::vector<const ProbeEntry*> probe_catalog();

template <typename Site>
struct StaticProbe {
  static inline ProbeEntry& entry = probe_entry(Site::kind(), Site::name(), Site::file(), Site::line(), true);
};

}  // namespace internal
}  // namespace twinloop

// The call site as a local class (see "The catalog" above).
#define TWINLOOP_PROBE_ENTRY_(probe_kind, probe_name)                                          \
  ([]() -> ::twinloop::internal::ProbeEntry& {                                                 \
    struct TwinloopProbeSite {                                                                 \
      static constexpr ::twinloop::ProbeKind kind() { return ::twinloop::ProbeKind::probe_kind; } \
      static constexpr std::string_view name() { return probe_name; }                          \
      static constexpr const char* file() { return __FILE__; }                                 \
      static constexpr int line() { return __LINE__; }                                         \
    };                                                                                         \
    return ::twinloop::internal::StaticProbe<TwinloopProbeSite>::entry;                         \
  }())

#define TWINLOOP_ALWAYS(condition, name) \
  ::twinloop::internal::probe_always(TWINLOOP_PROBE_ENTRY_(kAlways, name), static_cast<bool>(condition), __FILE__, __LINE__)
#define TWINLOOP_SOMETIMES(condition, name) \
  ::twinloop::internal::probe_hit(TWINLOOP_PROBE_ENTRY_(kSometimes, name), static_cast<bool>(condition))
#define TWINLOOP_REACHABLE(name) ::twinloop::internal::probe_hit(TWINLOOP_PROBE_ENTRY_(kReachable, name), true)
#define TWINLOOP_UNREACHABLE(name) \
  ::twinloop::internal::probe_fail(TWINLOOP_PROBE_ENTRY_(kUnreachable, name), __FILE__, __LINE__)

#endif  // TWINLOOP_API_PROBES_H_
