// twinloop/sim/choice.h: the seeded source of every nondeterministic decision
// in the simulated loop.
//
// The generator is xoshiro256** (Blackman and Vigna, 2018), seeded by
// running SplitMix64 over the 64-bit seed, exactly as its authors recommend.
// Integers in [0, n) are drawn with Lemire's multiply-and-reject method
// (ACM TOMS 2019) implemented here, never with std::uniform_int_distribution,
// whose algorithm differs between standard libraries. Everything is plain
// 64-bit integer arithmetic, so a seed gives the same stream on every
// compiler, optimisation level and platform.
//
//   twinloop::sim::ChoiceSource choices(/*seed=*/42);
//   uint64_t delay_us = choices.choose("net.latency", 1000);  // in [0, 1000)
//
// By convention a draw of 0 is the default behaviour (no fault, shortest
// delay, natural order), so smaller streams are simpler schedules. A draw
// with n == 1 has one possible answer and consumes nothing.
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

class ChoiceSource {
 public:
  explicit ChoiceSource(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : s_) {
      x += 0x9E3779B97F4A7C15ull;
      s = mix64(x);
    }
  }

  // The next raw 64-bit value (xoshiro256**).
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // A uniform value in [0, n), n >= 1 (Lemire's nearly divisionless method).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // A decision named `site` with n possible answers. The name is the key
  // under which replay files will record the draw.
  uint64_t choose(std::string_view site, uint64_t n) {
    (void)site;
    if (n <= 1) return 0;
    ++draws_;
    return below(n);
  }

  uint64_t draws() const { return draws_; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  uint64_t draws_ = 0;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_CHOICE_H_
