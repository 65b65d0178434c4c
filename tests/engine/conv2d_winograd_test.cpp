// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution (kernels/cpu/conv2d_winograd.cpp): forward,
// data and weight gradients of both tile sizes against naive float64 loops on awkward shapes (odd output sizes, so the last tiles
// hang over the edge; padding 0, 1 and 2; channel counts that are not multiples of the vector
// width), with chunks of a few tiles and 1-3 threads; and conv2d() choosing it against im2col.
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/common/check.h"

using namespace engine;
using kernels::cpu::Conv2dShape;
using kernels::cpu::WinogradTile;
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
                   WinogradTile tile, int64_t chunk_bytes) {
  Tensor y = Tensor::full({sh.n, sh.p, sh.q, sh.k}, NAN, dtype_of<T>());  // must be overwritten
  kernels::cpu::conv2d_forward_winograd<T>(sh, x.data<T>(), w.data<T>(),
                                           b.defined() ? b.data<T>() : nullptr, y.data<T>(),
                                           tile, chunk_bytes);
  return y;
}

template <class T>
Tensor run_backward_data(const Conv2dShape& sh, const Tensor& dy, const Tensor& w,
                         WinogradTile tile, int64_t chunk_bytes) {
  Tensor dx = Tensor::full({sh.n, sh.h, sh.w, sh.c}, NAN, dtype_of<T>());
  kernels::cpu::conv2d_backward_data_winograd<T>(sh, dy.data<T>(), w.data<T>(), dx.data<T>(),
                                                 tile, chunk_bytes);
  return dx;
}

template <class T>
Tensor run_backward_weight(const Conv2dShape& sh, const Tensor& x, const Tensor& dy,
                           WinogradTile tile, int64_t chunk_bytes) {
  Tensor dw = Tensor::full({sh.k, 3, 3, sh.c}, NAN, dtype_of<T>());
  kernels::cpu::conv2d_backward_weight_winograd<T>(sh, x.data<T>(), dy.data<T>(), dw.data<T>(),
                                                   tile, chunk_bytes);
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

struct NamedTile {
  const char* name;
  WinogradTile tile;
  int A;  // inputs per tile side
};
const NamedTile kTiles[] = {{"F(2x2,3x3)", WinogradTile::F2x2, 4},
                            {"F(4x4,3x3)", WinogradTile::F4x4, 6}};

TEST(Conv2dWinograd, Float64MatchesTheDefinition) {
  const int threads = omp_get_max_threads();
  for (const Named& cs : cases()) {
    const Conv2dShape& sh = cs.sh;
    Tensor x = random({sh.n, sh.h, sh.w, sh.c}, 1), w = random({sh.k, 3, 3, sh.c}, 2);
    Tensor b = random({sh.k}, 3), dy = random({sh.n, sh.p, sh.q, sh.k}, 4);
    const Tensor y_ref = Tensor::from_vector(forward_ref(sh, to_vec(x), to_vec(w), to_vec(b)),
                                             {sh.n, sh.p, sh.q, sh.k});
    const Tensor y0_ref = Tensor::from_vector(forward_ref(sh, to_vec(x), to_vec(w), {}),
                                              y_ref.shape());
    const Tensor dx_ref = Tensor::from_vector(backward_data_ref(sh, to_vec(dy), to_vec(w)),
                                              {sh.n, sh.h, sh.w, sh.c});
    const Tensor dw_ref = Tensor::from_vector(backward_weight_ref(sh, to_vec(x), to_vec(dy)),
                                              {sh.k, 3, 3, sh.c});
    for (const NamedTile& tl : kTiles) {
      // Chunks of one tile (bytes 1), of a few, and automatic; one to three threads, each on
      // its own range of tiles.
      const int64_t tile_bytes = tl.A * tl.A * (sh.c + sh.k) * 8;
      for (int team : {1, 2, 3})
        for (int64_t bytes : {int64_t{1}, 3 * tile_bytes, int64_t{0}}) {
          SCOPED_TRACE(testing::Message() << cs.name << ", " << tl.name << ", " << team
                                          << " threads, chunk bytes " << bytes);
          omp_set_num_threads(team);
          EXPECT_TRUE(all_close(run_forward<double>(sh, x, w, b, tl.tile, bytes), y_ref, 1e-12,
                                1e-12));
          EXPECT_TRUE(all_close(run_forward<double>(sh, x, w, Tensor(), tl.tile, bytes), y0_ref,
                                1e-12, 1e-12));
          EXPECT_TRUE(all_close(run_backward_data<double>(sh, dy, w, tl.tile, bytes), dx_ref,
                                1e-12, 1e-12));
          EXPECT_TRUE(all_close(run_backward_weight<double>(sh, x, dy, tl.tile, bytes), dw_ref,
                                1e-12, 1e-12));
        }
    }
  }
  omp_set_num_threads(threads);
}

// The largest error of got against ref, in units of float32's epsilon times the magnitude
// scale[i] of each reference value (the sum of the absolute values of its terms).
double max_error_in_eps(const Tensor& got, const std::vector<double>& ref,
                        const std::vector<double>& scale) {
  const std::vector<double> g = got.to_vector();
  double worst = 0.0;
  for (size_t i = 0; i < g.size(); ++i)
    worst = std::max(worst, std::abs(g[i] - ref[i]) / (scale[i] * std::ldexp(1.0, -23)));
  return worst;
}

std::vector<double> abs_values(const Tensor& t) {
  std::vector<double> v = t.to_vector();
  for (double& e : v) e = std::abs(e);
  return v;
}

// Float32 against float64 on the same rounded inputs. Each result's error is measured against
// the sum of the absolute values of its terms (the references run on |x|, |w|, |dy|), in units
// of float32's epsilon: a direct float32 sum stays under ~terms * eps of it in the worst case
// and near sqrt(terms) * eps in practice. The bounds below are about 3x what each variant
// showed on these cases (F(2x2) adds and halves; F(4x4) multiplies by up to 8 and divides by
// 24 and rounds some 10x worse): loose enough for other compilers' FMA contraction, tight
// enough that a wrong transform constant, which makes errors of order 1 (10^7 eps), fails.
TEST(Conv2dWinograd, Float32IsAccurate) {
  for (const Named& cs : cases()) {
    const Conv2dShape& sh = cs.sh;
    Tensor x = random({sh.n, sh.h, sh.w, sh.c}, 5, -1, 1, DType::Float32);
    Tensor w = random({sh.k, 3, 3, sh.c}, 6, -1, 1, DType::Float32);
    Tensor b = random({sh.k}, 7, -1, 1, DType::Float32);
    Tensor dy = random({sh.n, sh.p, sh.q, sh.k}, 8, -1, 1, DType::Float32);
    const std::vector<double> ax = abs_values(x), aw = abs_values(w), ab = abs_values(b),
                              ady = abs_values(dy);
    const std::vector<double> y_ref = forward_ref(sh, to_vec(x), to_vec(w), to_vec(b));
    const std::vector<double> dx_ref = backward_data_ref(sh, to_vec(dy), to_vec(w));
    const std::vector<double> dw_ref = backward_weight_ref(sh, to_vec(x), to_vec(dy));
    const std::vector<double> y_scale = forward_ref(sh, ax, aw, ab);
    const std::vector<double> dx_scale = backward_data_ref(sh, ady, aw);
    const std::vector<double> dw_scale = backward_weight_ref(sh, ax, ady);
    for (const NamedTile& tl : kTiles) {
      SCOPED_TRACE(testing::Message() << cs.name << ", " << tl.name);
      const double bound = tl.tile == WinogradTile::F2x2 ? 8.0 : 64.0;
      const double fwd = max_error_in_eps(run_forward<float>(sh, x, w, b, tl.tile, 0), y_ref,
                                          y_scale);
      const double data = max_error_in_eps(run_backward_data<float>(sh, dy, w, tl.tile, 0),
                                           dx_ref, dx_scale);
      const double weight = max_error_in_eps(run_backward_weight<float>(sh, x, dy, tl.tile, 0),
                                             dw_ref, dw_scale);
      std::printf("%-18s %s: max error / (eps * sum|terms|): forward %.2f, data %.2f, weight %.2f\n",
                  cs.name, tl.name, fwd, data, weight);
      EXPECT_LT(fwd, bound);
      EXPECT_LT(data, bound);
      EXPECT_LT(weight, bound);
    }
  }
}

// Through the engine: conv2d() with bias on `sh` (pad 1) in Auto mode equals im2col (the
// algorithm switch) within float64 rounding, and is bit for bit the direct call of `tile` in all
// three passes: the variant winograd_tile in kernels/cpu/conv2d.cpp picked.
void check_engine_picks(const Conv2dShape& sh, WinogradTile tile, uint64_t seed) {
  using kernels::cpu::Conv2dAlgo;
  Tensor x0 = random({sh.n, sh.h, sh.w, sh.c}, seed), w0 = random({sh.k, 3, 3, sh.c}, seed + 1);
  Tensor b0 = random({sh.k}, seed + 2), dy = random({sh.n, sh.p, sh.q, sh.k}, seed + 3);
  Tensor out[2], gx[2], gw[2], gb[2];
  for (int v = 0; v < 2; ++v) {
    kernels::cpu::set_conv2d_algo(v == 0 ? Conv2dAlgo::Auto : Conv2dAlgo::Im2col);
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_();
    Tensor b = b0.detach().requires_grad_();
    out[v] = conv2d(x, w, b, Conv2dParams::make(1, 1));
    out[v].backward(dy);
    gx[v] = x.grad(), gw[v] = w.grad(), gb[v] = b.grad();
  }
  kernels::cpu::set_conv2d_algo(Conv2dAlgo::Auto);
  EXPECT_TRUE(all_close(out[0], out[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gx[0], gx[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gw[0], gw[1], 1e-12, 1e-12));
  EXPECT_TRUE(all_close(gb[0], gb[1], 1e-12, 1e-12));
  EXPECT_EQ(out[0].to_vector(), run_forward<double>(sh, x0, w0, b0, tile, 0).to_vector());
  EXPECT_EQ(gx[0].to_vector(), run_backward_data<double>(sh, dy, w0, tile, 0).to_vector());
  EXPECT_EQ(gw[0].to_vector(), run_backward_weight<double>(sh, x0, dy, tile, 0).to_vector());
}

// Few tiles per channel: 2x2 tiles / channels = 16 / 32 = 0.5, 4x4 tiles / channels = 4 / 32.
TEST(Conv2dWinograd, EngineTakesTwoByTwoForSmallImages) {
  check_engine_picks(shape3x3(1, 8, 8, 32, 32, 1, 1), WinogradTile::F2x2, 11);
}

// Many: 4x4 tiles / channels = 2 * 8 * 8 / 16 = 8; P = 30, Q = 31 leave edge tiles.
TEST(Conv2dWinograd, EngineTakesFourByFourForLargeImages) {
  check_engine_picks(shape3x3(2, 30, 31, 16, 16, 1, 1), WinogradTile::F4x4, 21);
}
