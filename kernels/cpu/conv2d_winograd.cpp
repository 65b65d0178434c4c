// kernels/cpu/conv2d_winograd.cpp — F(2x2, 3x3) Winograd convolution (see conv2d_winograd.h).
//
// Index names: t tile (n, th, tw): the 2x2 outputs at rows 2*th.., columns 2*tw..; xi one of
// the 16 positions of a transformed 4x4 tile (xi = 4 * i + j); ci input channel, co output
// channel. The three transforms, for F(2x2, 3x3):
//   B^T = [1  0 -1  0]      G = [ 1    0    0 ]      A^T = [1  1  1  0]
//         [0  1  1  0]          [1/2  1/2  1/2]            [0  1 -1 -1]
//         [0 -1  1  0]          [1/2 -1/2  1/2]
//         [0  1  0 -1]          [ 0    0    1 ]
#include "kernels/cpu/conv2d_winograd.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

std::atomic<Conv2dAlgo> g_algo{Conv2dAlgo::Auto};

// V and M of one chunk: 16 x tiles x (Cin + Cout) values, sized to stay in this CPU's L2 (the
// 2-core EPYC here has 1 MB per core; measured on ResNet-18's stage-1 and stage-3 convs).
constexpr int64_t kChunkBytes = int64_t{1} << 20;
// Fewer tiles than this make each of the 16 GEMMs too short to run at speed.
constexpr int64_t kMinChunkTiles = 32;
// The weight gradient's 16 GEMMs reduce over a chunk's tiles into [C, K] accumulators that
// every chunk reads and writes again: 2 * nt flops per accumulator value moved, so chunks of
// at least this many tiles keep that traffic small next to the arithmetic (a choice, not tuned:
// use_winograd in conv2d.cpp keeps the weight gradient to shapes with many tiles anyway).
constexpr int64_t kMinWeightChunkTiles = 256;

// A per-thread buffer of at least n elements, kept between calls (slot: which of the thread's
// buffers), so no call allocates once the sizes have been seen. Slots 0-3 are a tile range's
// working buffers; kFilterSlot is the calling thread's transformed filters (or their gradient),
// which every range reads, and which the calling thread keeps while it also runs range 0.
constexpr int kFilterSlot = 4;
template <class T, int slot>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// U[xi][ci][co] = (G g G^T)[xi] for the 3x3 filter g = tap(co, ci, ., .) of output channel co
// over input channel ci.
template <class T, class Tap>
void transform_filters(int64_t cin, int64_t cout, Tap tap, T* U) {
  const int64_t plane = cin * cout;
#pragma omp parallel for schedule(static) if (plane * 16 > kParallelWork)
  for (int64_t ci = 0; ci < cin; ++ci)
    for (int64_t co = 0; co < cout; ++co) {
      T g[3][3], a[4][3];
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s) g[r][s] = tap(co, ci, r, s);
      for (int s = 0; s < 3; ++s) {  // a = G g
        a[0][s] = g[0][s];
        a[1][s] = (g[0][s] + g[1][s] + g[2][s]) * T(0.5);
        a[2][s] = (g[0][s] - g[1][s] + g[2][s]) * T(0.5);
        a[3][s] = g[2][s];
      }
      T* u = U + ci * cout + co;
      for (int i = 0; i < 4; ++i) {  // u = a G^T
        u[(4 * i + 0) * plane] = a[i][0];
        u[(4 * i + 1) * plane] = (a[i][0] + a[i][1] + a[i][2]) * T(0.5);
        u[(4 * i + 2) * plane] = (a[i][0] - a[i][1] + a[i][2]) * T(0.5);
        u[(4 * i + 3) * plane] = a[i][2];
      }
    }
}

// What the convolution reads and writes, for the forward pass and the data gradient alike.
template <class T>
struct Problem {
  int64_t n, h, w, cin;   // input [n, h, w, cin]
  int64_t p, q, cout;     // output [n, p, q, cout]
  int64_t pad_h, pad_w;   // input row of output row p, tap r: p - pad_h + r
  const T* x;
  const T* U;             // [16][cin][cout]
  const T* bias;          // [cout] or null
  T* y;
};

// The output cut in 2x2 tiles, numbered row-major over (image, tile row, tile column); the
// last tile of a row or column hangs over the edge when Q or P is odd.
struct Tile {
  int64_t n, th, tw;
};
template <class T>
int64_t tile_count(const Problem<T>& pr) {
  return pr.n * ((pr.p + 1) / 2) * ((pr.q + 1) / 2);
}
template <class T>
Tile tile_at(const Problem<T>& pr, int64_t t) {
  const int64_t TH = (pr.p + 1) / 2, TW = (pr.q + 1) / 2;
  return {t / (TH * TW), t / TW % TH, t % TW};
}

// V[xi][tile][ci] for the tiles [t0, t1): B^T d B of each tile's 4x4 input patch, channel by
// channel. Taps in the padding read a row of zeros, so the channel loop has no branches.
template <class T>
void transform_inputs(const Problem<T>& pr, int64_t t0, int64_t t1, int64_t plane, T* V,
                      const T* zeros) {
  const int64_t C = pr.cin;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at(pr, t);
    const T* d[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t ih = 2 * th - pr.pad_h + i, iw = 2 * tw - pr.pad_w + j;
        const bool inside = ih >= 0 && ih < pr.h && iw >= 0 && iw < pr.w;
        d[i][j] = inside ? pr.x + ((n * pr.h + ih) * pr.w + iw) * C : zeros;
      }
    T* v = V + (t - t0) * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      T b[4][4];  // B^T d: rows
      for (int j = 0; j < 4; ++j) {
        b[0][j] = d[0][j][c] - d[2][j][c];
        b[1][j] = d[1][j][c] + d[2][j][c];
        b[2][j] = d[2][j][c] - d[1][j][c];
        b[3][j] = d[1][j][c] - d[3][j][c];
      }
      for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
        v[(4 * i + 0) * plane + c] = b[i][0] - b[i][2];
        v[(4 * i + 1) * plane + c] = b[i][1] + b[i][2];
        v[(4 * i + 2) * plane + c] = b[i][2] - b[i][1];
        v[(4 * i + 3) * plane + c] = b[i][1] - b[i][3];
      }
    }
  }
}

// y (+ bias) of the tiles [t0, t1) from M[xi][tile][co]: A^T M A. Outputs past the edge (odd
// P or Q) go to a discarded row, so the channel loop has no branches either.
template <class T>
void transform_outputs(const Problem<T>& pr, int64_t t0, int64_t t1, int64_t plane, const T* M,
                       const T* zeros, T* discard) {
  const int64_t K = pr.cout;
  const T* bias = pr.bias ? pr.bias : zeros;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at(pr, t);
    T* out[2][2];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const int64_t p = 2 * th + a, q = 2 * tw + b;
        out[a][b] = p < pr.p && q < pr.q ? pr.y + ((n * pr.p + p) * pr.q + q) * K : discard;
      }
    const T* m = M + (t - t0) * K;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      T s[2][4];  // A^T M: rows
      for (int j = 0; j < 4; ++j) {
        s[0][j] = m[(0 + j) * plane + k] + m[(4 + j) * plane + k] + m[(8 + j) * plane + k];
        s[1][j] = m[(4 + j) * plane + k] - m[(8 + j) * plane + k] - m[(12 + j) * plane + k];
      }
      for (int a = 0; a < 2; ++a) {  // (A^T M) A: columns
        out[a][0][k] = s[a][0] + s[a][1] + s[a][2] + bias[k];
        out[a][1][k] = s[a][1] - s[a][2] - s[a][3] + bias[k];
      }
    }
  }
}

// D[xi][tile][co] = (A dy A^T)[xi] for the tiles [t0, t1): the gradient of M, from the 2x2
// output gradients of each tile (those past the edge read zeros).
template <class T>
void transform_output_grads(const Problem<T>& pr, const T* dy, int64_t t0, int64_t t1,
                            int64_t plane, T* D, const T* zeros) {
  const int64_t K = pr.cout;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at(pr, t);
    const T* e[2][2];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const int64_t p = 2 * th + a, q = 2 * tw + b;
        e[a][b] = p < pr.p && q < pr.q ? dy + ((n * pr.p + p) * pr.q + q) * K : zeros;
      }
    T* d = D + (t - t0) * K;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      T r[4][2];  // A e: rows
      for (int b = 0; b < 2; ++b) {
        r[0][b] = e[0][b][k];
        r[1][b] = e[0][b][k] + e[1][b][k];
        r[2][b] = e[0][b][k] - e[1][b][k];
        r[3][b] = -e[1][b][k];
      }
      for (int i = 0; i < 4; ++i) {  // (A e) A^T: columns
        d[(4 * i + 0) * plane + k] = r[i][0];
        d[(4 * i + 1) * plane + k] = r[i][0] + r[i][1];
        d[(4 * i + 2) * plane + k] = r[i][0] - r[i][1];
        d[(4 * i + 3) * plane + k] = -r[i][1];
      }
    }
  }
}

// Tiles per chunk: as many as fit the byte budget (kChunkBytes unless given), at least
// min_tiles (1 when a budget is given: the tests' many-chunk cases), at most all.
template <class T>
int64_t chunk_tiles(const Problem<T>& pr, int64_t tiles, int64_t chunk_bytes,
                    int64_t min_tiles = kMinChunkTiles) {
  const int64_t tile_bytes = 16 * (pr.cin + pr.cout) * static_cast<int64_t>(sizeof(T));
  const int64_t budget = chunk_bytes > 0 ? chunk_bytes : kChunkBytes;
  const int64_t floor = chunk_bytes > 0 ? 1 : min_tiles;
  return std::clamp<int64_t>(budget / tile_bytes, floor, tiles);
}

template <class T>
void run(const Problem<T>& pr, int64_t chunk_bytes) {
  const int64_t tiles = tile_count(pr);
  if (tiles == 0) return;
  const int64_t chunk = chunk_tiles(pr, tiles, chunk_bytes);
  for_each_range(ranges_for(tiles), tiles, 1, [&](int, int64_t begin, int64_t end) {
    T* V = scratch<T, 0>(16 * chunk * pr.cin);
    T* M = scratch<T, 1>(16 * chunk * pr.cout);
    T* zeros = scratch<T, 2>(std::max(pr.cin, pr.cout));
    T* discard = scratch<T, 3>(pr.cout);
    std::fill(zeros, zeros + std::max(pr.cin, pr.cout), T(0));
    for (int64_t t0 = begin; t0 < end; t0 += chunk) {
      const int64_t t1 = std::min(t0 + chunk, end), nt = t1 - t0;
      transform_inputs(pr, t0, t1, chunk * pr.cin, V, zeros);
      // M_xi [nt, cout] = V_xi [nt, cin] @ U_xi [cin, cout], one GEMM per position
      for (int xi = 0; xi < 16; ++xi)
        gemm<T>(false, false, nt, pr.cout, pr.cin, T(1), V + xi * chunk * pr.cin, pr.cin,
                pr.U + xi * pr.cin * pr.cout, pr.cout, T(0), M + xi * chunk * pr.cout, pr.cout);
      transform_outputs(pr, t0, t1, chunk * pr.cout, M, zeros, discard);
    }
  });
}

}  // namespace

void set_conv2d_algo(Conv2dAlgo algo) { g_algo.store(algo); }
Conv2dAlgo conv2d_algo() { return g_algo.load(); }

bool winograd_applies(const Conv2dShape& sh) {
  return sh.r == 3 && sh.s == 3 && sh.stride_h == 1 && sh.stride_w == 1 && sh.dil_h == 1 &&
         sh.dil_w == 1 && sh.groups == 1 && sh.pad_h >= 0 && sh.pad_w >= 0 &&
         sh.p == sh.h + 2 * sh.pad_h - 2 && sh.q == sh.w + 2 * sh.pad_w - 2;
}

template <class T>
void conv2d_forward_winograd(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
                             int64_t chunk_bytes) {
  T* U = scratch<T, kFilterSlot>(16 * sh.c * sh.k);
  const int64_t C = sh.c;
  transform_filters<T>(
      sh.c, sh.k,
      [&](int64_t co, int64_t ci, int r, int s) { return w[((co * 3 + r) * 3 + s) * C + ci]; }, U);
  run(Problem<T>{sh.n, sh.h, sh.w, sh.c, sh.p, sh.q, sh.k, sh.pad_h, sh.pad_w, x, U, bias, y},
      chunk_bytes);
}

template <class T>
void conv2d_backward_data_winograd(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                                   int64_t chunk_bytes) {
  // dx = conv(dy, w') over dy's K channels, w'[c, r, s, k] = w[k, 2 - r, 2 - s, c], padding
  // 2 - pad: output row h reads dy rows h + pad - r for r = 0..2.
  T* U = scratch<T, kFilterSlot>(16 * sh.k * sh.c);
  const int64_t C = sh.c;
  transform_filters<T>(sh.k, sh.c,
                       [&](int64_t c, int64_t k, int r, int s) {
                         return w[((k * 3 + (2 - r)) * 3 + (2 - s)) * C + c];
                       },
                       U);
  run(Problem<T>{sh.n, sh.p, sh.q, sh.k, sh.h, sh.w, sh.c, 2 - sh.pad_h, 2 - sh.pad_w, dy, U,
                 nullptr, dx},
      chunk_bytes);
}

template <class T>
void conv2d_backward_weight_winograd(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                                     int64_t chunk_bytes) {
  const int64_t C = sh.c, K = sh.k, plane = C * K;
  const Problem<T> pr{sh.n, sh.h, sh.w, C, sh.p, sh.q, K, sh.pad_h, sh.pad_w, x, nullptr, nullptr,
                      nullptr};
  const int64_t tiles = tile_count(pr);
  const int64_t chunk = tiles > 0 ? chunk_tiles(pr, tiles, chunk_bytes, kMinWeightChunkTiles) : 1;
  const int parts = ranges_for(tiles);
  // dU[xi][c][k] = sum over tiles of V[xi][tile][c] D[xi][tile][k]: one accumulator per range,
  // added in range order below (the same sum every run for a given thread count). Not zeroed:
  // each range's first chunk overwrites its accumulator (beta = 0); every range has a tile.
  T* dU = scratch<T, kFilterSlot>(parts * 16 * plane);
  for_each_range(parts, tiles, 1, [&](int part, int64_t begin, int64_t end) {
    T* V = scratch<T, 0>(16 * chunk * C);
    T* D = scratch<T, 1>(16 * chunk * K);
    T* zeros = scratch<T, 2>(std::max(C, K));
    std::fill(zeros, zeros + std::max(C, K), T(0));
    T* acc = dU + part * 16 * plane;
    for (int64_t t0 = begin; t0 < end; t0 += chunk) {
      const int64_t t1 = std::min(t0 + chunk, end), nt = t1 - t0;
      transform_inputs(pr, t0, t1, chunk * C, V, zeros);
      transform_output_grads(pr, dy, t0, t1, chunk * K, D, zeros);
      // dU_xi [C, K] (+)= V_xi [nt, C]^T @ D_xi [nt, K]
      const T beta = t0 == begin ? T(0) : T(1);
      for (int xi = 0; xi < 16; ++xi)
        gemm<T>(true, false, C, K, nt, T(1), V + xi * chunk * C, C, D + xi * chunk * K, K, beta,
                acc + xi * plane, K);
    }
  });
  // dw[k, r, s, c] = (G^T dU G)[r][s], with the ranges' dU added in order.
#pragma omp parallel for schedule(static) if (plane * 16 > kParallelWork)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      T u[4][4], a[3][4];
      for (int xi = 0; xi < 16; ++xi) {
        T sum = dU[xi * plane + c * K + k];
        for (int part = 1; part < parts; ++part) sum += dU[(part * 16 + xi) * plane + c * K + k];
        u[xi / 4][xi % 4] = sum;
      }
      for (int j = 0; j < 4; ++j) {  // a = G^T u
        a[0][j] = u[0][j] + (u[1][j] + u[2][j]) * T(0.5);
        a[1][j] = (u[1][j] - u[2][j]) * T(0.5);
        a[2][j] = (u[1][j] + u[2][j]) * T(0.5) + u[3][j];
      }
      T* out = dw + k * 9 * C + c;
      for (int r = 0; r < 3; ++r) {  // a G
        out[(r * 3 + 0) * C] = a[r][0] + (a[r][1] + a[r][2]) * T(0.5);
        out[(r * 3 + 1) * C] = (a[r][1] - a[r][2]) * T(0.5);
        out[(r * 3 + 2) * C] = (a[r][1] + a[r][2]) * T(0.5) + a[r][3];
      }
    }
}

template void conv2d_forward_winograd<float>(const Conv2dShape&, const float*, const float*,
                                             const float*, float*, int64_t);
template void conv2d_forward_winograd<double>(const Conv2dShape&, const double*, const double*,
                                              const double*, double*, int64_t);
template void conv2d_backward_data_winograd<float>(const Conv2dShape&, const float*, const float*,
                                                   float*, int64_t);
template void conv2d_backward_data_winograd<double>(const Conv2dShape&, const double*,
                                                    const double*, double*, int64_t);

template void conv2d_backward_weight_winograd<float>(const Conv2dShape&, const float*,
                                                     const float*, float*, int64_t);
template void conv2d_backward_weight_winograd<double>(const Conv2dShape&, const double*,
                                                      const double*, double*, int64_t);

}  // namespace kernels::cpu
