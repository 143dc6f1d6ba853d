// What the planted-bug drivers count in a replay file: the non-default draws
// at the fault sites ("fault.*", sim/draw_sites.h), which shrinking must
// reduce and cannot remove entirely (a run without faults cannot fail).
#ifndef TWINLOOP_TESTS_PLANTED_FAULT_DRAWS_H_
#define TWINLOOP_TESTS_PLANTED_FAULT_DRAWS_H_

#include <cstddef>

#include "twinloop/sim/recording.h"

namespace twinloop::planted {

inline size_t fault_draws(const sim::Recording& r) {
  size_t n = 0;
  for (const sim::Decision& d : r.decisions) n += d.value != 0 && d.site.starts_with("fault.");
  return n;
}

}  // namespace twinloop::planted

#endif  // TWINLOOP_TESTS_PLANTED_FAULT_DRAWS_H_
