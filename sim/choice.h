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
#include <cstring>
#include <string_view>

#include "twinloop/api/internal/check.h"

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

// A well-mixed 64-bit hash of a text (site names, task names), eight bytes
// at a time, read little-endian whatever the platform (the last 1 to 7 bytes
// as wyhash reads them: two overlapping 4-byte words, or three bytes).
inline uint64_t text_hash(std::string_view s) {
  const auto word = [](const char* p, size_t bytes) {
    uint64_t w = 0;
    std::memcpy(&w, p, bytes);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w) >> (64 - 8 * bytes);
#endif
    return w;
  };
  const size_t n = s.size();
  const char* p = s.data();
  uint64_t h = 0x243F6A8885A308D3ull ^ (static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ull);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) h = mix64(h ^ word(p + i, 8));
  const size_t r = n - i;
  uint64_t tail = 0;
  if (r >= 4) {
    tail = word(p + i, 4) | (word(p + n - 4, 4) << 32);
  } else if (r > 0) {
    const auto byte = [&](size_t k) { return static_cast<uint64_t>(static_cast<unsigned char>(p[k])); };
    tail = (byte(i) << 16) | (byte(i + r / 2) << 8) | byte(n - 1);
  }
  return mix64(h ^ tail);
}

// The key of the task that is the `index`-th task its parent created with
// this `base` (the task's explicit name, else its coroutine's function
// name): its path component is "<base>#<index>". The root (no task: the loop
// itself, and the parent of the main task) has key 0.
inline uint64_t child_key(uint64_t parent_key, uint64_t base_hash, uint64_t index) {
  return mix64(parent_key * 0x9E3779B97F4A7C15ull + mix64(base_hash + index * 0xD1B54A32D192ED03ull));
}
// Where a parent counts its children of one base.
inline uint64_t sibling_slot(uint64_t parent_key, uint64_t base_hash) {
  return mix64(parent_key ^ (base_hash * 0xA24BAED4963EE407ull));
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
    TWINLOOP_CHECK(n != 0, "a decision has at least one possible answer");
    if (n == 1) return 0;
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
    const uint64_t v = static_cast<uint64_t>(m >> 64);
    // floor(x * n / 2^64) < n for every 64-bit x.
    TWINLOOP_DCHECK(v < n, "a drawn value is in [0, n)");
    return v;
  }

 private:
  uint64_t seed_key_;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_CHOICE_H_
