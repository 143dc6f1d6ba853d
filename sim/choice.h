// twinloop/sim/choice.h: the seeded source of every nondeterministic decision
// in the simulated loop, and the keys that name decisions.
//
// A decision is named by a key that is stable under unrelated edits to the
// program: the drawing task's identity (its creation path from the main
// task, api/task.h TaskBase::key), the draw's site ("executor.latency_us")
// and its occurrence among that task's draws at that site. Its value is a
// pure function of the seed and the key, so adding a task, a timer or a
// to_thread call elsewhere leaves the other decisions of a seed (and of a
// replay file, which records decisions by the same keys) as they were.
//
//   twinloop::sim::ChoiceSource choices(/*seed=*/42);
//   const uint64_t key = twinloop::sim::draw_key(task_key, "net.latency", 0);
//   uint64_t delay_us = choices.value(key, 1000);       // in [0, 1000)
//
// The mixer is SplitMix64's finaliser; bounded values use Lemire's
// multiply-and-reject method (ACM TOMS 2019) over a counter-based stream
// seeded by (seed, key), never std::uniform_int_distribution, whose
// algorithm differs between standard libraries. Everything is plain 64-bit
// integer arithmetic, so a seed gives the same decisions on every compiler,
// optimisation level and platform.
//
// By convention a draw of 0 is the default behaviour (no fault, shortest
// delay, natural order), so smaller decisions are simpler schedules. A draw
// with n == 1 has one possible answer and is not a decision at all.
#ifndef TWINLOOP_SIM_CHOICE_H_
#define TWINLOOP_SIM_CHOICE_H_

#include <cstdint>
#include <string_view>

namespace twinloop::sim {

// SplitMix64's output function: a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a over bytes, continued from `h` (start from kFnvBasis).
inline constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;
inline uint64_t fnv1a(std::string_view s, uint64_t h = kFnvBasis) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A well-mixed 64-bit hash of a text (site names, task path components).
inline uint64_t text_hash(std::string_view s) { return mix64(fnv1a(s)); }

// The key of the task whose path component (below its parent) is
// "<base>#<index>": the index-th task its parent created with that base
// (the task's explicit name, else its coroutine's function name). The root
// (no task: the loop itself, and the parent of the main task) has key 0.
// Computed without building the text; equals child_key(parent,
// text_hash("<base>#<index>")).
inline uint64_t component_hash(std::string_view base, uint64_t index) {
  uint64_t h = fnv1a(base);
  h = (h ^ static_cast<unsigned char>('#')) * 0x100000001b3ull;
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + index % 10);
    index /= 10;
  } while (index != 0);
  while (n > 0) h = (h ^ static_cast<unsigned char>(digits[--n])) * 0x100000001b3ull;
  return mix64(h);
}
inline uint64_t child_key(uint64_t parent_key, uint64_t component) {
  return mix64(parent_key * 0x9E3779B97F4A7C15ull + component);
}

// The key of the `occurrence`-th (from 0) draw named `site` in the context
// (task) `context_key`.
inline uint64_t slot_key(uint64_t context_key, uint64_t site_hash) {
  return mix64(context_key ^ (site_hash * 0xD6E8FEB86659FD93ull));
}
inline uint64_t draw_key(uint64_t slot, uint64_t occurrence) { return mix64(slot + occurrence * 0x9E3779B97F4A7C15ull); }
inline uint64_t draw_key(uint64_t context_key, std::string_view site, uint64_t occurrence) {
  return draw_key(slot_key(context_key, text_hash(site)), occurrence);
}

class ChoiceSource {
 public:
  explicit ChoiceSource(uint64_t seed) : seed_key_(mix64(seed + 0x9E3779B97F4A7C15ull)) {}

  // The value in [0, n) of the decision `key` under this seed (n >= 1).
  uint64_t value(uint64_t key, uint64_t n) const {
    if (n <= 1) return 0;
    // Random words from a counter-based stream seeded by (seed, key).
    uint64_t x = mix64(seed_key_ ^ key);
    unsigned __int128 m = static_cast<unsigned __int128>(x) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        x = mix64(x + 0x9E3779B97F4A7C15ull);
        m = static_cast<unsigned __int128>(x) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  uint64_t seed_key_;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_CHOICE_H_
