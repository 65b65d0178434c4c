// kernels/cuda/conv2d_gemm_view.cuh — the index math of the implicit-GEMM convolution
// (kernels/cuda/conv2d.cu, conv2d_tf32.cu): how forward, data gradient and weight gradient are
// each one GEMM C[M, Ncols] = A[M, Kdim] * B[Kdim, Ncols] over operands that are never
// materialised, and where a thread finds each operand element. Plain C++ with __host__
// __device__ functions: the kernels call them, and tests/cuda_labs/conv2d_test.cpp calls the
// same functions on the CPU (no GPU needed) to rebuild the three GEMMs and compare them with
// kernels/cpu/conv2d.h, and to replay the mma.sync fragment layout.
//
//   view      M          Ncols      Kdim       A[m, kk]                 B[kk, n]        C -> out
//   forward   N*P*Q      K          R*S*C      x gathered (0 outside)   w[n, kk]        y [M, K]
//   data      N*H*W      C          R*S*K      dy gathered (see below)  w[k, r, s, n]   dx [M, C]
//   weight    K          R*S*C      N*P*Q      dy[kk, m]                x gathered      dw [K, RSC]
//
// Every Kdim index is ordered with the channel fastest (forward: (r, s, c); data: (r, s, k)),
// so in NHWC four consecutive kk are four consecutive floats of one pixel: one 16-byte load,
// and the "is this tap inside the image" test is shared by a whole run of channels. The data
// gradient uses (r, s, k) rather than (k, r, s) for that reason.
// Data gradient: dx[n, h, w, c] = sum over taps (r, s) and k of dy[n, p, q, k] * w[k, r, s, c]
// where h + pad_h - r*dil_h = p*stride_h (likewise w); a tap whose difference is not a multiple
// of the stride, or lands outside dy, contributes zero. With stride 2, 3 of every 4 (r, s) taps
// are such zeros for a given pixel, which DgradView's GEMM would multiply anyway (stride^2
// the work): a strided layer of dilation 1 runs DgradPhaseView instead, one GEMM per stride
// phase of dx over only the taps that reach it (below).
//
// Operand access. Each operand A or B is a policy struct with
//   kAlongK   true if consecutive kk of one row are consecutive in memory (forward A and B,
//             data A), false if consecutive rows of one kk are (data B, weight A and B);
//   Fixed     what a thread precomputes once for a row (m of A, n of B);
//   Moving    what it keeps for a kk, advanced by the tile depth each main-loop step
//             (no divisions in the loop: carries, like an odometer);
//   offset()  the element's index in its tensor, or -1 for a structural zero.
#pragma once

#include <cstdint>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/mma_tile.cuh"

#if defined(__CUDACC__)
#define CONV_HD __host__ __device__ __forceinline__
#define CONV_UNROLL _Pragma("unroll")
#else
#define CONV_HD inline
#define CONV_UNROLL
#endif

namespace kernels::cuda::conv {

// One stride phase of the data gradient (DgradPhaseView below): the input pixels (h, w) with
// h % stride_h == ph, w % stride_w == pw, and the taps that reach them.
struct Phase {
  int h = 0, w = 0;      // ph, pw
  int r0 = 0, s0 = 0;    // the first tap row / column that reaches the phase
  int nr = 0, ns = 0;    // how many do: r0, r0 + stride_h, ... < R (likewise s)
  int rows = 0, cols = 0;  // the phase's pixel rows h = ph, ph + stride_h, ... < H (and w)
  int dp = 0, dq = 0;    // p = dp + hh - ri for pixel row ph + hh*stride_h and tap r0 + ri*stride_h
};

// The sizes every kernel sees (int: the launcher checks each tensor has < 2^30 elements).
struct Geo {
  int n, h, w, c;  // x  [N, H, W, C]
  int k, r, s;     // w  [K, R, S, C]
  int p, q;        // y  [N, P, Q, K]
  int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  Phase phase{};  // DgradPhaseView only
};

inline Geo make_geo(const Conv2dLabShape& sh) {
  return Geo{sh.n,        sh.h,        sh.w,     sh.c,     sh.k,     sh.r,    sh.s,   sh.p(),
             sh.q(),      sh.stride_h, sh.stride_w, sh.pad_h, sh.pad_w, sh.dil_h, sh.dil_w};
}

// A row that does not exist (past M or Ncols) gets a coordinate this far outside the image, so
// every bounds test fails without a separate flag (the launcher keeps H, W, pad, dil*R < 2^26,
// so p*stride + r*dil < 3 * 2^26 never brings it back to >= 0).
inline constexpr int kFar = -(1 << 29);

CONV_HD bool inside(int v, int n) { return unsigned(v) < unsigned(n); }  // 0 <= v < n

// ---- forward: A = x gathered, B = w ---------------------------------------------------------
struct FwdA {  // A[m, kk] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]; m = (n,p,q), kk = (r,s,c)
  static constexpr bool kAlongK = true;
  struct Fixed {
    int base, ih0, iw0;  // base = n*H*W*C; ih0, iw0: the input pixel of tap (0, 0)
  };
  struct Moving {
    int r, s, c;
  };
  CONV_HD static Fixed fixed(const Geo& g, int m) {
    if (m >= g.n * g.p * g.q) return {0, kFar, kFar};
    const int q = m % g.q, t = m / g.q, p = t % g.p, n = t / g.p;
    return {n * g.h * g.w * g.c, p * g.stride_h - g.pad_h, q * g.stride_w - g.pad_w};
  }
  CONV_HD static Moving moving(const Geo& g, int kk) {
    const int t = kk / g.c;
    return {t / g.s, t % g.s, kk % g.c};
  }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) {
    mv.c += step;
    while (mv.c >= g.c) {  // at most once when C >= step
      mv.c -= g.c;
      if (++mv.s == g.s) mv.s = 0, ++mv.r;
    }
  }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    const int ih = f.ih0 + mv.r * g.dil_h, iw = f.iw0 + mv.s * g.dil_w;
    if (mv.r >= g.r || !inside(ih, g.h) || !inside(iw, g.w)) return -1;
    return f.base + (ih * g.w + iw) * g.c + mv.c;
  }
};

struct FwdB {  // B[kk, n] = w[n, kk] (KRSC: a filter is one contiguous row of R*S*C)
  static constexpr bool kAlongK = true;
  struct Fixed {
    int row;  // n * R*S*C, or -1 past K
  };
  struct Moving {
    int kk;
  };
  CONV_HD static Fixed fixed(const Geo& g, int n) { return {n < g.k ? n * g.r * g.s * g.c : -1}; }
  CONV_HD static Moving moving(const Geo&, int kk) { return {kk}; }
  CONV_HD static void advance(const Geo&, Moving& mv, int step) { mv.kk += step; }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    return f.row < 0 || mv.kk >= g.r * g.s * g.c ? -1 : f.row + mv.kk;
  }
};

// ---- data gradient: A = dy gathered, B = w viewed as [(r,s,k), c] ------------------------------
struct DgradMoving {  // kk = (r, s, k), k fastest (shared by A and B)
  int r, s, k;
};
CONV_HD DgradMoving dgrad_moving(const Geo& g, int kk) {
  const int t = kk / g.k;
  return {t / g.s, t % g.s, kk % g.k};
}
CONV_HD void dgrad_advance(const Geo& g, DgradMoving& mv, int step) {
  mv.k += step;
  while (mv.k >= g.k) {
    mv.k -= g.k;
    if (++mv.s == g.s) mv.s = 0, ++mv.r;
  }
}

// v = p*stride for some output index 0 <= p < n? Then p, else -1. Stride 1 skips the division.
CONV_HD int exact_output_index(int v, int stride, int n) {
  if (v < 0) return -1;
  int p = v;
  if (stride != 1) {
    p = v / stride;
    if (p * stride != v) return -1;
  }
  return p < n ? p : -1;
}

struct DgradA {  // A[m, kk] = dy[n, (h+ph-r*dh)/sh, (w+pw-s*dw)/sw, k]; m = (n,h,w), kk = (r,s,k)
  static constexpr bool kAlongK = true;
  struct Fixed {
    int base, hp, wp;  // base = n*P*Q*K; hp = h + pad_h, wp = w + pad_w
  };
  using Moving = DgradMoving;
  CONV_HD static Fixed fixed(const Geo& g, int m) {
    if (m >= g.n * g.h * g.w) return {0, kFar, kFar};
    const int w = m % g.w, t = m / g.w, h = t % g.h, n = t / g.h;
    return {n * g.p * g.q * g.k, h + g.pad_h, w + g.pad_w};
  }
  CONV_HD static Moving moving(const Geo& g, int kk) { return dgrad_moving(g, kk); }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) { dgrad_advance(g, mv, step); }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    if (mv.r >= g.r) return -1;
    const int p = exact_output_index(f.hp - mv.r * g.dil_h, g.stride_h, g.p);
    const int q = exact_output_index(f.wp - mv.s * g.dil_w, g.stride_w, g.q);
    if (p < 0 || q < 0) return -1;
    return f.base + (p * g.q + q) * g.k + mv.k;
  }
};

// The data gradients' B: its columns are the C input channels, contiguous in a filter row.
struct ChannelColumns {
  static constexpr bool kAlongK = false;
  struct Fixed {
    int c;  // -1 past C
  };
  CONV_HD static Fixed fixed(const Geo& g, int c) { return {c < g.c ? c : -1}; }
};

struct DgradB : ChannelColumns {  // B[kk, c] = w[k, r, s, c]; kk = (r, s, k)
  using Moving = DgradMoving;
  CONV_HD static Moving moving(const Geo& g, int kk) { return dgrad_moving(g, kk); }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) { dgrad_advance(g, mv, step); }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    if (f.c < 0 || mv.r >= g.r) return -1;
    return ((mv.k * g.r + mv.r) * g.s + mv.s) * g.c + f.c;
  }
};

// ---- data gradient by stride phase (stride > 1, dilation 1) ------------------------------------
// DgradA's gather with stride 2 finds a tap that reaches pixel h only where h + pad_h - r is
// even: 3 of every 4 (r, s) of a 3x3 kernel are zeros the GEMM multiplies anyway, and for a
// 1x1 stride-2 layer 3 of 4 pixels have no tap at all. Split dx by stride phase instead:
// pixels h = ph + hh*stride_h (hh = 0, 1, ...) are reached exactly by the taps
// r = r0 + ri*stride_h with r0 = (ph + pad_h) % stride_h, from dy row p = dp + hh - ri
// (dp = (ph + pad_h - r0) / stride_h); likewise w. Each phase is a GEMM of its own, rows
// (n, hh, ww), Kdim (ri, si, k), with no structural zeros left but the image's edges; the
// stride_h * stride_w phases together do the useful work once. A phase with no tap (a 1x1
// stride-2 layer's odd pixels) is a GEMM with Kdim 0: it writes zeros.
CONV_HD Phase make_phase(const Geo& g, int ph, int pw) {
  Phase f;
  f.h = ph, f.w = pw;
  f.r0 = (ph + g.pad_h) % g.stride_h, f.s0 = (pw + g.pad_w) % g.stride_w;
  f.nr = f.r0 < g.r ? (g.r - 1 - f.r0) / g.stride_h + 1 : 0;
  f.ns = f.s0 < g.s ? (g.s - 1 - f.s0) / g.stride_w + 1 : 0;
  f.rows = ph < g.h ? (g.h - 1 - ph) / g.stride_h + 1 : 0;
  f.cols = pw < g.w ? (g.w - 1 - pw) / g.stride_w + 1 : 0;
  f.dp = (ph + g.pad_h - f.r0) / g.stride_h, f.dq = (pw + g.pad_w - f.s0) / g.stride_w;
  return f;
}
struct PhaseMoving {  // kk = (ri, si, k), k fastest (shared by A and B)
  int ri, si, k;
};
CONV_HD PhaseMoving phase_moving(const Geo& g, int kk) {
  if (g.phase.ns == 0) return {g.phase.nr, 0, 0};  // Kdim 0: nothing is ever read
  const int t = kk / g.k;
  return {t / g.phase.ns, t % g.phase.ns, kk % g.k};
}
CONV_HD void phase_advance(const Geo& g, PhaseMoving& mv, int step) {
  mv.k += step;
  while (mv.k >= g.k) {
    mv.k -= g.k;
    if (++mv.si == g.phase.ns) mv.si = 0, ++mv.ri;
  }
}

struct DgradPhaseA {  // A[m, kk] = dy[n, dp + hh - ri, dq + ww - si, k]; m = (n, hh, ww)
  static constexpr bool kAlongK = true;
  struct Fixed {
    int base, p0, q0;  // base = n*P*Q*K; p0 = dp + hh, q0 = dq + ww
  };
  using Moving = PhaseMoving;
  CONV_HD static Fixed fixed(const Geo& g, int m) {
    const Phase& f = g.phase;
    if (m >= g.n * f.rows * f.cols) return {0, kFar, kFar};
    const int ww = m % f.cols, t = m / f.cols, hh = t % f.rows, n = t / f.rows;
    return {n * g.p * g.q * g.k, f.dp + hh, f.dq + ww};
  }
  CONV_HD static Moving moving(const Geo& g, int kk) { return phase_moving(g, kk); }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) { phase_advance(g, mv, step); }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    const int p = f.p0 - mv.ri, q = f.q0 - mv.si;
    if (mv.ri >= g.phase.nr || !inside(p, g.p) || !inside(q, g.q)) return -1;
    return f.base + (p * g.q + q) * g.k + mv.k;
  }
};

struct DgradPhaseB : ChannelColumns {  // B[kk, c] = w[k, r0 + ri*stride_h, s0 + si*stride_w, c]
  using Moving = PhaseMoving;
  CONV_HD static Moving moving(const Geo& g, int kk) { return phase_moving(g, kk); }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) { phase_advance(g, mv, step); }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    if (f.c < 0 || mv.ri >= g.phase.nr) return -1;
    const int r = g.phase.r0 + mv.ri * g.stride_h, s = g.phase.s0 + mv.si * g.stride_w;
    return ((mv.k * g.r + r) * g.s + s) * g.c + f.c;
  }
};

// ---- weight gradient: A = dy transposed, B = x gathered --------------------------------------
struct WgradA {  // A[k, npq] = dy[npq, k]: one kk (output pixel) is K contiguous floats
  static constexpr bool kAlongK = false;
  struct Fixed {
    int k;  // -1 past K
  };
  struct Moving {
    int npq;
  };
  CONV_HD static Fixed fixed(const Geo& g, int k) { return {k < g.k ? k : -1}; }
  CONV_HD static Moving moving(const Geo&, int kk) { return {kk}; }
  CONV_HD static void advance(const Geo&, Moving& mv, int step) { mv.npq += step; }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    return f.k < 0 || mv.npq >= g.n * g.p * g.q ? -1 : mv.npq * g.k + f.k;
  }
};

struct WgradB {  // B[npq, rsc] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]
  static constexpr bool kAlongK = false;
  struct Fixed {
    int oh, ow, c;  // oh = r*dil_h - pad_h, ow = s*dil_w - pad_w (kFar past R*S*C)
  };
  struct Moving {
    int n, p, q;
  };
  CONV_HD static Fixed fixed(const Geo& g, int rsc) {
    if (rsc >= g.r * g.s * g.c) return {kFar, kFar, 0};
    const int c = rsc % g.c, t = rsc / g.c, s = t % g.s, r = t / g.s;
    return {r * g.dil_h - g.pad_h, s * g.dil_w - g.pad_w, c};
  }
  CONV_HD static Moving moving(const Geo& g, int npq) {
    const int t = npq / g.q;
    return {t / g.p, t % g.p, npq % g.q};
  }
  CONV_HD static void advance(const Geo& g, Moving& mv, int step) {
    mv.q += step;
    while (mv.q >= g.q) {
      mv.q -= g.q;
      if (++mv.p == g.p) mv.p = 0, ++mv.n;
    }
  }
  CONV_HD static int offset(const Geo& g, const Fixed& f, const Moving& mv) {
    const int ih = mv.p * g.stride_h + f.oh, iw = mv.q * g.stride_w + f.ow;
    if (mv.n >= g.n || !inside(ih, g.h) || !inside(iw, g.w)) return -1;
    return ((mv.n * g.h + ih) * g.w + iw) * g.c + f.c;
  }
};

// ---- the views -------------------------------------------------------------------------------
// C[m, n] is stored at out[row_offset(m) + n]: m * Ncols in the three whole views (y, dx and dw
// are row-major [M, Ncols]); a stride phase's rows are every stride-th pixel of dx.
struct FwdView {
  using A = FwdA;
  using B = FwdB;
  CONV_HD static int m(const Geo& g) { return g.n * g.p * g.q; }
  CONV_HD static int n(const Geo& g) { return g.k; }
  CONV_HD static int kdim(const Geo& g) { return g.r * g.s * g.c; }
  CONV_HD static int64_t row_offset(const Geo& g, int m) { return int64_t(m) * g.k; }
};
struct DgradView {
  using A = DgradA;
  using B = DgradB;
  CONV_HD static int m(const Geo& g) { return g.n * g.h * g.w; }
  CONV_HD static int n(const Geo& g) { return g.c; }
  CONV_HD static int kdim(const Geo& g) { return g.r * g.s * g.k; }
  CONV_HD static int64_t row_offset(const Geo& g, int m) { return int64_t(m) * g.c; }
};
struct DgradPhaseView {  // one stride phase of the data gradient: g.phase (make_phase)
  using A = DgradPhaseA;
  using B = DgradPhaseB;
  CONV_HD static int m(const Geo& g) { return g.n * g.phase.rows * g.phase.cols; }
  CONV_HD static int n(const Geo& g) { return g.c; }
  CONV_HD static int kdim(const Geo& g) { return g.phase.nr * g.phase.ns * g.k; }
  CONV_HD static int64_t row_offset(const Geo& g, int m) {
    const Phase& f = g.phase;
    const int ww = m % f.cols, t = m / f.cols, hh = t % f.rows, n = t / f.rows;
    const int h = f.h + hh * g.stride_h, w = f.w + ww * g.stride_w;
    return ((int64_t(n) * g.h + h) * g.w + w) * g.c;
  }
};
struct WgradView {
  using A = WgradA;
  using B = WgradB;
  CONV_HD static int m(const Geo& g) { return g.k; }
  CONV_HD static int n(const Geo& g) { return g.r * g.s * g.c; }
  CONV_HD static int kdim(const Geo& g) { return g.n * g.p * g.q; }
  CONV_HD static int64_t row_offset(const Geo& g, int m) { return int64_t(m) * g.r * g.s * g.c; }
};

// ---- which elements a thread loads -----------------------------------------------------------
// Chunks of 4 elements along the operand's contiguous axis, chunk tid + j*THREADS is slot j of
// thread tid (mma::TileSlots in mma_tile.cuh). A thread keeps the same position in its line for
// every slot: one Moving (kAlongK) or one set of Fixed (otherwise) serves all its slots.
// A thread's share of one operand: precomputed at the start, advanced by BK per k-tile.
// VEC: a chunk is one 16-byte load, valid or zero as a whole (the launcher guarantees C and K
// are multiples of 4 and the pointers 16-byte aligned, so a chunk never straddles a tap, an
// image edge or the end of a dimension). Otherwise each element is tested on its own: for
// kAlongK the 4 kk of a chunk are stepped from the thread's Moving; else the 4 rows of the
// chunk each have their Fixed (computed once).
template <class Op, int ROWS, int BK, int THREADS, bool VEC>
struct TileLoader {
  using Slots = mma::TileSlots<Op::kAlongK, ROWS, BK, THREADS>;
  static constexpr int E = Slots::E;
  static constexpr int V = VEC ? 1 : 4;  // offsets per slot
  static constexpr bool kAlongK = Op::kAlongK;
  typename Op::Fixed f[kAlongK ? E : V];
  typename Op::Moving mv[kAlongK ? 1 : E];

  // row0: first row of the block's tile; k0: first kk of the block's first k-tile.
  CONV_HD void init(const Geo& g, int row0, int k0, int tid) {
    if constexpr (kAlongK) {
      CONV_UNROLL
      for (int j = 0; j < E; ++j) f[j] = Op::fixed(g, row0 + Slots::row(tid, j));
      mv[0] = Op::moving(g, k0 + Slots::kk(tid, 0));
    } else {
      CONV_UNROLL
      for (int e = 0; e < V; ++e) f[e] = Op::fixed(g, row0 + Slots::row(tid, 0) + e);
      CONV_UNROLL
      for (int j = 0; j < E; ++j) mv[j] = Op::moving(g, k0 + Slots::kk(tid, j));
    }
  }
  CONV_HD void advance(const Geo& g) {
    CONV_UNROLL
    for (int j = 0; j < (kAlongK ? 1 : E); ++j) Op::advance(g, mv[j], BK);
  }
  // off[j][e]: the tensor index of element e of slot j in the current k-tile, or -1.
  CONV_HD void offsets(const Geo& g, int (&off)[E][V]) const {
    if constexpr (kAlongK) {
      typename Op::Moving m = mv[0];
      CONV_UNROLL
      for (int e = 0; e < V; ++e) {
        CONV_UNROLL
        for (int j = 0; j < E; ++j) off[j][e] = Op::offset(g, f[j], m);
        if (e + 1 < V) Op::advance(g, m, 1);
      }
    } else {
      CONV_UNROLL
      for (int j = 0; j < E; ++j) {
        CONV_UNROLL
        for (int e = 0; e < V; ++e) off[j][e] = Op::offset(g, f[e], mv[j]);
      }
    }
  }
};

// ---- mma.sync fragments and the TF32 shared-memory tiles (mma_tile.cuh) -----------------------
using mma::mma_a_index;
using mma::mma_a_k;
using mma::mma_a_row;
using mma::mma_b_index;
using mma::mma_b_k;
using mma::mma_b_n;
using mma::mma_c_n;
using mma::mma_c_row;
using mma::Tf32Tile;

// ---- launch plumbing shared by conv2d.cu and conv2d_tf32.cu ---------------------------------
// One GEMM launch: grid (M tiles, Ncols tiles, splits of Kdim). Split z multiplies the kk range
// [z*k_per_split, min((z+1)*k_per_split, Kdim)) and writes its C to out + z*out_split_stride
// (the weight gradient's partial sums; forward and data gradient use one split).
struct GemmArgs {
  Geo g;
  const float* a;     // A's tensor: x (forward), dy (data and weight gradients)
  const float* b;     // B's tensor: w (forward, data gradient), x (weight gradient)
  const float* bias;  // forward only, may be null: added to every row of C
  float* out;         // y, dx, or the weight gradient's partial sums
  int k_per_split;    // a multiple of every version's tile depth (16)
  int out_split_stride;
};

enum class ViewKind { Fwd, Dgrad, DgradPhase, Wgrad };

// Block tile of versions 3 and 4 (8x8 outputs per thread / 64x32 per warp): 128x128, or half
// of it along a side that is at most 64 long, where a 128 tile would multiply padding (ResNet's
// 64-channel layers: forward Ncols = K = 64; weight gradient M = K = 64).
struct BlockTile {
  int bm, bn;
};
inline BlockTile pick_tile(int m, int ncols) {
  if (ncols <= 64) return {128, 64};
  if (m <= 64) return {64, 128};
  return {128, 128};
}

// Versions 4-6 (conv2d_tf32.cu). vec: C and K multiples of 4 and a, b, out 16-byte aligned.
void launch_tf32(ViewKind view, const GemmArgs& args, int splits, bool vec, int version,
                 cudaStream_t stream);

}  // namespace kernels::cuda::conv
