#include "twinloop/bench/sync_workloads.h"

#include <chrono>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/bench/bench_util.h"

namespace twinloop_bench {

using twinloop::Coro;
using twinloop::Lock;
using twinloop::LockGuard;
using twinloop::Queue;
using twinloop::Task;

namespace {

// ---------------------------------------------------------------- queue ping-pong
// asyncio_anchors.py's pingpong, statement for statement.
Coro<void> queue_ping(Queue<long>& q1, Queue<long>& q2, long rounds, long& sum) {
  for (long i = 0; i < rounds; ++i) {
    co_await q1.put(i);
    const long v = co_await q2.get();
    sum += v;
  }
}

Coro<void> queue_pong(Queue<long>& q1, Queue<long>& q2, long rounds) {
  for (long i = 0; i < rounds; ++i) {
    const long v = co_await q1.get();
    co_await q2.put(v + 1);
  }
}

Coro<PingPongResult> queue_pingpong_main(long n, int64_t maxsize) {
  PingPongResult r;
  r.handoffs = n;
  long sum = 0;
  const double t0 = now_s();
  {
    Queue<long> q1(maxsize), q2(maxsize);
    Task<void> a = twinloop::create_task(queue_ping(q1, q2, n / 2, sum));
    Task<void> b = twinloop::create_task(queue_pong(q1, q2, n / 2));
    co_await a;
    co_await b;
  }
  r.wall_s = now_s() - t0;
  r.check = sum;
  co_return r;
}

// ---------------------------------------------------------------- queue throughput
Coro<void> producer(Queue<long>& q, long n) {
  for (long i = 0; i < n; ++i) co_await q.put(i);
}

Coro<void> consumer(Queue<long>& q, long n, QueueThroughputResult& r) {
  for (long i = 0; i < n; ++i) {
    const long v = co_await q.get();
    if (v != i) ++r.out_of_order;
    r.check += v;
  }
}

Coro<QueueThroughputResult> queue_throughput_main(long n, int64_t maxsize) {
  QueueThroughputResult r;
  r.items = n;
  r.maxsize = maxsize;
  const double t0 = now_s();
  {
    Queue<long> q(maxsize);
    Task<void> p = twinloop::create_task(producer(q, n));
    Task<void> c = twinloop::create_task(consumer(q, n, r));
    co_await p;
    co_await c;
  }
  r.wall_s = now_s() - t0;
  co_return r;
}

// ---------------------------------------------------------------- lock
struct LockShared {
  Lock lock;
  long inside = 0;
  long last_holder = -1;
  LockResult* r = nullptr;

  void enter(long id) {
    if (inside++ != 0) ++r->overlaps;
    if (last_holder != id) ++r->handovers;
    last_holder = id;
    ++r->check;
  }
  void leave() { --inside; }
};

Coro<void> lock_user(LockShared& s, long id, long rounds, bool yield_inside) {
  for (long i = 0; i < rounds; ++i) {
    const bool acquired = co_await s.lock.acquire();
    if (!acquired) throw std::logic_error("Lock::acquire() returned false");
    s.enter(id);
    if (yield_inside) co_await twinloop::sleep(absl::ZeroDuration());
    s.leave();
    s.lock.release();
  }
}

Coro<void> scoped_lock_user(LockShared& s, long id, long rounds, bool yield_inside) {
  for (long i = 0; i < rounds; ++i) {
    LockGuard<Lock> held = co_await s.lock.scoped();
    s.enter(id);
    if (yield_inside) co_await twinloop::sleep(absl::ZeroDuration());
    s.leave();
  }  // ~LockGuard releases
}

Coro<LockResult> lock_main(long tasks, long rounds, LockStyle style, bool yield_inside) {
  LockResult r;
  r.tasks = tasks;
  r.rounds = rounds;
  r.pairs = tasks * rounds;
  const double t0 = now_s();
  {
    LockShared s;
    s.r = &r;
    std::vector<Task<void>> all;
    all.reserve(static_cast<size_t>(tasks));
    for (long t = 0; t < tasks; ++t) {
      all.push_back(twinloop::create_task(style == LockStyle::kAcquire
                                              ? lock_user(s, t, rounds, yield_inside)
                                              : scoped_lock_user(s, t, rounds, yield_inside)));
    }
    for (Task<void>& t : all) co_await t;
    if (s.lock.locked()) throw std::logic_error("lock still held after every task finished");
  }
  r.wall_s = now_s() - t0;
  co_return r;
}

}  // namespace

PingPongResult queue_pingpong(Loop loop, long n, int64_t maxsize) {
  return run_on(loop, queue_pingpong_main(n, maxsize));
}

QueueThroughputResult queue_throughput(Loop loop, long n, int64_t maxsize) {
  return run_on(loop, queue_throughput_main(n, maxsize));
}

long queue_throughput_check(long n) { return n * (n - 1) / 2; }

std::string_view lock_style_name(LockStyle style) {
  return style == LockStyle::kAcquire ? "acquire" : "scoped";
}

LockResult lock_rounds(Loop loop, long tasks, long rounds, LockStyle style, bool yield_inside) {
  if (tasks < 1 || rounds < 0) throw std::invalid_argument("lock_rounds: tasks >= 1, rounds >= 0");
  return run_on(loop, lock_main(tasks, rounds, style, yield_inside));
}

}  // namespace twinloop_bench
