#include "engine/random.h"

#include "kernels/rng.h"

namespace engine {

double Generator::uniform() { return kernels::rng_uniform(seed_, reserve(1)); }
double Generator::normal() { return kernels::rng_normal(seed_, reserve(1)); }
uint64_t Generator::next_u64() { return kernels::rng_bits(seed_, reserve(1)); }
int64_t Generator::randint(int64_t n) {
  return n <= 0 ? 0 : static_cast<int64_t>(next_u64() % static_cast<uint64_t>(n));
}

}  // namespace engine
