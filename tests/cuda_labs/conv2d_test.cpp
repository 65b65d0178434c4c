// Implicit-GEMM convolution lab (kernels/cuda/conv2d.cu, conv2d_tf32.cu).
//
// Without a GPU (these never skip): the index math of kernels/cuda/conv2d_gemm_view.cuh, which
// the kernels call, run on the CPU —
//   * the three GEMM views rebuilt element by element (loops over m, n, kk through the same
//     Fixed/Moving/offset functions) equal kernels/cpu/conv2d.h's forward, data and weight
//     gradients on awkward shapes;
//   * every block thread's tile loader, advanced slice by slice as in the kernels, fetches
//     exactly the tile's elements (each once), and its 16-byte chunks are 4 consecutive floats;
//   * the mma.sync m16n8k8 fragment functions match the PTX ISA's table, and a warp's mma
//     replayed from them (through the shared-memory tile layouts) equals a plain product.
//   * the shared-memory tile layouts' bank conflicts, counted for every warp access of a slice
//     with tests/cuda_labs/smem_banks.h: v4's fragment reads and all of v5's accesses
//     conflict-free.
// With a GPU: every version, forward / data / weight + bias gradients, against the float64 CPU
// reference, outputs NaN-poisoned first; tolerances from the summation-error bound per element;
// small integers checked exactly; misaligned pointers; argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_gemm_view.cuh"
#include "tests/cuda_labs/labs_test_util.h"
#include "tests/cuda_labs/smem_banks.h"

namespace {

using kernels::cuda::Conv2dLabShape;
namespace conv = kernels::cuda::conv;
namespace mma = kernels::cuda::mma;
using labs_test::DeviceBuffer;

Conv2dLabShape shape(int n, int h, int w, int c, int k, int r, int s, int stride, int pad,
                     int dil = 1) {
  Conv2dLabShape sh;
  sh.n = n, sh.h = h, sh.w = w, sh.c = c, sh.k = k, sh.r = r, sh.s = s;
  sh.stride_h = sh.stride_w = stride, sh.pad_h = sh.pad_w = pad, sh.dil_h = sh.dil_w = dil;
  return sh;
}

// Strides, paddings and dilations that differ between the two axes.
Conv2dLabShape asymmetric() {
  Conv2dLabShape sh = shape(2, 10, 9, 12, 20, 3, 2, 1, 0);
  sh.stride_h = 2, sh.pad_h = 1, sh.dil_w = 2;
  return sh;
}

// Different strides and paddings along the two axes, dilation 1: the data gradient's stride
// phases are 2 x 3, some of them reached by no tap column.
Conv2dLabShape asymmetric_strides() {
  Conv2dLabShape sh = shape(2, 7, 11, 8, 12, 3, 2, 1, 0);
  sh.stride_h = 2, sh.stride_w = 3, sh.pad_h = 1, sh.pad_w = 2;
  return sh;
}

std::string name(const Conv2dLabShape& sh) {
  auto s = [](int v) { return std::to_string(v); };
  return "x[" + s(sh.n) + "," + s(sh.h) + "," + s(sh.w) + "," + s(sh.c) + "] w[" + s(sh.k) + "," +
         s(sh.r) + "," + s(sh.s) + "] stride " + s(sh.stride_h) + "," + s(sh.stride_w) + " pad " +
         s(sh.pad_h) + "," + s(sh.pad_w) + " dil " + s(sh.dil_h) + "," + s(sh.dil_w);
}

kernels::cpu::Conv2dShape cpu_shape(const Conv2dLabShape& sh) {
  kernels::cpu::Conv2dShape c;
  c.n = sh.n, c.h = sh.h, c.w = sh.w, c.c = sh.c, c.k = sh.k, c.r = sh.r, c.s = sh.s;
  c.p = sh.p(), c.q = sh.q();
  c.stride_h = sh.stride_h, c.stride_w = sh.stride_w, c.pad_h = sh.pad_h, c.pad_w = sh.pad_w;
  c.dil_h = sh.dil_h, c.dil_w = sh.dil_w, c.groups = 1;
  return c;
}

size_t x_size(const Conv2dLabShape& sh) { return size_t(sh.n) * sh.h * sh.w * sh.c; }
size_t w_size(const Conv2dLabShape& sh) { return size_t(sh.k) * sh.r * sh.s * sh.c; }
size_t y_size(const Conv2dLabShape& sh) { return size_t(sh.n) * sh.p() * sh.q() * sh.k; }

std::vector<double> random_doubles(size_t n, uint64_t seed) {
  return labs_test::to_double(labs_test::random_floats(n, seed));
}

// The float64 CPU reference: y = conv(x, w) + b, dx, dw and db = column sums of dy.
struct Reference {
  std::vector<double> y, dx, dw, db;
};
Reference reference(const Conv2dLabShape& sh, const std::vector<double>& x,
                    const std::vector<double>& w, const std::vector<double>& b,
                    const std::vector<double>& dy) {
  const kernels::cpu::Conv2dShape c = cpu_shape(sh);
  Reference r{std::vector<double>(y_size(sh)), std::vector<double>(x.size()),
              std::vector<double>(w.size()), std::vector<double>(sh.k, 0.0)};
  kernels::cpu::conv2d_forward<double>(c, x.data(), w.data(), b.data(), r.y.data());
  kernels::cpu::conv2d_backward_data<double>(c, dy.data(), w.data(), r.dx.data());
  kernels::cpu::conv2d_backward_weight<double>(c, x.data(), dy.data(), r.dw.data());
  for (size_t i = 0; i < dy.size(); ++i) r.db[i % sh.k] += dy[i];
  return r;
}

// ---- Part 1: the GEMM views on the CPU (no GPU) ----------------------------------------------

// C = A B through the view's operand functions, exactly as the kernels address memory.
template <class View>
std::vector<double> emulate_gemm(const conv::Geo& g, const std::vector<double>& at,
                                 const std::vector<double>& bt) {
  using A = typename View::A;
  using B = typename View::B;
  const int M = View::m(g), N = View::n(g), K = View::kdim(g);
  std::vector<double> c(size_t(M) * N, 0.0);
  std::vector<int> boff(size_t(K) * N);
  for (int n = 0; n < N; ++n)
    for (int kk = 0; kk < K; ++kk)
      boff[size_t(kk) * N + n] = B::offset(g, B::fixed(g, n), B::moving(g, kk));
  for (int m = 0; m < M; ++m) {
    const typename A::Fixed fa = A::fixed(g, m);
    for (int kk = 0; kk < K; ++kk) {
      const int ao = A::offset(g, fa, A::moving(g, kk));
      if (ao < 0) continue;
      for (int n = 0; n < N; ++n) {
        const int bo = boff[size_t(kk) * N + n];
        if (bo >= 0) c[size_t(m) * N + n] += at[ao] * bt[bo];
      }
    }
  }
  return c;
}

// The strided data gradient by stride phases (DgradPhaseView): each phase's GEMM through the
// view, its rows scattered to dx by row_offset; every element of dx written exactly once.
std::vector<double> emulate_phased_dgrad(const conv::Geo& g, const std::vector<double>& dy,
                                         const std::vector<double>& w) {
  std::vector<double> dx(size_t(g.n) * g.h * g.w * g.c, NAN);
  std::vector<int> writes(dx.size(), 0);
  for (int ph = 0; ph < g.stride_h; ++ph)
    for (int pw = 0; pw < g.stride_w; ++pw) {
      conv::Geo gp = g;
      gp.phase = conv::make_phase(g, ph, pw);
      const int M = conv::DgradPhaseView::m(gp), N = conv::DgradPhaseView::n(gp);
      if (M == 0) continue;
      const std::vector<double> c = emulate_gemm<conv::DgradPhaseView>(gp, dy, w);
      for (int m = 0; m < M; ++m) {
        const int64_t row = conv::DgradPhaseView::row_offset(gp, m);
        for (int n = 0; n < N; ++n) {
          dx[size_t(row + n)] = c[size_t(m) * N + n];
          ++writes[size_t(row + n)];
        }
      }
    }
  for (size_t i = 0; i < writes.size(); ++i)
    if (writes[i] != 1) ADD_FAILURE() << "dx element " << i << " written " << writes[i] << " times";
  return dx;
}

const std::vector<Conv2dLabShape>& view_shapes() {
  static const std::vector<Conv2dLabShape> shapes = {
      shape(2, 9, 8, 5, 7, 3, 3, 2, 1),     // stride 2, odd C and K
      shape(1, 23, 19, 3, 8, 7, 7, 2, 3),   // 7x7 stride-2 stem on RGB
      shape(2, 12, 11, 4, 6, 3, 3, 1, 3, 2),  // dilation 2, padding 3
      shape(3, 7, 9, 6, 5, 1, 1, 2, 0),     // 1x1 stride 2 (projection shortcut)
      shape(1, 8, 8, 3, 4, 5, 5, 3, 0),     // stride 3 > 1, no padding
      asymmetric(),
      asymmetric_strides(),
      shape(2, 1, 6, 4, 8, 1, 1, 2, 0),     // H = 1 < stride: a stride phase without pixels
      shape(1, 16, 16, 3, 8, 4, 4, 4, 0),   // ConvNeXt's 4x4 stride-4 stem: 16 one-tap phases
  };
  return shapes;
}

TEST(Conv2dGemmView, ThreeGemmsEqualTheCpuConvolution) {
  for (const Conv2dLabShape& sh : view_shapes()) {
    SCOPED_TRACE(name(sh));
    const conv::Geo g = conv::make_geo(sh);
    const std::vector<double> x = random_doubles(x_size(sh), 1), w = random_doubles(w_size(sh), 2),
                              dy = random_doubles(y_size(sh), 3), b(sh.k, 0.0);
    const Reference ref = reference(sh, x, w, b, dy);
    auto near = [](const std::vector<double>& got, const std::vector<double>& want,
                   const char* what) {
      ASSERT_EQ(got.size(), want.size()) << what;
      size_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i) bad += !(std::fabs(got[i] - want[i]) <= 1e-9);
      EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ";
    };
    near(emulate_gemm<conv::FwdView>(g, x, w), ref.y, "forward");
    near(emulate_gemm<conv::DgradView>(g, dy, w), ref.dx, "data gradient");
    near(emulate_gemm<conv::WgradView>(g, dy, x), ref.dw, "weight gradient");
    if (sh.dil_h == 1 && sh.dil_w == 1)  // the phases need dilation 1 (stride 1: one phase)
      near(emulate_phased_dgrad(g, dy, w), ref.dx, "data gradient by stride phases");
  }
}

// A phase's taps and pixel rows, counted directly: tap r reaches pixel h = ph + hh*stride iff
// (h + pad - r) is a multiple of the stride.
TEST(Conv2dGemmView, StridePhasesHoldTheTapsThatReachThem) {
  for (int stride : {1, 2, 3})
    for (int pad : {0, 1, 2, 3})
      for (int r : {1, 2, 3, 5, 7})
        for (int h : {1, 2, 5, 8}) {
          conv::Geo g{};
          g.h = g.w = h, g.r = g.s = r, g.stride_h = g.stride_w = stride;
          g.pad_h = g.pad_w = pad, g.dil_h = g.dil_w = 1;
          for (int ph = 0; ph < stride; ++ph) {
            const conv::Phase f = conv::make_phase(g, ph, ph);
            int taps = 0, first = -1, rows = 0;
            for (int t = 0; t < r; ++t)
              if ((ph + pad - t) % stride == 0) taps += 1, first = first < 0 ? t : first;
            for (int y = ph; y < h; y += stride) ++rows;
            const std::string at = "stride " + std::to_string(stride) + " pad " +
                                   std::to_string(pad) + " r " + std::to_string(r) + " h " +
                                   std::to_string(h) + " phase " + std::to_string(ph);
            EXPECT_EQ(f.nr, taps) << at;
            EXPECT_EQ(f.rows, rows) << at;
            if (taps > 0) {
              EXPECT_EQ(f.r0, first) << at;
              EXPECT_EQ((ph + pad - f.r0), f.dp * stride) << at;
            }
          }
        }
}

// One operand of one view through TileLoader<Op, ROWS, BK, THREADS, VEC>, as a kernel block
// whose tile starts at row0 runs it: init at k0, then offsets / advance for every slice up to
// kend. Each element of each slice must be fetched once, at the offset of the direct mapping;
// with VEC, a chunk's 4 elements must be 4 consecutive floats (or 4 zeros).
template <class Op, int ROWS, int BK, int THREADS, bool VEC>
void check_loader(const conv::Geo& g, int rows_total, int kdim, int row0, int k0, int kend) {
  using L = conv::TileLoader<Op, ROWS, BK, THREADS, VEC>;
  std::vector<L> loaders(THREADS);
  for (int t = 0; t < THREADS; ++t) loaders[t].init(g, row0, k0, t);
  for (int kt = k0; kt < kend; kt += BK) {
    std::vector<int> seen(static_cast<size_t>(ROWS * BK), 0);
    for (int t = 0; t < THREADS; ++t) {
      int off[L::E][L::V];
      loaders[t].offsets(g, off);
      for (int j = 0; j < L::E; ++j)
        for (int e = 0; e < 4; ++e) {
          const int row = L::Slots::row(t, j) + (Op::kAlongK ? 0 : e);
          const int kk = L::Slots::kk(t, j) + (Op::kAlongK ? e : 0);
          ASSERT_TRUE(row < ROWS && kk < BK);
          ++seen[size_t(row) * BK + kk];
          const int gr = row0 + row, gk = kt + kk;
          const int want = gr < rows_total && gk < kdim
                               ? Op::offset(g, Op::fixed(g, gr), Op::moving(g, gk))
                               : -1;
          int got;
          if constexpr (VEC) {
            got = off[j][0] < 0 ? -1 : off[j][0] + e;
          } else {
            got = off[j][e];
          }
          ASSERT_EQ(got, want) << "thread " << t << " slot " << j << " element " << e
                               << " (row " << gr << ", kk " << gk << ")";
        }
    }
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "tile element " << i;
    for (int t = 0; t < THREADS; ++t) loaders[t].advance(g);
  }
}

// Every block shape of versions 2-4 for both operands of a view, at the first tile and at the
// last (ragged) tile, over a split that starts mid-way through Kdim.
template <class View, bool VEC>
void check_view_loaders(const conv::Geo& g) {
  const int M = View::m(g), N = View::n(g), K = View::kdim(g);
  using A = typename View::A;
  using B = typename View::B;
  const int k0 = K > 48 ? 32 : 0;  // a split origin: a multiple of 16
  for (int last = 0; last < 2; ++last) {
    const int ma = last ? (M - 1) / 128 * 128 : 0, na = last ? (N - 1) / 128 * 128 : 0;
    const int m64 = last ? (M - 1) / 64 * 64 : 0, n64 = last ? (N - 1) / 64 * 64 : 0;
    if constexpr (!VEC) {
      check_loader<A, 64, 16, 256, false>(g, M, K, m64, k0, K);  // v2
      check_loader<B, 64, 16, 256, false>(g, N, K, n64, k0, K);
    }
    check_loader<A, 128, 8, 256, VEC>(g, M, K, ma, k0, K);  // v3 128x128
    check_loader<B, 128, 8, 256, VEC>(g, N, K, na, k0, K);
    check_loader<A, 128, 8, 128, VEC>(g, M, K, ma, k0, K);  // v3 128x64
    check_loader<B, 64, 8, 128, VEC>(g, N, K, n64, k0, K);
    check_loader<A, 64, 8, 128, VEC>(g, M, K, m64, k0, K);  // v3 64x128
    check_loader<B, 128, 8, 128, VEC>(g, N, K, na, k0, K);
    check_loader<A, 128, 16, 256, VEC>(g, M, K, ma, k0, K);  // v4 128x128
    check_loader<B, 128, 16, 256, VEC>(g, N, K, na, k0, K);
    check_loader<A, 128, 16, 128, VEC>(g, M, K, ma, k0, K);  // v4 128x64
    check_loader<B, 64, 16, 128, VEC>(g, N, K, n64, k0, K);
    check_loader<A, 64, 16, 128, VEC>(g, M, K, m64, k0, K);  // v4 64x128
    check_loader<B, 128, 16, 128, VEC>(g, N, K, na, k0, K);
  }
}

// Every view of sh, the stride phases of its data gradient included (dilation 1).
template <bool VEC>
void check_all_view_loaders(const Conv2dLabShape& sh) {
  const conv::Geo g = conv::make_geo(sh);
  check_view_loaders<conv::FwdView, VEC>(g);
  check_view_loaders<conv::DgradView, VEC>(g);
  check_view_loaders<conv::WgradView, VEC>(g);
  if (sh.dil_h != 1 || sh.dil_w != 1) return;
  for (int ph = 0; ph < sh.stride_h; ++ph)
    for (int pw = 0; pw < sh.stride_w; ++pw) {
      conv::Geo gp = g;
      gp.phase = conv::make_phase(g, ph, pw);
      if (conv::DgradPhaseView::m(gp) == 0) continue;
      SCOPED_TRACE("stride phase " + std::to_string(ph) + "," + std::to_string(pw));
      check_view_loaders<conv::DgradPhaseView, VEC>(gp);
    }
}

TEST(Conv2dGemmView, TileLoadersFetchEachElementOnce) {
  for (const Conv2dLabShape& sh : view_shapes()) {  // scalar chunks: any C and K
    SCOPED_TRACE(name(sh));
    check_all_view_loaders<false>(sh);
  }
  // 16-byte chunks: C and K multiples of 4 (the launchers' condition), odd geometry otherwise.
  for (const Conv2dLabShape& sh :
       {shape(2, 9, 7, 8, 12, 3, 3, 2, 1), shape(1, 10, 10, 4, 136, 3, 3, 1, 3, 2),
        shape(3, 6, 5, 20, 8, 1, 1, 2, 0), shape(1, 11, 9, 4, 4, 7, 7, 2, 3)}) {
    SCOPED_TRACE(name(sh) + " (16-byte chunks)");
    check_all_view_loaders<true>(sh);
  }
}

// ---- the mma.sync.m16n8k8 TF32 fragments ------------------------------------------------------

// The PTX ISA's table, transcribed independently of the header: for fragment element i, is the
// row groupID or groupID + 8, and the column threadID_in_group or threadID_in_group + 4.
constexpr int kARowPlus8[4] = {0, 1, 0, 1}, kAColPlus4[4] = {0, 0, 1, 1};
constexpr int kBRowPlus4[2] = {0, 1};
constexpr int kCRowPlus8[4] = {0, 0, 1, 1}, kCColPlus1[4] = {0, 1, 0, 1};

TEST(Conv2dMma, FragmentFunctionsMatchThePtxTable) {
  std::vector<int> a(16 * 8, 0), b(8 * 8, 0), c(16 * 8, 0);
  for (int lane = 0; lane < 32; ++lane) {
    const int gid = lane >> 2, tig = lane % 4;
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(conv::mma_a_row(lane, i), gid + 8 * kARowPlus8[i]);
      EXPECT_EQ(conv::mma_a_k(lane, i), tig + 4 * kAColPlus4[i]);
      EXPECT_EQ(conv::mma_c_row(lane, i), gid + 8 * kCRowPlus8[i]);
      EXPECT_EQ(conv::mma_c_n(lane, i), tig * 2 + kCColPlus1[i]);
      ++a[conv::mma_a_row(lane, i) * 8 + conv::mma_a_k(lane, i)];
      ++c[conv::mma_c_row(lane, i) * 8 + conv::mma_c_n(lane, i)];
    }
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(conv::mma_b_k(lane, i), tig + 4 * kBRowPlus4[i]);
      EXPECT_EQ(conv::mma_b_n(lane, i), gid);
      ++b[conv::mma_b_k(lane, i) * 8 + conv::mma_b_n(lane, i)];
    }
  }
  for (int v : a) EXPECT_EQ(v, 1);  // each element of A, B and C is held by exactly one lane
  for (int v : b) EXPECT_EQ(v, 1);
  for (int v : c) EXPECT_EQ(v, 1);
}

// What the tensor core does with a warp's registers (the PTX definition): A[r][k] is register
// (r >= 8) + 2*(k >= 4) of lane (r % 8)*4 + k % 4; B[k][n] is register (k >= 4) of lane
// n*4 + k % 4; D[r][n] = C + sum_k A[r][k] B[k][n] lands in register 2*(r >= 8) + n % 2 of
// lane (r % 8)*4 + n/2.
void hardware_mma(const double (&af)[32][4], const double (&bf)[32][2], double (&d)[32][4]) {
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double sum = d[(r % 8) * 4 + n / 2][2 * (r >= 8) + n % 2];
      for (int k = 0; k < 8; ++k)
        sum += af[(r % 8) * 4 + k % 4][(r >= 8) + 2 * (k >= 4)] * bf[n * 4 + k % 4][k >= 4];
      d[(r % 8) * 4 + n / 2][2 * (r >= 8) + n % 2] = sum;
    }
}

// A 64x32 warp tile over a 16-deep slice, read from shared-memory tiles laid out as the TF32
// kernel's (TA, TB) with its index functions, multiplied by the hardware model above.
template <bool AlongKA, bool AlongKB, bool Swizzled = false>
void check_warp_tile() {
  constexpr int BM = 128, BN = 128, BK = 16;
  using TA = conv::Tf32Tile<AlongKA, BM, BK, Swizzled>;
  using TB = conv::Tf32Tile<AlongKB, BN, BK, Swizzled>;
  const std::vector<double> a = random_doubles(size_t(BM) * BK, 7);
  const std::vector<double> b = random_doubles(size_t(BK) * BN, 8);
  std::vector<double> sa(TA::kFloats, NAN), sb(TB::kFloats, NAN);  // padding stays NaN
  for (int m = 0; m < BM; ++m)
    for (int k = 0; k < BK; ++k) sa[TA::index(m, k)] = a[m * BK + k];
  for (int k = 0; k < BK; ++k)
    for (int n = 0; n < BN; ++n) sb[TB::index(n, k)] = b[k * BN + n];
  const int wm = 64, wn = 96;  // the warp tile of warp 7 in a 2 x 4 warp grid
  double acc[4][4][32][4] = {};
  for (int ks = 0; ks < BK; ks += 8)
    for (int mi = 0; mi < 4; ++mi)
      for (int ni = 0; ni < 4; ++ni) {
        double af[32][4], bf[32][2];
        for (int lane = 0; lane < 32; ++lane) {
          for (int i = 0; i < 4; ++i)
            af[lane][i] = sa[conv::mma_a_index<TA>(wm + mi * 16, ks, lane, i)];
          for (int i = 0; i < 2; ++i)
            bf[lane][i] = sb[conv::mma_b_index<TB>(wn + ni * 8, ks, lane, i)];
        }
        hardware_mma(af, bf, acc[mi][ni]);
      }
  for (int mi = 0; mi < 4; ++mi)
    for (int ni = 0; ni < 4; ++ni)
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i) {
          const int m = wm + mi * 16 + conv::mma_c_row(lane, i);
          const int n = wn + ni * 8 + conv::mma_c_n(lane, i);
          double want = 0;
          for (int k = 0; k < BK; ++k) want += a[m * BK + k] * b[k * BN + n];
          ASSERT_NEAR(acc[mi][ni][lane][i], want, 1e-12) << "row " << m << " col " << n;
        }
}

// ldmatrix.x4 (the rounded pipeline, mma_tf32.cuh): register j of lane L receives word L % 4 of
// the row named by lane 8 j + L / 4 (PTX ISA); with the rows the ldsm_* functions name, that is
// the element mma.sync wants in a_j, or in b0 / b1 of the two B blocks.
TEST(Conv2dMma, LdmatrixRowsDeliverTheMmaFragments) {
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < 4; ++j) {
      const int src = 8 * j + lane / 4;  // the lane whose address row register j reads
      EXPECT_EQ(mma::ldsm_a_row(src), conv::mma_a_row(lane, j)) << "lane " << lane << " a" << j;
      EXPECT_EQ(mma::ldsm_a_k(src) + lane % 4, conv::mma_a_k(lane, j))
          << "lane " << lane << " a" << j;
      const int block = j >> 1, i = j & 1;  // b_i of B block `block` (columns + 8 * block)
      EXPECT_EQ(mma::ldsm_b_n(src), 8 * block + conv::mma_b_n(lane, i))
          << "lane " << lane << " b" << i << " of block " << block;
      EXPECT_EQ(mma::ldsm_b_k(src) + lane % 4, conv::mma_b_k(lane, i))
          << "lane " << lane << " b" << i << " of block " << block;
    }
  // Each row address is a 16-byte multiple on an along-k tile (rows BK + 4 floats apart, or
  // BK with the chunks swizzled).
  using TA = conv::Tf32Tile<true, 128, 16>;
  using TS = conv::Tf32Tile<true, 128, 16, true>;
  for (int lane = 0; lane < 32; ++lane)
    for (int ks = 0; ks < 16; ks += 8) {
      EXPECT_EQ(mma::ldsm_a_index<TA>(48, ks, lane) % 4, 0);
      EXPECT_EQ(mma::ldsm_b_index<TA>(96, ks, lane) % 4, 0);
      EXPECT_EQ(mma::ldsm_a_index<TS>(48, ks, lane) % 4, 0);
      EXPECT_EQ(mma::ldsm_b_index<TS>(96, ks, lane) % 4, 0);
    }
}

// The swizzled layout is a permutation of the tile's floats that keeps each 16-byte chunk
// (4 consecutive kk from a multiple of 4) whole and aligned: cp.async and the rounding pass
// move chunks, and the GEMM's GELU / LayerNorm fusions address a chunk's elements as chunk[e].
template <int ROWS, int BK>
void check_swizzle_is_a_chunk_permutation() {
  using T = conv::Tf32Tile<true, ROWS, BK, true>;
  static_assert(T::kFloats == ROWS * BK, "no padding");
  std::vector<int> hits(T::kFloats, 0);
  for (int row = 0; row < ROWS; ++row)
    for (int kk = 0; kk < BK; ++kk) {
      const int i = T::index(row, kk);
      ASSERT_TRUE(i >= 0 && i < T::kFloats) << "row " << row << " kk " << kk;
      ++hits[size_t(i)];
      EXPECT_EQ(i / BK, row) << "a row stays in its own " << BK << " floats";
      EXPECT_EQ(i - T::index(row, kk & ~3), kk & 3) << "row " << row << " kk " << kk;
      EXPECT_EQ(T::index(row, kk & ~3) % 4, 0);
    }
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(Conv2dMma, SwizzledTilesPermuteWholeChunks) {
  check_swizzle_is_a_chunk_permutation<128, 16>();
  check_swizzle_is_a_chunk_permutation<64, 16>();
  check_swizzle_is_a_chunk_permutation<64, 8>();   // other slice depths the swizzle allows
  check_swizzle_is_a_chunk_permutation<64, 32>();
}

TEST(Conv2dMma, WarpTileFromSharedMemoryEqualsPlainProduct) {
  check_warp_tile<true, true>();    // forward: A and B stored [row][kk]
  check_warp_tile<true, false>();   // data gradient: B stored [kk][n]
  check_warp_tile<false, false>();  // weight gradient: both [kk][row]
  check_warp_tile<false, true>();   // (matmul_tf32.cu with both operands transposed)
  check_warp_tile<true, true, true>();  // v5's swizzled along-k tiles
  check_warp_tile<true, false, true>();
  check_warp_tile<false, true, true>();
}

// ---- shared-memory bank conflicts of the TF32 pipelines (tests/cuda_labs/smem_banks.h) ------

TEST(SmemBanks, ModelCountsTheTextbookCases) {
  auto access = [](int bytes, auto address_of_lane) {
    return smem_banks::wavefronts(smem_banks::warp_access(bytes, address_of_lane));
  };
  EXPECT_EQ(access(4, [](int l) { return 4 * l; }), 1);         // consecutive words
  EXPECT_EQ(access(4, [](int) { return 64; }), 1);              // one word: a broadcast
  EXPECT_EQ(access(4, [](int l) { return 8 * l; }), 2);         // stride 2: 2-way
  EXPECT_EQ(access(4, [](int l) { return 128 * l; }), 32);      // a column of a 32-wide tile
  EXPECT_EQ(access(4, [](int l) { return 132 * l; }), 1);       // ... padded to 33
  EXPECT_EQ(access(8, [](int l) { return 8 * l; }), 2);         // float2, consecutive
  EXPECT_EQ(access(16, [](int l) { return 16 * l; }), 4);       // float4, consecutive
  EXPECT_EQ(access(16, [](int l) { return 64 * l; }), 16);      // float4 rows 64 B apart: 4-way
  EXPECT_EQ(access(16, [](int l) { return 80 * l; }), 4);       // ... 80 B apart: none
}

// The warp-wide shared-memory accesses one 16-deep slice costs a block of a TF32 pipeline
// (conv2d_tf32.cu, matmul_tf32.cu), counted with the bank model: the cp.async chunk writes of
// both tiles, v5's rounding pass (a 16-byte load and store of each chunk), and every warp's
// fragment reads (v4: one 4-byte load per element; v5: ldmatrix.x4 on along-k tiles).
struct SliceCost {
  int accesses = 0, wavefronts = 0, ideal = 0;
  void add(const smem_banks::WarpAccess& a, int times = 1) {
    accesses += times;
    wavefronts += times * smem_banks::wavefronts(a);
    ideal += times * smem_banks::ideal_wavefronts(a.bytes);
  }
};

template <class Tile, int ROWS, int THREADS>
void add_chunk_writes(SliceCost& cost, int times) {  // 16-byte chunks, as cp_async16 writes them
  using Slots = mma::TileSlots<Tile::kAlongK, ROWS, 16, THREADS>;
  for (int warp = 0; warp < THREADS / 32; ++warp)
    for (int j = 0; j < Slots::E; ++j)
      cost.add(smem_banks::warp_access(16, [&](int lane) {
                 const int tid = 32 * warp + lane;
                 return 4L * Tile::index(Slots::row(tid, j), Slots::kk(tid, j));
               }),
               times);
}

// Every warp's fragment reads of one slice (warp_tile_slice in mma_tf32.cuh), warp tiles
// 64 x WARP_N (32: v4, v5; 64: v6).
template <class TA, class TB, bool ROUNDED, int BM, int BN, int WARP_N = 32>
void add_fragment_reads(SliceCost& cost) {
  constexpr int WN = BN / WARP_N, warps = (BM / 64) * WN;
  for (int warp = 0; warp < warps; ++warp) {
    const int wm = (warp / WN) * 64, wn = (warp % WN) * WARP_N;
    for (int ks = 0; ks < 16; ks += 8) {
      for (int mi = 0; mi < 4; ++mi) {  // ldmatrix.x4: lane L names a row; else 4 loads
        const int r0 = wm + mi * 16;
        if (ROUNDED && TA::kAlongK)
          cost.add(smem_banks::warp_access(
              16, [&](int l) { return 4L * mma::ldsm_a_index<TA>(r0, ks, l); }));
        else
          for (int i = 0; i < 4; ++i)
            cost.add(smem_banks::warp_access(
                4, [&](int l) { return 4L * conv::mma_a_index<TA>(r0, ks, l, i); }));
      }
      for (int ni = 0; ni < WARP_N / 8; ni += 2) {  // two n8 blocks: one ldmatrix.x4, 4 loads
        const int n0 = wn + ni * 8;
        if (ROUNDED && TB::kAlongK)
          cost.add(smem_banks::warp_access(
              16, [&](int l) { return 4L * mma::ldsm_b_index<TB>(n0, ks, l); }));
        else
          for (int h = 0; h < 2; ++h)
            for (int i = 0; i < 2; ++i)
              cost.add(smem_banks::warp_access(
                  4, [&](int l) { return 4L * conv::mma_b_index<TB>(n0 + h * 8, ks, l, i); }));
      }
    }
  }
}

template <class TA, class TB, bool ROUNDED, int BM, int BN, int WARP_N = 32>
SliceCost slice_cost() {
  constexpr int T = BM * BN / (64 * WARP_N) * 32;
  SliceCost cost;
  add_chunk_writes<TA, BM, T>(cost, ROUNDED ? 3 : 1);  // cp.async (+ rounding load and store)
  add_chunk_writes<TB, BN, T>(cost, ROUNDED ? 3 : 1);
  add_fragment_reads<TA, TB, ROUNDED, BM, BN, WARP_N>(cost);
  return cost;
}

// v4 (padded tiles): every fragment read is conflict-free, which is what the padding is for,
// but an along-k tile's chunk writes take twice the passes (mma_tile.cuh says why). v5 and v6
// (the swizzled layout): nothing collides, and v6's wider warp tiles read a third less. The
// totals are printed for kernels/README.md.
template <bool AlongKA, bool AlongKB, int BM, int BN>
void check_slice_banks(const char* what) {
  SCOPED_TRACE(what);
  using PA = conv::Tf32Tile<AlongKA, BM, 16>;
  using PB = conv::Tf32Tile<AlongKB, BN, 16>;
  using SA = conv::Tf32Tile<AlongKA, BM, 16, true>;
  using SB = conv::Tf32Tile<AlongKB, BN, 16, true>;
  for (bool rounded : {false, true}) {  // the padding keeps scalar and ldmatrix reads clean
    SliceCost reads;
    rounded ? add_fragment_reads<PA, PB, true, BM, BN>(reads)
            : add_fragment_reads<PA, PB, false, BM, BN>(reads);
    EXPECT_EQ(reads.wavefronts, reads.ideal) << (rounded ? "ldmatrix" : "scalar") << " reads";
  }
  const SliceCost v4 = slice_cost<PA, PB, false, BM, BN>();
  const int collide = (AlongKA ? BM : 0) + (AlongKB ? BN : 0);  // along-k rows of the slice
  // Each along-k quarter-warp write covers 2 rows in 2 passes instead of 1.
  EXPECT_EQ(v4.wavefronts - v4.ideal, collide / 2);
  const SliceCost padded_v5 = slice_cost<PA, PB, true, BM, BN>();
  EXPECT_EQ(padded_v5.wavefronts - padded_v5.ideal, 3 * collide / 2);
  const SliceCost v5 = slice_cost<SA, SB, true, BM, BN>();
  EXPECT_EQ(v5.wavefronts, v5.ideal);
  constexpr int kV6WarpN = BM * BN == 128 * 128 ? 64 : 32;  // v6 is v5 on the smaller blocks
  const SliceCost v6 = slice_cost<SA, SB, true, BM, BN, kV6WarpN>();
  EXPECT_EQ(v6.wavefronts, v6.ideal);
  if (kV6WarpN == 64) {  // each A row read by half as many warps
    SliceCost v5_reads, v6_reads;
    add_fragment_reads<SA, SB, true, BM, BN>(v5_reads);
    add_fragment_reads<SA, SB, true, BM, BN, 64>(v6_reads);
    EXPECT_EQ(3 * v6_reads.wavefronts, 2 * v5_reads.wavefronts);
  }
  std::printf("[ banks    ] %-38s v4 %4d passes (%4d ideal), v5 %4d (%4d padded), v6 %4d\n",
              what, v4.wavefronts, v4.ideal, v5.wavefronts, padded_v5.wavefronts, v6.wavefronts);
}

TEST(Conv2dMma, SharedMemoryPassesPerSlice) {
  check_slice_banks<true, true, 128, 128>("forward / GEMM A B^T, 128x128");
  check_slice_banks<true, true, 128, 64>("forward / GEMM A B^T, 128x64");
  check_slice_banks<true, true, 64, 128>("forward / GEMM A B^T, 64x128");
  check_slice_banks<true, false, 128, 128>("data gradient / GEMM A B, 128x128");
  check_slice_banks<false, false, 128, 128>("weight gradient / GEMM A^T B, 128x128");
  check_slice_banks<false, true, 64, 128>("GEMM A^T B^T, 64x128");
}

// ---- Part 2: the kernels on the GPU ------------------------------------------------------------

std::vector<double> absolute(const std::vector<double>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// |got - ref| <= bound[i] for every element (NaN fails); bound from the error analysis.
::testing::AssertionResult within(const std::vector<float>& got, const std::vector<double>& ref,
                                  const std::vector<double>& bound, const std::string& what) {
  size_t bad = 0, worst = 0;
  double worst_ratio = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref[i]);
    if (!(err <= bound[i])) {
      ++bad;
      const double ratio = std::isnan(err) ? 1e300 : err / std::max(bound[i], 1e-300);
      if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.size()
                                       << " elements off; worst at " << worst << ": got "
                                       << got[worst] << ", expected " << ref[worst]
                                       << ", allowed error " << bound[worst];
}

// Allowed |error| per element, from S = sum |a_i b_i| of that element (the reference run on
// absolute values) and the length L of its sum:
//   fp32 (v1-v3): any summation order of L rounded terms is off by at most L * 2^-24 * S
//     (fmaf rounds once per term; +2 for the bias add and the split-K sum); we allow 2x.
//   TF32 (v4): cvt.rna rounds each operand to 10 mantissa bits, relative error <= 2^-11, so a
//     product is off by <= (2^-10 + 2^-22)|a b|; the tensor core adds in fp32 (allowing
//     truncation: 2^-23 per add). Bound: (2^-10 + 2^-21 + L * 2^-23) * S.
//   Small integers: every product and partial sum is exact in fp32 and TF32: bound 0.
std::vector<double> bounds(const std::vector<double>& s, int64_t len, bool tf32, bool integers) {
  std::vector<double> b(s.size(), 0.0);
  if (integers) return b;
  const double per = tf32 ? std::ldexp(1.0, -10) + std::ldexp(1.0, -21) +
                                double(len + 2) * std::ldexp(1.0, -23)
                          : 2.0 * double(len + 2) * std::ldexp(1.0, -24);
  for (size_t i = 0; i < s.size(); ++i) b[i] = per * s[i] + 1e-30;
  return b;
}

void check_all_versions(const Conv2dLabShape& sh, uint64_t seed, bool integers, bool misalign) {
  const size_t nx = x_size(sh), nw = w_size(sh), ny = y_size(sh);
  auto gen = [&](size_t n, uint64_t s) {
    return integers ? labs_test::random_ints(n, s) : labs_test::random_floats(n, s);
  };
  const std::vector<float> x = gen(nx, seed), w = gen(nw, seed + 1), b = gen(sh.k, seed + 2),
                           dy = gen(ny, seed + 3);
  const std::vector<double> x64 = labs_test::to_double(x), w64 = labs_test::to_double(w),
                            b64 = labs_test::to_double(b), dy64 = labs_test::to_double(dy);
  const Reference ref = reference(sh, x64, w64, b64, dy64);
  const Reference mag = reference(sh, absolute(x64), absolute(w64), absolute(b64), absolute(dy64));
  const int64_t kd_fwd = int64_t(sh.r) * sh.s * sh.c, kd_dgrad = int64_t(sh.r) * sh.s * sh.k;
  const int64_t kd_wgrad = int64_t(sh.n) * sh.p() * sh.q();

  const size_t off = misalign ? 1 : 0;
  DeviceBuffer<float> d_x(nx + off), d_w(nw), d_b(sh.k), d_dy(ny + off), d_y(ny), d_dx(nx),
      d_dw(nw), d_db(sh.k);
  d_x.upload(x, off);
  d_w.upload(w);
  d_b.upload(b);
  d_dy.upload(dy, off);
  std::vector<float> v4_out[3];  // version 4's y, dx, dw: versions 5 and 6 must give the same bits
  for (int v = 0; v <= kernels::cuda::kConv2dVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v) + ", " + name(sh) +
                 (integers ? ", small integers" : "") + (misalign ? ", misaligned x and dy" : ""));
    const bool tf32 = kernels::cuda::conv2d_version_is_tf32(v);
    d_y.poison(), d_dx.poison(), d_dw.poison(), d_db.poison();
    kernels::cuda::conv2d_forward(v, sh, d_x.data() + off, d_w.data(), d_b.data(), d_y.data(),
                                  nullptr);
    kernels::cuda::conv2d_backward_data(v, sh, d_dy.data() + off, d_w.data(), d_dx.data(),
                                        nullptr);
    DeviceBuffer<char> ws(kernels::cuda::conv2d_backward_weight_workspace(v, sh) + 16);
    kernels::cuda::conv2d_backward_weight(v, sh, d_x.data() + off, d_dy.data() + off,
                                          d_dw.data(), d_db.data(), ws.data(), nullptr);
    EXPECT_TRUE(within(d_y.download(), ref.y, bounds(mag.y, kd_fwd + 1, tf32, integers),
                       "forward"));
    EXPECT_TRUE(within(d_dx.download(), ref.dx, bounds(mag.dx, kd_dgrad, tf32, integers),
                       "data gradient"));
    EXPECT_TRUE(within(d_dw.download(), ref.dw, bounds(mag.dw, kd_wgrad, tf32, integers),
                       "weight gradient"));
    // The bias gradient is a plain fp32 column sum in every version.
    EXPECT_TRUE(within(d_db.download(), ref.db, bounds(mag.db, kd_wgrad, false, integers),
                       "bias gradient"));
    const std::vector<float> outs[3] = {d_y.download(), d_dx.download(), d_dw.download()};
    if (v == kernels::cuda::kConv2dTf32Version) std::copy(outs, outs + 3, v4_out);
    if (v > kernels::cuda::kConv2dTf32Version) {  // 5: rounded once + ldmatrix; 6: 64x64 warps
      for (int o = 0; o < 3; ++o)
        EXPECT_TRUE(labs_test::bitwise_equal(outs[o], v4_out[o]))
            << (o == 0 ? "forward" : o == 1 ? "data gradient" : "weight gradient") << ": version "
            << v << " differs from version 4";
    }
  }
  // Without dbias and with the workspace allocated by the launcher.
  d_dw.poison();
  kernels::cuda::conv2d_backward_weight(0, sh, d_x.data() + off, d_dy.data() + off, d_dw.data(),
                                        nullptr, nullptr, nullptr);
  EXPECT_TRUE(within(d_dw.download(), ref.dw, bounds(mag.dw, kd_wgrad, false, integers),
                     "weight gradient, no dbias, own workspace"));
}

TEST(Conv2dLab, ResNetLikeLayers) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(3, 11, 13, 64, 64, 3, 3, 1, 1), 1, false, false);  // 16-byte path
  check_all_versions(shape(1, 23, 19, 3, 64, 7, 7, 2, 3), 2, false, false);   // RGB stem
  check_all_versions(shape(3, 14, 14, 64, 64, 1, 1, 2, 0), 3, false, false);  // 1x1 stride 2
  check_all_versions(shape(3, 20, 20, 16, 64, 3, 3, 1, 1), 4, false, false);  // many K splits
}

TEST(Conv2dLab, AwkwardShapes) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(3, 9, 10, 5, 7, 3, 3, 2, 0), 10, false, false);   // odd C, K, stride 2
  check_all_versions(shape(1, 12, 12, 8, 12, 3, 3, 1, 3, 2), 11, false, false);  // dilation 2
  check_all_versions(shape(1, 8, 9, 20, 136, 3, 3, 1, 1), 12, false, false);  // Ncols > 128
  check_all_versions(shape(1, 5, 5, 16, 130, 3, 3, 1, 1), 13, false, false);  // M <= 64
  check_all_versions(asymmetric(), 14, false, false);
  check_all_versions(shape(3, 6, 7, 5, 7, 1, 1, 1, 0), 15, false, false);    // 1x1, odd
  check_all_versions(asymmetric_strides(), 16, false, false);  // stride phases 2 x 3
  check_all_versions(shape(2, 1, 6, 4, 8, 1, 1, 2, 0), 17, false, false);  // an empty phase
  check_all_versions(shape(2, 8, 8, 8, 16, 2, 2, 2, 0), 18, false, false);  // ConvNeXt downsample
  // Every GEMM on 128x128 blocks (v6's 64x64 warp tiles): 16-byte chunks, then scalar ones
  // (odd C) with the data gradient by stride phase.
  check_all_versions(shape(2, 9, 9, 72, 80, 3, 3, 1, 1), 19, false, false);
  check_all_versions(shape(2, 18, 17, 67, 70, 3, 3, 2, 1), 21, false, false);
}

TEST(Conv2dLab, MisalignedPointersTakeTheScalarPath) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(2, 9, 9, 64, 64, 3, 3, 1, 1), 20, false, true);
}

TEST(Conv2dLab, SmallIntegersMatchExactly) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(3, 10, 11, 64, 64, 3, 3, 1, 1), 30, true, false);
  check_all_versions(shape(1, 17, 15, 3, 64, 7, 7, 2, 3), 31, true, false);
  check_all_versions(shape(2, 9, 8, 5, 7, 3, 3, 2, 1, 2), 32, true, false);
}

// Argument errors are reported before any CUDA call, so these run without a GPU too.
TEST(Conv2dLab, RejectsBadArguments) {
  float dummy[4] = {};
  auto expect_error = [&](const Conv2dLabShape& sh, int version, const std::string& needle) {
    try {
      kernels::cuda::conv2d_forward(version, sh, dummy, dummy, nullptr, dummy, nullptr);
      ADD_FAILURE() << "accepted: " << name(sh) << " version " << version;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Conv2dLabShape grouped = shape(1, 8, 8, 4, 4, 3, 3, 1, 1);
  grouped.groups = 2;
  expect_error(grouped, 0, "groups=2");
  expect_error(shape(1, 8, 8, 4, 4, 3, 3, 1, 1), 7, "version 7");
  expect_error(shape(1, 8, 8, 4, 4, 3, 3, 1, 1), -1, "version -1");
  expect_error(shape(0, 8, 8, 4, 4, 3, 3, 1, 1), 0, "bad shape");
  expect_error(shape(1, 8, 8, 0, 4, 3, 3, 1, 1), 0, "bad shape");
  expect_error(shape(1, 2, 2, 4, 4, 7, 7, 1, 0), 0, "does not fit");
  expect_error(shape(1, 8, 8, 4, 4, 3, 3, 0, 1), 0, "bad shape");  // stride 0
  EXPECT_THROW(kernels::cuda::conv2d_backward_data(0, grouped, dummy, dummy, dummy, nullptr),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::conv2d_backward_weight_workspace(9, shape(1, 8, 8, 4, 4, 3, 3, 1, 1)),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::conv2d_forward(0, shape(1, 8, 8, 4, 4, 3, 3, 1, 1), nullptr, dummy,
                                             nullptr, dummy, nullptr),
               std::runtime_error);
}

}  // namespace
