#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements; below this threads cost more than they save
constexpr int64_t kBlock = 256;            // inner columns per task when inner > 1

// One softmax over a contiguous row (inner == 1: softmax over the last dim).
template <class T>
void row_forward(int64_t n, const T* x, T* y, bool log) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < n; ++k) m = std::max(m, x[k]);
  double s = 0;  // a long row of float exps loses digits in a float sum
  if (log) {
    for (int64_t k = 0; k < n; ++k) s += std::exp(x[k] - m);
    const T lse = m + static_cast<T>(std::log(s));
    for (int64_t k = 0; k < n; ++k) y[k] = x[k] - lse;
  } else {
    for (int64_t k = 0; k < n; ++k) {
      y[k] = std::exp(x[k] - m);
      s += y[k];
    }
    const T inv = static_cast<T>(1.0 / s);
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
  }
}

// Softmax of columns [i0, i1) of one [n, inner] slice: every pass walks k in the outer loop
// and the (contiguous) columns in the inner loop, so the inner loops vectorise.
template <class T>
void block_forward(int64_t n, int64_t inner, int64_t i0, int64_t i1, const T* x, T* y, bool log) {
  T m[kBlock], s[kBlock];
  const int64_t w = i1 - i0;
  for (int64_t i = 0; i < w; ++i) m[i] = -std::numeric_limits<T>::infinity(), s[i] = 0;
  for (int64_t k = 0; k < n; ++k) {
    const T* xr = x + k * inner + i0;
    for (int64_t i = 0; i < w; ++i) m[i] = std::max(m[i], xr[i]);
  }
  for (int64_t k = 0; k < n; ++k) {
    const T* xr = x + k * inner + i0;
    T* yr = y + k * inner + i0;
    for (int64_t i = 0; i < w; ++i) {
      T e = std::exp(xr[i] - m[i]);
      if (!log) yr[i] = e;
      s[i] += e;
    }
  }
  if (log) {
    for (int64_t i = 0; i < w; ++i) s[i] = m[i] + std::log(s[i]);  // log-sum-exp
    for (int64_t k = 0; k < n; ++k) {
      const T* xr = x + k * inner + i0;
      T* yr = y + k * inner + i0;
      for (int64_t i = 0; i < w; ++i) yr[i] = xr[i] - s[i];
    }
  } else {
    for (int64_t i = 0; i < w; ++i) s[i] = T(1) / s[i];
    for (int64_t k = 0; k < n; ++k) {
      T* yr = y + k * inner + i0;
      for (int64_t i = 0; i < w; ++i) yr[i] *= s[i];
    }
  }
}

template <class T>
void row_backward(int64_t n, const T* y, const T* dy, T* dx, bool log) {
  double s = 0;
  if (log) {
    for (int64_t k = 0; k < n; ++k) s += dy[k];
    const T st = static_cast<T>(s);
    for (int64_t k = 0; k < n; ++k) dx[k] = dy[k] - std::exp(y[k]) * st;
  } else {
    for (int64_t k = 0; k < n; ++k) s += dy[k] * y[k];
    const T st = static_cast<T>(s);
    for (int64_t k = 0; k < n; ++k) dx[k] = y[k] * (dy[k] - st);
  }
}

template <class T>
void block_backward(int64_t n, int64_t inner, int64_t i0, int64_t i1, const T* y, const T* dy,
                    T* dx, bool log) {
  T s[kBlock];
  const int64_t w = i1 - i0;
  for (int64_t i = 0; i < w; ++i) s[i] = 0;
  for (int64_t k = 0; k < n; ++k) {
    const T* yr = y + k * inner + i0;
    const T* gr = dy + k * inner + i0;
    if (log) {
      for (int64_t i = 0; i < w; ++i) s[i] += gr[i];
    } else {
      for (int64_t i = 0; i < w; ++i) s[i] += gr[i] * yr[i];
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    const T* yr = y + k * inner + i0;
    const T* gr = dy + k * inner + i0;
    T* dr = dx + k * inner + i0;
    if (log) {
      for (int64_t i = 0; i < w; ++i) dr[i] = gr[i] - std::exp(yr[i]) * s[i];
    } else {
      for (int64_t i = 0; i < w; ++i) dr[i] = yr[i] * (gr[i] - s[i]);
    }
  }
}

// Runs f(o, i0, i1) over every (outer slice, column block) pair, in parallel when large.
template <class F>
void for_blocks(int64_t outer, int64_t n, int64_t inner, F f) {
  const int64_t nb = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (outer * n * inner > kParallelMin)
  for (int64_t t = 0; t < outer * nb; ++t) {
    const int64_t o = t / nb, b = t % nb;
    f(o, b * kBlock, std::min(inner, (b + 1) * kBlock));
  }
}

}  // namespace

template <class T>
void softmax_forward(int64_t outer, int64_t n, int64_t inner, const T* x, T* y, bool log) {
  if (outer == 0 || n == 0 || inner == 0) return;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > kParallelMin)
    for (int64_t o = 0; o < outer; ++o) row_forward(n, x + o * n, y + o * n, log);
    return;
  }
  for_blocks(outer, n, inner, [&](int64_t o, int64_t i0, int64_t i1) {
    block_forward(n, inner, i0, i1, x + o * n * inner, y + o * n * inner, log);
  });
}

template <class T>
void softmax_backward(int64_t outer, int64_t n, int64_t inner, const T* y, const T* dy, T* dx,
                      bool log) {
  if (outer == 0 || n == 0 || inner == 0) return;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > kParallelMin)
    for (int64_t o = 0; o < outer; ++o) row_backward(n, y + o * n, dy + o * n, dx + o * n, log);
    return;
  }
  for_blocks(outer, n, inner, [&](int64_t o, int64_t i0, int64_t i1) {
    const int64_t off = o * n * inner;
    block_backward(n, inner, i0, i1, y + off, dy + off, dx + off, log);
  });
}

template void softmax_forward<float>(int64_t, int64_t, int64_t, const float*, float*, bool);
template void softmax_forward<double>(int64_t, int64_t, int64_t, const double*, double*, bool);
template void softmax_backward<float>(int64_t, int64_t, int64_t, const float*, const float*, float*,
                                      bool);
template void softmax_backward<double>(int64_t, int64_t, int64_t, const double*, const double*,
                                       double*, bool);

}  // namespace kernels::cpu
