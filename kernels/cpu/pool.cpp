#include "kernels/cpu/pool.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

template <class T>
void max_pool2d_forward(const PoolShape& shape, const T* x, T* y, int64_t* idx) {
  // Plain local scalars: read through a reference (or a struct shared with the OpenMP
  // threads), s.c could change with every int64_t store to idx as far as the compiler knows,
  // and the channel loop would not vectorise.
  const PoolShape s = shape;
  const int64_t nc = s.c;
  const int64_t rows = s.n * s.p;  // one output row (b, i) per task
  const int64_t work = rows * s.q * s.c * s.kernel * s.kernel;
#pragma omp parallel for schedule(static) if (work > kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / s.p, i = r % s.p;
    const T* xb = x + b * s.h * s.w * s.c;
    // Clip the window to the image: padded cells are -inf and can never be the maximum.
    const int64_t h0 = i * s.stride - s.pad;
    const int64_t hs = std::max<int64_t>(h0, 0), he = std::min(h0 + s.kernel, s.h);
    for (int64_t j = 0; j < s.q; ++j) {
      const int64_t w0 = j * s.stride - s.pad;
      const int64_t ws = std::max<int64_t>(w0, 0), we = std::min(w0 + s.kernel, s.w);
      T* yo = y + (r * s.q + j) * s.c;
      int64_t* io = idx + (r * s.q + j) * s.c;
      const int64_t first = hs * s.w + ws;  // PyTorch's index when every value is -inf
      for (int64_t ch = 0; ch < nc; ++ch) {
        yo[ch] = -std::numeric_limits<T>::infinity();
        io[ch] = first;
      }
      for (int64_t hh = hs; hh < he; ++hh) {
        for (int64_t ww = ws; ww < we; ++ww) {
          const int64_t pos = hh * s.w + ww;
          const T* xp = xb + pos * nc;
          // Strictly greater keeps the first maximum; v != v lets NaN win, as PyTorch.
          for (int64_t ch = 0; ch < nc; ++ch) {
            const T v = xp[ch];
            const bool take = (v > yo[ch]) | (v != v);
            yo[ch] = take ? v : yo[ch];
            io[ch] = take ? pos : io[ch];
          }
        }
      }
    }
  }
}

template <class T>
void max_pool2d_backward(const PoolShape& shape, const T* dy, const int64_t* idx, T* dx) {
  const PoolShape s = shape;  // local copies, as in the forward
  const int64_t nc = s.c;
  const int64_t img_in = s.h * s.w * s.c, img_out = s.p * s.q * s.c;
  // Windows overlap only inside one image, so images are independent tasks.
#pragma omp parallel for schedule(static) if (s.n * (img_in + img_out) > kParallelWork)
  for (int64_t b = 0; b < s.n; ++b) {
    T* dxb = dx + b * img_in;
    std::fill(dxb, dxb + img_in, T(0));
    const T* dyb = dy + b * img_out;
    const int64_t* ib = idx + b * img_out;
    for (int64_t cell = 0; cell < s.p * s.q; ++cell) {
      const T* g = dyb + cell * s.c;
      const int64_t* at = ib + cell * s.c;
      for (int64_t ch = 0; ch < nc; ++ch) dxb[at[ch] * nc + ch] += g[ch];
    }
  }
}

template <class T>
void adaptive_avg_pool2d_forward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                 const T* x, T* y) {
  const int64_t rows = n * p;
#pragma omp parallel if (n * h * w * c > kParallelWork)
  {
    std::vector<double> acc(static_cast<size_t>(c));  // one window's sums, per thread
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / p, i = r % p;
      const int64_t hs = i * h / p, he = ((i + 1) * h + p - 1) / p;  // floor, ceil
      const T* xb = x + b * h * w * c;
      for (int64_t j = 0; j < q; ++j) {
        const int64_t ws = j * w / q, we = ((j + 1) * w + q - 1) / q;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t hh = hs; hh < he; ++hh) {
          for (int64_t ww = ws; ww < we; ++ww) {
            const T* xp = xb + (hh * w + ww) * c;
            for (int64_t ch = 0; ch < c; ++ch) acc[ch] += xp[ch];
          }
        }
        const double inv = 1.0 / static_cast<double>((he - hs) * (we - ws));
        T* yo = y + (r * q + j) * c;
        for (int64_t ch = 0; ch < c; ++ch) yo[ch] = static_cast<T>(acc[ch] * inv);
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_backward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                  const T* dy, T* dx) {
  const int64_t img_in = h * w * c, img_out = p * q * c;
  // Adaptive windows may overlap (when p does not divide h): images are the parallel tasks.
#pragma omp parallel for schedule(static) if (n * (img_in + img_out) > kParallelWork)
  for (int64_t b = 0; b < n; ++b) {
    T* dxb = dx + b * img_in;
    std::fill(dxb, dxb + img_in, T(0));
    for (int64_t i = 0; i < p; ++i) {
      const int64_t hs = i * h / p, he = ((i + 1) * h + p - 1) / p;
      for (int64_t j = 0; j < q; ++j) {
        const int64_t ws = j * w / q, we = ((j + 1) * w + q - 1) / q;
        const T inv = T(1) / static_cast<T>((he - hs) * (we - ws));
        const T* g = dy + b * img_out + (i * q + j) * c;
        for (int64_t hh = hs; hh < he; ++hh) {
          for (int64_t ww = ws; ww < we; ++ww) {
            T* d = dxb + (hh * w + ww) * c;
            for (int64_t ch = 0; ch < c; ++ch) d[ch] += g[ch] * inv;
          }
        }
      }
    }
  }
}

template void max_pool2d_forward<float>(const PoolShape&, const float*, float*, int64_t*);
template void max_pool2d_forward<double>(const PoolShape&, const double*, double*, int64_t*);
template void max_pool2d_backward<float>(const PoolShape&, const float*, const int64_t*, float*);
template void max_pool2d_backward<double>(const PoolShape&, const double*, const int64_t*,
                                          double*);
template void adaptive_avg_pool2d_forward<float>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                 int64_t, const float*, float*);
template void adaptive_avg_pool2d_forward<double>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  int64_t, const double*, double*);
template void adaptive_avg_pool2d_backward<float>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  int64_t, const float*, float*);
template void adaptive_avg_pool2d_backward<double>(int64_t, int64_t, int64_t, int64_t, int64_t,
                                                   int64_t, const double*, double*);

}  // namespace kernels::cpu
