// twinloop/api/buggify.h: fault-injection points, as FoundationDB's BUGGIFY.
//
//   if (twinloop::buggify()) co_await sleep(absl::Seconds(1));   // a slow disk
//   if (twinloop::buggify("db.drop_write")) co_return;          // a lost write
//
// On the real loop (and outside a running loop) buggify() is always false,
// so the faults cost one call and never happen in production. Under the
// simulated loop each site is enabled or not for the whole run (a draw:
// enabled with probability 1/4), and an enabled site fires each time it is
// evaluated with probability 1/4 (another draw). Both are ordinary named
// draws of the run's choice source ("buggify.enabled:<site>",
// "buggify.fire:<site>"), so they are recorded, replayed and shrunk like any
// other decision; the default draw 0 means "no fault". A site is keyed by
// `name`, or by its source location ("path/file.cc:42") if no name is
// given. sim::Options::buggify = false turns every site off;
// sim::Simulation::buggify_summary() lists the sites enabled in a run, and
// the harness prints it in a failure report.
#ifndef TWINLOOP_API_BUGGIFY_H_
#define TWINLOOP_API_BUGGIFY_H_

#include <string_view>

namespace twinloop {

bool buggify(std::string_view name = {}, const char* file = __builtin_FILE(), int line = __builtin_LINE());

}  // namespace twinloop

#endif  // TWINLOOP_API_BUGGIFY_H_
