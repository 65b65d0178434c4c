// kernels/cpu/depthwise_conv2d.cpp — direct NHWC depthwise convolution (see the header).
//
// Index names: n image, (h, wi) input pixel, (p, q) output pixel, (r, s) filter tap, c channel.
// Weights are re-laid-out once per call from [C, R, S] to wt[R, S, C] (a few KB), so that the
// inner loops read x, y and wt all with unit stride in c.
#include "kernels/cpu/depthwise_conv2d.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

// Vec<T> is one 32-byte AVX2 register (8 floats or 4 doubles) as a GCC/Clang vector type:
// `a += x * w` on it is one FMA. Plain arrays of T as accumulators get spilled to the stack by
// GCC; vector-typed locals stay in registers once the fixed-size loops are unrolled.
template <class T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <class T>
using Vec = typename VecOf<T>::type;
template <class T>
constexpr int64_t kLanes = 32 / sizeof(T);
template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);  // an unaligned vector load
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

// c + a * b rounded once. Spelled out because whether g++ contracts `c += a * b` into an FMA
// depends on the code around it, and versions 1, 3 and 4 must round alike (a test compares
// version 3 with 4 bit for bit). -march=x86-64-v3 has FMA.
inline Vec<float> fma(Vec<float> a, Vec<float> b, Vec<float> c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline Vec<double> fma(Vec<double> a, Vec<double> b, Vec<double> c) {
  return _mm256_fmadd_pd(a, b, c);
}

// Tuning knobs: channels per register block (two vectors), output pixels per forward block
// (each weight vector loaded once, used QB times), taps per dw block (each dy vector loaded
// once, used SB times). QB * 2 = 8 accumulator registers of the 16 AVX2 has.
template <class T>
constexpr int64_t kChannelBlock = 2 * kLanes<T>;
constexpr int64_t kPixelBlock = 4;
constexpr int64_t kTapBlock = 4;
// Multiply-adds below which a call stays on one thread (~0.1 ms of work): waking the OpenMP
// team costs microseconds on an idle machine but can cost a scheduler time slice on a busy one.
constexpr int64_t kDepthwiseParallelWork = int64_t{1} << 20;
// Forward and dx hand out output rows a few at a time (dynamic schedule): when the other
// process on a shared core preempts one thread, the other takes its rows instead of waiting.
// Each row is still computed by one thread in a fixed order, so results are bitwise
// reproducible. dw keeps a static split: its per-thread partial sums must not depend on timing.
constexpr int kRowsPerGrab = 4;

// One direct correlation out[n, p, q, c] = bias[c] + sum_{r,s} in[n, hi, wi, c] * wt[r, s, c]
// with hi = p*stride_h - pad_h + r*dil_h, wi = q*stride_w - pad_w + s*dil_w. The forward pass is
// this on (x, w); dx at stride 1 is this on (dy, flipped w) with padding dil*(R-1) - pad.
struct Direct {
  int64_t n, h, w, c;              // input  [N, H, W, C]
  int64_t p, q;                    // output [N, P, Q, C]
  int64_t r, s;                    // taps
  int64_t sh, sw, ph, pw, dh, dw;  // stride, padding (may be negative), dilation
};

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Output columns [lo, hi) whose taps s0..s1-1 all land inside [0, W): no bounds checks there.
void interior_cols(int64_t W, int64_t Q, int64_t stride, int64_t pad, int64_t dil, int64_t s0,
                   int64_t s1, int64_t& lo, int64_t& hi) {
  lo = std::clamp<int64_t>(ceil_div(pad - s0 * dil, stride), 0, Q);
  hi = std::clamp<int64_t>(floor_div(W - 1 + pad - (s1 - 1) * dil, stride) + 1, lo, Q);
}

// Taps [r0, r1) of output row p read rows inside the image; the others would read zero padding.
void tap_rows(const Direct& g, int64_t p, int64_t& r0, int64_t& r1) {
  r0 = std::clamp<int64_t>(ceil_div(g.ph - p * g.sh, g.dh), 0, g.r);
  r1 = std::clamp<int64_t>(floor_div(g.h - 1 + g.ph - p * g.sh, g.dh) + 1, r0, g.r);
}

// Version 1: one output pixel, channels [c0, c1), every tap bounds-checked. Used at borders
// and for channel tails.
template <class T>
void direct_pixel(const Direct& g, const T* in_n, const T* wt, const T* bias, int64_t p, int64_t q,
                  int64_t c0, int64_t c1, T* out_px) {
  for (int64_t c = c0; c < c1; ++c) out_px[c] = bias ? bias[c] : T(0);
  for (int64_t r = 0; r < g.r; ++r) {
    const int64_t hi = p * g.sh - g.ph + r * g.dh;
    if (hi < 0 || hi >= g.h) continue;
    for (int64_t s = 0; s < g.s; ++s) {
      const int64_t wi = q * g.sw - g.pw + s * g.dw;
      if (wi < 0 || wi >= g.w) continue;
      const T* xp = in_n + (hi * g.w + wi) * g.c;
      const T* wp = wt + (r * g.s + s) * g.c;
      for (int64_t c = c0; c < c1; ++c) out_px[c] = std::fma(xp[c], wp[c], out_px[c]);
    }
  }
}

// Version 2: QB adjacent output pixels x CB channels from c, all taps inside the row, with the
// QB*CB sums held in registers across the R*S taps.
template <class T, int64_t QB>
void direct_block(const Direct& g, const T* in_n, const T* wt, const T* bias, int64_t p, int64_t q,
                  int64_t c, T* out_row) {
  constexpr int64_t L = kLanes<T>, VB = kChannelBlock<T> / L;  // VB vectors per channel block
  Vec<T> acc[QB][VB];
  for (int64_t v = 0; v < VB; ++v) {
    const Vec<T> init = bias ? load(bias + c + v * L) : Vec<T>{};
    for (int64_t qi = 0; qi < QB; ++qi) acc[qi][v] = init;
  }
  for (int64_t r = 0; r < g.r; ++r) {
    const int64_t hi = p * g.sh - g.ph + r * g.dh;
    if (hi < 0 || hi >= g.h) continue;
    const T* x_r = in_n + (hi * g.w + q * g.sw - g.pw) * g.c + c;  // tap s = 0 of pixel q
    const T* w_r = wt + r * g.s * g.c + c;
    for (int64_t s = 0; s < g.s; ++s) {
      Vec<T> wv[VB];
      for (int64_t v = 0; v < VB; ++v) wv[v] = load(w_r + s * g.c + v * L);
      const T* xs = x_r + s * g.dw * g.c;
      for (int64_t qi = 0; qi < QB; ++qi)
        for (int64_t v = 0; v < VB; ++v) acc[qi][v] += load(xs + qi * g.sw * g.c + v * L) * wv[v];
    }
  }
  for (int64_t qi = 0; qi < QB; ++qi)
    for (int64_t v = 0; v < VB; ++v) store(out_row + (q + qi) * g.c + c + v * L, acc[qi][v]);
}

// Version 3 (stride_w = dil_w = 1, S a compile-time 3 or 7; ConvNeXt's case): per row of taps
// and per vector of channels, the S weights stay in registers and each input column is loaded
// once and fed to every pixel of the block that reads it: column q - pad_w + j is tap
// s = j - qi of pixel q + qi. That is about 0.4 loads per FMA instead of 1.1 in version 2.
// kChecked blocks overlap the left/right padding: their out-of-row columns read as zeros.
template <class T, int64_t S, int64_t QB, bool kChecked>
void direct_block_v3(const Direct& g, const T* in_n, const T* wt, const T* bias, int64_t p,
                     int64_t q, int64_t r0, int64_t r1, int64_t c, T* out_row) {
  Vec<T> acc[QB];
  const Vec<T> init = bias ? load(bias + c) : Vec<T>{};
  for (int64_t qi = 0; qi < QB; ++qi) acc[qi] = init;
  for (int64_t r = r0; r < r1; ++r) {
    const T* x_r = in_n + (p * g.sh - g.ph + r * g.dh) * g.w * g.c + c;
    Vec<T> wv[S];
    for (int64_t s = 0; s < S; ++s) wv[s] = load(wt + (r * S + s) * g.c + c);
    const int64_t col0 = q - g.pw;  // input column of tap 0 of pixel q
#pragma GCC unroll 16
    for (int64_t j = 0; j < QB + S - 1; ++j) {
      Vec<T> xv{};
      if (!kChecked || (col0 + j >= 0 && col0 + j < g.w)) xv = load(x_r + (col0 + j) * g.c);
#pragma GCC unroll 8
      for (int64_t qi = 0; qi < QB; ++qi)
        if (j - qi >= 0 && j - qi < S) acc[qi] = fma(xv, wv[j - qi], acc[qi]);
    }
  }
  for (int64_t qi = 0; qi < QB; ++qi) store(out_row + (q + qi) * g.c + c, acc[qi]);
}

// Pixels [q, q + QB) of one output row, all channels, version 3 (tail channels: version 1).
template <class T, int64_t S, int64_t QB>
void direct_pixels_v3(const Direct& g, const T* in_n, const T* wt, const T* bias, int64_t p,
                      int64_t q, int64_t r0, int64_t r1, T* out_row) {
  constexpr int64_t L = kLanes<T>;
  const int64_t c_main = g.c - g.c % L;
  const bool inside = q - g.pw >= 0 && q - g.pw + QB + S - 2 < g.w;
  for (int64_t c = 0; c < c_main; c += L) {
    if (inside)
      direct_block_v3<T, S, QB, false>(g, in_n, wt, bias, p, q, r0, r1, c, out_row);
    else
      direct_block_v3<T, S, QB, true>(g, in_n, wt, bias, p, q, r0, r1, c, out_row);
  }
  for (int64_t qi = 0; qi < QB && c_main < g.c; ++qi)
    direct_pixel(g, in_n, wt, bias, p, q + qi, c_main, g.c, out_row + (q + qi) * g.c);
}

template <class T, int64_t S>
void direct_row_v3(const Direct& g, const T* in_n, const T* wt, const T* bias, int64_t p,
                   T* out_row) {
  int64_t r0, r1;
  tap_rows(g, p, r0, r1);
  int64_t q = 0;
  for (; q + 8 <= g.q; q += 8) direct_pixels_v3<T, S, 8>(g, in_n, wt, bias, p, q, r0, r1, out_row);
  for (; q + 4 <= g.q; q += 4) direct_pixels_v3<T, S, 4>(g, in_n, wt, bias, p, q, r0, r1, out_row);
  for (; q < g.q; ++q) direct_pixels_v3<T, S, 1>(g, in_n, wt, bias, p, q, r0, r1, out_row);
}

// Version 4 (float32, CPUs with AVX-512; otherwise version 3): version 3 with 16-lane vectors
// and 16 output pixels per block. Version 3's 8 accumulators each take 49 dependent
// multiply-adds per block, which is just the number of chains an FMA unit with 4 cycles of
// latency and 2 issues per cycle needs to stay busy, so any stall idles it; AVX-512's 32
// registers hold 16 accumulators + 7 weights + the input column, twice the chains. Each
// output's taps are summed in the same order as in version 3, so the two agree bit for bit.
#if defined(__x86_64__) && defined(__FMA__) && (defined(__GNUC__) || defined(__clang__))
#define DEPTHWISE_HAS_AVX512 1
typedef float V16 __attribute__((vector_size(64)));

template <int64_t S, int64_t QB, bool kChecked>
__attribute__((target("avx512f"))) void direct_block_v4(const Direct& g, const float* in_n,
                                                        const float* wt, const float* bias,
                                                        int64_t p, int64_t q, int64_t r0,
                                                        int64_t r1, int64_t c, float* out_row) {
  V16 acc[QB];
  const V16 init = bias ? V16(_mm512_loadu_ps(bias + c)) : V16{};
  for (int64_t qi = 0; qi < QB; ++qi) acc[qi] = init;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x_r = in_n + (p * g.sh - g.ph + r * g.dh) * g.w * g.c + c;
    V16 wv[S];
    for (int64_t s = 0; s < S; ++s) wv[s] = _mm512_loadu_ps(wt + (r * S + s) * g.c + c);
    const int64_t col0 = q - g.pw;
#pragma GCC unroll 32
    for (int64_t j = 0; j < QB + S - 1; ++j) {
      V16 xv{};
      if (!kChecked || (col0 + j >= 0 && col0 + j < g.w))
        xv = _mm512_loadu_ps(x_r + (col0 + j) * g.c);
#pragma GCC unroll 16
      for (int64_t qi = 0; qi < QB; ++qi)
        if (j - qi >= 0 && j - qi < S) acc[qi] = _mm512_fmadd_ps(xv, wv[j - qi], acc[qi]);
    }
  }
  for (int64_t qi = 0; qi < QB; ++qi) _mm512_storeu_ps(out_row + (q + qi) * g.c + c, acc[qi]);
}

// One output row: blocks of 16 pixels x 16 channels; what is left (pixels past the last full
// block, channels past the last multiple of 16) goes to version 3.
template <int64_t S>
__attribute__((target("avx512f"))) void direct_row_v4(const Direct& g, const float* in_n,
                                                      const float* wt, const float* bias,
                                                      int64_t p, float* out_row) {
  constexpr int64_t QB = 16;
  int64_t r0, r1;
  tap_rows(g, p, r0, r1);
  const int64_t c16 = g.c - g.c % 16;
  int64_t q = 0;
  for (; q + QB <= g.q; q += QB) {
    const bool inside = q - g.pw >= 0 && q - g.pw + QB + S - 2 < g.w;
    for (int64_t c = 0; c < c16; c += 16) {
      if (inside)
        direct_block_v4<S, QB, false>(g, in_n, wt, bias, p, q, r0, r1, c, out_row);
      else
        direct_block_v4<S, QB, true>(g, in_n, wt, bias, p, q, r0, r1, c, out_row);
    }
    for (int64_t qi = 0; qi < QB && c16 < g.c; ++qi)  // channels past the last 16: version 1
      direct_pixel(g, in_n, wt, bias, p, q + qi, c16, g.c, out_row + (q + qi) * g.c);
  }
  for (; q + 8 <= g.q; q += 8)
    direct_pixels_v3<float, S, 8>(g, in_n, wt, bias, p, q, r0, r1, out_row);
  for (; q + 4 <= g.q; q += 4)
    direct_pixels_v3<float, S, 4>(g, in_n, wt, bias, p, q, r0, r1, out_row);
  for (; q < g.q; ++q) direct_pixels_v3<float, S, 1>(g, in_n, wt, bias, p, q, r0, r1, out_row);
}
#endif

std::atomic<bool> g_allow_avx512{true};

bool cpu_has_avx512() {
#if defined(DEPTHWISE_HAS_AVX512)
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

// Version 4 runs for float32 where the CPU has AVX-512 and set_depthwise_avx512 allows it.
template <class T>
bool use_v4() {
  return std::is_same_v<T, float> && cpu_has_avx512() && g_allow_avx512.load();
}

template <class T>
void direct(const Direct& g, const T* in, const T* wt, const T* bias, T* out) {
  constexpr int64_t CB = kChannelBlock<T>;
  const int64_t c_main = g.c - g.c % CB;  // channels covered by whole register blocks
  const bool v3 = g.sw == 1 && g.dw == 1 && (g.s == 3 || g.s == 7);
  [[maybe_unused]] const bool v4 = v3 && use_v4<T>();
  int64_t q_lo, q_hi;
  interior_cols(g.w, g.q, g.sw, g.pw, g.dw, 0, g.s, q_lo, q_hi);
  const bool parallel = g.n * g.p * g.q * g.c * g.r * g.s > kDepthwiseParallelWork;
#pragma omp parallel for schedule(dynamic, kRowsPerGrab) if (parallel)
  for (int64_t np = 0; np < g.n * g.p; ++np) {
    const int64_t n = np / g.p, p = np % g.p;
    const T* in_n = in + n * g.h * g.w * g.c;
    T* out_row = out + np * g.q * g.c;
    if (v3) {
#if defined(DEPTHWISE_HAS_AVX512)
      if constexpr (std::is_same_v<T, float>) {
        if (v4) {
          if (g.s == 7)
            direct_row_v4<7>(g, in_n, wt, bias, p, out_row);
          else
            direct_row_v4<3>(g, in_n, wt, bias, p, out_row);
          continue;
        }
      }
#endif
      if (g.s == 7)
        direct_row_v3<T, 7>(g, in_n, wt, bias, p, out_row);
      else
        direct_row_v3<T, 3>(g, in_n, wt, bias, p, out_row);
      continue;
    }
    for (int64_t q = 0; q < q_lo; ++q)
      direct_pixel(g, in_n, wt, bias, p, q, 0, g.c, out_row + q * g.c);
    int64_t q = q_lo;
    for (; q + kPixelBlock <= q_hi; q += kPixelBlock) {
      for (int64_t c = 0; c < c_main; c += CB)
        direct_block<T, kPixelBlock>(g, in_n, wt, bias, p, q, c, out_row);
      for (int64_t qi = 0; qi < kPixelBlock && c_main < g.c; ++qi)
        direct_pixel(g, in_n, wt, bias, p, q + qi, c_main, g.c, out_row + (q + qi) * g.c);
    }
    for (; q < q_hi; ++q) {
      for (int64_t c = 0; c < c_main; c += CB)
        direct_block<T, 1>(g, in_n, wt, bias, p, q, c, out_row);
      if (c_main < g.c) direct_pixel(g, in_n, wt, bias, p, q, c_main, g.c, out_row + q * g.c);
    }
    for (q = q_hi; q < g.q; ++q) direct_pixel(g, in_n, wt, bias, p, q, 0, g.c, out_row + q * g.c);
  }
}

// wt[r, s, c] = w[c, r, s], or w[c, R-1-r, S-1-s] when flipped.
template <class T>
std::vector<T> relayout_weight(const Conv2dShape& sh, const T* w, bool flip) {
  const int64_t R = sh.r, S = sh.s, C = sh.c;
  std::vector<T> wt(static_cast<size_t>(R * S * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t rr = flip ? R - 1 - r : r, ss = flip ? S - 1 - s : s;
        wt[(rr * S + ss) * C + c] = w[(c * R + r) * S + s];
      }
  return wt;
}

// dw accumulation for one tap s over output columns [q0, q1) and channels [c0, c1), bounds-
// checked: acc_s[c] += sum_q dy_row[q, c] * x_row[q*stride - pad + s*dil, c].
template <class T>
void dw_tap(const Conv2dShape& sh, const T* x_row, const T* dy_row, int64_t s, int64_t q0,
            int64_t q1, int64_t c0, int64_t c1, T* acc_s) {
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t wi = q * sh.stride_w - sh.pad_w + s * sh.dil_w;
    if (wi < 0 || wi >= sh.w) continue;
    const T* xp = x_row + wi * sh.c;
    const T* dp = dy_row + q * sh.c;
    for (int64_t c = c0; c < c1; ++c) acc_s[c] += dp[c] * xp[c];
  }
}

// Taps s0..s0+SB-1 over their common interior columns [q0, q1), channels [c, c+CB): one dy
// vector feeds SB multiply-adds, the SB*CB sums stay in registers over the row.
template <class T>
void dw_block(const Conv2dShape& sh, const T* x_row, const T* dy_row, int64_t s0, int64_t q0,
              int64_t q1, int64_t c, T* acc_r) {
  constexpr int64_t L = kLanes<T>, VB = kChannelBlock<T> / L, SB = kTapBlock;
  const int64_t C = sh.c;
  Vec<T> a[SB][VB] = {};
  for (int64_t q = q0; q < q1; ++q) {
    const T* dv = dy_row + q * C + c;
    const T* xq = x_row + (q * sh.stride_w - sh.pad_w + s0 * sh.dil_w) * C + c;
    for (int64_t v = 0; v < VB; ++v) {
      const Vec<T> d = load(dv + v * L);
      for (int64_t si = 0; si < SB; ++si) a[si][v] += d * load(xq + si * sh.dil_w * C + v * L);
    }
  }
  for (int64_t si = 0; si < SB; ++si)
    for (int64_t v = 0; v < VB; ++v) {
      T* dst = acc_r + (s0 + si) * C + c + v * L;
      store(dst, load(dst) + a[si][v]);
    }
}

// dw version 3 (stride_w = dil_w = 1, compile-time S): the S sums of one tap row and one
// channel vector stay in registers over the whole output row; QB dy vectors and the
// QB + S - 1 input columns they meet are each loaded once (column q - pad_w + j with pixel
// q + qi is tap j - qi), so loads per FMA drop from ~1.1 to ~0.4.
template <class T, int64_t S, int64_t QB, bool kChecked>
void dw_block_v3(const Conv2dShape& sh, const T* x_row, const T* dy_row, int64_t q, int64_t c,
                 Vec<T> (&a)[S]) {
  Vec<T> d[QB];
  for (int64_t qi = 0; qi < QB; ++qi) d[qi] = load(dy_row + (q + qi) * sh.c + c);
  const int64_t col0 = q - sh.pad_w;
#pragma GCC unroll 16
  for (int64_t j = 0; j < QB + S - 1; ++j) {
    if (kChecked && (col0 + j < 0 || col0 + j >= sh.w)) continue;  // padding: adds nothing
    const Vec<T> xv = load(x_row + (col0 + j) * sh.c + c);
#pragma GCC unroll 8
    for (int64_t qi = 0; qi < QB; ++qi)
      if (j - qi >= 0 && j - qi < S) a[j - qi] += d[qi] * xv;
  }
}

template <class T, int64_t S, int64_t QB>
void dw_pixels_v3(const Conv2dShape& sh, const T* x_row, const T* dy_row, int64_t q, int64_t c,
                  Vec<T> (&a)[S]) {
  if (q - sh.pad_w >= 0 && q - sh.pad_w + QB + S - 2 < sh.w)
    dw_block_v3<T, S, QB, false>(sh, x_row, dy_row, q, c, a);
  else
    dw_block_v3<T, S, QB, true>(sh, x_row, dy_row, q, c, a);
}

// acc_r[s, c] += sum_q dy_row[q, c] * x_row[q - pad_w + s, c] for one row of taps.
template <class T, int64_t S>
void dw_row_v3(const Conv2dShape& sh, const T* x_row, const T* dy_row, T* acc_r) {
  constexpr int64_t L = kLanes<T>;
  const int64_t C = sh.c, c_main = C - C % L;
  for (int64_t c = 0; c < c_main; c += L) {
    Vec<T> a[S] = {};
    int64_t q = 0;
    for (; q + 8 <= sh.q; q += 8) dw_pixels_v3<T, S, 8>(sh, x_row, dy_row, q, c, a);
    for (; q + 4 <= sh.q; q += 4) dw_pixels_v3<T, S, 4>(sh, x_row, dy_row, q, c, a);
    for (; q < sh.q; ++q) dw_pixels_v3<T, S, 1>(sh, x_row, dy_row, q, c, a);
    for (int64_t s = 0; s < S; ++s) store(acc_r + s * C + c, load(acc_r + s * C + c) + a[s]);
  }
  for (int64_t s = 0; s < S; ++s) dw_tap(sh, x_row, dy_row, s, 0, sh.q, c_main, C, acc_r + s * C);
}

}  // namespace

template <class T>
void depthwise_conv2d_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y) {
  std::vector<T> wt = relayout_weight(sh, w, /*flip=*/false);
  Direct g{sh.n, sh.h,        sh.w,        sh.c,     sh.p,     sh.q,     sh.r,
           sh.s, sh.stride_h, sh.stride_w, sh.pad_h, sh.pad_w, sh.dil_h, sh.dil_w};
  direct(g, x, wt.data(), bias, y);
}

template <class T>
void depthwise_conv2d_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx) {
  const int64_t C = sh.c;
  if (sh.stride_h == 1 && sh.stride_w == 1) {
    // dx[h, wi] = sum_{r,s} dy[h + pad - r*dil, wi + pad - s*dil] * w[r, s]: a correlation of dy
    // with the flipped filter, reading dy from dil*(R-1) - pad rows above.
    std::vector<T> wt = relayout_weight(sh, w, /*flip=*/true);
    Direct g{sh.n,
             sh.p,
             sh.q,
             C,
             sh.h,
             sh.w,
             sh.r,
             sh.s,
             1,
             1,
             sh.dil_h * (sh.r - 1) - sh.pad_h,
             sh.dil_w * (sh.s - 1) - sh.pad_w,
             sh.dil_h,
             sh.dil_w};
    direct(g, dy, wt.data(), static_cast<const T*>(nullptr), dx);
    return;
  }
  // Strided: gather into each input row (n, h) from the output pixels whose taps read it.
  std::vector<T> wt = relayout_weight(sh, w, /*flip=*/false);
  const bool parallel = sh.n * sh.h * sh.w * C * sh.r * sh.s > kDepthwiseParallelWork;
#pragma omp parallel for schedule(dynamic, kRowsPerGrab) if (parallel)
  for (int64_t nh = 0; nh < sh.n * sh.h; ++nh) {
    const int64_t n = nh / sh.h, h = nh % sh.h;
    T* dx_row = dx + nh * sh.w * C;
    std::memset(dx_row, 0, sizeof(T) * sh.w * C);
    for (int64_t r = 0; r < sh.r; ++r) {
      const int64_t ph = h + sh.pad_h - r * sh.dil_h;  // = p * stride_h when tap r reads row h
      if (ph < 0 || ph % sh.stride_h != 0 || ph / sh.stride_h >= sh.p) continue;
      const T* dy_row = dy + (n * sh.p + ph / sh.stride_h) * sh.q * C;
      for (int64_t wi = 0; wi < sh.w; ++wi) {
        for (int64_t s = 0; s < sh.s; ++s) {
          const int64_t qw = wi + sh.pad_w - s * sh.dil_w;
          if (qw < 0 || qw % sh.stride_w != 0 || qw / sh.stride_w >= sh.q) continue;
          const T* dp = dy_row + (qw / sh.stride_w) * C;
          const T* wp = wt.data() + (r * sh.s + s) * C;
          T* dst = dx_row + wi * C;
          for (int64_t c = 0; c < C; ++c) dst[c] += dp[c] * wp[c];
        }
      }
    }
  }
}

template <class T>
void depthwise_conv2d_backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw) {
  constexpr int64_t CB = kChannelBlock<T>, SB = kTapBlock;
  const int64_t R = sh.r, S = sh.s, C = sh.c, rows = sh.n * sh.p;
  const int64_t c_main = C - C % CB;
  const bool v3 = sh.stride_w == 1 && sh.dil_w == 1 && (S == 3 || S == 7);
  const int nt =
      static_cast<int>(std::clamp<int64_t>(max_threads(), 1, std::max<int64_t>(rows, 1)));
  // part[t] = thread t's dw in [R, S, C] layout, over its share of the output rows.
  std::vector<T> part(static_cast<size_t>(nt) * R * S * C, T(0));
  const bool parallel = nt > 1 && rows * sh.q * C * R * S > kDepthwiseParallelWork;
#pragma omp parallel for schedule(static, 1) if (parallel)
  for (int t = 0; t < nt; ++t) {
    T* acc = part.data() + static_cast<size_t>(t) * R * S * C;
    for (int64_t np = rows * t / nt; np < rows * (t + 1) / nt; ++np) {
      const int64_t n = np / sh.p, p = np % sh.p;
      const T* dy_row = dy + np * sh.q * C;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t h = p * sh.stride_h - sh.pad_h + r * sh.dil_h;
        if (h < 0 || h >= sh.h) continue;
        const T* x_row = x + (n * sh.h + h) * sh.w * C;
        T* acc_r = acc + r * S * C;
        if (v3) {
          if (S == 7)
            dw_row_v3<T, 7>(sh, x_row, dy_row, acc_r);
          else
            dw_row_v3<T, 3>(sh, x_row, dy_row, acc_r);
          continue;
        }
        int64_t s0 = 0;
        for (; s0 + SB <= S; s0 += SB) {
          int64_t q_lo, q_hi;
          interior_cols(sh.w, sh.q, sh.stride_w, sh.pad_w, sh.dil_w, s0, s0 + SB, q_lo, q_hi);
          for (int64_t c = 0; c < c_main; c += CB)
            dw_block(sh, x_row, dy_row, s0, q_lo, q_hi, c, acc_r);
          for (int64_t s = s0; s < s0 + SB; ++s) {
            T* acc_s = acc_r + s * C;
            dw_tap(sh, x_row, dy_row, s, 0, q_lo, 0, C, acc_s);
            dw_tap(sh, x_row, dy_row, s, q_hi, sh.q, 0, C, acc_s);
            dw_tap(sh, x_row, dy_row, s, q_lo, q_hi, c_main, C, acc_s);
          }
        }
        for (int64_t s = s0; s < S; ++s) dw_tap(sh, x_row, dy_row, s, 0, sh.q, 0, C, acc_r + s * C);
      }
    }
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        T sum = 0;
        for (int t = 0; t < nt; ++t)
          sum += part[(static_cast<size_t>(t) * R * S + r * S + s) * C + c];
        dw[(c * R + r) * S + s] = sum;
      }
}

void set_depthwise_avx512(bool allowed) { g_allow_avx512.store(allowed); }
bool depthwise_avx512_available() { return cpu_has_avx512(); }

template void depthwise_conv2d_forward<float>(const Conv2dShape&, const float*, const float*,
                                              const float*, float*);
template void depthwise_conv2d_forward<double>(const Conv2dShape&, const double*, const double*,
                                               const double*, double*);
template void depthwise_conv2d_backward_data<float>(const Conv2dShape&, const float*, const float*,
                                                    float*);
template void depthwise_conv2d_backward_data<double>(const Conv2dShape&, const double*,
                                                     const double*, double*);
template void depthwise_conv2d_backward_weight<float>(const Conv2dShape&, const float*,
                                                      const float*, float*);
template void depthwise_conv2d_backward_weight<double>(const Conv2dShape&, const double*,
                                                       const double*, double*);

}  // namespace kernels::cpu
