// Winograd F(2x2, 3x3) convolution (kernels/cpu/conv2d_winograd.cpp): forward, data and weight
// gradients against naive float64 loops on awkward shapes (odd output sizes, so the last tiles
// hang over the edge; padding 0, 1 and 2; channel counts that are not multiples of the vector
// width), with chunks of a few tiles and 1-3 threads; and conv2d() choosing it against im2col.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/common/check.h"

using namespace engine;
using kernels::cpu::Conv2dShape;
using testing_util::all_close;
using testing_util::random;

namespace {

// 3x3, stride 1: P = H + 2 * pad_h - 2.
Conv2dShape shape3x3(int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t pad_h,
                     int64_t pad_w) {
  Conv2dShape sh{n, h, w, c, k, 3, 3, h + 2 * pad_h - 2, w + 2 * pad_w - 2};
  sh.pad_h = pad_h, sh.pad_w = pad_w;
  return sh;
}

// Calls f(xi, wi, yi) for every product x[xi] * w[wi] that the 3x3 stride-1 convolution adds
// into y[yi]: y[n,p,q,k] = sum_{r,s,c} x[n, p-pad_h+r, q-pad_w+s, c] w[k,r,s,c] (taps in the
// padding skipped). The three references below are this one sum read three ways; for a given
// y[yi] the terms come in (r, s, c) order.
template <class F>
void for_each_term(const Conv2dShape& sh, F f) {
  for (int64_t n = 0; n < sh.n; ++n)
    for (int64_t p = 0; p < sh.p; ++p)
      for (int64_t q = 0; q < sh.q; ++q)
        for (int64_t r = 0; r < 3; ++r)
          for (int64_t s = 0; s < 3; ++s) {
            const int64_t h = p - sh.pad_h + r, wi = q - sh.pad_w + s;
            if (h < 0 || h >= sh.h || wi < 0 || wi >= sh.w) continue;
            for (int64_t k = 0; k < sh.k; ++k)
              for (int64_t c = 0; c < sh.c; ++c)
                f(((n * sh.h + h) * sh.w + wi) * sh.c + c, ((k * 3 + r) * 3 + s) * sh.c + c,
                  ((n * sh.p + p) * sh.q + q) * sh.k + k);
          }
}

// y = b + conv(x, w), in float64.
std::vector<double> forward_ref(const Conv2dShape& sh, const std::vector<double>& x,
                                const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> y(sh.n * sh.p * sh.q * sh.k);
  for (size_t i = 0; i < y.size(); ++i) y[i] = b.empty() ? 0.0 : b[i % sh.k];
  for_each_term(sh, [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * w[wi]; });
  return y;
}

// dx[xi] = sum of dy[yi] w[wi] over the terms that read x[xi]: the data gradient, in float64.
std::vector<double> backward_data_ref(const Conv2dShape& sh, const std::vector<double>& dy,
                                      const std::vector<double>& w) {
  std::vector<double> dx(sh.n * sh.h * sh.w * sh.c, 0.0);
  for_each_term(sh, [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += dy[yi] * w[wi]; });
  return dx;
}

// dw[wi] = sum of dy[yi] x[xi] over the terms that read w[wi]: the weight gradient, float64.
std::vector<double> backward_weight_ref(const Conv2dShape& sh, const std::vector<double>& x,
                                        const std::vector<double>& dy) {
  std::vector<double> dw(sh.k * 9 * sh.c, 0.0);
  for_each_term(sh, [&](int64_t xi, int64_t wi, int64_t yi) { dw[wi] += dy[yi] * x[xi]; });
  return dw;
}

struct Named {
  const char* name;
  Conv2dShape sh;
};

const std::vector<Named>& cases() {
  static const std::vector<Named> all = {
      {"odd_both_pad1", shape3x3(2, 7, 9, 5, 6, 1, 1)},        // P = 7, Q = 9: edge tiles
      {"even_pad1_c17_k19", shape3x3(1, 8, 6, 17, 19, 1, 1)},  // vector tails on c and k
      {"pad0_odd_output", shape3x3(3, 6, 7, 4, 3, 0, 0)},      // P = 4, Q = 5
      {"pad2", shape3x3(1, 4, 5, 3, 5, 2, 2)},                 // P = 6, Q = 7
      {"mixed_pads", shape3x3(2, 5, 6, 8, 4, 0, 2)},
      {"single_pixel", shape3x3(2, 1, 1, 6, 7, 1, 1)},         // one tile, three outputs outside
      {"tall_thin", shape3x3(1, 13, 2, 16, 16, 1, 1)},
  };
  return all;
}

std::vector<double> to_vec(const Tensor& t) { return t.to_vector(); }

template <class T>
Tensor run_forward(const Conv2dShape& sh, const Tensor& x, const Tensor& w, const Tensor& b,
                   int64_t chunk_bytes) {
  Tensor y = Tensor::full({sh.n, sh.p, sh.q, sh.k}, NAN, dtype_of<T>());  // must be overwritten
  kernels::cpu::conv2d_forward_winograd<T>(sh, x.data<T>(), w.data<T>(),
                                           b.defined() ? b.data<T>() : nullptr, y.data<T>(),
                                           chunk_bytes);
  return y;
}

template <class T>
Tensor run_backward_data(const Conv2dShape& sh, const Tensor& dy, const Tensor& w,
                         int64_t chunk_bytes) {
  Tensor dx = Tensor::full({sh.n, sh.h, sh.w, sh.c}, NAN, dtype_of<T>());
  kernels::cpu::conv2d_backward_data_winograd<T>(sh, dy.data<T>(), w.data<T>(), dx.data<T>(),
                                                 chunk_bytes);
  return dx;
}

template <class T>
Tensor run_backward_weight(const Conv2dShape& sh, const Tensor& x, const Tensor& dy,
                           int64_t chunk_bytes) {
  Tensor dw = Tensor::full({sh.k, 3, 3, sh.c}, NAN, dtype_of<T>());
  kernels::cpu::conv2d_backward_weight_winograd<T>(sh, x.data<T>(), dy.data<T>(), dw.data<T>(),
                                                   chunk_bytes);
  return dw;
}

}  // namespace

TEST(Conv2dWinograd, AppliesToThreeByThreeStrideOneOnly) {
  using kernels::cpu::winograd_applies;
  EXPECT_TRUE(winograd_applies(shape3x3(1, 5, 5, 4, 4, 1, 1)));
  EXPECT_TRUE(winograd_applies(shape3x3(1, 5, 5, 4, 4, 0, 2)));
  Conv2dShape s2 = shape3x3(1, 9, 9, 4, 4, 1, 1);
  s2.stride_h = 2, s2.p = 5;
  EXPECT_FALSE(winograd_applies(s2));
  Conv2dShape dil = shape3x3(1, 9, 9, 4, 4, 1, 1);
  dil.dil_w = 2, dil.q = 7;
  EXPECT_FALSE(winograd_applies(dil));
  Conv2dShape grouped = shape3x3(1, 5, 5, 4, 4, 1, 1);
  grouped.groups = 2;
  EXPECT_FALSE(winograd_applies(grouped));
  Conv2dShape five = shape3x3(1, 9, 9, 4, 4, 1, 1);
  five.r = 5, five.p = 7;
  EXPECT_FALSE(winograd_applies(five));
}

TEST(Conv2dWinograd, Float64MatchesTheDefinition) {
  const int threads = omp_get_max_threads();
  for (const Named& cs : cases()) {
    const Conv2dShape& sh = cs.sh;
    Tensor x = random({sh.n, sh.h, sh.w, sh.c}, 1), w = random({sh.k, 3, 3, sh.c}, 2);
    Tensor b = random({sh.k}, 3), dy = random({sh.n, sh.p, sh.q, sh.k}, 4);
    const Tensor y_ref = Tensor::from_vector(forward_ref(sh, to_vec(x), to_vec(w), to_vec(b)),
                                             {sh.n, sh.p, sh.q, sh.k});
    const Tensor dx_ref = Tensor::from_vector(backward_data_ref(sh, to_vec(dy), to_vec(w)),
                                              {sh.n, sh.h, sh.w, sh.c});
    const Tensor dw_ref = Tensor::from_vector(backward_weight_ref(sh, to_vec(x), to_vec(dy)),
                                              {sh.k, 3, 3, sh.c});
    // Chunks of one tile (bytes 1), of a few, and automatic; one to three threads, each on
    // its own range of tiles.
    const int64_t tile_bytes = 16 * (sh.c + sh.k) * 8;
    for (int team : {1, 2, 3})
      for (int64_t bytes : {int64_t{1}, 3 * tile_bytes, int64_t{0}}) {
        SCOPED_TRACE(testing::Message() << cs.name << ", " << team << " threads, chunk bytes "
                                        << bytes);
        omp_set_num_threads(team);
        EXPECT_TRUE(all_close(run_forward<double>(sh, x, w, b, bytes), y_ref, 1e-12, 1e-12));
        EXPECT_TRUE(all_close(run_forward<double>(sh, x, w, Tensor(), bytes),
                              Tensor::from_vector(forward_ref(sh, to_vec(x), to_vec(w), {}),
                                                  y_ref.shape()),
                              1e-12, 1e-12));
        EXPECT_TRUE(all_close(run_backward_data<double>(sh, dy, w, bytes), dx_ref, 1e-12, 1e-12));
        EXPECT_TRUE(all_close(run_backward_weight<double>(sh, x, dy, bytes), dw_ref, 1e-12, 1e-12));
      }
  }
  omp_set_num_threads(threads);
}

// Float32 against float64 on the same rounded inputs. The transforms add up to 4 input values
// per direction and halve the filter's: the rounding stays within a small multiple of the
// direct sum's, which 2^-20 per term bounds (the im2col tests use 2^-22).
TEST(Conv2dWinograd, Float32IsAccurate) {
  for (const Named& cs : cases()) {
    SCOPED_TRACE(cs.name);
    const Conv2dShape& sh = cs.sh;
    Tensor x = random({sh.n, sh.h, sh.w, sh.c}, 5, -1, 1, DType::Float32);
    Tensor w = random({sh.k, 3, 3, sh.c}, 6, -1, 1, DType::Float32);
    Tensor b = random({sh.k}, 7, -1, 1, DType::Float32);
    Tensor dy = random({sh.n, sh.p, sh.q, sh.k}, 8, -1, 1, DType::Float32);
    const double fwd_terms = 9.0 * sh.c + 1, bwd_terms = 9.0 * sh.k;
    Tensor y_ref = Tensor::from_vector(forward_ref(sh, to_vec(x), to_vec(w), to_vec(b)),
                                       {sh.n, sh.p, sh.q, sh.k});
    Tensor dx_ref = Tensor::from_vector(backward_data_ref(sh, to_vec(dy), to_vec(w)),
                                        {sh.n, sh.h, sh.w, sh.c});
    EXPECT_TRUE(all_close(run_forward<float>(sh, x, w, b, 0).to(DType::Float64), y_ref, 1e-6,
                          fwd_terms * std::ldexp(1.0, -20)));
    EXPECT_TRUE(all_close(run_backward_data<float>(sh, dy, w, 0).to(DType::Float64), dx_ref, 1e-6,
                          bwd_terms * std::ldexp(1.0, -20)));
    // dw sums N * P * Q products.
    Tensor dw_ref = Tensor::from_vector(backward_weight_ref(sh, to_vec(x), to_vec(dy)),
                                        {sh.k, 3, 3, sh.c});
    EXPECT_TRUE(all_close(run_backward_weight<float>(sh, x, dy, 0).to(DType::Float64), dw_ref,
                          1e-6, double(sh.n * sh.p * sh.q) * std::ldexp(1.0, -20)));
  }
}

// Through the engine: conv2d() takes Winograd for a 3x3 stride-1 convolution with 16 or more
// channels in and out and enough tiles (here 4 * 5 * 6 = 120, over 4x the 24 channels: all
// three passes), and its output and gradients equal im2col's (the algorithm switch).
TEST(Conv2dWinograd, EngineChoosesItAndMatchesIm2col) {
  using kernels::cpu::Conv2dAlgo;
  Tensor x0 = random({4, 9, 11, 24}, 11), w0 = random({20, 3, 3, 24}, 12);
  Tensor b0 = random({20}, 13);
  Tensor out[2], gx[2], gw[2], gb[2];
  for (int v = 0; v < 2; ++v) {
    kernels::cpu::set_conv2d_algo(v == 0 ? Conv2dAlgo::Auto : Conv2dAlgo::Im2col);
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
    Tensor b = b0.detach().requires_grad_();
    out[v] = conv2d(x, w, b, Conv2dParams::make(1, 1));
    out[v].backward(random(out[v].shape(), 14));
    gx[v] = x.grad(), gw[v] = w.grad(), gb[v] = b.grad();
  }
  kernels::cpu::set_conv2d_algo(Conv2dAlgo::Auto);
  EXPECT_TRUE(all_close(out[0], out[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gx[0], gx[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gw[0], gw[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gb[0], gb[1], 1e-12, 1e-12));
  // And Winograd did run: its results are not bit-identical to im2col's (other rounding).
  EXPECT_NE(out[0].to_vector(), out[1].to_vector());
  EXPECT_NE(gx[0].to_vector(), gx[1].to_vector());
  EXPECT_NE(gw[0].to_vector(), gw[1].to_vector());
}
