// kernels/cpu/conv2d.cpp — im2col + GEMM convolution (see conv2d.h for layouts and algorithm).
//
// Index names: n image, (h, wi) input pixel, (p, q) output pixel, (r, s) filter tap,
// g group, c channel. "np" is the flat output-row index n * P + p; chunks are ranges of np.
//
// Threads (one pool, OpenMP's; OpenBLAS runs single-threaded, see matmul.cpp): the output rows
// are split into one contiguous range per thread, and each thread runs the one-thread
// algorithm on its range, chunk by chunk, with its own column buffer: im2col, col2im and the
// GEMMs all run in parallel, and no thread waits for another until the end. The data
// gradient splits by whole images, so no two threads ever add into the same dx row; the
// weight gradient gives each thread its own dw to accumulate into, added up in a fixed order
// at the end. When there is only one range (a single image for the data gradient), the
// GEMMs themselves are split across the threads instead (kernels::cpu::gemm).
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

struct Dims {
  int64_t cg, kg;  // channels and filters per group
  int64_t rsc;     // one column row: R * S * C (all groups)
  int64_t rscg;    // one group's part of a column row: R * S * C/G
};

Dims dims_of(const Conv2dShape& sh) {
  Dims d;
  d.cg = sh.c / sh.groups;
  d.kg = sh.k / sh.groups;
  d.rscg = sh.r * sh.s * d.cg;
  d.rsc = d.rscg * sh.groups;
  return d;
}

// A 1x1 filter that reads every input pixel once, in order: x [N*H*W, C] is the column matrix.
bool is_pointwise(const Conv2dShape& sh) {
  return sh.r == 1 && sh.s == 1 && sh.stride_h == 1 && sh.stride_w == 1 && sh.pad_h == 0 &&
         sh.pad_w == 0 && sh.p == sh.h && sh.q == sh.w;
}

// The column buffer, kept per thread between calls: a fresh multi-MB allocation each call would
// cost page faults (and std::vector would also zero it). It only grows, up to the chunk budget.
template <class T>
T* workspace(int64_t elems) {
  thread_local std::unique_ptr<T[]> buf;
  thread_local int64_t size = 0;
  if (elems > size) {
    buf.reset();  // free the old one first so both are never held at once
    buf = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(elems));
    size = elems;
  }
  return buf.get();
}

// How many output rows (n, p) go in one chunk: as many as fit in `bytes` (0: about
// kColumnBytes but at least kMinChunkPixels pixels, see conv2d.h), at least one.
template <class T>
int64_t rows_per_chunk(const Conv2dShape& sh, const Dims& d, int64_t bytes) {
  const int64_t pixel_bytes = d.rsc * static_cast<int64_t>(sizeof(T));
  if (bytes <= 0) bytes = std::max(kColumnBytes, kMinChunkPixels * pixel_bytes);
  const int64_t row_bytes = sh.q * pixel_bytes;
  return std::clamp<int64_t>(bytes / std::max<int64_t>(row_bytes, 1), 1,
                             std::max<int64_t>(sh.n * sh.p, 1));
}

// cols[(np - np0) * Q + q, :] = the R*S*C input values output pixel (n, p, q) reads, laid out
// [G][R][S][C/G], zeros where a tap falls in the padding. When `bias` is given, the same pass
// (same sweep, while the rows are in cache) also sets those pixels' outputs y0[.., k] = bias[k].
template <class T>
void im2col(const Conv2dShape& sh, const Dims& d, const T* x, int64_t np0, int64_t np1, T* cols,
            const T* bias = nullptr, T* y0 = nullptr) {
  const int64_t C = sh.c, G = sh.groups, S = sh.s;
  for (int64_t np = np0; np < np1; ++np) {
    const int64_t n = np / sh.p, p = np % sh.p;
    const T* xn = x + n * sh.h * sh.w * C;
    if (bias)
      for (int64_t q = 0; q < sh.q; ++q)
        std::memcpy(y0 + ((np - np0) * sh.q + q) * sh.k, bias, sizeof(T) * sh.k);
    for (int64_t q = 0; q < sh.q; ++q) {
      T* row = cols + ((np - np0) * sh.q + q) * d.rsc;
      for (int64_t r = 0; r < sh.r; ++r) {
        const int64_t h = p * sh.stride_h - sh.pad_h + r * sh.dil_h;
        const int64_t w0 = q * sh.stride_w - sh.pad_w;  // input column of tap s = 0
        if (G == 1 && sh.dil_w == 1) {
          // Adjacent taps read adjacent pixels: the in-bounds taps are one contiguous copy.
          T* dst = row + r * S * C;
          if (h < 0 || h >= sh.h) {
            std::memset(dst, 0, sizeof(T) * S * C);
            continue;
          }
          const int64_t s0 = std::clamp<int64_t>(-w0, 0, S);
          const int64_t s1 = std::clamp<int64_t>(sh.w - w0, s0, S);
          if (s0 > 0) std::memset(dst, 0, sizeof(T) * s0 * C);
          if (s1 > s0)
            std::memcpy(dst + s0 * C, xn + (h * sh.w + w0 + s0) * C, sizeof(T) * (s1 - s0) * C);
          if (s1 < S) std::memset(dst + s1 * C, 0, sizeof(T) * (S - s1) * C);
          continue;
        }
        for (int64_t s = 0; s < S; ++s) {
          const int64_t wi = w0 + s * sh.dil_w;
          const bool inside = h >= 0 && h < sh.h && wi >= 0 && wi < sh.w;
          for (int64_t g = 0; g < G; ++g) {
            T* dst = row + g * d.rscg + (r * S + s) * d.cg;
            if (inside)
              std::memcpy(dst, xn + (h * sh.w + wi) * C + g * d.cg, sizeof(T) * d.cg);
            else
              std::memset(dst, 0, sizeof(T) * d.cg);
          }
        }
      }
    }
  }
}

// dx += the column gradients of output rows [np0, np1), gathered per input row (n, h): each dx
// row is finished in one sweep while it is in L1, and the loop could be split over rows
// without two threads ever adding into one pixel. A dx row is zeroed by the chunk that holds
// its image's first output row (chunks run in np order), which saves a separate pass over dx.
template <class T>
void col2im(const Conv2dShape& sh, const Dims& d, const T* dcols, int64_t np0, int64_t np1, T* dx) {
  const int64_t C = sh.c, G = sh.groups, S = sh.s;
  const int64_t n0 = np0 / sh.p, n1 = (np1 - 1) / sh.p + 1;
  for (int64_t nh = n0 * sh.h; nh < n1 * sh.h; ++nh) {
    const int64_t n = nh / sh.h, h = nh % sh.h;
    T* dx_row = dx + nh * sh.w * C;
    if (n * sh.p >= np0) std::memset(dx_row, 0, sizeof(T) * sh.w * C);
    for (int64_t r = 0; r < sh.r; ++r) {
      const int64_t ph = h + sh.pad_h - r * sh.dil_h;  // = p * stride_h when tap r reads row h
      if (ph < 0 || ph % sh.stride_h != 0) continue;
      const int64_t np = n * sh.p + ph / sh.stride_h;
      if (ph / sh.stride_h >= sh.p || np < np0 || np >= np1) continue;
      const T* src_row = dcols + (np - np0) * sh.q * d.rsc + r * S * d.cg;
      for (int64_t wi = 0; wi < sh.w; ++wi) {
        T* dst = dx_row + wi * C;
        for (int64_t s = 0; s < S; ++s) {
          const int64_t qw = wi + sh.pad_w - s * sh.dil_w;
          if (qw < 0 || qw % sh.stride_w != 0 || qw / sh.stride_w >= sh.q) continue;
          const T* src = src_row + (qw / sh.stride_w) * d.rsc + s * d.cg;
          for (int64_t g = 0; g < G; ++g) {
            const T* sg = src + g * d.rscg;
            T* dg = dst + g * d.cg;
            for (int64_t c = 0; c < d.cg; ++c) dg[c] += sg[c];
          }
        }
      }
    }
  }
}


enum class Pass { Forward, Data, Weight };

// Winograd (conv2d_winograd.h) takes the 3x3 stride-1 convolutions where it was measured faster
// than im2col, and F(4x4) where it was measured faster than F(2x2). What decides is the number of
// output tiles per channel, r2 = (2x2 tiles) / max(C, K) and r4 = (4x4 tiles) / max(C, K): with
// few tiles the fixed costs (transforming the filters, packing the 16 or 36 GEMMs' [C, K]
// operands) are not repaid. ms per call on ResNet's layers (bench/cpu/conv2d_winograd_bench.cpp
// and the same at other batches), im2col / F(2x2) / F(4x4), 2-core build machine, 2026-11-26:
//   layer, batch    r2, r4       forward              data gradient        weight gradient
//   56x56x64, 1    12.3, 3.1    1.34 / 0.62 / 0.48   1.61 / 0.61 / 0.45   1.38 / 0.60 / 0.44
//   28x28x128, 1   1.5, 0.38    1.17 / 0.62 / 0.57   1.34 / 0.59 / 0.50   1.21 / 0.62 / 0.49
//   28x28x128, 8   12, 3.1      9.45 / 4.27 / 2.88   9.50 / 4.28 / 2.77   9.45 / 4.76 / 3.67
//   14x14x256, 1   0.19, 0.06   1.22 / 1.12 / 1.36   1.17 / 0.96 / 1.10   1.31 / 0.79 / 1.38
//   14x14x256, 4   0.77, 0.25   4.57 / 3.29 / 3.42   4.54 / 3.08 / 2.80   4.82 / 2.50 / 3.03
//   14x14x256, 8   1.5, 0.5     9.25 / 5.53 / 5.47   9.19 / 5.44 / 5.08   9.48 / 5.11 / 5.15
//   7x7x512, 2     0.06, 0.02   2.80 / 5.88 / 12.5   2.72 / 3.47 / 6.09   3.41 / 3.68 / 8.63
//   7x7x512, 4     0.13, 0.03   4.99 / 7.39 / 13.5   4.96 / 4.98 / 6.97   5.63 / 5.20 / 9.18
//   7x7x512, 8     0.25, 0.06   9.58 / 11.1 / 15.4   9.60 / 8.62 / 8.47   10.1 / 8.16 / 10.9
// The forward pass pays most for few tiles (its filters must also be transposed), the weight
// gradient least (its fixed cost is one transform of dU); F(4x4) also wastes the most on 14x14
// images (4x4 tiles cover 16x16). The transforms are memory-bound and im2col's GEMM is not: 20
// minutes later, with the machine's memory busier, the same binary gave 14x14x256 at batch 8
// 9.6 / 6.4 / 6.9 forward, 9.8 / 6.8 / 7.3 data, and 7x7x512 9.7 / 12.6 / 14.0 data, 11.0 /
// 9.4 / 12.6 weight. The thresholds sit where the choice won in both states. An explicit
// column_bytes asks for im2col (the tests' chunk cases).
struct WinogradThresholds {
  double r4, r2;  // F(4x4) from r4 >= this, else F(2x2) from r2 >= this, else im2col
};
constexpr WinogradThresholds kForward{0.75, 0.3}, kData{0.75, 0.3}, kWeight{0.75, 0.1};

// Either variant keeps its A * A transformed filters (the weight gradient: one copy per
// thread) in a buffer that lives as long as the thread; above kWinogradFilterBytes for them it
// is not used. Memory against speed: ResNet's 512 x 512 weight gradient in F(2x2) on 2 threads
// needs 2 x 16.8 MB and saves ~2 ms of ~10 per layer (table above). ResNet-18's training step,
// paired with LibTorch (2026-11-26, 23:10): 0.74x / 0.71x LibTorch's time at a 502 MB peak with
// it, 0.74x / 0.74x at 489 MB without (LibTorch: 518 MB). With the splitting host cache
// (engine/block_pool.h) there is room for it now; at 16 MB it had kept ResNet-18's peak under
// LibTorch's. On a machine with many threads the copies add up and the layer goes to im2col.
constexpr int64_t kWinogradFilterBytes = int64_t{40} << 20;

std::optional<WinogradTile> winograd_tile(const Conv2dShape& sh, int64_t column_bytes, Pass pass,
                                          int64_t elem_bytes) {
  if (column_bytes != 0 || conv2d_algo() != Conv2dAlgo::Auto || !winograd_applies(sh) ||
      sh.c < 16 || sh.k < 16)
    return std::nullopt;
  if (pass == Pass::Data && (sh.pad_h > 2 || sh.pad_w > 2)) return std::nullopt;
  const int64_t copies = pass == Pass::Weight ? ranges_for(sh.n * sh.p * sh.q) : 1;
  auto fits = [&](int64_t positions) {
    return positions * sh.c * sh.k * elem_bytes * copies <= kWinogradFilterBytes;
  };
  const WinogradThresholds& th = pass == Pass::Forward ? kForward
                                 : pass == Pass::Data  ? kData
                                                       : kWeight;
  const double channels = double(std::max(sh.c, sh.k));
  const double r4 = double(sh.n * ((sh.p + 3) / 4) * ((sh.q + 3) / 4)) / channels;
  const double r2 = double(sh.n * ((sh.p + 1) / 2) * ((sh.q + 1) / 2)) / channels;
  if (r4 >= th.r4 && fits(36)) return WinogradTile::F4x4;
  if (r2 >= th.r2 && fits(16)) return WinogradTile::F2x2;
  return std::nullopt;
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
                    int64_t column_bytes) {
  if (const auto tile = winograd_tile(sh, column_bytes, Pass::Forward, sizeof(T)))
    return conv2d_forward_winograd(sh, x, w, bias, y, *tile);
  const Dims d = dims_of(sh);
  const int64_t K = sh.k, G = sh.groups;
  // y starts as bias (broadcast over pixels) or 0 (beta = 0); each GEMM adds into it.
  const T beta = bias ? T(1) : T(0);

  if (is_pointwise(sh)) {
    const int64_t pixels = sh.n * sh.p * sh.q;
    if (bias)
      for (int64_t i = 0; i < pixels; ++i) std::memcpy(y + i * K, bias, sizeof(T) * K);
    for (int64_t g = 0; g < G; ++g)
      gemm<T>(false, true, pixels, d.kg, d.cg, T(1), x + g * d.cg, sh.c, w + g * d.kg * d.cg, d.cg,
              beta, y + g * d.kg, K);
    return;
  }
  const int64_t chunk = rows_per_chunk<T>(sh, d, column_bytes);
  for_each_range(ranges_for(sh.n * sh.p), sh.n * sh.p, 1, [&](int, int64_t begin, int64_t end) {
    T* cols = workspace<T>(chunk * sh.q * d.rsc);  // this thread's
    for (int64_t np0 = begin; np0 < end; np0 += chunk) {
      const int64_t np1 = std::min(np0 + chunk, end);
      const int64_t rows = (np1 - np0) * sh.q;
      T* y0 = y + np0 * sh.q * K;
      im2col(sh, d, x, np0, np1, cols, bias, y0);
      // y[rows, group g's K/G columns] (+)= cols_g [rows, RSCg] @ w_g[K/G, RSCg]^T
      for (int64_t g = 0; g < G; ++g)
        gemm<T>(false, true, rows, d.kg, d.rscg, T(1), cols + g * d.rscg, d.rsc,
                w + g * d.kg * d.rscg, d.rscg, beta, y0 + g * d.kg, K);
    }
  });
}

template <class T>
void conv2d_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                          int64_t column_bytes) {
  if (const auto tile = winograd_tile(sh, column_bytes, Pass::Data, sizeof(T)))
    return conv2d_backward_data_winograd(sh, dy, w, dx, *tile);
  const Dims d = dims_of(sh);
  const int64_t K = sh.k, G = sh.groups;
  if (is_pointwise(sh)) {
    // dx[pixels, C] = dy[pixels, K] @ w[K, C] per group.
    for (int64_t g = 0; g < G; ++g)
      gemm<T>(false, false, sh.n * sh.h * sh.w, d.cg, d.kg, T(1), dy + g * d.kg, K,
              w + g * d.kg * d.cg, d.cg, T(0), dx + g * d.cg, sh.c);
    return;
  }
  // Whole images per range: the dx rows a range writes belong to its images alone.
  const int64_t chunk = rows_per_chunk<T>(sh, d, column_bytes);
  for_each_range(ranges_for(sh.n), sh.n, sh.p, [&](int, int64_t begin, int64_t end) {
    T* dcols = workspace<T>(chunk * sh.q * d.rsc);
    for (int64_t np0 = begin; np0 < end; np0 += chunk) {
      const int64_t np1 = std::min(np0 + chunk, end);
      const int64_t rows = (np1 - np0) * sh.q;
      const T* dy0 = dy + np0 * sh.q * K;
      // dcols_g [rows, RSCg] = dy_g [rows, K/G] @ w_g [K/G, RSCg]
      for (int64_t g = 0; g < G; ++g)
        gemm<T>(false, false, rows, d.rscg, d.kg, T(1), dy0 + g * d.kg, K, w + g * d.kg * d.rscg,
                d.rscg, T(0), dcols + g * d.rscg, d.rsc);
      col2im(sh, d, dcols, np0, np1, dx);
    }
  });
}

template <class T>
void conv2d_backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                            int64_t column_bytes) {
  if (const auto tile = winograd_tile(sh, column_bytes, Pass::Weight, sizeof(T)))
    return conv2d_backward_weight_winograd(sh, x, dy, dw, *tile);
  const Dims d = dims_of(sh);
  const int64_t K = sh.k, G = sh.groups;
  if (is_pointwise(sh)) {
    // dw[K, C] = dy[pixels, K]^T @ x[pixels, C] per group.
    for (int64_t g = 0; g < G; ++g)
      gemm<T>(true, false, d.kg, d.cg, sh.n * sh.h * sh.w, T(1), dy + g * d.kg, K, x + g * d.cg,
              sh.c, T(0), dw + g * d.kg * d.cg, d.cg);
    return;
  }
  // Each range accumulates into its own dw (range 0 into dw itself); summed in order at the end.
  const int64_t chunk = rows_per_chunk<T>(sh, d, column_bytes);
  const int parts = ranges_for(sh.n * sh.p);
  const int64_t dw_size = K * d.rscg;
  // Not zeroed: each range's first chunk overwrites its accumulator (beta = 0).
  const auto partials = std::make_unique_for_overwrite<T[]>(static_cast<size_t>((parts - 1) * dw_size));
  for_each_range(parts, sh.n * sh.p, 1, [&](int part, int64_t begin, int64_t end) {
    T* cols = workspace<T>(chunk * sh.q * d.rsc);
    T* acc = part == 0 ? dw : partials.get() + (part - 1) * dw_size;
    for (int64_t np0 = begin; np0 < end; np0 += chunk) {
      const int64_t np1 = std::min(np0 + chunk, end);
      const int64_t rows = (np1 - np0) * sh.q;
      im2col(sh, d, x, np0, np1, cols);
      const T* dy0 = dy + np0 * sh.q * K;
      const T beta = np0 == begin ? T(0) : T(1);  // the first chunk overwrites, later ones add
      // acc_g [K/G, RSCg] (+)= dy_g [rows, K/G]^T @ cols_g [rows, RSCg]
      for (int64_t g = 0; g < G; ++g)
        gemm<T>(true, false, d.kg, d.rscg, rows, T(1), dy0 + g * d.kg, K, cols + g * d.rscg,
                d.rsc, beta, acc + g * d.kg * d.rscg, d.rscg);
    }
  });
  // One pass over dw, adding the ranges in order (the same sum every run).
#pragma omp parallel for schedule(static) if (parts > 1 && dw_size > (1 << 16))
  for (int64_t i = 0; i < dw_size; ++i)
    for (int part = 1; part < parts; ++part) dw[i] += partials[(part - 1) * dw_size + i];
}

template void conv2d_forward<float>(const Conv2dShape&, const float*, const float*, const float*,
                                    float*, int64_t);
template void conv2d_forward<double>(const Conv2dShape&, const double*, const double*,
                                     const double*, double*, int64_t);
template void conv2d_backward_data<float>(const Conv2dShape&, const float*, const float*, float*,
                                          int64_t);
template void conv2d_backward_data<double>(const Conv2dShape&, const double*, const double*,
                                           double*, int64_t);
template void conv2d_backward_weight<float>(const Conv2dShape&, const float*, const float*, float*,
                                            int64_t);
template void conv2d_backward_weight<double>(const Conv2dShape&, const double*, const double*,
                                             double*, int64_t);

}  // namespace kernels::cpu
