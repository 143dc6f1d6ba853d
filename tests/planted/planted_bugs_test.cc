// Three realistic async bugs, planted on purpose. These tests FAIL: they are
// tagged "manual" (not part of `bazel test //...`) and are run by
// planted_driver_test, which expects the harness to find each bug within its
// default seed count, print a command that reproduces it, and shrink it.
//
// Built four times: as planted_bugs_test, and with one unrelated edit made
// first in every test body (tests/planted/BUILD):
//   TWINLOOP_PLANTED_EDIT_EXTRA_TASK       an extra task started first (a
//                                          metrics reporter with its own
//                                          sleeps, executor work and fault point)
//   TWINLOOP_PLANTED_EDIT_EXTRA_TO_THREAD  an extra to_thread call first
//   TWINLOOP_PLANTED_EDIT_EXTRA_TIMER      an extra timer first
// A replay file (and a seed) recorded by the first binary must still
// reproduce the failure in the others: decisions are keyed by the drawing
// task's creation path, their site and their occurrence in that task, none of
// which the edits change (docs/testing.md, "Stable decision keys").
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::planted {
namespace {

// The extra task: a reporter that wakes up now and then, reads a gauge on
// the executor and may be slowed down by a fault point of its own. It
// touches none of the state below.
[[maybe_unused]] Coro<void> metrics_reporter() {
  for (int i = 0; i < 3; ++i) {
    co_await sleep(absl::Milliseconds(7));
    co_await to_thread([] {});
    if (buggify("planted.metrics_slow")) co_await sleep(absl::Milliseconds(3));
  }
}

// The unrelated edit, the first statement of every test body.
#if defined(TWINLOOP_PLANTED_EDIT_EXTRA_TASK)
#define UNRELATED_EDIT() Task<void> unrelated_metrics = create_task(metrics_reporter())
#elif defined(TWINLOOP_PLANTED_EDIT_EXTRA_TO_THREAD)
#define UNRELATED_EDIT() co_await to_thread([] {})
#elif defined(TWINLOOP_PLANTED_EDIT_EXTRA_TIMER)
#define UNRELATED_EDIT() get_running_loop().call_later(absl::Milliseconds(1), [] {})
#else
#define UNRELATED_EDIT() static_cast<void>(0)
#endif

// ---------------------------------------------------------------- 1. lost update

// An account store whose reads and writes each take a (simulated) round
// trip to a database on the executor.
class Accounts {
 public:
  Coro<int> read(const std::string& who) {
    co_await to_thread([] {});
    co_return balance_[who];
  }
  Coro<void> write(const std::string& who, int value) {
    co_await to_thread([] {});
    balance_[who] = value;
  }
  int total() const {
    int t = 0;
    for (const auto& [who, v] : balance_) t += v;
    return t;
  }
  void open(const std::string& who, int value) { balance_[who] = value; }

 private:
  std::map<std::string, int> balance_;
};

// BUG: read-modify-write across an await, no lock. Two deposits to the same
// account can both read the old balance; one update is lost. It happens only
// when the second deposit's read completes before the first one's write, so
// it depends on executor latencies.
Coro<void> deposit(Accounts* db, std::string who, int amount, absl::Duration start) {
  co_await sleep(start);
  const int balance = co_await db->read(who);
  co_await db->write(who, balance + amount);
}

TWINLOOP_SIM_TEST(Planted, LostUpdateAcrossAnAwait) {
  UNRELATED_EDIT();
  Accounts db;
  db.open("alice", 100);
  Task<void> a = create_task(deposit(&db, "alice", 10, absl::Milliseconds(0)));
  Task<void> b = create_task(deposit(&db, "alice", 20, absl::Milliseconds(12)));
  co_await a;
  co_await b;
  EXPECT_EQ(db.total(), 130) << "a deposit was lost";
}

// ---------------------------------------------------------------- 2. check-then-act, wrong lock

// A cache in front of a slow loader. The invariant: each key is loaded once.
class Cache {
 public:
  // Readers take the read-path lock...
  Coro<int> get(const std::string& key) {
    auto guard = co_await read_lock_.scoped();
    co_return co_await fill(key);
  }
  // ...and the refresher takes the *refresh* lock. BUG: the check-then-act
  // in fill() is guarded by whichever lock the caller took, so a reader and
  // the refresher can both see the key missing and both load it.
  Coro<int> refresh(const std::string& key) {
    auto guard = co_await refresh_lock_.scoped();
    co_return co_await fill(key);
  }
  int loads(const std::string& key) const {
    auto it = loads_.find(key);
    return it == loads_.end() ? 0 : it->second;
  }

 private:
  Coro<int> fill(const std::string& key) {
    if (!values_.count(key)) {  // check
      ++loads_[key];
      co_await sleep(absl::Milliseconds(5));  // the load
      values_[key] = static_cast<int>(key.size());  // act
    }
    co_return values_[key];
  }

  Lock read_lock_{"cache.read"};
  Lock refresh_lock_{"cache.refresh"};
  std::map<std::string, int> values_;
  std::map<std::string, int> loads_;
};

Coro<void> reader(Cache* cache, absl::Duration start) {
  co_await sleep(start);
  co_await cache->get("config");
}

Coro<void> refresher(Cache* cache, absl::Duration start) {
  co_await sleep(start);
  // The refresh is triggered by an external event whose timing varies.
  if (buggify("planted.refresh_early")) co_await sleep(absl::Milliseconds(1));
  co_await cache->refresh("config");
}

TWINLOOP_SIM_TEST(Planted, CheckThenActUnderTheWrongLock) {
  UNRELATED_EDIT();
  Cache cache;
  Task<void> r1 = create_task(reader(&cache, absl::Milliseconds(2)));
  Task<void> r2 = create_task(reader(&cache, absl::Milliseconds(3)));
  Task<void> f = create_task(refresher(&cache, absl::Milliseconds(5)));
  co_await r1;
  co_await r2;
  co_await f;
  EXPECT_EQ(cache.loads("config"), 1) << "the key was loaded more than once";
}

// ---------------------------------------------------------------- 3. a timeout leaks a held lock

// BUG: acquire/release by hand around a call with a timeout. When the call
// times out, TimeoutError skips the release: the lock stays held forever and
// the next user deadlocks.
Coro<void> flush(Lock* lock, int* flushed) {
  co_await lock->acquire();
  try {
    // Write the buffered records, then sync them; both go to storage on the
    // executor, and the sync is usually fast.
    co_await to_thread([] {});
    co_await wait_for(to_thread([] {}), absl::Milliseconds(8));
  } catch (const TimeoutError&) {
    co_return;  // gives up... holding the lock
  }
  ++*flushed;
  lock->release();
}

TWINLOOP_SIM_TEST(Planted, TimeoutLeaksAHeldLock) {
  UNRELATED_EDIT();
  Lock lock("journal");
  int flushed = 0;
  for (int i = 0; i < 3; ++i) {
    Task<void> t = create_task(flush(&lock, &flushed));
    co_await t;
  }
  EXPECT_GE(flushed, 1);
}

}  // namespace
}  // namespace twinloop::planted
