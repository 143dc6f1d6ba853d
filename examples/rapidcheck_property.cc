// How to write a RapidCheck property over a simulated run whose workload and
// schedule shrink together (sim/harness/rc_simulation.h; docs/testing.md).
//
// The workload: random transfers between three accounts, each a task that
// starts after a random delay and reads, then writes, two balances through a
// (simulated) database round trip. The property: money is conserved.
//
//  - With the bank's lock held around each transfer, the property holds for
//    every workload and every schedule.
//  - Without it (a lost update across an await), RapidCheck finds a failing
//    workload + schedule and shrinks both: the minimal case is a couple of
//    overlapping transfers under a schedule with few non-default decisions,
//    printed by key and saved as a replay file.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/rc_simulation.h"
#include "twinloop/sim/harness/replay_file.h"

namespace twinloop::examples {
namespace {

struct Transfer {
  int from = 0;
  int to = 0;
  int amount = 0;
  int start_ms = 0;
};

rc::Gen<Transfer> gen_transfer() {
  return rc::gen::build<Transfer>(rc::gen::set(&Transfer::from, rc::gen::inRange(0, 3)),
                                  rc::gen::set(&Transfer::to, rc::gen::inRange(0, 3)),
                                  rc::gen::set(&Transfer::amount, rc::gen::inRange(1, 50)),
                                  rc::gen::set(&Transfer::start_ms, rc::gen::inRange(0, 20)));
}

class Bank {
 public:
  explicit Bank(bool locked) : locked_(locked) {}

  Coro<void> transfer(Transfer t) {
    co_await sleep(absl::Milliseconds(t.start_ms));
    if (t.from == t.to) co_return;
    std::optional<LockGuard<Lock>> guard;
    if (locked_) guard.emplace(co_await lock_.scoped());
    const int from = co_await read(t.from);
    const int to = co_await read(t.to);
    co_await write(t.from, from - t.amount);
    co_await write(t.to, to + t.amount);
  }

  int total() const { return balance_[0] + balance_[1] + balance_[2]; }

 private:
  // A database round trip: its latency is a decision of the simulator.
  Coro<int> read(int account) {
    co_await to_thread([] {});
    co_return balance_[account];
  }
  Coro<void> write(int account, int value) {
    co_await to_thread([] {});
    balance_[account] = value;
  }

  bool locked_;
  Lock lock_{"bank"};
  int balance_[3] = {100, 100, 100};
};

Coro<int> run_transfers(std::vector<Transfer> transfers, bool locked) {
  Bank bank(locked);
  std::vector<Task<void>> tasks;
  for (const Transfer& t : transfers) tasks.push_back(create_task(bank.transfer(t)));
  for (Task<void>& t : tasks) co_await t;
  co_return bank.total();
}

// The property, for either bank.
void transfers_conserve_money(const char* name, bool locked) {
  const auto transfers = *rc::gen::container<std::vector<Transfer>>(gen_transfer());
  sim::RcSimulation sim(name);
  const int total = sim.run(run_transfers(transfers, locked));
  RC_ASSERT(total == 300);
}

// TWINLOOP_RC_GTEST_PROP is RC_GTEST_PROP with the simulator's decisions
// folded into one line of the counterexample (the log lists them by key).
TWINLOOP_RC_GTEST_PROP(BankProperty, LockedTransfersConserveMoney, ()) {
  transfers_conserve_money("BankProperty.LockedTransfersConserveMoney", /*locked=*/true);
}

// The unlocked bank is wrong; the example checks that RapidCheck finds it
// and that the saved minimal schedule is simpler than the first failing one.
TEST(BankProperty, UnlockedTransfersFailAndShrink) {
  const char* name = "BankProperty.UnlockedTransfersConserveMoney";
  // What TWINLOOP_RC_GTEST_PROP runs: "" if the property holds, else the report.
  const std::string report = sim::rc_check(name, name, [name] { transfers_conserve_money(name, /*locked=*/false); });
  ASSERT_FALSE(report.empty()) << "RapidCheck should find the lost update";
  std::printf("%s\n", report.c_str());
  // The minimal run's schedule, once, and its replay file.
  const std::string schedule = std::string("twinloop: the schedule of this failing run (RcSimulation '") + name + "')";
  EXPECT_NE(report.find(schedule), std::string::npos);
  EXPECT_EQ(report.find(schedule), report.rfind(schedule));
  EXPECT_NE(report.find(sim::target_slug() + "-" + name + ".replay"), std::string::npos);

  const sim::Recording first = sim::read_recording_file(sim::RcSimulation::replay_path(name, /*first=*/true));
  const sim::Recording minimal = sim::read_recording_file(sim::RcSimulation::replay_path(name));
  const size_t first_choices = sim::non_default_choices(first.decisions);
  const size_t minimal_choices = sim::non_default_choices(minimal.decisions);
  std::printf("first failing run: %zu non-default choices, %zu events; minimal: %zu, %zu events\n", first_choices,
              first.events.size(), minimal_choices, minimal.events.size());
  EXPECT_LT(minimal_choices, first_choices);
  EXPECT_LE(minimal.events.size(), first.events.size());
}

}  // namespace
}  // namespace twinloop::examples
