// Property tests for api/locks.h under the simulated loop.
//
// RapidCheck generates a scenario per run: workers using a primitive with
// random pauses, tasks cancelling them at random instants, waits under
// wait_for(x, t) timeouts (t = 0 included: cancelled before it starts),
// random abort()/reset() or set()/clear() events, and optional step jitter.
// The run is an RcSimulation (sim/harness/rc_simulation.h): every decision
// of the simulated loop (the order of timers due at the same instant, the
// step jitter) is a RapidCheck pick, so a failing case shrinks its scenario
// and its schedule together. Delays are whole milliseconds in small ranges
// so that many events fall due at the same instant, where that drawn
// tie-break orders them: that is how a waiter gets woken and cancelled in
// the same iteration. A failure prints the shrunk scenario, what went wrong,
// and the minimal run's schedule (its non-default decisions) and replay
// file. Every run must end without sim::DeadlockError or
// sim::TimeLimitError.
//
// Lost wake-ups are caught as they happen by a monitor task sampling at half
// past every millisecond: without step jitter every event falls on a whole
// millisecond and virtual time moves only when nothing is ready, so there the
// loop is idle and "free primitive, task still waiting for it" is a bug on
// the spot (under jitter: 20 samples in a row with no progress). See
// StallWatch.
//
// Lock, Semaphore, BoundedSemaphore (one property each, same workers):
//  - at most `capacity` holders at any time (checked on every acquisition
//    and after every sleep inside the critical section); a Lock holder sees
//    the lock locked; holders + value() <= capacity; value() <= capacity;
//  - strict FIFO: successful acquisitions happen in the order their
//    acquire() calls started (a cancelled or timed-out waiter drops out; no
//    one overtakes a waiter that is not cancelled);
//  - no lost wake-up: never idle with a task inside acquire() and the
//    primitive free (Lock unlocked, value() > 0) or held by nobody (a slot
//    lost, e.g. a cancelled waiter that kept the slot reserved for it, which
//    would otherwise keep the run going until its time limit); a waiter
//    left behind would also deadlock the run;
//  - at the end the primitive is free with no waiters, value() == capacity,
//    a BoundedSemaphore refuses one more release() (std::invalid_argument)
//    and a Lock refuses release() (std::runtime_error).
//  Workers use acquire()/release(), scoped() (LockGuard, sometimes released
//  early with LockGuard::release()), and both under wait_for; some survive a
//  cancellation and go on with their next step.
// Condition: producers append items under the lock and notify (notify(n),
//  notify_all, n x notify(1), notify(n + 1)); consumers wait_for(non-empty),
//  plain or under wait_for(..., t), and take one item; consumers and
//  producers are cancelled at random. Checked: the lock is held by the
//  waiter, and by nobody else, whenever wait_for returns or raises
//  (CancelledError and TimeoutError included) and whenever the predicate
//  runs; every item produced is taken exactly once or is still there at the
//  end; never idle with an item, the lock free and a consumer waiting (a
//  notification lost, e.g. by a notified waiter that was cancelled: after a
//  timeout or a survived cancellation a consumer pauses, so it does not
//  mask that by coming straight back); consumer 0 (never cancelled) drains
//  everything once producers stop.
// Barrier: workers call wait() (plain or under wait_for), with random
//  cancellations and abort()/reset() events. Each successful return is
//  attributed to the cycle of the last release (the last arrival, index
//  parties - 1, returns at the release; the others return while the barrier
//  drains). Checked: indices in 0..parties-1, no duplicate in a cycle unless
//  a waiter left by cancellation/timeout since the previous release (asyncio
//  hands such a waiter's index out again: see FillingCancelReusesIndex), a
//  full permutation of 0..parties-1 in a cycle with no cancellation, timeout,
//  BrokenBarrierError, abort or reset around it; right after abort() it is
//  broken, right after reset() it is resetting, or filling with nobody
//  inside; whenever the loop is idle (monitor, and once everything that can
//  move has moved) it is not stuck draining/resetting, a filling barrier
//  counts exactly the tasks blocked in wait() (fewer than parties), a broken
//  one has no task blocked; leftovers end by abort() or cancellation; after
//  reset() a fresh round of `parties` tasks gets 0..parties-1.
// Event: set(), clear(), set();clear() in one step and set();sleep(0);clear()
//  at random instants, waiters (plain or under wait_for) cancelled at random.
//  Checked: every wait that was pending when set() was called returns true
//  (clear() afterwards notwithstanding) unless it was cancelled at that same
//  instant (within 5 ms under step jitter), and is never still pending when
//  the loop is idle; wait() never returns unless the event was set when it
//  was called or set() was called while it waited.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/locks.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/rc_simulation.h"
#include "twinloop/sim/simulation.h"

namespace twinloop {
namespace {

// ================================================================ shared

absl::Duration ms(int n) { return absl::Milliseconds(n); }

// Virtual time since the start of the run.
int64_t now_us() { return absl::ToInt64Microseconds(get_running_loop().time() - absl::UnixEpoch()); }

std::string at_now() { return running_loop_or_null() ? absl::StrCat("[t=", now_us(), "us] ") : std::string(); }

// Errors of one run (the first few).
struct Report {
  std::vector<std::string> errors;
  void error(std::string what) {
    if (errors.size() < 10) errors.push_back(absl::StrCat(at_now(), what));
  }
};

enum class Exit { kCancelled, kTimeout, kBroken, kOther };

Exit classify(const std::exception_ptr& e, std::string* what) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return Exit::kCancelled;
  } catch (const TimeoutError&) {
    return Exit::kTimeout;
  } catch (const BrokenBarrierError&) {
    return Exit::kBroken;
  } catch (...) {
    *what = describe_exception(std::current_exception());
    return Exit::kOther;
  }
}

// -1 (never) or an instant in [0, limit) ms.
rc::Gen<int> gen_maybe_at(int limit) {
  return rc::gen::weightedOneOf<int>({{2, rc::gen::just(-1)}, {1, rc::gen::inRange(0, limit)}});
}

template <class T>
rc::Gen<std::vector<T>> gen_vector(int min, int max, rc::Gen<T> element) {
  return rc::gen::mapcat(rc::gen::inRange(min, max + 1), [element](int n) {
    return rc::gen::container<std::vector<T>>(static_cast<size_t>(n), element);
  });
}

// No cancellation (most often), or one or two instants in [0, limit) ms.
rc::Gen<std::vector<int>> gen_cancels(int limit) {
  return rc::gen::weightedOneOf<std::vector<int>>(
      {{2, rc::gen::just(std::vector<int>{})}, {1, gen_vector<int>(1, 2, rc::gen::inRange(0, limit))}});
}

// RapidCheck scales every range with the test's size (0 to 100 over a run),
// so at small sizes a scenario is one task doing one thing at instant 0.
// Sizes 50..100 instead: most runs have several tasks colliding (a planted
// lost notification in Condition went from found in 5 of 8 runs to 8 of 8);
// shrinking still goes all the way down.
template <class T>
rc::Gen<T> at_least_half_size(rc::Gen<T> g) {
  return rc::gen::withSize([g](int size) { return rc::gen::resize(50 + size / 2, g); });
}

template <class T>
void show_list(const std::vector<T>& v, std::ostream& os) {
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) os << ", ";
    showValue(v[i], os);
  }
  os << "]";
}

void show_ints(const std::vector<int>& v, std::ostream& os) {
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
}

std::string ids(const std::vector<int>& v) {
  std::ostringstream os;
  show_ints(v, os);
  return os.str();
}

// Cancels from a task (not a loop callback) so that a cancel can land in
// the same iteration as the release that woke the target, after it.
Coro<void> cancel_at(Task<void> target, int at_ms) {
  co_await sleep(ms(at_ms));
  target.cancel();
}

// Awaits `t`; a normal end and a CancelledError are fine, anything else is
// an error. (Names are built here, not as temporaries in the co_await
// expression: see the GCC 12 notes in docs/design.md.)
Coro<void> settle(Report* r, Task<void> t, const char* what, int index = -1) {
  try {
    co_await t;
  } catch (const CancelledError&) {
  } catch (...) {
    r->error(absl::StrCat(what, index >= 0 ? absl::StrCat(" ", index) : std::string(), " raised ",
                          describe_exception(std::current_exception())));
  }
}

// settle() for each of `tasks`, named "<what> <i>".
Coro<void> settle_all(Report* r, std::vector<Task<void>>* tasks, const char* what) {
  for (size_t i = 0; i < tasks->size(); ++i) co_await settle(r, (*tasks)[i], what, static_cast<int>(i));
}

// The property running now, "Suite.Name": names its replay files.
std::string property_name() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info == nullptr ? std::string("SyncProperty") : absl::StrCat(info->test_suite_name(), ".", info->name());
}

// The simulator's options for a scenario (the decisions are RapidCheck's).
sim::Options sim_options(bool jitter) {
  sim::Options options;
  options.time_limit = absl::Seconds(30);
  if (jitter) options.step_jitter_max = absl::Microseconds(300);
  return options;
}

// Runs `main` in `sim`; a deadlock, livelock or escaped exception goes into
// `r`.
void run_sim(Report& r, sim::RcSimulation& sim, Coro<void> main) {
  try {
    sim.run(std::move(main));
  } catch (const sim::DeadlockError& e) {
    r.errors.push_back(absl::StrCat("deadlock: ", e.what()));
  } catch (const sim::TimeLimitError& e) {
    r.errors.push_back(absl::StrCat("livelock: ", e.what()));
  } catch (...) {
    r.errors.push_back(absl::StrCat("the run raised: ", describe_exception(std::current_exception())));
  }
}

// Fails the test case with `r`'s errors. Call it while the run's
// RcSimulation is alive: it saves the failing run's schedule as it unwinds.
void fail_on_errors(const Report& r) {
  if (r.errors.empty()) return;
  std::string message = "the run failed:";
  for (const std::string& e : r.errors) absl::StrAppend(&message, "\n  ", e);
  RC_FAIL(message);
}

// Flags a lost wake-up: "the primitive is free, somebody waits for it, and
// nobody gets anywhere". Monitors sample at half past each millisecond.
// Without step jitter every event falls on a whole millisecond, and virtual
// time moves on only when nothing is ready, so at half past the loop is idle:
// a woken task would have run already, and one such sample is a bug. Step
// jitter (up to 0.3 ms per step) smears an instant out; then it takes 20
// samples in a row with no progress in between.
class StallWatch {
 public:
  explicit StallWatch(bool jitter) : jitter_(jitter) {}
  static constexpr absl::Duration kFirstSample = absl::Microseconds(500);

  // True when the stall counts as a lost wake-up.
  bool sample(bool stalled, uint64_t progress) {
    if (!jitter_) return stalled;
    run_ = (stalled && was_stalled_ && progress == last_progress_) ? run_ + 1 : 0;
    was_stalled_ = stalled;
    last_progress_ = progress;
    return run_ >= 20;
  }

 private:
  bool jitter_;
  bool was_stalled_ = false;
  uint64_t last_progress_ = 0;
  int run_ = 0;
};

// How long the workers must be still before a run counts as settled.
int quiet_ms(bool jitter) { return jitter ? 30 : 10; }

// ================================================================ Lock, Semaphore, BoundedSemaphore

enum class SlotKind { kLock, kSemaphore, kBounded };

struct AcquireStep {
  int sleep_ms = 0;            // before acquiring
  int mode = 0;                // 0 acquire()/release(), 1 scoped(), 2 wait_for(acquire(), t), 3 wait_for(scoped(), t)
  int timeout_ms = 0;          // modes 2 and 3 (0: cancelled before it starts)
  int hold_ms = 0;             // sleep while holding
  int hold2_ms = 0;            // second sleep while holding
  bool early_release = false;  // guards: LockGuard::release() between the two sleeps
};

struct SlotWorker {
  std::vector<AcquireStep> steps;
  std::vector<int> cancel_at_ms;  // instants at which a task cancels this worker
  bool survive = false;           // a CancelledError ends the current step only
};

struct SlotScenario {
  SlotKind kind = SlotKind::kLock;
  int capacity = 1;
  bool jitter = false;
  std::vector<SlotWorker> workers;
};

void showValue(const AcquireStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms << ", hold " << s.hold_ms
     << "+" << s.hold2_ms << (s.early_release ? ", early release" : "") << "}";
}

void showValue(const SlotScenario& s, std::ostream& os) {
  os << (s.kind == SlotKind::kLock ? "Lock" : s.kind == SlotKind::kSemaphore ? "Semaphore" : "BoundedSemaphore")
     << ", capacity " << s.capacity << ", jitter " << s.jitter << "\n";
  for (size_t i = 0; i < s.workers.size(); ++i) {
    os << "  worker " << i << " (cancel at ";
    show_ints(s.workers[i].cancel_at_ms, os);
    os << (s.workers[i].survive ? ", survives" : "") << "): ";
    show_list(s.workers[i].steps, os);
    os << "\n";
  }
}

rc::Gen<AcquireStep> gen_acquire_step() {
  return rc::gen::build<AcquireStep>(rc::gen::set(&AcquireStep::sleep_ms, rc::gen::inRange(0, 4)),
                                     rc::gen::set(&AcquireStep::mode, rc::gen::inRange(0, 4)),
                                     rc::gen::set(&AcquireStep::timeout_ms, rc::gen::inRange(0, 6)),
                                     rc::gen::set(&AcquireStep::hold_ms, rc::gen::inRange(0, 4)),
                                     rc::gen::set(&AcquireStep::hold2_ms, rc::gen::inRange(0, 3)),
                                     rc::gen::set(&AcquireStep::early_release, rc::gen::arbitrary<bool>()));
}

rc::Gen<SlotWorker> gen_slot_worker() {
  return rc::gen::build<SlotWorker>(rc::gen::set(&SlotWorker::steps, gen_vector<AcquireStep>(1, 6, gen_acquire_step())),
                                    rc::gen::set(&SlotWorker::cancel_at_ms, gen_cancels(30)),
                                    rc::gen::set(&SlotWorker::survive, rc::gen::arbitrary<bool>()));
}

rc::Gen<SlotScenario> gen_slot_scenario(SlotKind kind) {
  return rc::gen::build<SlotScenario>(
      rc::gen::set(&SlotScenario::kind, rc::gen::just(kind)),
      rc::gen::set(&SlotScenario::capacity, kind == SlotKind::kLock ? rc::gen::just(1) : rc::gen::inRange(1, 4)),
      rc::gen::set(&SlotScenario::jitter, rc::gen::arbitrary<bool>()),
      rc::gen::set(&SlotScenario::workers, gen_vector<SlotWorker>(1, 6, gen_slot_worker())));
}

// P is Lock or Semaphore (a BoundedSemaphore is used through Semaphore&:
// release() is virtual, and its scoped() guard is a LockGuard<Semaphore>).
template <class P>
struct SlotHarness : Report {
  static constexpr bool kIsLock = std::is_same_v<P, Lock>;

  explicit SlotHarness(const SlotScenario& s) : sc(s) {
    if constexpr (kIsLock) {
      p = std::make_unique<Lock>("slot");
    } else {
      if (s.kind == SlotKind::kBounded) {
        p = std::make_unique<BoundedSemaphore>(s.capacity, "slot");
      } else {
        p = std::make_unique<Semaphore>(s.capacity, "slot");
      }
    }
  }

  int cap() const { return sc.capacity; }

  // Free for one more holder.
  bool free() const {
    if constexpr (kIsLock) {
      return !p->locked();
    } else {
      return p->value() > 0;
    }
  }

  void check_counts(const std::string& when) {
    if (holders > cap()) error(absl::StrCat(when, ": ", holders, " holders, capacity ", cap()));
    if constexpr (kIsLock) {
      if (holders > 0 && !p->locked()) error(absl::StrCat(when, ": a holder sees ", p->describe()));
    } else {
      if (p->value() < 0 || p->value() > cap() || holders + p->value() > cap()) {
        error(absl::StrCat(when, ": ", holders, " holders and ", p->describe(), ", capacity ", cap()));
      }
    }
  }

  void on_acquired(int seq, int worker) {
    ++acquired;
    acquisitions.push_back(seq);
    ++holders;
    check_counts(absl::StrCat("worker ", worker, " acquired (call #", seq, ")"));
  }

  void check_held(int worker, const char* when) {
    if (holders < 1) error(absl::StrCat("worker ", worker, " ", when, ": holds but the holder count is ", holders));
    check_counts(absl::StrCat("worker ", worker, " ", when));
  }

  void on_failed(const std::exception_ptr& e, int worker) {
    std::string what;
    switch (classify(e, &what)) {
      case Exit::kCancelled:
        ++cancelled;
        break;
      case Exit::kTimeout:
        ++timed_out;
        break;
      default:
        error(absl::StrCat("worker ", worker, "'s acquire raised ", what));
    }
  }

  const SlotScenario& sc;
  std::unique_ptr<P> p;
  int holders = 0;
  int next_call = 0;               // acquire() calls so far
  std::vector<int> acquisitions;   // call numbers, in acquisition order
  int in_acquire = 0;              // tasks inside an acquire()
  uint64_t exits = 0;              // acquire() calls finished (either way)
  int acquired = 0;
  int cancelled = 0;
  int timed_out = 0;
  bool done = false;
};

template <class P>
Coro<void> scoped_into(P* p, std::optional<LockGuard<P>>* out) {
  out->emplace(co_await p->scoped());
}

template <class P>
Coro<void> slot_step(SlotHarness<P>* h, const AcquireStep* s, int worker) {
  if (s->sleep_ms > 0) co_await sleep(ms(s->sleep_ms));
  const int seq = h->next_call++;
  ++h->in_acquire;
  std::optional<LockGuard<P>> guard;
  bool ok = false;
  std::exception_ptr error;
  try {
    if (s->mode == 0) {
      ok = co_await h->p->acquire();
    } else if (s->mode == 1) {
      guard.emplace(co_await h->p->scoped());
      ok = true;
    } else if (s->mode == 2) {
      ok = co_await wait_for(h->p->acquire(), ms(s->timeout_ms));
    } else {
      co_await wait_for(scoped_into(h->p.get(), &guard), ms(s->timeout_ms));
      ok = guard.has_value();
    }
  } catch (...) {
    error = std::current_exception();
  }
  --h->in_acquire;
  ++h->exits;
  if (error) {
    h->on_failed(error, worker);
    if (guard) h->error(absl::StrCat("worker ", worker, "'s acquire raised but left it a guard"));
    std::string what;
    if (classify(error, &what) == Exit::kTimeout) co_return;
    std::rethrow_exception(error);
  }
  if (!ok) {
    h->error(absl::StrCat("worker ", worker, "'s acquire returned without the primitive"));
    co_return;
  }
  h->on_acquired(seq, worker);
  bool released = false;
  try {
    if (s->hold_ms > 0) co_await sleep(ms(s->hold_ms));
    h->check_held(worker, "after a sleep while holding");
    if (guard && s->early_release) {
      --h->holders;
      released = true;
      guard->release();
      h->check_counts(absl::StrCat("worker ", worker, " released early"));
    }
    if (s->hold2_ms > 0) co_await sleep(ms(s->hold2_ms));
    if (!released) h->check_held(worker, "after a second sleep while holding");
  } catch (...) {
    error = std::current_exception();
  }
  if (!released) {
    --h->holders;
    if (guard) {
      guard.reset();
    } else {
      h->p->release();
    }
    h->check_counts(absl::StrCat("worker ", worker, " released"));
  }
  if (error) std::rethrow_exception(error);
}

template <class P>
Coro<void> slot_worker(SlotHarness<P>* h, const SlotWorker* spec, int worker) {
  for (const AcquireStep& s : spec->steps) {
    std::exception_ptr error;
    try {
      co_await slot_step(h, &s, worker);
    } catch (...) {
      error = std::current_exception();
    }
    if (error && !(spec->survive && is_cancelled_error(error))) std::rethrow_exception(error);
  }
}

template <class P>
Coro<void> slot_monitor(SlotHarness<P>* h) {
  StallWatch watch(h->sc.jitter);
  co_await sleep(StallWatch::kFirstSample);
  while (!h->done) {
    h->check_counts("monitor");
    if (watch.sample(h->in_acquire > 0 && (h->free() || h->holders == 0), h->exits)) {
      h->error(absl::StrCat("lost wake-up: ", h->p->describe(), " with ", h->in_acquire,
                            " task(s) inside acquire() and ", h->holders, " holder(s), getting nowhere"));
      co_return;
    }
    co_await sleep(ms(1));
  }
}

template <class P>
Coro<void> slot_main(SlotHarness<P>* h) {
  const SlotScenario& sc = h->sc;
  std::vector<Task<void>> workers;
  std::vector<Task<void>> helpers;
  for (size_t i = 0; i < sc.workers.size(); ++i) {
    workers.push_back(create_task(slot_worker(h, &sc.workers[i], static_cast<int>(i)),
                                  {.name = absl::StrCat("worker-", i)}));
  }
  for (size_t i = 0; i < sc.workers.size(); ++i) {
    for (int at : sc.workers[i].cancel_at_ms) helpers.push_back(create_task(cancel_at(workers[i], at)));
  }
  Task<void> monitor = create_task(slot_monitor(h), {.name = "monitor"});
  co_await settle_all(h, &workers, "worker");
  for (Task<void>& t : helpers) co_await settle(h, t, "canceller");
  h->done = true;
  co_await settle(h, monitor, "monitor");

  if (h->holders != 0) h->error(absl::StrCat(h->holders, " holders at the end"));
  if constexpr (SlotHarness<P>::kIsLock) {
    if (h->p->describe() != "<Lock 'slot' [unlocked]>") h->error(absl::StrCat("ends as ", h->p->describe()));
    bool refused = false;
    try {
      h->p->release();
    } catch (const std::runtime_error& e) {
      refused = absl::StrContains(e.what(), "Lock is not acquired");
    }
    if (!refused) h->error("release() of an unlocked Lock did not raise \"Lock is not acquired.\"");
  } else {
    const std::string kind = sc.kind == SlotKind::kBounded ? "BoundedSemaphore" : "Semaphore";
    const std::string expected = absl::StrCat("<", kind, " 'slot' [unlocked, value:", sc.capacity, "]>");
    if (h->p->describe() != expected) h->error(absl::StrCat("ends as ", h->p->describe(), ", not ", expected));
    if (sc.kind == SlotKind::kBounded) {
      bool refused = false;
      try {
        h->p->release();
      } catch (const std::invalid_argument&) {
        refused = true;
      }
      if (!refused) h->error("one release() too many did not raise std::invalid_argument");
      if (h->p->value() != sc.capacity) h->error(absl::StrCat("value ", h->p->value(), " after the refused release()"));
    }
  }
  // Still usable, at once.
  const bool ok = co_await h->p->acquire();
  if (!ok) h->error("a final acquire() returned false");
  h->p->release();
}

template <class P>
void check_slot_scenario(const SlotScenario& sc) {
  SlotHarness<P> h(sc);
  sim::RcSimulation sim(property_name(), sim_options(sc.jitter));
  run_sim(h, sim, slot_main(&h));
  if (h.errors.empty()) {
    // Strict FIFO: acquisitions in the order the acquire() calls started.
    for (size_t i = 1; i < h.acquisitions.size(); ++i) {
      if (h.acquisitions[i] < h.acquisitions[i - 1]) {
        h.errors.push_back(absl::StrCat("not FIFO: acquisitions by call number ", ids(h.acquisitions)));
        break;
      }
    }
  }
  RC_CLASSIFY(h.cancelled > 0, "a waiter cancelled");
  RC_CLASSIFY(h.timed_out > 0, "an acquire timed out");
  RC_CLASSIFY(h.acquired > 0 && h.next_call > h.acquired, "some acquire failed");
  fail_on_errors(h);
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, LockIsExclusiveFifoAndLosesNoWaiter, ()) {
  check_slot_scenario<Lock>(*at_least_half_size(gen_slot_scenario(SlotKind::kLock)));
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, SemaphoreBoundsHoldersFifoAndLosesNoWaiter, ()) {
  check_slot_scenario<Semaphore>(*at_least_half_size(gen_slot_scenario(SlotKind::kSemaphore)));
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, BoundedSemaphoreBoundsHoldersFifoAndLosesNoWaiter, ()) {
  check_slot_scenario<Semaphore>(*at_least_half_size(gen_slot_scenario(SlotKind::kBounded)));
}

// ================================================================ Condition

struct ProduceStep {
  int sleep_ms = 0;     // before taking the lock
  int count = 1;        // items appended
  int notify_mode = 0;  // 0 notify(count), 1 notify_all(), 2 count x notify(1), 3 notify(count + 1)
  int hold_ms = 0;      // sleep holding the lock, after notifying
  bool scoped = false;  // scoped() rather than acquire()/release()
};

struct ConsumeStep {
  int sleep_ms = 0;     // before taking the lock
  int mode = 0;         // 0 wait_for(pred), 1 wait_for(cond.wait_for(pred), t)
  int timeout_ms = 0;   // mode 1 (0: cancelled before it starts)
  int hold_ms = 0;      // sleep holding the lock after taking an item
  bool scoped = false;
  int pause_ms = 1;     // after a wait that timed out or was cancelled (survived)
};

struct CondProducer {
  std::vector<ProduceStep> steps;
  int cancel_at_ms = -1;
};

struct CondConsumer {
  std::vector<ConsumeStep> steps;  // cycled until cancelled
  std::vector<int> cancel_at_ms;   // never for consumer 0, which drains the rest
  bool survive = false;            // a CancelledError ends the current step only
};

struct CondScenario {
  bool jitter = false;
  bool shared_lock = false;  // Condition(Lock&) rather than its own lock
  std::vector<CondProducer> producers;
  std::vector<CondConsumer> consumers;
};

void showValue(const ProduceStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", count " << s.count << ", notify " << s.notify_mode << ", hold " << s.hold_ms
     << (s.scoped ? ", scoped" : "") << "}";
}
void showValue(const ConsumeStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms << ", hold " << s.hold_ms
     << (s.scoped ? ", scoped" : "") << ", pause " << s.pause_ms << "}";
}
void showValue(const CondScenario& s, std::ostream& os) {
  os << "jitter " << s.jitter << ", shared lock " << s.shared_lock << "\n";
  for (size_t i = 0; i < s.producers.size(); ++i) {
    os << "  producer " << i << " (cancel at " << s.producers[i].cancel_at_ms << "): ";
    show_list(s.producers[i].steps, os);
    os << "\n";
  }
  for (size_t i = 0; i < s.consumers.size(); ++i) {
    if (i == 0) {
      os << "  consumer 0 (never cancelled): ";
    } else {
      os << "  consumer " << i << " (cancel at ";
      show_ints(s.consumers[i].cancel_at_ms, os);
      os << (s.consumers[i].survive ? ", survives" : "") << "): ";
    }
    show_list(s.consumers[i].steps, os);
    os << "\n";
  }
}

rc::Gen<ProduceStep> gen_produce_step() {
  return rc::gen::build<ProduceStep>(rc::gen::set(&ProduceStep::sleep_ms, rc::gen::inRange(0, 4)),
                                     rc::gen::set(&ProduceStep::count, rc::gen::inRange(1, 4)),
                                     // Mostly the modes that wake exactly as many as needed.
                                     rc::gen::set(&ProduceStep::notify_mode,
                                                  rc::gen::weightedOneOf<int>({{3, rc::gen::just(0)},
                                                                               {1, rc::gen::just(1)},
                                                                               {3, rc::gen::just(2)},
                                                                               {1, rc::gen::just(3)}})),
                                     rc::gen::set(&ProduceStep::hold_ms, rc::gen::inRange(0, 3)),
                                     rc::gen::set(&ProduceStep::scoped, rc::gen::arbitrary<bool>()));
}

rc::Gen<ConsumeStep> gen_consume_step() {
  return rc::gen::build<ConsumeStep>(rc::gen::set(&ConsumeStep::sleep_ms, rc::gen::inRange(0, 3)),
                                     rc::gen::set(&ConsumeStep::mode, rc::gen::inRange(0, 2)),
                                     rc::gen::set(&ConsumeStep::timeout_ms, rc::gen::inRange(0, 5)),
                                     rc::gen::set(&ConsumeStep::hold_ms, rc::gen::inRange(0, 3)),
                                     rc::gen::set(&ConsumeStep::scoped, rc::gen::arbitrary<bool>()),
                                     rc::gen::set(&ConsumeStep::pause_ms, rc::gen::inRange(1, 5)));
}

rc::Gen<CondScenario> gen_cond_scenario() {
  return rc::gen::build<CondScenario>(
      rc::gen::set(&CondScenario::jitter, rc::gen::arbitrary<bool>()),
      rc::gen::set(&CondScenario::shared_lock, rc::gen::arbitrary<bool>()),
      rc::gen::set(&CondScenario::producers,
                   gen_vector<CondProducer>(
                       1, 3,
                       rc::gen::build<CondProducer>(
                           rc::gen::set(&CondProducer::steps, gen_vector<ProduceStep>(0, 6, gen_produce_step())),
                           rc::gen::set(&CondProducer::cancel_at_ms, gen_maybe_at(30))))),
      rc::gen::set(&CondScenario::consumers,
                   gen_vector<CondConsumer>(
                       1, 5,
                       rc::gen::build<CondConsumer>(
                           rc::gen::set(&CondConsumer::steps, gen_vector<ConsumeStep>(1, 4, gen_consume_step())),
                           rc::gen::set(&CondConsumer::cancel_at_ms, gen_cancels(30)),
                           rc::gen::set(&CondConsumer::survive, rc::gen::arbitrary<bool>())))));
}

constexpr int kConsumerId = 100;  // consumer i is kConsumerId + i; producers are 0, 1, ...

struct CondHarness : Report {
  explicit CondHarness(const CondScenario& s) : sc(s) {
    if (s.shared_lock) {
      lock = std::make_unique<Lock>("shared");
      cond = std::make_unique<Condition>(*lock, "items");
    } else {
      cond = std::make_unique<Condition>("items");
    }
  }

  static std::string who_name(int who) {
    return who >= kConsumerId ? absl::StrCat("consumer ", who - kConsumerId) : absl::StrCat("producer ", who);
  }

  // `who` has just got the lock (acquire(), or back from wait()).
  void took_lock(int who, const char* when) {
    if (!cond->locked()) error(absl::StrCat(who_name(who), " ", when, ": the lock is not locked"));
    if (holder != -1) error(absl::StrCat(who_name(who), " ", when, ": ", who_name(holder), " holds the lock"));
    holder = who;
    ++lock_takes;
  }

  void check_holding(int who, const char* when) {
    if (!cond->locked() || holder != who) {
      error(absl::StrCat(who_name(who), " ", when, ": holder ", holder, ", ", cond->describe()));
    }
  }

  // Gives the lock up (release(), or entering wait()).
  void dropping_lock(int who) {
    check_holding(who, "giving the lock up");
    holder = -1;
  }

  // The wait_for predicate: runs with the lock held by the waiter.
  bool predicate() {
    ++predicate_calls;
    if (!cond->locked() || holder != -1) {
      error(absl::StrCat("the predicate runs with holder ", holder, " and ", cond->describe()));
    }
    return !items.empty();
  }

  const CondScenario& sc;
  std::unique_ptr<Lock> lock;
  std::unique_ptr<Condition> cond;
  int holder = -1;                 // who holds the lock outside wait(); -1: nobody
  std::deque<int> items;
  int next_item = 0;
  std::vector<int> produced;
  std::vector<int> taken;
  int in_wait = 0;                 // consumers inside the condition's wait_for
  uint64_t wait_exits = 0;
  uint64_t lock_takes = 0;         // acquisitions of the lock, wait() returning included
  int cancelled_waits = 0;
  int timed_out_waits = 0;
  int predicate_calls = 0;
  bool stopping = false;           // main cancels the consumers: none survives
  bool done = false;
};

Coro<void> produce_once(CondHarness* h, const ProduceStep* s, int who) {
  if (s->sleep_ms > 0) co_await sleep(ms(s->sleep_ms));
  std::optional<LockGuard<Condition>> guard;
  if (s->scoped) {
    guard.emplace(co_await h->cond->scoped());
  } else {
    co_await h->cond->acquire();
  }
  h->took_lock(who, "after acquiring");
  for (int k = 0; k < s->count; ++k) {
    const int id = h->next_item++;
    h->items.push_back(id);
    h->produced.push_back(id);
  }
  switch (s->notify_mode) {
    case 0:
      h->cond->notify(s->count);
      break;
    case 1:
      h->cond->notify_all();
      break;
    case 2:
      for (int k = 0; k < s->count; ++k) h->cond->notify(1);
      break;
    default:
      h->cond->notify(s->count + 1);
      break;
  }
  std::exception_ptr error;
  try {
    if (s->hold_ms > 0) co_await sleep(ms(s->hold_ms));
    h->check_holding(who, "after a sleep while holding");
  } catch (...) {
    error = std::current_exception();
  }
  h->dropping_lock(who);
  if (guard) {
    guard.reset();
  } else {
    h->cond->release();
  }
  if (error) std::rethrow_exception(error);
}

Coro<void> cond_producer(CondHarness* h, const CondProducer* spec, int who) {
  for (const ProduceStep& s : spec->steps) co_await produce_once(h, &s, who);
}

// True if it took an item.
Coro<bool> consume_once(CondHarness* h, const ConsumeStep* s, int who) {
  if (s->sleep_ms > 0) co_await sleep(ms(s->sleep_ms));
  std::optional<LockGuard<Condition>> guard;
  if (s->scoped) {
    guard.emplace(co_await h->cond->scoped());
  } else {
    co_await h->cond->acquire();
  }
  h->took_lock(who, "after acquiring");
  h->dropping_lock(who);  // wait() releases it; the predicate runs with holder -1
  ++h->in_wait;
  auto non_empty = [h] { return h->predicate(); };
  std::exception_ptr error;
  try {
    if (s->mode == 0) {
      co_await h->cond->wait_for(non_empty);
    } else {
      co_await wait_for(h->cond->wait_for(non_empty), ms(s->timeout_ms));
    }
  } catch (...) {
    error = std::current_exception();
  }
  --h->in_wait;
  ++h->wait_exits;
  // Held on every exit path of wait_for: returned, cancelled, timed out.
  h->took_lock(who, error ? "when wait_for raised" : "when wait_for returned");
  bool took = false;
  if (!error) {
    if (h->items.empty()) {
      h->error(absl::StrCat(CondHarness::who_name(who), ": wait_for(non-empty) returned with no item"));
    } else {
      h->taken.push_back(h->items.front());
      h->items.pop_front();
      took = true;
    }
    try {
      if (s->hold_ms > 0) co_await sleep(ms(s->hold_ms));
      h->check_holding(who, "after a sleep while holding");
    } catch (...) {
      error = std::current_exception();
    }
  }
  h->dropping_lock(who);
  if (guard) {
    guard.reset();
  } else {
    h->cond->release();
  }
  if (error) {
    std::string what;
    const Exit exit = classify(error, &what);
    if (exit == Exit::kTimeout) {
      ++h->timed_out_waits;
      co_return took;
    }
    if (exit == Exit::kCancelled) {
      ++h->cancelled_waits;
    } else {
      h->error(absl::StrCat(CondHarness::who_name(who), " raised ", what));
    }
    std::rethrow_exception(error);
  }
  co_return took;
}

Coro<void> cond_consumer(CondHarness* h, const CondConsumer* spec, int who) {
  for (size_t step = 0;; ++step) {
    const ConsumeStep& s = spec->steps[step % spec->steps.size()];
    bool took = false;
    std::exception_ptr error;
    try {
      took = co_await consume_once(h, &s, who);
    } catch (...) {
      error = std::current_exception();
    }
    if (error && (h->stopping || !spec->survive || !is_cancelled_error(error))) std::rethrow_exception(error);
    // After a timeout or a survived cancellation: pause (which also keeps a
    // wait_for(..., 0) from spinning), so that a notification this consumer
    // dropped is not picked up by itself coming straight back.
    if (!took) co_await sleep(ms(s.pause_ms));
  }
}

Coro<void> cond_monitor(CondHarness* h) {
  StallWatch watch(h->sc.jitter);
  co_await sleep(StallWatch::kFirstSample);
  while (!h->done) {
    // A lock taken by anyone (a producer, say) counts as progress.
    const bool stalled = !h->items.empty() && !h->cond->locked() && h->in_wait > 0;
    if (watch.sample(stalled, h->wait_exits + h->lock_takes)) {
      h->error(absl::StrCat("lost notification: ", h->items.size(), " item(s), ", h->cond->describe(), " and ",
                            h->in_wait, " consumer(s) waiting, none waking"));
      co_return;
    }
    co_await sleep(ms(1));
  }
}

Coro<void> cond_main(CondHarness* h) {
  const CondScenario& sc = h->sc;
  std::vector<Task<void>> producers;
  std::vector<Task<void>> consumers;
  std::vector<Task<void>> helpers;
  for (size_t i = 0; i < sc.producers.size(); ++i) {
    producers.push_back(create_task(cond_producer(h, &sc.producers[i], static_cast<int>(i)),
                                    {.name = absl::StrCat("producer-", i)}));
  }
  for (size_t i = 0; i < sc.consumers.size(); ++i) {
    consumers.push_back(create_task(cond_consumer(h, &sc.consumers[i], kConsumerId + static_cast<int>(i)),
                                    {.name = absl::StrCat("consumer-", i)}));
  }
  for (size_t i = 0; i < sc.producers.size(); ++i) {
    if (sc.producers[i].cancel_at_ms >= 0) {
      helpers.push_back(create_task(cancel_at(producers[i], sc.producers[i].cancel_at_ms)));
    }
  }
  // Consumer 0 is never cancelled: it drains the items.
  for (size_t i = 1; i < sc.consumers.size(); ++i) {
    for (int at : sc.consumers[i].cancel_at_ms) helpers.push_back(create_task(cancel_at(consumers[i], at)));
  }
  Task<void> monitor = create_task(cond_monitor(h), {.name = "monitor"});
  co_await settle_all(h, &producers, "producer");
  for (int i = 0; i < 2000 && !h->items.empty(); ++i) co_await sleep(ms(1));
  if (!h->items.empty()) {
    h->error(absl::StrCat(h->items.size(), " item(s) left while consumer 0 runs: ", h->cond->describe()));
  }
  h->stopping = true;
  for (Task<void>& t : consumers) t.cancel();
  co_await settle_all(h, &consumers, "consumer");
  for (Task<void>& t : helpers) co_await settle(h, t, "canceller");
  h->done = true;
  co_await settle(h, monitor, "monitor");
  if (h->holder != -1) h->error(absl::StrCat(CondHarness::who_name(h->holder), " still holds the lock at the end"));
  if (h->cond->describe() != "<Condition 'items' [unlocked]>") h->error(absl::StrCat("ends as ", h->cond->describe()));
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, ConditionHoldsTheLockAndLosesNoItem, ()) {
  CondScenario sc = *at_least_half_size(gen_cond_scenario());
  // Consumer 0 drains what is left once the producers stop: it needs one
  // step that can take an item (wait_for(..., 0) never starts its wait).
  std::vector<ConsumeStep>& steps = sc.consumers[0].steps;
  if (std::all_of(steps.begin(), steps.end(), [](const ConsumeStep& s) { return s.mode == 1 && s.timeout_ms == 0; })) {
    steps[0].mode = 0;
  }
  CondHarness h(sc);
  sim::RcSimulation sim(property_name(), sim_options(sc.jitter));
  run_sim(h, sim, cond_main(&h));
  if (h.errors.empty()) {
    std::vector<int> produced = h.produced;
    std::vector<int> accounted = h.taken;
    accounted.insert(accounted.end(), h.items.begin(), h.items.end());
    std::sort(produced.begin(), produced.end());
    std::sort(accounted.begin(), accounted.end());
    if (std::adjacent_find(accounted.begin(), accounted.end()) != accounted.end()) {
      h.errors.push_back(absl::StrCat("an item was taken twice: ", ids(accounted)));
    }
    if (produced != accounted) {
      h.errors.push_back(absl::StrCat("produced ", ids(produced), " but taken/left ", ids(accounted)));
    }
  }
  RC_CLASSIFY(h.cancelled_waits > 0, "a wait cancelled");
  RC_CLASSIFY(h.timed_out_waits > 0, "a wait timed out");
  fail_on_errors(h);
}

// ================================================================ Barrier

struct BarrierStep {
  int sleep_ms = 0;    // before wait()
  int mode = 0;        // 0 wait(), 1 wait_for(wait(), t)
  int timeout_ms = 0;  // mode 1
};

struct BarrierWorker {
  std::vector<BarrierStep> steps;
  int cancel_at_ms = -1;
};

struct BarrierAction {
  int at_ms = 0;
  bool abort = false;  // abort(), else reset()
};

struct BarrierScenario {
  bool jitter = false;
  int parties = 1;
  std::vector<BarrierWorker> workers;
  std::vector<BarrierAction> actions;
  bool final_abort = false;  // leftover waiters end by abort(), else by cancellation
};

void showValue(const BarrierStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms << "}";
}
void showValue(const BarrierAction& a, std::ostream& os) { os << (a.abort ? "abort" : "reset") << " at " << a.at_ms; }
void showValue(const BarrierScenario& s, std::ostream& os) {
  os << "jitter " << s.jitter << ", parties " << s.parties << ", actions ";
  show_list(s.actions, os);
  os << ", leftovers end by " << (s.final_abort ? "abort" : "cancel") << "\n";
  for (size_t i = 0; i < s.workers.size(); ++i) {
    os << "  worker " << i << " (cancel at " << s.workers[i].cancel_at_ms << "): ";
    show_list(s.workers[i].steps, os);
    os << "\n";
  }
}

rc::Gen<BarrierScenario> gen_barrier_scenario() {
  const auto step = rc::gen::build<BarrierStep>(rc::gen::set(&BarrierStep::sleep_ms, rc::gen::inRange(0, 4)),
                                                rc::gen::set(&BarrierStep::mode, rc::gen::inRange(0, 2)),
                                                rc::gen::set(&BarrierStep::timeout_ms, rc::gen::inRange(0, 6)));
  const auto worker = rc::gen::build<BarrierWorker>(rc::gen::set(&BarrierWorker::steps, gen_vector<BarrierStep>(1, 6, step)),
                                                    rc::gen::set(&BarrierWorker::cancel_at_ms, gen_maybe_at(30)));
  const auto action = rc::gen::build<BarrierAction>(rc::gen::set(&BarrierAction::at_ms, rc::gen::inRange(0, 30)),
                                                    rc::gen::set(&BarrierAction::abort, rc::gen::arbitrary<bool>()));
  return rc::gen::build<BarrierScenario>(
      rc::gen::set(&BarrierScenario::jitter, rc::gen::arbitrary<bool>()),
      rc::gen::set(&BarrierScenario::parties, rc::gen::inRange(1, 5)),
      rc::gen::set(&BarrierScenario::workers, gen_vector<BarrierWorker>(1, 6, worker)),
      rc::gen::set(&BarrierScenario::actions,
                   rc::gen::weightedOneOf<std::vector<BarrierAction>>(
                       {{1, rc::gen::just(std::vector<BarrierAction>{})}, {2, gen_vector<BarrierAction>(1, 3, action)}})),
      rc::gen::set(&BarrierScenario::final_abort, rc::gen::arbitrary<bool>()));
}

struct BarrierHarness : Report {
  explicit BarrierHarness(const BarrierScenario& s) : sc(s), barrier(s.parties, "sync") {}

  int parties() const { return sc.parties; }

  // The indices one release let through: the releaser's (parties - 1)
  // first, then the others' as they leave.
  struct Cycle {
    int number = 0;
    std::vector<int> indices;
    uint64_t disturbances_before = 0;  // disturbances at the previous release
    uint64_t leaves_before = 0;        // cancelled/timed-out waits at the previous release
  };

  void on_return(int index, int worker) {
    ++progress;
    if (index < 0 || index >= parties()) {
      error(absl::StrCat("worker ", worker, " got index ", index, " from ", barrier.describe()));
      return;
    }
    if (index == parties() - 1) {
      close_cycle();
      cycle = Cycle{++cycles, {index}, disturbances_at_release, leaves_at_release};
      disturbances_at_release = disturbances;
      leaves_at_release = leaves;
      return;
    }
    if (!cycle) {
      error(absl::StrCat("worker ", worker, " got index ", index, " before any release"));
      return;
    }
    if (std::count(cycle->indices.begin(), cycle->indices.end(), index) > 0) {
      if (leaves == cycle->leaves_before) {
        error(absl::StrCat("worker ", worker, " got index ", index, " twice in cycle ", cycle->number,
                           " with no cancellation or timeout: ", ids(cycle->indices)));
      } else {
        ++reused_indices;
      }
    }
    cycle->indices.push_back(index);
    if (static_cast<int>(cycle->indices.size()) > parties()) {
      error(absl::StrCat("cycle ", cycle->number, " let ", cycle->indices.size(), " tasks through: ",
                         ids(cycle->indices)));
    }
  }

  // A cycle with no disturbance from the release before it until now let
  // exactly 0..parties-1 through.
  void close_cycle() {
    if (!cycle) return;
    if (disturbances == cycle->disturbances_before) {
      std::vector<int> got = cycle->indices;
      std::sort(got.begin(), got.end());
      std::vector<int> all;
      for (int i = 0; i < parties(); ++i) all.push_back(i);
      if (got != all) {
        error(absl::StrCat("undisturbed cycle ", cycle->number, " returned indices ", ids(cycle->indices)));
      }
      ++clean_cycles;
    }
    cycle.reset();
  }

  // What must hold whenever nothing can move (no task ready): "" if it does.
  std::string idle_problem() const {
    switch (barrier.state()) {
      case Barrier::State::kDraining:
      case Barrier::State::kResetting:
        return absl::StrCat("stuck: ", barrier.describe(), " with ", in_wait, " task(s) in wait()");
      case Barrier::State::kFilling:
        if (barrier.n_waiting() != in_wait || in_wait >= parties()) {
          return absl::StrCat(barrier.describe(), " with ", in_wait, " task(s) blocked in wait()");
        }
        break;
      case Barrier::State::kBroken:
        if (in_wait != 0) return absl::StrCat(in_wait, " task(s) blocked in wait() on a broken barrier");
        break;
    }
    return {};
  }

  const BarrierScenario& sc;
  Barrier barrier;
  bool done = false;             // stops the monitor
  int in_wait = 0;               // tasks inside wait()
  uint64_t progress = 0;         // wait() calls started and ended
  uint64_t disturbances = 0;     // wait() raising anything, abort()/reset() calls
  uint64_t leaves = 0;           // wait() raising CancelledError/TimeoutError
  uint64_t disturbances_at_release = 0;
  uint64_t leaves_at_release = 0;
  std::optional<Cycle> cycle;
  int cycles = 0;
  int clean_cycles = 0;
  int reused_indices = 0;
  int broken = 0;
};

Coro<void> barrier_worker(BarrierHarness* h, const BarrierWorker* spec, int worker) {
  for (const BarrierStep& s : spec->steps) {
    if (s.sleep_ms > 0) co_await sleep(ms(s.sleep_ms));
    ++h->in_wait;
    ++h->progress;
    int index = -1;
    std::exception_ptr error;
    try {
      if (s.mode == 0) {
        index = co_await h->barrier.wait();
      } else {
        index = co_await wait_for(h->barrier.wait(), ms(s.timeout_ms));
      }
    } catch (...) {
      error = std::current_exception();
    }
    --h->in_wait;
    ++h->progress;
    if (!error) {
      h->on_return(index, worker);
      continue;
    }
    ++h->disturbances;
    std::string what;
    switch (classify(error, &what)) {
      case Exit::kBroken:
        ++h->broken;
        break;
      case Exit::kTimeout:
        ++h->leaves;
        break;
      case Exit::kCancelled:
        ++h->leaves;
        std::rethrow_exception(error);
      case Exit::kOther:
        h->error(absl::StrCat("worker ", worker, "'s wait() raised ", what));
        break;
    }
  }
}

Coro<void> barrier_action(BarrierHarness* h, const BarrierAction* a) {
  co_await sleep(ms(a->at_ms));
  ++h->disturbances;
  if (a->abort) {
    co_await h->barrier.abort();
    // abort() returns in the step that made the change.
    if (!h->barrier.broken()) h->error(absl::StrCat("after abort(): ", h->barrier.describe()));
  } else {
    co_await h->barrier.reset();
    // Tasks inside wait() make it RESETTING (they raise BrokenBarrierError
    // on their way out); with nobody inside it is FILLING at once.
    const Barrier::State state = h->barrier.state();
    if (!(state == Barrier::State::kResetting || (state == Barrier::State::kFilling && h->barrier.n_waiting() == 0))) {
      h->error(absl::StrCat("after reset(): ", h->barrier.describe()));
    }
  }
  ++h->disturbances;
}

Coro<void> barrier_monitor(BarrierHarness* h) {
  StallWatch watch(h->sc.jitter);
  co_await sleep(StallWatch::kFirstSample);
  while (!h->done) {
    const std::string problem = h->idle_problem();
    if (watch.sample(!problem.empty(), h->progress)) {
      h->error(absl::StrCat("while idle: ", problem));
      co_return;
    }
    co_await sleep(ms(1));
  }
}

Coro<void> fresh_wait(Barrier* b, int* out) { *out = co_await b->wait(); }

Coro<void> barrier_main(BarrierHarness* h) {
  const BarrierScenario& sc = h->sc;
  std::vector<Task<void>> workers;
  std::vector<Task<void>> helpers;
  for (size_t i = 0; i < sc.workers.size(); ++i) {
    workers.push_back(create_task(barrier_worker(h, &sc.workers[i], static_cast<int>(i)),
                                  {.name = absl::StrCat("worker-", i)}));
  }
  for (size_t i = 0; i < sc.workers.size(); ++i) {
    if (sc.workers[i].cancel_at_ms >= 0) helpers.push_back(create_task(cancel_at(workers[i], sc.workers[i].cancel_at_ms)));
  }
  for (const BarrierAction& a : sc.actions) helpers.push_back(create_task(barrier_action(h, &a)));
  Task<void> monitor = create_task(barrier_monitor(h), {.name = "monitor"});
  for (Task<void>& t : helpers) co_await settle(h, t, "helper");

  // Wait until everything that can move has moved: every worker finished or
  // blocked in wait(), with no wait() starting or ending for a while (longer
  // than any timeout).
  const int quiet_needed = quiet_ms(sc.jitter);
  uint64_t last_progress = ~uint64_t{0};
  int quiet = 0;
  for (int i = 0; i < 10000 && quiet < quiet_needed; ++i) {
    co_await sleep(ms(1));
    int alive = 0;
    for (const Task<void>& t : workers) alive += t.done() ? 0 : 1;
    quiet = (alive == h->in_wait && h->progress == last_progress) ? quiet + 1 : 0;
    last_progress = h->progress;
  }
  if (quiet < quiet_needed) h->error("the workers never settled");
  const std::string problem = h->idle_problem();
  if (!problem.empty()) h->error(problem);
  h->done = true;
  co_await settle(h, monitor, "monitor");
  h->close_cycle();

  // Release the leftovers.
  ++h->disturbances;
  if (sc.final_abort) {
    co_await h->barrier.abort();
  } else {
    for (Task<void>& t : workers) t.cancel();
  }
  co_await settle_all(h, &workers, "worker");
  if (h->in_wait != 0 || h->barrier.n_waiting() != 0) {
    h->error(absl::StrCat("after releasing the leftovers: ", h->in_wait, " in wait(), ", h->barrier.describe()));
  }

  // Usable again after reset(): one full round.
  co_await h->barrier.reset();
  if (h->barrier.state() != Barrier::State::kFilling) h->error(absl::StrCat("after reset(): ", h->barrier.describe()));
  std::vector<int> got(static_cast<size_t>(sc.parties), -1);
  std::vector<Task<void>> round;
  for (int i = 0; i < sc.parties; ++i) round.push_back(create_task(fresh_wait(&h->barrier, &got[static_cast<size_t>(i)])));
  for (Task<void>& t : round) co_await settle(h, t, "fresh waiter");
  std::sort(got.begin(), got.end());
  for (int i = 0; i < sc.parties; ++i) {
    if (got[static_cast<size_t>(i)] != i) {
      h->error(absl::StrCat("a fresh round after reset() got indices ", ids(got)));
      break;
    }
  }
  if (h->barrier.state() != Barrier::State::kFilling || h->barrier.n_waiting() != 0) {
    h->error(absl::StrCat("after a fresh round: ", h->barrier.describe()));
  }
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, BarrierHandsOutEachIndexOncePerCycle, ()) {
  const BarrierScenario sc = *at_least_half_size(gen_barrier_scenario());
  BarrierHarness h(sc);
  sim::RcSimulation sim(property_name(), sim_options(sc.jitter));
  run_sim(h, sim, barrier_main(&h));
  RC_CLASSIFY(h.clean_cycles > 0, "a clean full cycle");
  RC_CLASSIFY(h.cycles > h.clean_cycles, "a disturbed cycle");
  RC_CLASSIFY(h.broken > 0, "BrokenBarrierError");
  RC_CLASSIFY(h.reused_indices > 0, "an index reused after a cancellation");
  fail_on_errors(h);
}

// asyncio's Barrier (and so ours) hands the index of a waiter cancelled
// while the barrier fills to the next arrival: CPython's
// test_filling_tasks_cancel_one schedule returns indices 1, 1, 2. The
// property above allows a repeated index only after such a cancellation.
TEST(SyncProperty, FillingCancelReusesIndex) {
  Barrier barrier(3);
  std::vector<int> got(3, -1);
  sim::run(
      [](Barrier* b, std::vector<int>* out) -> Coro<void> {
        Task<void> t1 = create_task(fresh_wait(b, &(*out)[0]));
        co_await sleep(absl::ZeroDuration());
        Task<void> t2 = create_task(fresh_wait(b, &(*out)[1]));
        co_await sleep(absl::ZeroDuration());
        EXPECT_EQ(b->n_waiting(), 2);
        t1.cancel();
        co_await sleep(absl::ZeroDuration());
        EXPECT_EQ(b->n_waiting(), 1);
        Task<void> t3 = create_task(fresh_wait(b, &(*out)[0]));
        co_await sleep(absl::ZeroDuration());
        Task<void> t4 = create_task(fresh_wait(b, &(*out)[2]));
        co_await t2;
        co_await t3;
        co_await t4;
        EXPECT_TRUE(t1.cancelled());
      }(&barrier, &got),
      {.seed = 1});
  EXPECT_EQ(got, (std::vector<int>{1, 1, 2}));
}

// ================================================================ Event

struct EventStep {
  int sleep_ms = 0;    // before wait()
  int mode = 0;        // 0 wait(), 1 wait_for(wait(), t)
  int timeout_ms = 0;  // mode 1
};

struct EventWaiter {
  std::vector<EventStep> steps;
  int cancel_at_ms = -1;
};

struct EventAction {
  int at_ms = 0;
  int kind = 0;  // 0 set(), 1 clear(), 2 set(); clear(), 3 set(); sleep(0); clear()
};

struct EventScenario {
  bool jitter = false;
  std::vector<EventWaiter> waiters;
  std::vector<EventAction> actions;
};

void showValue(const EventStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms << "}";
}
void showValue(const EventAction& a, std::ostream& os) {
  static const char* const kNames[] = {"set", "clear", "set;clear", "set;sleep0;clear"};
  os << kNames[a.kind] << " at " << a.at_ms;
}
void showValue(const EventScenario& s, std::ostream& os) {
  os << "jitter " << s.jitter << ", actions ";
  show_list(s.actions, os);
  os << "\n";
  for (size_t i = 0; i < s.waiters.size(); ++i) {
    os << "  waiter " << i << " (cancel at " << s.waiters[i].cancel_at_ms << "): ";
    show_list(s.waiters[i].steps, os);
    os << "\n";
  }
}

rc::Gen<EventScenario> gen_event_scenario() {
  const auto step = rc::gen::build<EventStep>(rc::gen::set(&EventStep::sleep_ms, rc::gen::inRange(0, 4)),
                                              rc::gen::set(&EventStep::mode, rc::gen::inRange(0, 2)),
                                              rc::gen::set(&EventStep::timeout_ms, rc::gen::inRange(0, 6)));
  const auto waiter = rc::gen::build<EventWaiter>(rc::gen::set(&EventWaiter::steps, gen_vector<EventStep>(1, 5, step)),
                                                  rc::gen::set(&EventWaiter::cancel_at_ms, gen_maybe_at(25)));
  const auto action = rc::gen::build<EventAction>(rc::gen::set(&EventAction::at_ms, rc::gen::inRange(0, 25)),
                                                  rc::gen::set(&EventAction::kind, rc::gen::inRange(0, 4)));
  return rc::gen::build<EventScenario>(
                                       rc::gen::set(&EventScenario::jitter, rc::gen::arbitrary<bool>()),
                                       rc::gen::set(&EventScenario::waiters, gen_vector<EventWaiter>(1, 5, waiter)),
                                       rc::gen::set(&EventScenario::actions, gen_vector<EventAction>(0, 6, action)));
}

struct EventHarness : Report {
  explicit EventHarness(const EventScenario& s) : sc(s), event("flag") {}

  struct Attempt {
    int waiter = 0;
    bool was_set = false;  // the event was set when wait() was called
    bool waiting = true;
    int64_t set_us = -1;   // when set() was first called during the wait
  };

  void set() {
    const int64_t now = now_us();
    for (Attempt& a : attempts) {
      if (a.waiting && a.set_us < 0) a.set_us = now;
    }
    event.set();
    ++sets;
  }

  // Cancelled or timed out at `now` although set() was called during the
  // wait: fine only at the instant of that set() (the cancellation raced
  // with it), or shortly after under step jitter.
  void check_not_lost(const Attempt& a, const char* how) {
    const int64_t grace_us = sc.jitter ? 5000 : 0;
    if (a.set_us >= 0 && now_us() - a.set_us > grace_us) {
      error(absl::StrCat("waiter ", a.waiter, " ", how, " although set() was called at t=", a.set_us,
                         "us while it waited"));
    }
  }

  // A wait() pending although set() was called during it ("" if none).
  std::string lost_waiter() const {
    for (const Attempt& a : attempts) {
      if (a.waiting && a.set_us >= 0) {
        return absl::StrCat("waiter ", a.waiter, " still waits although set() was called at t=", a.set_us, "us");
      }
    }
    return {};
  }

  const EventScenario& sc;
  Event event;
  bool done = false;  // stops the monitor
  std::deque<Attempt> attempts;
  int in_wait = 0;
  uint64_t progress = 0;
  int sets = 0;
  int woken_by_set = 0;
};

Coro<void> event_waiter(EventHarness* h, const EventWaiter* spec, int waiter) {
  for (const EventStep& s : spec->steps) {
    if (s.sleep_ms > 0) co_await sleep(ms(s.sleep_ms));
    EventHarness::Attempt& a = h->attempts.emplace_back();
    a.waiter = waiter;
    a.was_set = h->event.is_set();
    ++h->in_wait;
    ++h->progress;
    bool result = false;
    std::exception_ptr error;
    try {
      if (s.mode == 0) {
        result = co_await h->event.wait();
      } else {
        result = co_await wait_for(h->event.wait(), ms(s.timeout_ms));
      }
    } catch (...) {
      error = std::current_exception();
    }
    --h->in_wait;
    ++h->progress;
    a.waiting = false;
    if (!error) {
      if (!result) h->error(absl::StrCat("waiter ", waiter, "'s wait() returned false"));
      if (!a.was_set && a.set_us < 0) {
        h->error(absl::StrCat("waiter ", waiter, "'s wait() returned but set() was not called while it waited"));
      }
      if (!a.was_set) ++h->woken_by_set;
      continue;
    }
    std::string what;
    switch (classify(error, &what)) {
      case Exit::kTimeout:
        h->check_not_lost(a, "timed out");
        break;
      case Exit::kCancelled:
        h->check_not_lost(a, "was cancelled");
        std::rethrow_exception(error);
      default:
        h->error(absl::StrCat("waiter ", waiter, "'s wait() raised ", what));
        break;
    }
  }
}

Coro<void> event_monitor(EventHarness* h) {
  StallWatch watch(h->sc.jitter);
  co_await sleep(StallWatch::kFirstSample);
  while (!h->done) {
    const std::string lost = h->lost_waiter();
    if (watch.sample(!lost.empty(), h->progress)) {
      h->error(lost);
      co_return;
    }
    co_await sleep(ms(1));
  }
}

Coro<void> event_action(EventHarness* h, const EventAction* a) {
  co_await sleep(ms(a->at_ms));
  switch (a->kind) {
    case 0:
      h->set();
      break;
    case 1:
      h->event.clear();
      break;
    case 2:
      h->set();
      h->event.clear();
      break;
    default:
      h->set();
      co_await sleep(absl::ZeroDuration());
      h->event.clear();
      break;
  }
}

Coro<void> event_main(EventHarness* h) {
  const EventScenario& sc = h->sc;
  std::vector<Task<void>> waiters;
  std::vector<Task<void>> helpers;
  for (size_t i = 0; i < sc.waiters.size(); ++i) {
    waiters.push_back(create_task(event_waiter(h, &sc.waiters[i], static_cast<int>(i)),
                                  {.name = absl::StrCat("waiter-", i)}));
  }
  for (size_t i = 0; i < sc.waiters.size(); ++i) {
    if (sc.waiters[i].cancel_at_ms >= 0) helpers.push_back(create_task(cancel_at(waiters[i], sc.waiters[i].cancel_at_ms)));
  }
  for (const EventAction& a : sc.actions) helpers.push_back(create_task(event_action(h, &a)));
  Task<void> monitor = create_task(event_monitor(h), {.name = "monitor"});
  for (Task<void>& t : helpers) co_await settle(h, t, "helper");

  // Until every waiter finished or blocks in wait() for good.
  const int quiet_needed = quiet_ms(sc.jitter);
  uint64_t last_progress = ~uint64_t{0};
  int quiet = 0;
  for (int i = 0; i < 10000 && quiet < quiet_needed; ++i) {
    co_await sleep(ms(1));
    int alive = 0;
    for (const Task<void>& t : waiters) alive += t.done() ? 0 : 1;
    quiet = (alive == h->in_wait && h->progress == last_progress) ? quiet + 1 : 0;
    last_progress = h->progress;
  }
  if (quiet < quiet_needed) h->error("the waiters never settled");
  h->done = true;
  co_await settle(h, monitor, "monitor");
  const std::string lost = h->lost_waiter();
  if (!lost.empty()) h->error(lost);
  if (h->event.is_set() && h->in_wait > 0) {
    h->error(absl::StrCat(h->in_wait, " waiter(s) blocked on a set event: ", h->event.describe()));
  }
  // Release the rest: every pending wait() returns.
  h->set();
  co_await settle_all(h, &waiters, "waiter");
  if (h->in_wait != 0 || h->event.describe() != "<Event 'flag' [set]>") {
    h->error(absl::StrCat("ends with ", h->in_wait, " in wait(): ", h->event.describe()));
  }
}

TWINLOOP_RC_GTEST_PROP(SyncProperty, EventWakesEveryWaiterPendingAtSet, ()) {
  const EventScenario sc = *at_least_half_size(gen_event_scenario());
  EventHarness h(sc);
  sim::RcSimulation sim(property_name(), sim_options(sc.jitter));
  run_sim(h, sim, event_main(&h));
  RC_CLASSIFY(h.woken_by_set > 0, "a waiter woken by set()");
  fail_on_errors(h);
}

}  // namespace
}  // namespace twinloop
