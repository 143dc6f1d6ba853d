// twinloop/tests/planted/reconnect_leak.h: a planted fault bug shared by the
// planted fault tests and the swarm measurement: a client that, when a
// request times out, connects anew without closing the connection it gave up
// on ("a reconnect loop that leaks a connection per partition", issue 11).
//
//   const LeakOutcome out = co_await reconnect_scenario(Reconnect::kLeakTheOld, partitions_profile());
//   EXPECT_LE(out.connections_open_max, kConnectionsOpenMax) << out.describe();
//
// The world: host "srv" answers "REQ <n>\n" with "REP <n>\n" on every
// connection; host "app" calls it every 50 ms through a small client that
// keeps its connections in a pool, each with a task reading its replies. A
// request times out after 300 ms (a partition holding or losing it, a held or
// slowed link, a host down). Both run as their host's main (sim::World::start),
// so a crash ends them and a restart runs them again.
//
// The bug (Reconnect::kLeakTheOld): on a timeout the client drops the
// connection from its "current" slot and connects anew, but never closes it:
// it stays in the pool, its reader waiting for a reply. Only an error on it
// (a reset, ETIMEDOUT long after a cut) or the end of the client's process (a
// crash) closes it. So each timeout leaks one connection while faults that
// reset connections or crash the client clean them up: an always-everything
// fault mix hides the leak, and swarm mode (each run a subset of the fault
// kinds) finds it in the runs that draw partitions without resets and
// crashes (docs/faults.md, "Swarm mode").
// The fix (Reconnect::kAbortTheOld): abort the old connection, then
// reconnect; the client never holds more than one.
#ifndef TWINLOOP_TESTS_PLANTED_RECONNECT_LEAK_H_
#define TWINLOOP_TESTS_PLANTED_RECONNECT_LEAK_H_

#include <string>

#include "twinloop/api/coro.h"
#include "twinloop/sim/faults.h"

namespace twinloop::planted {

enum class Reconnect {
  kLeakTheOld,   // the bug
  kAbortTheOld,  // the fix
};

// The check: the client holds at most this many connections to srv at once.
inline constexpr int kConnectionsOpenMax = 3;

// What one run of reconnect_scenario saw.
struct LeakOutcome {
  // The most connections the client held open at once (over every
  // incarnation of its process).
  int connections_open_max = 0;
  // When that was first reached: virtual time, timeouts so far.
  std::string connections_open_max_at;
  int timeouts = 0;   // requests that timed out
  int replies = 0;    // requests answered
  std::string enabled_kinds;  // sim::World::enabled_kinds() of the run
  // One line for a failure message.
  std::string describe() const;
};

// Partitions only (hold or lose, one-way or both; 0.5 per second for 10 s),
// and clock offsets (faults the bug does not need, for the shrinker to
// remove): the planted bug's profile.
sim::FaultProfile partitions_profile();
// Every kind of fault, each with a rate, for 10 s: partitions, holds, resets,
// slow links, crashes (restarting), clock jumps.
sim::FaultProfile every_fault_profile();
// every_fault_profile() with swarm = true.
sim::FaultProfile swarm_profile();

// Runs the world described above: injects `profile`, waits for its
// duration, then World::converge (everything healed, the client gets
// replies again within 30 s; DidNotConvergeError otherwise). Must run on
// the simulated loop, in a run that has added no host.
Coro<LeakOutcome> reconnect_scenario(Reconnect policy, sim::FaultProfile profile);

}  // namespace twinloop::planted

#endif  // TWINLOOP_TESTS_PLANTED_RECONNECT_LEAK_H_
