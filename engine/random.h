// engine/random.h — seeded generators, one per purpose (init, data order, augmentation,
// dropout), so a run is reproducible from its seed and a resumed run continues every stream.
//
// A Generator is just (seed, offset): each call reserves `n` consecutive counters of the
// counter-based RNG in kernels/rng.h. Saving and restoring the pair restores the stream.
#pragma once

#include <cstdint>

namespace engine {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  // Reserves n counters and returns the first; the caller draws rng_*(seed(), first + i).
  uint64_t reserve(uint64_t n) {
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }
  double uniform();            // one U[0,1) draw (advances by 1)
  double normal();             // one N(0,1) draw (advances by 1)
  uint64_t next_u64();         // 64 random bits (advances by 1)
  int64_t randint(int64_t n);  // uniform in [0, n)

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace engine
