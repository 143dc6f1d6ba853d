// Property tests for api/queues.h under the simulated loop.
//
// RapidCheck generates a scenario: producers putting move-only items with
// put / put_nowait / wait_for(put, t), consumers getting with get /
// get_nowait / wait_for(get, t) and calling task_done() after a processing
// sleep (also when cancelled there), tasks cancelling producers, consumers
// and a joiner at random instants, an optional shutdown (immediate or not)
// at a random instant, random maxsize (<= 0: unbounded) and optional step
// jitter. The run is an RcSimulation (sim/harness/rc_simulation.h): every
// decision of the simulated loop (the order of timers due at the same
// instant, the step jitter) is a RapidCheck pick, so a failing case shrinks
// its scenario and its schedule together. Delays are whole milliseconds in
// small ranges so that many events fall due at the same instant, where that
// drawn tie-break orders them: that is how a getter gets woken and cancelled
// in the same iteration.
//
// Checked:
//  - every item put successfully is got exactly once, or is still in the
//    queue at the end, or was drained by shutdown(immediate=true); an item
//    whose put failed is never got; nothing is got twice;
//  - every get returns what a model of the queue predicts (front for Queue,
//    back for LifoQueue, lowest priority then earliest put for
//    PriorityQueue), hence per-producer FIFO order for Queue (also checked
//    on its own);
//  - join() returns only if the unfinished count was 0 at some point since
//    it was called; the count ends at 0;
//  - put() never raises QueueFull and get() never raises QueueEmpty (they
//    wait; only put_nowait and get_nowait refuse);
//  - no run deadlocks (sim::DeadlockError) or livelocks (sim::TimeLimitError),
//    and no item waits in the queue while a consumer waits on get().
// A failure prints the shrunk scenario, what went wrong, and the minimal
// run's schedule (its non-default decisions) and replay file.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/queues.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/rc_simulation.h"
#include "twinloop/sim/simulation.h"

namespace twinloop {
namespace {

absl::Duration ms(int n) { return absl::Milliseconds(n); }

// ---------------------------------------------------------------- scenario

enum class Kind { kFifo, kLifo, kPriority };

struct PutStep {
  int sleep_ms = 0;    // before the put
  int mode = 0;        // 0 put, 1 put_nowait (then put if full), 2 wait_for(put)
  int timeout_ms = 0;  // for mode 2 (0: cancelled before it starts)
  int priority = 0;    // for PriorityQueue
};

struct ProducerSpec {
  std::vector<PutStep> steps;
  int cancel_at_ms = -1;  // -1: never cancelled
};

struct GetStep {
  int sleep_ms = 0;    // before the get
  int mode = 0;        // 0 get, 1 get_nowait (sleep 1 ms if empty), 2 wait_for(get)
  int timeout_ms = 0;  // for mode 2
  int process_ms = 0;  // between getting the item and task_done()
};

struct ConsumerSpec {
  std::vector<GetStep> steps;  // cycled until QueueShutDown
  int cancel_at_ms = -1;       // never for consumer 0, which keeps the run going
};

struct Scenario {
  Kind kind = Kind::kFifo;
  int maxsize = 0;
  bool jitter = false;
  std::vector<ProducerSpec> producers;
  std::vector<ConsumerSpec> consumers;
  int join_at_ms = -1;
  int join_cancel_at_ms = -1;
  int shutdown_at_ms = -1;
  bool shutdown_immediate = false;
  bool final_immediate = false;  // the shutdown once the producers are done
};

void showValue(const PutStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms << ", prio "
     << s.priority << "}";
}
void showValue(const GetStep& s, std::ostream& os) {
  os << "{sleep " << s.sleep_ms << ", mode " << s.mode << ", timeout " << s.timeout_ms
     << ", process " << s.process_ms << "}";
}
template <class Step>
void show_steps(const std::vector<Step>& steps, std::ostream& os) {
  os << "[";
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i) os << ", ";
    showValue(steps[i], os);
  }
  os << "]";
}
void showValue(const Scenario& s, std::ostream& os) {
  os << "kind "
     << (s.kind == Kind::kFifo ? "Queue" : s.kind == Kind::kLifo ? "LifoQueue" : "PriorityQueue")
     << ", maxsize " << s.maxsize << ", jitter " << s.jitter << ", join at " << s.join_at_ms
     << " (cancel at " << s.join_cancel_at_ms << "), shutdown at " << s.shutdown_at_ms
     << (s.shutdown_immediate ? " immediate" : "") << ", final shutdown"
     << (s.final_immediate ? " immediate" : "") << "\n";
  for (size_t i = 0; i < s.producers.size(); ++i) {
    os << "  producer " << i << " (cancel at " << s.producers[i].cancel_at_ms << "): ";
    show_steps(s.producers[i].steps, os);
    os << "\n";
  }
  for (size_t i = 0; i < s.consumers.size(); ++i) {
    if (i == 0) {
      os << "  consumer 0 (never cancelled): ";
    } else {
      os << "  consumer " << i << " (cancel at " << s.consumers[i].cancel_at_ms << "): ";
    }
    show_steps(s.consumers[i].steps, os);
    os << "\n";
  }
}

// -1 (never) or an instant in [0, limit) ms.
rc::Gen<int> gen_maybe_at(int limit) {
  return rc::gen::weightedOneOf<int>({{2, rc::gen::just(-1)}, {1, rc::gen::inRange(0, limit)}});
}

rc::Gen<PutStep> gen_put_step() {
  return rc::gen::build<PutStep>(rc::gen::set(&PutStep::sleep_ms, rc::gen::inRange(0, 4)),
                                 rc::gen::set(&PutStep::mode, rc::gen::inRange(0, 3)),
                                 rc::gen::set(&PutStep::timeout_ms, rc::gen::inRange(0, 4)),
                                 rc::gen::set(&PutStep::priority, rc::gen::inRange(0, 3)));
}

rc::Gen<GetStep> gen_get_step() {
  return rc::gen::build<GetStep>(rc::gen::set(&GetStep::sleep_ms, rc::gen::inRange(0, 3)),
                                 rc::gen::set(&GetStep::mode, rc::gen::inRange(0, 3)),
                                 rc::gen::set(&GetStep::timeout_ms, rc::gen::inRange(0, 4)),
                                 rc::gen::set(&GetStep::process_ms, rc::gen::inRange(0, 3)));
}

template <class T>
rc::Gen<std::vector<T>> gen_vector(int min, int max, rc::Gen<T> element) {
  return rc::gen::mapcat(rc::gen::inRange(min, max + 1), [element](int n) {
    return rc::gen::container<std::vector<T>>(static_cast<size_t>(n), element);
  });
}

rc::Gen<ProducerSpec> gen_producer() {
  return rc::gen::build<ProducerSpec>(
      rc::gen::set(&ProducerSpec::steps, gen_vector<PutStep>(0, 12, gen_put_step())),
      rc::gen::set(&ProducerSpec::cancel_at_ms, gen_maybe_at(25)));
}

rc::Gen<ConsumerSpec> gen_consumer() {
  return rc::gen::build<ConsumerSpec>(
      rc::gen::set(&ConsumerSpec::steps, gen_vector<GetStep>(1, 4, gen_get_step())),
      rc::gen::set(&ConsumerSpec::cancel_at_ms, gen_maybe_at(25)));
}

rc::Gen<Scenario> gen_scenario(Kind kind) {
  return rc::gen::build<Scenario>(
      rc::gen::set(&Scenario::kind, rc::gen::just(kind)),
      rc::gen::set(&Scenario::maxsize, rc::gen::inRange(-1, 5)),
      rc::gen::set(&Scenario::jitter, rc::gen::arbitrary<bool>()),
      rc::gen::set(&Scenario::producers, gen_vector<ProducerSpec>(1, 4, gen_producer())),
      rc::gen::set(&Scenario::consumers, gen_vector<ConsumerSpec>(1, 4, gen_consumer())),
      rc::gen::set(&Scenario::join_at_ms, gen_maybe_at(20)),
      rc::gen::set(&Scenario::join_cancel_at_ms, gen_maybe_at(30)),
      rc::gen::set(&Scenario::shutdown_at_ms, gen_maybe_at(40)),
      rc::gen::set(&Scenario::shutdown_immediate, rc::gen::arbitrary<bool>()),
      rc::gen::set(&Scenario::final_immediate, rc::gen::arbitrary<bool>()));
}

// ---------------------------------------------------------------- items and the model

// Where items end up other than in a consumer's hands.
struct Ledger {
  bool draining = false;            // inside shutdown(immediate=true)
  std::vector<int> drained;         // destroyed by that drain
  std::vector<int> destroyed;       // destroyed anywhere else (failed puts, leftovers)
};

// A move-only item that reports its own destruction unless a consumer
// released it, so an item dropped anywhere is noticed.
class Item {
 public:
  Item(int id, int priority, Ledger* ledger) : id_(id), priority_(priority), ledger_(ledger) {}
  Item(Item&& o) noexcept : id_(std::exchange(o.id_, -1)), priority_(o.priority_), ledger_(o.ledger_) {}
  Item& operator=(Item&& o) noexcept {
    if (this != &o) {
      record();
      id_ = std::exchange(o.id_, -1);
      priority_ = o.priority_;
      ledger_ = o.ledger_;
    }
    return *this;
  }
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  ~Item() { record(); }

  int priority() const { return priority_; }
  int release() { return std::exchange(id_, -1); }

 private:
  void record() {
    if (id_ < 0) return;
    (ledger_->draining ? ledger_->drained : ledger_->destroyed).push_back(id_);
    id_ = -1;
  }
  int id_;
  int priority_;
  Ledger* ledger_;
};

struct ByPriority {
  bool operator()(const Item& a, const Item& b) const { return a.priority() < b.priority(); }
};

constexpr int kIdsPerProducer = 1000;

// Everything a run shares. Lives outside the simulated loop, so it outlives
// every task frame even when a run fails and its loop is torn down.
struct Harness {
  explicit Harness(const Scenario& s) : scenario(s) {
    switch (s.kind) {
      case Kind::kFifo:
        q = std::make_unique<Queue<Item>>(s.maxsize, "items");
        break;
      case Kind::kLifo:
        q = std::make_unique<LifoQueue<Item>>(s.maxsize, "items");
        break;
      case Kind::kPriority:
        q = std::make_unique<PriorityQueue<Item, ByPriority>>(s.maxsize, "items");
        break;
    }
  }

  struct Entry {
    int priority;
    uint64_t seq;
    int id;
  };

  void error(std::string what) {
    if (errors.size() < 10) errors.push_back(std::move(what));
  }

  void on_put(int id, int priority) {
    put_ok.push_back(id);
    model.push_back(Entry{priority, next_seq++, id});
    ++unfinished;
    if (q->qsize() != model.size()) error(absl::StrCat("after put: qsize ", q->qsize(), ", model ", model.size()));
  }

  // Checks `id` is what the model says comes out next, then removes it.
  void on_get(int id, bool at_end = false) {
    (at_end ? remaining : got).push_back(id);
    if (model.empty()) {
      error(absl::StrCat("got item ", id, " that the model says is not in the queue"));
      return;
    }
    size_t next = 0;
    switch (scenario.kind) {
      case Kind::kFifo:
        next = 0;
        break;
      case Kind::kLifo:
        next = model.size() - 1;
        break;
      case Kind::kPriority:
        for (size_t i = 1; i < model.size(); ++i) {
          const Entry& a = model[i];
          const Entry& b = model[next];
          if (a.priority < b.priority || (a.priority == b.priority && a.seq < b.seq)) next = i;
        }
        break;
    }
    if (model[next].id != id) {
      error(absl::StrCat("got item ", id, ", the model expected ", model[next].id));
    }
    auto it = std::find_if(model.begin(), model.end(), [id](const Entry& e) { return e.id == id; });
    if (it != model.end()) model.erase(it);
    if (q->qsize() != model.size()) error(absl::StrCat("after get: qsize ", q->qsize(), ", model ", model.size()));
  }

  void task_done() {
    try {
      q->task_done();
    } catch (const std::exception& e) {
      error(absl::StrCat("task_done() raised: ", e.what()));
      return;
    }
    if (--unfinished == 0) ++zero_epoch;
  }

  void shutdown(bool immediate) {
    if (!immediate) {
      q->shutdown(false);
      return;
    }
    const size_t n = q->qsize();
    if (n != model.size()) error(absl::StrCat("before shutdown: qsize ", n, ", model ", model.size()));
    ledger.draining = true;
    q->shutdown(true);
    ledger.draining = false;
    for (size_t i = 0; i < n; ++i) {
      if (unfinished > 0 && --unfinished == 0) ++zero_epoch;
    }
    model.clear();
  }

  const Scenario& scenario;
  Ledger ledger;  // before q: queued items report to it when q goes
  std::unique_ptr<Queue<Item>> q;
  std::vector<int> attempted;  // ids of every item constructed
  std::vector<int> put_ok;     // ids whose put succeeded
  std::vector<int> got;        // ids consumers got, in get order
  std::vector<int> remaining;  // ids still queued at the end
  std::vector<Entry> model;    // the queue's content, in put order
  uint64_t next_seq = 0;
  int64_t unfinished = 0;      // the model of the unfinished-task count
  uint64_t zero_epoch = 0;     // times the count went down to 0
  int join_returns = 0;
  std::vector<std::string> errors;
};

// ---------------------------------------------------------------- tasks

Coro<void> producer(Harness* h, const ProducerSpec* spec, int index) {
  for (size_t i = 0; i < spec->steps.size(); ++i) {
    const PutStep& s = spec->steps[i];
    if (s.sleep_ms > 0) co_await sleep(ms(s.sleep_ms));
    const int id = index * kIdsPerProducer + static_cast<int>(i);
    h->attempted.push_back(id);
    Item item(id, s.priority, &h->ledger);
    bool shut_down = false;
    bool full = false;
    try {
      if (s.mode == 0) {
        co_await h->q->put(std::move(item));
        h->on_put(id, s.priority);
      } else if (s.mode == 1) {
        h->q->put_nowait(std::move(item));
        h->on_put(id, s.priority);
      } else {
        co_await wait_for(h->q->put(std::move(item)), ms(s.timeout_ms));
        h->on_put(id, s.priority);
      }
    } catch (const QueueShutDown&) {
      shut_down = true;
    } catch (const QueueFull&) {
      // Only put_nowait refuses a full queue (and leaves the item with us);
      // put() waits for room.
      if (s.mode == 1) {
        full = true;
      } else {
        h->error(absl::StrCat("producer ", index, "'s put() raised QueueFull"));
      }
    } catch (const TimeoutError&) {
      // The item went with the put; it was not put.
    }
    if (full) {
      // put_nowait left the item with us: wait for room instead.
      try {
        co_await h->q->put(std::move(item));
        h->on_put(id, s.priority);
      } catch (const QueueShutDown&) {
        shut_down = true;
      }
    }
    if (shut_down) co_return;
  }
}

Coro<void> get_into(Queue<Item>* q, std::optional<Item>* out) { out->emplace(co_await q->get()); }

Coro<void> consumer(Harness* h, const ConsumerSpec* spec, int index) {
  for (size_t step = 0;; ++step) {
    const GetStep& s = spec->steps[step % spec->steps.size()];
    if (s.sleep_ms > 0) co_await sleep(ms(s.sleep_ms));
    std::optional<Item> item;
    bool empty = false;
    try {
      if (s.mode == 0) {
        item.emplace(co_await h->q->get());
      } else if (s.mode == 1) {
        item.emplace(h->q->get_nowait());
      } else {
        // wait_for(q.get(), t) itself needs a copyable result (its t <= 0
        // path reads Future::result()), so the item goes out through `item`.
        co_await wait_for(get_into(h->q.get(), &item), ms(s.timeout_ms));
      }
    } catch (const QueueShutDown&) {
      co_return;
    } catch (const QueueEmpty&) {
      // Only get_nowait may find the queue empty; get() waits for an item.
      if (s.mode != 1) h->error(absl::StrCat("consumer ", index, "'s get() raised QueueEmpty"));
      empty = true;
    } catch (const TimeoutError&) {
      // Nothing taken; try again (after a pause if it could not even start).
      empty = s.timeout_ms == 0;
    }
    if (empty) co_await sleep(ms(1));  // poll, without spinning
    if (!item) continue;
    h->on_get(item->release());
    // Process, then task_done(), even when cancelled while processing
    // (`finally: q.task_done()`), so join() can always complete.
    std::exception_ptr error;
    if (s.process_ms > 0) {
      try {
        co_await sleep(ms(s.process_ms));
      } catch (...) {
        error = std::current_exception();
      }
    }
    h->task_done();
    if (error) std::rethrow_exception(error);
  }
}

Coro<void> joiner(Harness* h, int at_ms) {
  co_await sleep(ms(at_ms));
  for (int round = 0; round < 3; ++round) {
    const bool was_zero = h->unfinished == 0;
    const uint64_t epoch = h->zero_epoch;
    co_await h->q->join();
    if (!was_zero && h->zero_epoch == epoch) {
      h->error("join() returned but the unfinished count never reached 0 since it was called");
    }
    ++h->join_returns;
    co_await sleep(ms(1));
  }
}

// Cancels from a task (not a loop callback) so that a cancel can land in
// the same iteration as a put that woke the target, after it.
Coro<void> cancel_at(Task<void> target, int at_ms) {
  co_await sleep(ms(at_ms));
  target.cancel();
}

Coro<void> shutdown_at(Harness* h, int at_ms, bool immediate) {
  co_await sleep(ms(at_ms));
  h->shutdown(immediate);
}

// Awaits `t`; a cancellation is expected, anything else is an error.
Coro<void> settle(Harness* h, Task<void> t, std::string who) {
  try {
    co_await t;
  } catch (const CancelledError&) {
  } catch (const std::exception& e) {
    h->error(absl::StrCat(who, " raised ", e.what()));
  }
}

Coro<void> main_coro(Harness* h) {
  const Scenario& sc = h->scenario;
  std::vector<Task<void>> producers;
  std::vector<Task<void>> consumers;
  std::vector<Task<void>> helpers;
  for (size_t i = 0; i < sc.producers.size(); ++i) {
    producers.push_back(create_task(producer(h, &sc.producers[i], static_cast<int>(i)),
                                    {.name = absl::StrCat("producer-", i)}));
  }
  for (size_t i = 0; i < sc.consumers.size(); ++i) {
    consumers.push_back(create_task(consumer(h, &sc.consumers[i], static_cast<int>(i)),
                                    {.name = absl::StrCat("consumer-", i)}));
  }
  Task<void> join_task;
  if (sc.join_at_ms >= 0) {
    join_task = create_task(joiner(h, sc.join_at_ms), {.name = "joiner"});
    if (sc.join_cancel_at_ms >= 0) helpers.push_back(create_task(cancel_at(join_task, sc.join_cancel_at_ms)));
  }
  for (size_t i = 0; i < sc.producers.size(); ++i) {
    if (sc.producers[i].cancel_at_ms >= 0) {
      helpers.push_back(create_task(cancel_at(producers[i], sc.producers[i].cancel_at_ms)));
    }
  }
  // Consumer 0 is never cancelled: it keeps the queue moving.
  for (size_t i = 1; i < sc.consumers.size(); ++i) {
    if (sc.consumers[i].cancel_at_ms >= 0) {
      helpers.push_back(create_task(cancel_at(consumers[i], sc.consumers[i].cancel_at_ms)));
    }
  }
  if (sc.shutdown_at_ms >= 0) {
    helpers.push_back(create_task(shutdown_at(h, sc.shutdown_at_ms, sc.shutdown_immediate)));
  }

  for (size_t i = 0; i < producers.size(); ++i) co_await settle(h, producers[i], absl::StrCat("producer ", i));
  // Consumer 0 must drain the queue: an item waiting while consumers wait
  // on get() is a lost wake-up (shutdown would otherwise hide it).
  for (int i = 0; i < 5000 && !h->q->empty(); ++i) co_await sleep(ms(1));
  if (!h->q->empty()) {
    h->error(absl::StrCat("items stay in the queue: ", h->q->describe()));
  }
  h->shutdown(sc.final_immediate);
  for (size_t i = 0; i < consumers.size(); ++i) co_await settle(h, consumers[i], absl::StrCat("consumer ", i));
  if (join_task) co_await settle(h, join_task, "joiner");
  for (Task<void>& t : helpers) co_await settle(h, t, "helper");

  while (!h->q->empty()) h->on_get(h->q->get_nowait().release(), /*at_end=*/true);
  if (h->unfinished != 0) h->error(absl::StrCat("unfinished count ends at ", h->unfinished));
  if (absl::StrContains(h->q->describe(), "tasks=")) h->error(absl::StrCat("queue ends as ", h->q->describe()));
  co_await h->q->join();  // the count is 0: returns at once
}

// ---------------------------------------------------------------- the property

std::string ids(const std::vector<int>& v) {
  std::ostringstream os;
  for (int id : v) os << id << " ";
  return os.str();
}

// The ledger and ordering checks once the run is over; errors into h.
void check_ledger(Harness& h) {
  std::vector<int> put_ok = h.put_ok;
  std::vector<int> taken = h.got;
  taken.insert(taken.end(), h.remaining.begin(), h.remaining.end());
  taken.insert(taken.end(), h.ledger.drained.begin(), h.ledger.drained.end());
  std::sort(put_ok.begin(), put_ok.end());
  std::sort(taken.begin(), taken.end());
  if (std::adjacent_find(taken.begin(), taken.end()) != taken.end()) {
    h.error(absl::StrCat("an item came out twice: ", ids(taken)));
  }
  if (put_ok != taken) {
    h.error(absl::StrCat("put ", ids(put_ok), "but got/remaining/drained ", ids(taken)));
  }
  if (!h.ledger.drained.empty() && !(h.scenario.shutdown_immediate || h.scenario.final_immediate)) {
    h.error("items drained without an immediate shutdown");
  }
  // Every item constructed ends exactly once: taken, or destroyed because
  // its put failed.
  std::vector<int> failed = h.ledger.destroyed;
  std::sort(failed.begin(), failed.end());
  std::vector<int> all = taken;
  all.insert(all.end(), failed.begin(), failed.end());
  std::sort(all.begin(), all.end());
  std::vector<int> attempted = h.attempted;
  std::sort(attempted.begin(), attempted.end());
  if (all != attempted) {
    h.error(absl::StrCat("constructed ", ids(attempted), "but accounted for ", ids(all)));
  }
  if (h.scenario.kind == Kind::kFifo) {
    // Per-producer FIFO among the items received.
    std::vector<int> last(h.scenario.producers.size(), -1);
    std::vector<int> order = h.got;
    order.insert(order.end(), h.remaining.begin(), h.remaining.end());
    for (int id : order) {
      const int p = id / kIdsPerProducer;
      const int i = id % kIdsPerProducer;
      if (i <= last[p]) h.error(absl::StrCat("producer ", p, "'s item ", i, " came after its item ", last[p]));
      last[p] = i;
    }
  }
}

// The property running now, "Suite.Name": names its replay files.
std::string property_name() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info == nullptr ? std::string("QueueProperty") : absl::StrCat(info->test_suite_name(), ".", info->name());
}

void check_scenario(Scenario sc) {
  // Every consumer needs one way of getting that can succeed and can see the
  // shutdown (a wait_for with timeout 0 never starts its get): consumer 0
  // keeps the run going, and the others must end once the queue shuts down.
  for (ConsumerSpec& c : sc.consumers) {
    std::vector<GetStep>& steps = c.steps;
    if (std::all_of(steps.begin(), steps.end(), [](const GetStep& s) { return s.mode == 2 && s.timeout_ms == 0; })) {
      steps[0].mode = 0;
    }
  }
  Harness h(sc);
  sim::Options options;
  options.time_limit = absl::Seconds(30);
  if (sc.jitter) options.step_jitter_max = absl::Microseconds(300);
  // Alive until RC_FAIL below has thrown: it saves the failing run's
  // schedule as it unwinds.
  sim::RcSimulation sim(property_name(), options);
  try {
    sim.run(main_coro(&h));
  } catch (const sim::DeadlockError& e) {
    h.error(absl::StrCat("deadlock: ", e.what()));
  } catch (const sim::TimeLimitError& e) {
    h.error(absl::StrCat("livelock: ", e.what()));
  } catch (const std::exception& e) {
    h.error(absl::StrCat("the run raised: ", e.what()));
  }
  if (h.errors.empty()) check_ledger(h);
  RC_TAG(h.ledger.drained.empty() ? "nothing drained" : "drained by shutdown");
  RC_CLASSIFY(h.join_returns > 0, "join returned");
  if (!h.errors.empty()) {
    std::string message = "the run failed:";
    for (const std::string& e : h.errors) absl::StrAppend(&message, "\n  ", e);
    RC_FAIL(message);
  }
}

TWINLOOP_RC_GTEST_PROP(QueueProperty, FifoQueueLosesNothingAndKeepsOrder, ()) {
  check_scenario(*gen_scenario(Kind::kFifo));
}

TWINLOOP_RC_GTEST_PROP(QueueProperty, LifoQueueLosesNothingAndKeepsOrder, ()) {
  check_scenario(*gen_scenario(Kind::kLifo));
}

TWINLOOP_RC_GTEST_PROP(QueueProperty, PriorityQueueLosesNothingAndKeepsOrder, ()) {
  check_scenario(*gen_scenario(Kind::kPriority));
}

}  // namespace
}  // namespace twinloop
