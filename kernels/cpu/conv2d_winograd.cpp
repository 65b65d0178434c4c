// kernels/cpu/conv2d_winograd.cpp — Winograd convolution F(2x2, 3x3) and F(4x4, 3x3) (see
// conv2d_winograd.h). One driver for both tile sizes, templated on the variant W
// (conv2d_winograd_transforms.h: W::m outputs per tile side, W::A = m + 2 inputs).
//
// Index names: t tile (n, th, tw): the m x m outputs at rows m*th.., columns m*tw..; xi one of
// the A * A positions of a transformed A x A tile (xi = A * i + j); ci input channel, co output
// channel.
#include "kernels/cpu/conv2d_winograd.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/cpu/conv2d_winograd_transforms.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

std::atomic<Conv2dAlgo> g_algo{Conv2dAlgo::Auto};

// V and M of one chunk of F(2x2) tiles: 16 x tiles x (Cin + Cout) values, sized to stay in this
// CPU's L2 (the 2-core EPYC here has 1 MB per core; measured on ResNet-18's stage-1 and stage-3
// convs). F(4x4) chunks get 36/16 of it, so that both hold about as many tiles. Not sharp: with
// half or twice the budget, ResNet's batch-8 stage 1-3 convs ran within +-10% (2026-11-26).
constexpr int64_t kChunkBytes = int64_t{1} << 20;
// Fewer tiles than this make each of the A * A GEMMs too short to run at speed.
constexpr int64_t kMinChunkTiles = 32;
// The weight gradient's A * A GEMMs reduce over a chunk's tiles into [C, K] accumulators that
// every chunk reads and writes again: 2 * nt flops per accumulator value moved, so chunks of
// at least this many tiles keep that traffic small next to the arithmetic (a choice, not tuned:
// winograd_tile in conv2d.cpp keeps the weight gradient to shapes with many tiles anyway).
constexpr int64_t kMinWeightChunkTiles = 256;

// A per-thread buffer of at least n elements, kept between calls (slot: which of the thread's
// buffers), so no call allocates once the sizes have been seen. Slots 0-3 are a tile range's
// working buffers; kFilterSlot is the calling thread's transformed filters (or their gradient),
// which every range reads, and which the calling thread keeps while it also runs range 0;
// kFilterSlot + 1 a thread's block of filters being transposed.
constexpr int kFilterSlot = 4;
template <class T, int slot>
T* scratch(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// dst[xi * plane + i] = (G g G^T)[xi] for the 3x3 filters g = tap(o, i, ., .) of one o and
// every i < inner; xi = A * a + b runs over the A x A transformed positions. tap should read
// memory contiguous in i: the loop over i is the vectorised one, and dst is written along it
// too (with taps strided along the inner loop, ResNet's 512 x 512 filters took 11 ms).
template <class W, class T, class Tap>
inline void transform_filter_row(int64_t o, int64_t inner, Tap tap, T* dst, int64_t plane) {
  constexpr int A = W::A;
#pragma GCC ivdep
  for (int64_t i = 0; i < inner; ++i) {
    T g[3][3], u[A][A];
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s) g[r][s] = tap(o, i, r, s);
    winograd::both_axes(g, u, [](const T* in, T* out) { W::filter(in, out); });
#pragma GCC unroll 8
    for (int a = 0; a < A; ++a)
#pragma GCC unroll 8
      for (int b = 0; b < A; ++b) dst[(A * a + b) * plane + i] = u[a][b];
  }
}

// U[xi][o][i] = (G g G^T)[xi] for the 3x3 filter g = tap(o, i, ., .), o < outer, i < inner.
template <class W, class T, class Tap>
void transform_filters(int64_t outer, int64_t inner, Tap tap, T* U) {
  const int64_t plane = outer * inner;
#pragma omp parallel for schedule(static) if (plane * W::A * W::A > kParallelWork)
  for (int64_t o = 0; o < outer; ++o) transform_filter_row<W>(o, inner, tap, U + o * inner, plane);
}

// The same for taps that run along o's partner: U[xi][i][o] from tap(o, i, ., .), o < outer,
// i < inner (the forward pass: w is [K][3][3][C], the GEMMs want U_xi as [C][K]). Blocks of
// kBlock o are transformed along i as above into a per-thread buffer, then written kBlock
// wide into U: a transpose in blocks, so neither the taps nor U are touched with a stride.
// (Letting the GEMMs read U_xi transposed instead cost 25% of ResNet's stage-1 forward: the
// packing of a transposed operand is slower, and it is paid once per chunk of tiles.)
template <class W, class T, class Tap>
void transform_filters_transposed(int64_t outer, int64_t inner, Tap tap, T* U) {
  constexpr int A = W::A;
  constexpr int64_t kBlock = 8;
  const int64_t plane = outer * inner;
#pragma omp parallel if (plane * A * A > kParallelWork)
  {
    T* block = scratch<T, kFilterSlot + 1>(A * A * kBlock * inner);  // [xi][kBlock][inner]
#pragma omp for schedule(static)
    for (int64_t o0 = 0; o0 < outer; o0 += kBlock) {
      const int64_t nb = std::min(kBlock, outer - o0);
      for (int64_t j = 0; j < nb; ++j)
        transform_filter_row<W>(o0 + j, inner, tap, block + j * inner, kBlock * inner);
      for (int xi = 0; xi < A * A; ++xi)
        for (int64_t i = 0; i < inner; ++i)
          for (int64_t j = 0; j < nb; ++j)
            U[xi * plane + i * outer + o0 + j] = block[(xi * kBlock + j) * inner + i];
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
  const T* U;             // [A * A][cin][cout]
  const T* bias;          // [cout] or null
  T* y;
};

// The output cut in m x m tiles, numbered row-major over (image, tile row, tile column); the
// last tile of a row or column hangs over the edge when m does not divide Q or P.
struct Tile {
  int64_t n, th, tw;
};
template <class W, class T>
int64_t tile_count(const Problem<T>& pr) {
  return pr.n * ((pr.p + W::m - 1) / W::m) * ((pr.q + W::m - 1) / W::m);
}
template <class W, class T>
Tile tile_at(const Problem<T>& pr, int64_t t) {
  const int64_t TH = (pr.p + W::m - 1) / W::m, TW = (pr.q + W::m - 1) / W::m;
  return {t / (TH * TW), t / TW % TH, t % TW};
}

// One tile's transform, channel by channel: for each c < C, block[i][j] = src[i][j][c] (n x n),
// out = F block F^T (n_out x n_out, F the 1-D transform f), and dst[(n_out * i + j) * plane + c]
// = out[i][j], position xi = n_out * i + j's plane. The channel loop is the vectorised one.
template <int n, int n_out, class T, class F>
inline void transform_tile(const T* const (&src)[n][n], int64_t C, F f, T* dst, int64_t plane) {
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c) {
    T block[n][n], out[n_out][n_out];
#pragma GCC unroll 8
    for (int i = 0; i < n; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < n; ++j) block[i][j] = src[i][j][c];
    winograd::both_axes(block, out, f);
#pragma GCC unroll 8
    for (int i = 0; i < n_out; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < n_out; ++j) dst[(n_out * i + j) * plane + c] = out[i][j];
  }
}

// The way back, transform_tile's mirror: for each c < C, block[i][j] = src[(n * i + j) * plane
// + c] (position xi = n * i + j's plane), out = F block F^T (n_out x n_out), and dst[i][j][c] =
// out[i][j] + add[c].
template <int n, int n_out, class T, class F>
inline void untransform_tile(const T* src, int64_t plane, int64_t C, F f,
                             T* const (&dst)[n_out][n_out], const T* add) {
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c) {
    T block[n][n], out[n_out][n_out];
#pragma GCC unroll 8
    for (int i = 0; i < n; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < n; ++j) block[i][j] = src[(n * i + j) * plane + c];
    winograd::both_axes(block, out, f);
#pragma GCC unroll 8
    for (int i = 0; i < n_out; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < n_out; ++j) dst[i][j][c] = out[i][j] + add[c];
  }
}

// V[xi][tile][ci] for the tiles [t0, t1): B^T d B of each tile's A x A input patch, channel by
// channel. Taps in the padding read a row of zeros, so the channel loop has no branches.
template <class W, class T>
void transform_inputs(const Problem<T>& pr, int64_t t0, int64_t t1, int64_t plane, T* V,
                      const T* zeros) {
  constexpr int A = W::A;
  const int64_t C = pr.cin;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at<W>(pr, t);
    const T* d[A][A];
    for (int i = 0; i < A; ++i)
      for (int j = 0; j < A; ++j) {
        const int64_t ih = W::m * th - pr.pad_h + i, iw = W::m * tw - pr.pad_w + j;
        const bool inside = ih >= 0 && ih < pr.h && iw >= 0 && iw < pr.w;
        d[i][j] = inside ? pr.x + ((n * pr.h + ih) * pr.w + iw) * C : zeros;
      }
    transform_tile<A, A>(d, C, [](const T* in, T* o) { W::input(in, o); }, V + (t - t0) * C,
                         plane);
  }
}

// y (+ bias) of the tiles [t0, t1) from M[xi][tile][co]: A^T M A. Outputs past the edge go to
// a discarded row, so the channel loop has no branches either.
template <class W, class T>
void transform_outputs(const Problem<T>& pr, int64_t t0, int64_t t1, int64_t plane, const T* M,
                       const T* zeros, T* discard) {
  constexpr int A = W::A, m = W::m;
  const int64_t K = pr.cout;
  const T* bias = pr.bias ? pr.bias : zeros;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at<W>(pr, t);
    T* out[m][m];
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) {
        const int64_t p = m * th + a, q = m * tw + b;
        out[a][b] = p < pr.p && q < pr.q ? pr.y + ((n * pr.p + p) * pr.q + q) * K : discard;
      }
    untransform_tile<A, m>(M + (t - t0) * K, plane, K,
                           [](const T* in, T* o) { W::output(in, o); }, out, bias);
  }
}

// D[xi][tile][co] = (A dy A^T)[xi] for the tiles [t0, t1): the gradient of M, from the m x m
// output gradients of each tile (those past the edge read zeros).
template <class W, class T>
void transform_output_grads(const Problem<T>& pr, const T* dy, int64_t t0, int64_t t1,
                            int64_t plane, T* D, const T* zeros) {
  constexpr int A = W::A, m = W::m;
  const int64_t K = pr.cout;
  for (int64_t t = t0; t < t1; ++t) {
    const auto [n, th, tw] = tile_at<W>(pr, t);
    const T* e[m][m];
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) {
        const int64_t p = m * th + a, q = m * tw + b;
        e[a][b] = p < pr.p && q < pr.q ? dy + ((n * pr.p + p) * pr.q + q) * K : zeros;
      }
    transform_tile<m, A>(e, K, [](const T* in, T* o) { W::output_grad(in, o); },
                         D + (t - t0) * K, plane);
  }
}

// Tiles per chunk: as many as fit the byte budget (kChunkBytes, scaled, unless given), at least
// min_tiles (1 when a budget is given: the tests' many-chunk cases), at most all.
template <class W, class T>
int64_t chunk_tiles(const Problem<T>& pr, int64_t tiles, int64_t chunk_bytes,
                    int64_t min_tiles = kMinChunkTiles) {
  const int64_t tile_bytes = W::A * W::A * (pr.cin + pr.cout) * static_cast<int64_t>(sizeof(T));
  const int64_t budget = chunk_bytes > 0 ? chunk_bytes : kChunkBytes * W::A * W::A / 16;
  const int64_t floor = chunk_bytes > 0 ? 1 : min_tiles;
  return std::clamp<int64_t>(budget / tile_bytes, floor, tiles);
}

// The tiles [begin, end) in chunks of at most `chunk` tiles, all of nearly the same size: a
// short last chunk would cost a full pass over the transformed filters for a few tiles.
inline int64_t even_chunk(int64_t begin, int64_t end, int64_t chunk) {
  const int64_t pieces = (end - begin + chunk - 1) / chunk;
  return pieces > 0 ? (end - begin + pieces - 1) / pieces : chunk;
}

// The distance in elements between two positions' planes of a chunk's V, M or D buffer (at
// least n): a whole number of 64-byte lines, and an odd one. The transforms touch all A * A
// planes at once, channel by channel; were the distance a multiple of 4 KB (112 tiles of 64
// channels is 7 * 4 KB), every plane would map to the same L1 cache sets and they would evict
// each other: ResNet's 56x56x64 forward at batch 8 took 4.5 ms so with F(4x4), 3.2 ms with the
// odd distance (F(2x2): 5.8 -> 4.6 ms; weight gradient 7.0 -> 4.7 ms).
template <class T>
int64_t plane_stride(int64_t n) {
  constexpr int64_t line = 64 / sizeof(T);
  const int64_t lines = (n + line - 1) / line;
  return (lines | 1) * line;
}

template <class W, class T>
void run(const Problem<T>& pr, int64_t chunk_bytes) {
  constexpr int AA = W::A * W::A;
  const int64_t tiles = tile_count<W>(pr);
  if (tiles == 0) return;
  const int64_t chunk = chunk_tiles<W>(pr, tiles, chunk_bytes);
  for_each_range(ranges_for(tiles), tiles, 1, [&](int, int64_t begin, int64_t end) {
    const int64_t v_plane = plane_stride<T>(chunk * pr.cin);
    const int64_t m_plane = plane_stride<T>(chunk * pr.cout);
    T* V = scratch<T, 0>(AA * v_plane);
    T* M = scratch<T, 1>(AA * m_plane);
    T* zeros = scratch<T, 2>(std::max(pr.cin, pr.cout));
    T* discard = scratch<T, 3>(pr.cout);
    std::fill(zeros, zeros + std::max(pr.cin, pr.cout), T(0));
    const int64_t step = even_chunk(begin, end, chunk);
    for (int64_t t0 = begin; t0 < end; t0 += step) {
      const int64_t t1 = std::min(t0 + step, end), nt = t1 - t0;
      transform_inputs<W>(pr, t0, t1, v_plane, V, zeros);
      // M_xi [nt, cout] = V_xi [nt, cin] @ U_xi [cin, cout], one GEMM per position
      for (int xi = 0; xi < AA; ++xi)
        gemm<T>(false, false, nt, pr.cout, pr.cin, T(1), V + xi * v_plane, pr.cin,
                pr.U + xi * pr.cin * pr.cout, pr.cout, T(0), M + xi * m_plane, pr.cout);
      transform_outputs<W>(pr, t0, t1, m_plane, M, zeros, discard);
    }
  });
}

template <class W, class T>
void forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
             int64_t chunk_bytes) {
  T* U = scratch<T, kFilterSlot>(W::A * W::A * sh.c * sh.k);
  const int64_t C = sh.c;
  transform_filters_transposed<W, T>(
      sh.k, sh.c,
      [&](int64_t co, int64_t ci, int r, int s) { return w[((co * 3 + r) * 3 + s) * C + ci]; }, U);
  run<W>(Problem<T>{sh.n, sh.h, sh.w, sh.c, sh.p, sh.q, sh.k, sh.pad_h, sh.pad_w, x, U, bias, y},
         chunk_bytes);
}

template <class W, class T>
void backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx, int64_t chunk_bytes) {
  // dx = conv(dy, w') over dy's K channels, w'[c, r, s, k] = w[k, 2 - r, 2 - s, c], padding
  // 2 - pad: output row h reads dy rows h + pad - r for r = 0..2.
  T* U = scratch<T, kFilterSlot>(W::A * W::A * sh.k * sh.c);
  const int64_t C = sh.c;
  // U[xi][k][c] (this problem's [cin][cout]): w's order again, read and written along C.
  transform_filters<W, T>(sh.k, sh.c,
                          [&](int64_t k, int64_t c, int r, int s) {
                            return w[((k * 3 + (2 - r)) * 3 + (2 - s)) * C + c];
                          },
                          U);
  run<W>(Problem<T>{sh.n, sh.p, sh.q, sh.k, sh.h, sh.w, sh.c, 2 - sh.pad_h, 2 - sh.pad_w, dy, U,
                    nullptr, dx},
         chunk_bytes);
}

template <class W, class T>
void backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw, int64_t chunk_bytes) {
  constexpr int A = W::A, AA = A * A;
  const int64_t C = sh.c, K = sh.k, plane = C * K;
  const Problem<T> pr{sh.n, sh.h, sh.w, C, sh.p, sh.q, K, sh.pad_h, sh.pad_w, x, nullptr, nullptr,
                      nullptr};
  const int64_t tiles = tile_count<W>(pr);
  const int64_t chunk =
      tiles > 0 ? chunk_tiles<W>(pr, tiles, chunk_bytes, kMinWeightChunkTiles) : 1;
  const int parts = ranges_for(tiles);
  // dU[xi][k][c] = sum over tiles of D[xi][tile][k] V[xi][tile][c]: one accumulator per range,
  // added in range order below (the same sum every run for a given thread count). Not zeroed:
  // each range's first chunk overwrites its accumulator (beta = 0); every range has a tile.
  T* dU = scratch<T, kFilterSlot>(parts * AA * plane);
  for_each_range(parts, tiles, 1, [&](int part, int64_t begin, int64_t end) {
    const int64_t v_plane = plane_stride<T>(chunk * C), d_plane = plane_stride<T>(chunk * K);
    T* V = scratch<T, 0>(AA * v_plane);
    T* D = scratch<T, 1>(AA * d_plane);
    T* zeros = scratch<T, 2>(std::max(C, K));
    std::fill(zeros, zeros + std::max(C, K), T(0));
    T* acc = dU + part * AA * plane;
    const int64_t step = even_chunk(begin, end, chunk);
    for (int64_t t0 = begin; t0 < end; t0 += step) {
      const int64_t t1 = std::min(t0 + step, end), nt = t1 - t0;
      transform_inputs<W>(pr, t0, t1, v_plane, V, zeros);
      transform_output_grads<W>(pr, dy, t0, t1, d_plane, D, zeros);
      // dU_xi [K, C] (+)= D_xi [nt, K]^T @ V_xi [nt, C]: w's order, for the loop below
      const T beta = t0 == begin ? T(0) : T(1);
      for (int xi = 0; xi < AA; ++xi)
        gemm<T>(true, false, K, C, nt, T(1), D + xi * d_plane, K, V + xi * v_plane, C, beta,
                acc + xi * plane, C);
    }
  });
  // The ranges' dU added in order into range 0's, then dw[k, r, s, c] = (G^T dU G)[r][s]; along
  // c, both dU and dw are contiguous.
  for (int part = 1; part < parts; ++part) {
    const T* add = dU + part * AA * plane;
#pragma omp parallel for schedule(static) if (plane * AA > kParallelWork)
    for (int64_t i = 0; i < AA * plane; ++i) dU[i] += add[i];
  }
  const std::vector<T> zeros(static_cast<size_t>(C), T(0));
#pragma omp parallel for schedule(static) if (plane * AA > kParallelWork)
  for (int64_t k = 0; k < K; ++k) {
    T* out[3][3];  // dw[k][r][s][.]
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s) out[r][s] = dw + (k * 9 + r * 3 + s) * C;
    untransform_tile<A, 3>(dU + k * C, plane, C,
                           [](const T* in, T* o) { W::filter_grad(in, o); }, out, zeros.data());
  }
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
                             WinogradTile tile, int64_t chunk_bytes) {
  if (tile == WinogradTile::F4x4) return forward<winograd::F4>(sh, x, w, bias, y, chunk_bytes);
  forward<winograd::F2>(sh, x, w, bias, y, chunk_bytes);
}

template <class T>
void conv2d_backward_data_winograd(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                                   WinogradTile tile, int64_t chunk_bytes) {
  if (tile == WinogradTile::F4x4) return backward_data<winograd::F4>(sh, dy, w, dx, chunk_bytes);
  backward_data<winograd::F2>(sh, dy, w, dx, chunk_bytes);
}

template <class T>
void conv2d_backward_weight_winograd(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                                     WinogradTile tile, int64_t chunk_bytes) {
  if (tile == WinogradTile::F4x4)
    return backward_weight<winograd::F4>(sh, x, dy, dw, chunk_bytes);
  backward_weight<winograd::F2>(sh, x, dy, dw, chunk_bytes);
}

template void conv2d_forward_winograd<float>(const Conv2dShape&, const float*, const float*,
                                             const float*, float*, WinogradTile, int64_t);
template void conv2d_forward_winograd<double>(const Conv2dShape&, const double*, const double*,
                                              const double*, double*, WinogradTile, int64_t);
template void conv2d_backward_data_winograd<float>(const Conv2dShape&, const float*, const float*,
                                                   float*, WinogradTile, int64_t);
template void conv2d_backward_data_winograd<double>(const Conv2dShape&, const double*,
                                                    const double*, double*, WinogradTile, int64_t);

template void conv2d_backward_weight_winograd<float>(const Conv2dShape&, const float*,
                                                     const float*, float*, WinogradTile, int64_t);
template void conv2d_backward_weight_winograd<double>(const Conv2dShape&, const double*,
                                                      const double*, double*, WinogradTile, int64_t);

}  // namespace kernels::cpu
