// kernels/cpu/parallel.h — the few OpenMP queries kernels need, safe without OpenMP.
#pragma once

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

}  // namespace kernels::cpu
