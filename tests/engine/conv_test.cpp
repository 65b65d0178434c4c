// conv2d (NHWC): forward against a naive float64 7-loop reference on awkward shapes, the
// chunked and multi-threaded im2col paths and the depthwise kernel against the general one, gradients by finite
// differences for each kind (general, grouped, depthwise, 1x1), float32 backward against
// float64, and argument errors.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/depthwise_conv2d.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

namespace {

struct Case {
  const char* name;
  int64_t n, h, w, c, k, r, s;
  Conv2dParams pr;
  bool bias = true;
};

Conv2dParams params(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                    int64_t groups) {
  return {sh, sw, ph, pw, dh, dw, groups};
}

// out[n,p,q,k] = b[k] + sum_{r,s,j} x[n, p*sh-ph+r*dh, q*sw-pw+s*dw, g*Cg+j] * w[k,r,s,j],
// g = k / (K/G): the definition, in float64, with no cleverness.
Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& pr) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t K = w.size(0), R = w.size(1), S = w.size(2), Cg = w.size(3);
  const int64_t Kg = K / pr.groups;
  const int64_t P = (H + 2 * pr.pad_h - pr.dilation_h * (R - 1) - 1) / pr.stride_h + 1;
  const int64_t Q = (W + 2 * pr.pad_w - pr.dilation_w * (S - 1) - 1) / pr.stride_w + 1;
  std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(K, 0.0);
  std::vector<double> out(N * P * Q * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q)
        for (int64_t k = 0; k < K; ++k) {
          double acc = bv[k];
          const int64_t g = k / Kg;
          for (int64_t r = 0; r < R; ++r)
            for (int64_t s = 0; s < S; ++s)
              for (int64_t j = 0; j < Cg; ++j) {
                const int64_t h = p * pr.stride_h - pr.pad_h + r * pr.dilation_h;
                const int64_t wi = q * pr.stride_w - pr.pad_w + s * pr.dilation_w;
                if (h < 0 || h >= H || wi < 0 || wi >= W) continue;
                acc += xv[((n * H + h) * W + wi) * C + g * Cg + j] *
                       wv[((k * R + r) * S + s) * Cg + j];
              }
          out[((n * P + p) * Q + q) * K + k] = acc;
        }
  return Tensor::from_vector(out, {N, P, Q, K});
}

const std::vector<Case>& forward_cases() {
  static const std::vector<Case> cases = {
      {"3x3_pad1_batch3_odd", 3, 7, 5, 5, 6, 3, 3, Conv2dParams::make(1, 1)},
      {"3x3_stride2_odd_input", 1, 9, 11, 3, 4, 3, 3, Conv2dParams::make(2, 1)},
      {"nonsquare_kernel_and_params", 2, 8, 13, 4, 5, 2, 3, params(1, 2, 0, 2, 1, 1, 1)},
      {"dilation2", 2, 10, 9, 4, 3, 3, 3, Conv2dParams::make(1, 2, 2), false},
      {"groups2", 2, 6, 7, 6, 4, 3, 3, Conv2dParams::make(1, 1, 1, 2)},
      {"groups3_stride2_dilation2", 1, 11, 10, 9, 6, 3, 3, Conv2dParams::make(2, 2, 2, 3)},
      {"1x1", 2, 5, 3, 7, 9, 1, 1, Conv2dParams::make()},
      {"1x1_groups3", 1, 4, 6, 9, 6, 1, 1, Conv2dParams::make(1, 0, 1, 3)},
      {"1x1_stride2", 2, 7, 5, 5, 3, 1, 1, Conv2dParams::make(2)},
      {"1x1_padded", 1, 3, 4, 3, 2, 1, 1, Conv2dParams::make(1, 1)},
      {"stem_7x7_stride2", 1, 23, 17, 3, 8, 7, 7, Conv2dParams::make(2, 3)},
      {"patchify_4x4_stride4", 2, 12, 16, 3, 5, 4, 4, Conv2dParams::make(4)},
      {"depthwise_3x3_c5", 3, 13, 11, 5, 5, 3, 3, Conv2dParams::make(1, 1, 1, 5)},
      {"depthwise_3x3_c37", 1, 9, 10, 37, 37, 3, 3, Conv2dParams::make(1, 1, 1, 37)},
      {"depthwise_7x7_c19", 2, 12, 15, 19, 19, 7, 7, Conv2dParams::make(1, 3, 1, 19)},
      {"depthwise_7x7_c48", 1, 14, 14, 48, 48, 7, 7, Conv2dParams::make(1, 3, 1, 48), false},
      {"depthwise_7x7_stride2", 2, 11, 9, 20, 20, 7, 7, Conv2dParams::make(2, 3, 1, 20)},
      {"depthwise_3x3_dilation2", 1, 10, 12, 17, 17, 3, 3, Conv2dParams::make(1, 2, 2, 17)},
      {"depthwise_3x3_pad_beyond_kernel", 2, 5, 6, 18, 18, 3, 3, Conv2dParams::make(1, 4, 1, 18)},
      {"depthwise_small_image", 1, 2, 3, 33, 33, 7, 7, Conv2dParams::make(1, 3, 1, 33)},
      // Wide rows: 8-pixel blocks with no tap in the padding (the unchecked fast path).
      {"depthwise_7x7_wide", 1, 5, 30, 24, 24, 7, 7, Conv2dParams::make(1, 3, 1, 24)},
      {"depthwise_3x3_wide", 2, 4, 27, 16, 16, 3, 3, Conv2dParams::make(1, 1, 1, 16), false},
  };
  return cases;
}

Tensor maybe_bias(const Case& cs, uint64_t seed, DType dt) {
  return cs.bias ? random({cs.k}, seed, -1, 1, dt) : Tensor();
}

}  // namespace

TEST(Conv2d, ForwardMatchesNaiveReferenceFloat64) {
  for (const Case& cs : forward_cases()) {
    SCOPED_TRACE(cs.name);
    Tensor x = random({cs.n, cs.h, cs.w, cs.c}, 1);
    Tensor w = random({cs.k, cs.r, cs.s, cs.c / cs.pr.groups}, 2);
    Tensor b = maybe_bias(cs, 3, DType::Float64);
    Tensor ref = reference(x, w, b, cs.pr);
    EXPECT_TRUE(all_close(conv2d(x, w, b, cs.pr), ref, 1e-12, 1e-12));
  }
}

TEST(Conv2d, ForwardMatchesNaiveReferenceFloat32) {
  for (const Case& cs : forward_cases()) {
    SCOPED_TRACE(cs.name);
    Tensor x = random({cs.n, cs.h, cs.w, cs.c}, 4, -1, 1, DType::Float32);
    Tensor w = random({cs.k, cs.r, cs.s, cs.c / cs.pr.groups}, 5, -1, 1, DType::Float32);
    Tensor b = maybe_bias(cs, 6, DType::Float32);
    // Reference on the same (float32-rounded) values in float64. Each output sums
    // R*S*C/G products of magnitude <= 1; float32 rounding (2^-24 per operation) grows at most
    // linearly in the number of terms, so atol = 2^-22 * terms bounds it with margin.
    Tensor ref = reference(x.to(DType::Float64), w.to(DType::Float64),
                           b.defined() ? b.to(DType::Float64) : Tensor(), cs.pr);
    const double terms = static_cast<double>(cs.r * cs.s * (cs.c / cs.pr.groups) + 1);
    EXPECT_TRUE(all_close(conv2d(x, w, b, cs.pr).to(DType::Float64), ref, 1e-6,
                          terms * std::ldexp(1.0, -22)));
  }
}

TEST(Conv2d, NonContiguousInputIsAccepted) {
  // An NCHW tensor permuted to NHWC is a strided view; conv2d packs it first.
  Tensor x_nchw = random({2, 4, 6, 5}, 7);
  Tensor x = x_nchw.permute({0, 2, 3, 1});
  Tensor w = random({3, 3, 3, 4}, 8);
  Conv2dParams pr = Conv2dParams::make(1, 1);
  EXPECT_TRUE(all_close(conv2d(x, w, {}, pr), reference(x.contiguous(), w, {}, pr), 1e-12, 1e-12));
}

// The im2col path in many small chunks (including chunks that split an image, so col2im
// accumulates one dx row from two chunks) must equal the one-chunk result.
TEST(Conv2d, ChunkedIm2colMatchesOneChunk) {
  kernels::cpu::Conv2dShape sh{3, 9, 7, 6, 4, 3, 3, 5, 4, 2, 2, 1, 1, 1, 1, 2};
  // P = (9 + 2 - 3) / 2 + 1 = 5, Q = (7 + 2 - 3) / 2 + 1 = 4; groups 2.
  const int64_t row_bytes = sh.q * sh.r * sh.s * sh.c * sizeof(double);
  Tensor x = random({sh.n, sh.h, sh.w, sh.c}, 9), w = random({sh.k, sh.r, sh.s, sh.c / 2}, 10);
  Tensor b = random({sh.k}, 11), dy = random({sh.n, sh.p, sh.q, sh.k}, 12);
  auto run = [&](int64_t bytes) {
    Tensor y = Tensor::empty({sh.n, sh.p, sh.q, sh.k}, DType::Float64);
    Tensor dx = Tensor::full(x.shape(), 99.0, DType::Float64);  // must be overwritten
    Tensor dw = Tensor::full(w.shape(), 99.0, DType::Float64);
    kernels::cpu::conv2d_forward<double>(sh, x.data<double>(), w.data<double>(), b.data<double>(),
                                         y.data<double>(), bytes);
    kernels::cpu::conv2d_backward_data<double>(sh, dy.data<double>(), w.data<double>(),
                                               dx.data<double>(), bytes);
    kernels::cpu::conv2d_backward_weight<double>(sh, x.data<double>(), dy.data<double>(),
                                                 dw.data<double>(), bytes);
    return std::vector<Tensor>{y, dx, dw};
  };
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<Tensor> one = run(0);  // automatic size: one chunk at this size, one thread
  EXPECT_TRUE(
      all_close(one[0], reference(x, w, b, Conv2dParams{2, 2, 1, 1, 1, 1, 2}), 1e-12, 1e-12));
  // Each thread takes a range of output rows (whole images for dx), cut into chunks; 3 threads
  // on 3 images and 15 output rows, 2 threads on uneven ranges.
  for (int team : {1, 2, 3}) {
    omp_set_num_threads(team);
    for (int64_t rows : {0, 1, 2, 3, 7}) {
      SCOPED_TRACE(testing::Message() << team << " threads, chunks of " << rows << " rows");
      std::vector<Tensor> many = run(rows * row_bytes);
      for (int i = 0; i < 3; ++i) EXPECT_TRUE(all_close(many[i], one[i], 1e-12, 1e-12)) << i;
    }
  }
  omp_set_num_threads(threads);
}

// The depthwise direct kernel (the fast twin) against the general im2col kernel run with
// groups = C, in float32 where the register-blocked paths use their 16-channel blocks.
TEST(Conv2d, DepthwiseKernelMatchesGeneralKernel) {
  struct DwCase {
    int64_t n, h, w, c, r, stride, pad, dil;
  };
  for (const DwCase& d : {DwCase{2, 14, 13, 40, 7, 1, 3, 1}, DwCase{1, 9, 17, 35, 3, 1, 1, 1},
                          DwCase{1, 6, 30, 24, 7, 1, 3, 1}, DwCase{2, 5, 26, 19, 3, 1, 1, 1},
                          DwCase{2, 20, 30, 48, 7, 1, 3, 1},  // big enough to run multithreaded
                          DwCase{2, 11, 12, 18, 7, 2, 3, 1}, DwCase{1, 10, 11, 16, 3, 1, 2, 2},
                          DwCase{1, 6, 9, 24, 5, 1, 4, 1}}) {
    SCOPED_TRACE(testing::Message() << "C=" << d.c << " R=" << d.r << " stride=" << d.stride
                                    << " pad=" << d.pad << " dil=" << d.dil);
    kernels::cpu::Conv2dShape sh{d.n, d.h,      d.w,      d.c,   d.c,   d.r,   d.r,   0,
                                 0,   d.stride, d.stride, d.pad, d.pad, d.dil, d.dil, d.c};
    sh.p = (d.h + 2 * d.pad - d.dil * (d.r - 1) - 1) / d.stride + 1;
    sh.q = (d.w + 2 * d.pad - d.dil * (d.r - 1) - 1) / d.stride + 1;
    const DType f = DType::Float32;
    Tensor x = random({d.n, d.h, d.w, d.c}, 13, -1, 1, f),
           w = random({d.c, d.r, d.r, 1}, 14, -1, 1, f);
    Tensor b = random({d.c}, 15, -1, 1, f), dy = random({d.n, sh.p, sh.q, d.c}, 16, -1, 1, f);
    Tensor y[2], dx[2], dw[2];
    for (int v = 0; v < 2; ++v) {
      y[v] = Tensor::empty(dy.shape(), f);
      dx[v] = Tensor::empty(x.shape(), f);
      dw[v] = Tensor::empty(w.shape(), f);
    }
    using namespace kernels::cpu;
    depthwise_conv2d_forward<float>(sh, x.data<float>(), w.data<float>(), b.data<float>(),
                                    y[0].data<float>());
    depthwise_conv2d_backward_data<float>(sh, dy.data<float>(), w.data<float>(),
                                          dx[0].data<float>());
    depthwise_conv2d_backward_weight<float>(sh, x.data<float>(), dy.data<float>(),
                                            dw[0].data<float>());
    conv2d_forward<float>(sh, x.data<float>(), w.data<float>(), b.data<float>(),
                          y[1].data<float>());
    conv2d_backward_data<float>(sh, dy.data<float>(), w.data<float>(), dx[1].data<float>());
    conv2d_backward_weight<float>(sh, x.data<float>(), dy.data<float>(), dw[1].data<float>());
    // Outputs and dx sum <= R*S products; dw sums N*P*Q products (both of magnitude <= 1).
    EXPECT_TRUE(all_close(y[0], y[1], 1e-5, 1e-5));
    EXPECT_TRUE(all_close(dx[0], dx[1], 1e-5, 1e-5));
    EXPECT_TRUE(all_close(dw[0], dw[1], 1e-5, 1e-6 * d.n * sh.p * sh.q));
  }
}

// Version 4 of the depthwise forward (AVX-512, 16 pixels x 16 channels per block) sums each
// output's taps in version 3's order: the two must agree bit for bit, forward and dx (the
// forward kernel on the flipped filter), on ConvNeXt's shape and on awkward ones (channel
// tails past 16, rows shorter than a block, 3-wide filters).
TEST(Conv2d, DepthwiseAvx512MatchesAvx2BitForBit) {
  if (!kernels::cpu::depthwise_avx512_available())
    GTEST_SKIP() << "this CPU has no AVX-512: version 4 never runs here";
  struct DwCase {
    int64_t n, h, w, c, r;
  };
  for (const DwCase& d : {DwCase{2, 56, 56, 96, 7}, DwCase{1, 9, 37, 40, 7},
                          DwCase{2, 7, 7, 768, 7}, DwCase{1, 12, 33, 19, 3},
                          DwCase{1, 5, 16, 48, 3}, DwCase{1, 4, 15, 32, 7}}) {
    SCOPED_TRACE(testing::Message() << "N=" << d.n << " H=" << d.h << " W=" << d.w
                                    << " C=" << d.c << " R=" << d.r);
    const int64_t pad = d.r / 2;
    kernels::cpu::Conv2dShape sh{d.n, d.h, d.w, d.c, d.c, d.r, d.r, d.h, d.w,
                                 1,   1,   pad, pad, 1,   1,   d.c};
    const DType f = DType::Float32;
    Tensor x = random({d.n, d.h, d.w, d.c}, 31, -1, 1, f),
           w = random({d.c, d.r, d.r, 1}, 32, -1, 1, f), b = random({d.c}, 33, -1, 1, f);
    Tensor y[2], dx[2];
    for (int v = 0; v < 2; ++v) {
      kernels::cpu::set_depthwise_avx512(v == 0);
      y[v] = Tensor::empty(x.shape(), f);
      dx[v] = Tensor::empty(x.shape(), f);
      kernels::cpu::depthwise_conv2d_forward<float>(sh, x.data<float>(), w.data<float>(),
                                                    b.data<float>(), y[v].data<float>());
      kernels::cpu::depthwise_conv2d_backward_data<float>(sh, x.data<float>(), w.data<float>(),
                                                          dx[v].data<float>());
    }
    kernels::cpu::set_depthwise_avx512(true);
    const size_t bytes = static_cast<size_t>(x.numel()) * sizeof(float);
    EXPECT_EQ(std::memcmp(y[0].data<float>(), y[1].data<float>(), bytes), 0);
    EXPECT_EQ(std::memcmp(dx[0].data<float>(), dx[1].data<float>(), bytes), 0);
  }
}

// ---- gradients ------------------------------------------------------------------------------

namespace {

::testing::AssertionResult conv_grad_check(const Case& cs, bool bias) {
  Tensor x = random({cs.n, cs.h, cs.w, cs.c}, 21).requires_grad_();
  Tensor w = random({cs.k, cs.r, cs.s, cs.c / cs.pr.groups}, 22).requires_grad_();
  std::vector<Tensor> inputs{x, w};
  if (bias) inputs.push_back(random({cs.k}, 23).requires_grad_());
  const Conv2dParams pr = cs.pr;
  return grad_check(
      [pr](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), pr);
      },
      inputs);
}

}  // namespace

TEST(Conv2dGrad, General) {
  EXPECT_TRUE(conv_grad_check({"3x3", 2, 5, 4, 3, 2, 3, 3, Conv2dParams::make(1, 1)}, true));
  EXPECT_TRUE(conv_grad_check({"s2", 1, 6, 5, 2, 3, 3, 3, Conv2dParams::make(2, 1)}, true));
  EXPECT_TRUE(
      conv_grad_check({"nonsquare", 1, 5, 6, 2, 2, 2, 3, params(2, 1, 1, 0, 1, 2, 1)}, false));
  EXPECT_TRUE(conv_grad_check({"dil2", 2, 6, 5, 2, 2, 3, 3, Conv2dParams::make(1, 1, 2)}, true));
}

TEST(Conv2dGrad, Grouped) {
  EXPECT_TRUE(conv_grad_check({"g2", 2, 4, 5, 4, 6, 3, 3, Conv2dParams::make(1, 1, 1, 2)}, true));
  EXPECT_TRUE(
      conv_grad_check({"g3_s2", 1, 5, 5, 6, 3, 3, 3, Conv2dParams::make(2, 1, 1, 3)}, false));
}

TEST(Conv2dGrad, Depthwise) {
  // C = 9 in float64 is one 8-channel register block plus a 1-channel tail; 7x7 uses the
  // 4-tap dw block and its 3-tap remainder; stride 2 takes the gather dx path.
  EXPECT_TRUE(conv_grad_check({"dw3", 2, 5, 6, 3, 3, 3, 3, Conv2dParams::make(1, 1, 1, 3)}, true));
  EXPECT_TRUE(conv_grad_check({"dw7", 1, 9, 10, 9, 9, 7, 7, Conv2dParams::make(1, 3, 1, 9)}, true));
  EXPECT_TRUE(
      conv_grad_check({"dw3_s2", 1, 7, 6, 4, 4, 3, 3, Conv2dParams::make(2, 1, 1, 4)}, false));
  EXPECT_TRUE(
      conv_grad_check({"dw3_d2", 1, 6, 7, 2, 2, 3, 3, Conv2dParams::make(1, 2, 2, 2)}, true));
}

TEST(Conv2dGrad, Pointwise) {
  EXPECT_TRUE(conv_grad_check({"1x1", 2, 3, 4, 5, 3, 1, 1, Conv2dParams::make()}, true));
  EXPECT_TRUE(
      conv_grad_check({"1x1_g2", 1, 3, 3, 4, 6, 1, 1, Conv2dParams::make(1, 0, 1, 2)}, false));
  EXPECT_TRUE(conv_grad_check({"1x1_s2", 1, 5, 4, 3, 2, 1, 1, Conv2dParams::make(2)}, true));
}

TEST(Conv2dGrad, OnlyTheInputsThatNeedItGetGradients) {
  Tensor x = random({1, 5, 5, 3}, 31).requires_grad_();
  Tensor w = random({2, 3, 3, 3}, 32);
  Tensor b = random({2}, 33);
  sum(conv2d(x, w, b, Conv2dParams::make(1, 1))).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

// Float32 backward (16-channel register blocks, float GEMM) against float64 on medium shapes.
TEST(Conv2dGrad, Float32MatchesFloat64) {
  const std::vector<Case> cases = {
      {"dw7_c37", 2, 12, 15, 37, 37, 7, 7, Conv2dParams::make(1, 3, 1, 37)},
      {"dw3_s2_c20", 1, 11, 9, 20, 20, 3, 3, Conv2dParams::make(2, 1, 1, 20)},
      {"3x3_g2", 2, 9, 8, 10, 12, 3, 3, Conv2dParams::make(1, 1, 1, 2)},
      {"1x1", 2, 6, 5, 17, 11, 1, 1, Conv2dParams::make()},
  };
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    Tensor grads[2][3];
    for (int v = 0; v < 2; ++v) {
      DType dt = v == 0 ? DType::Float64 : DType::Float32;
      Tensor x = random({cs.n, cs.h, cs.w, cs.c}, 41, -1, 1, dt).requires_grad_();
      Tensor w = random({cs.k, cs.r, cs.s, cs.c / cs.pr.groups}, 42, -1, 1, dt).requires_grad_();
      Tensor b = random({cs.k}, 43, -1, 1, dt).requires_grad_();
      Tensor y = conv2d(x, w, b, cs.pr);
      y.backward(random(y.shape(), 44, -1, 1, dt));
      grads[v][0] = x.grad(), grads[v][1] = w.grad(), grads[v][2] = b.grad();
    }
    // dx sums K/G*R*S terms, dw and db sum N*P*Q terms (all of magnitude <= 1): float32 error
    // stays under 2^-22 per term.
    const double pixels = static_cast<double>(cs.n * cs.h * cs.w);
    const double atol[3] = {cs.k * cs.r * cs.s * std::ldexp(1.0, -22),
                            pixels * std::ldexp(1.0, -22), pixels * std::ldexp(1.0, -22)};
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(all_close(grads[1][i].to(DType::Float64), grads[0][i], 1e-5, atol[i])) << i;
  }
}

// ---- errors -----------------------------------------------------------------------------------

namespace {

// Runs f, expects engine::Error whose message contains every fragment.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected an engine::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg << "\nmissing: " << frag;
  }
}

}  // namespace

TEST(Conv2dErrors, ChannelMismatchNamesBothShapes) {
  Tensor x = Tensor::zeros({8, 6, 6, 3}), w = Tensor::zeros({64, 7, 7, 4});
  expect_error([&] { conv2d(x, w); },
               {"conv2d", "[8,6,6,3]", "has 3 channels", "[64,7,7,4]", "expects 4"});
  Tensor wg = Tensor::zeros({4, 3, 3, 2});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 6}), wg, {}, Conv2dParams::make(1, 0, 1, 2));
      },
      {"has 6 channels", "groups=2", "expects 4", "2 per group"});
}

TEST(Conv2dErrors, GroupsMustDivideChannelsAndFilters) {
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 6}), Tensor::zeros({8, 3, 3, 1}), {},
               Conv2dParams::make(1, 0, 1, 4));
      },
      {"groups=4", "divide", "6 channels"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 6}), Tensor::zeros({4, 3, 3, 2}), {},
               Conv2dParams::make(1, 0, 1, 3));
      },
      {"groups=3", "divide", "4 output channels"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 6}), Tensor::zeros({4, 3, 3, 6}), {},
               Conv2dParams::make(1, 0, 1, 0));
      },
      {"groups must be >= 1"});
}

TEST(Conv2dErrors, RanksAndOutputSize) {
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({4, 3, 3}));
      },
      {"weight must be 4-D", "[4,3,3]"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({4, 3, 3, 3}));
      },
      {"input must be 4-D NHWC", "[5,5,3]"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 2, 9, 3}), Tensor::zeros({4, 3, 3, 3}));
      },
      {"output would be empty", "[1,2,9,3]", "3x3"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 4, 4, 3}), Tensor::zeros({4, 3, 3, 3}), {},
               Conv2dParams::make(1, 0, 2));
      },
      {"output would be empty", "dilated to 5x5"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({4, 3, 3, 3}), {}, Conv2dParams::make(0));
      },
      {"stride must be >= 1"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3}));
      },
      {"bias must be [4]", "[3]"});
}

TEST(Conv2dErrors, DtypeMismatchAndNonFloat) {
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({4, 3, 3, 3}, DType::Float64));
      },
      {"weight dtype float64", "input dtype float32"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}, DType::Int64),
               Tensor::zeros({4, 3, 3, 3}, DType::Int64));
      },
      {"float32 or float64", "int64"});
  expect_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 3}), Tensor::zeros({4, 3, 3, 3}),
               Tensor::zeros({4}, DType::Float64));
      },
      {"bias dtype float64"});
}

TEST(Conv2d, EmptyBatchGivesEmptyOutput) {
  Tensor y =
      conv2d(Tensor::zeros({0, 5, 5, 3}), Tensor::ones({4, 3, 3, 3}), {}, Conv2dParams::make(1, 1));
  EXPECT_EQ(y.shape(), (Shape{0, 5, 5, 4}));
}
