// kernels/cpu/parallel.h — the few OpenMP queries kernels need, safe without OpenMP.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace kernels::cpu {

inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Parallelise a loop only when it has at least this many elements of work: below it, waking
// the threads costs more than they save.
inline constexpr int64_t kParallelWork = 1 << 15;

// body(i) for every i in [0, n): split across the OpenMP team when `parallel`, else on the
// calling thread without entering a parallel region at all. libgomp ends even an
// `omp parallel if (false)` region's one-thread team with a futex system call, which was a
// third of a small elementwise op's cost (bench/cpu/op_overhead_bench.cpp). Capture pointers
// in `body` by value: through references g++ may not vectorise the loop.
template <class F>
inline void parallel_for(int64_t n, bool parallel, F body) {
  if (!parallel) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// How many row chunks a reduction over the rows of an [m, c] array uses: one per thread when
// the work is large, else one.
inline int row_chunks(int64_t m, int64_t c) {
  if (m * c <= kParallelWork) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads(), m)));
}

// Two per-column sums over the rows of an [m, c] array (BatchNorm's statistics and both norms'
// parameter gradients). The rows are cut into row_chunks(m, c) chunks, one per thread; each
// chunk's body(r0, r1, s1, s2) adds its rows [r0, r1) into its own two zeroed arrays of c
// accumulators (and may do other per-row work on the way), and the chunks' arrays are then
// added in chunk order into out1 and out2 (c each, overwritten): no atomics, and the same
// result every run for a given thread count.
template <class Acc, class Body>
void column_sums2(int64_t m, int64_t c, Body&& body, Acc* out1, Acc* out2) {
  const int nt = row_chunks(m, c);
  std::vector<Acc> part(static_cast<size_t>(nt) * 2 * c, Acc(0));
#pragma omp parallel for schedule(static, 1) if (nt > 1)
  for (int t = 0; t < nt; ++t) {
    Acc* s1 = part.data() + static_cast<size_t>(t) * 2 * c;
    body(m * t / nt, m * (t + 1) / nt, s1, s1 + c);
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    Acc a = 0, b = 0;
    for (int t = 0; t < nt; ++t) {
      a += part[static_cast<size_t>(t) * 2 * c + ch];
      b += part[static_cast<size_t>(t) * 2 * c + c + ch];
    }
    out1[ch] = a, out2[ch] = b;
  }
}

// Calls f(part, begin, end) for `parts` contiguous ranges of [0, units * unit_len) cut at
// multiples of unit_len, one range per OpenMP thread; parts = 1 runs f on the calling thread
// (so the GEMMs inside may use the whole team). The convolutions split their work this way.
template <class F>
void for_each_range(int parts, int64_t units, int64_t unit_len, F&& f) {
  if (parts <= 1) {
    f(0, int64_t{0}, units * unit_len);
    return;
  }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int i = 0; i < parts; ++i)
    f(i, units * i / parts * unit_len, units * (i + 1) / parts * unit_len);
}

// How many ranges to split `units` into: one per thread (one inside a parallel region), none
// smaller than one unit.
inline int ranges_for(int64_t units) {
#if defined(_OPENMP)
  const int team = omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  const int team = 1;
#endif
  return static_cast<int>(std::clamp<int64_t>(units, 1, team));
}

}  // namespace kernels::cpu
