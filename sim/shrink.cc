// TEMPORARY stand-in until the shrinker lands: tries "all default" only.
#include "sim/shrink.h"
#include "absl/strings/str_cat.h"
namespace twinloop::sim {
RunSize run_size(const Recording& r) {
  RunSize s;
  s.non_default = non_default_choices(r.decisions);
  s.events = r.events.size();
  s.virtual_time_ns = r.events.empty() ? 0 : r.events.back().time_ns;
  return s;
}
bool smaller(const RunSize& a, const RunSize& b) { return a.non_default < b.non_default; }
std::string describe(const RunSize& s) {
  return absl::StrCat(s.non_default, " non-default choices, ", s.events, " events");
}
ShrinkResult shrink(const Recording& failing, const std::function<std::optional<Recording>(const Recording&)>& fails,
                    const ShrinkOptions&) {
  ShrinkResult r;
  r.minimal = failing;
  r.before = r.after = run_size(failing);
  Recording zero = failing;
  for (Decision& d : zero.decisions) d.value = 0;
  ++r.runs;
  if (auto f = fails(zero)) {
    r.minimal = *f;
    r.after = run_size(*f);
  }
  return r;
}
}  // namespace twinloop::sim
