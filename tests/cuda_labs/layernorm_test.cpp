// LayerNorm kernel lab (kernels/cuda/layernorm.cu): every version, forward (y, mean, rstd) and
// backward (dx, dw, db), against a float64 reference; widths that hit every v3 configuration,
// widths that force the fallbacks (C % 4 != 0, C > 1024, misaligned pointers), one row,
// optional outputs left null (y included: the statistics only).
#include "kernels/cuda/layernorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/cuda_labs/labs_test_util.h"

namespace {

using labs_test::DeviceBuffer;

struct Ref {
  std::vector<double> y, mean, rstd, dx, dw, db;
};

Ref reference(int64_t rows, int C, const std::vector<float>& x, const std::vector<float>& w,
              const std::vector<float>& b, const std::vector<float>& dy, double eps) {
  Ref r;
  r.y.resize(x.size());
  r.dx.resize(x.size());
  r.mean.resize(rows);
  r.rstd.resize(rows);
  r.dw.assign(C, 0.0);
  r.db.assign(C, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x.data() + i * C;
    const float* dyr = dy.data() + i * C;
    double m = 0, v = 0;
    for (int j = 0; j < C; ++j) m += xr[j];
    m /= C;
    for (int j = 0; j < C; ++j) v += (xr[j] - m) * (xr[j] - m);
    double rs = 1.0 / std::sqrt(v / C + eps);
    r.mean[i] = m;
    r.rstd[i] = rs;
    double s1 = 0, s2 = 0;
    for (int j = 0; j < C; ++j) {
      double xh = (xr[j] - m) * rs, g = double(dyr[j]) * w[j];
      r.y[i * C + j] = xh * w[j] + b[j];
      s1 += g;
      s2 += g * xh;
      r.dw[j] += dyr[j] * xh;
      r.db[j] += dyr[j];
    }
    for (int j = 0; j < C; ++j) {
      double xh = (xr[j] - m) * rs, g = double(dyr[j]) * w[j];
      r.dx[i * C + j] = rs * (g - s1 / C - xh * s2 / C);
    }
  }
  return r;
}

struct Options {
  bool affine = true;      // false: w and b passed as null (reference uses 1 and 0)
  bool save_stats = true;  // false: forward gets null mean/rstd
  bool stats_only = false; // forward gets null y (the statistics only), y must stay unwritten
  bool misalign = false;   // x, y, dy, dx handed over one float past an aligned address
  bool want_dx = true, want_dw = true, want_db = true;
};

void check_all_versions(int64_t rows, int C, uint64_t seed, const Options& o = {}) {
  const size_t n = size_t(rows) * C, off = o.misalign ? 1 : 0;
  // A mean well away from zero makes the subtraction matter.
  std::vector<float> x = labs_test::random_floats(n, seed, -1.f, 3.f);
  std::vector<float> dy = labs_test::random_floats(n, seed + 1);
  std::vector<float> w(C, 1.f), b(C, 0.f);
  if (o.affine) {
    w = labs_test::random_floats(C, seed + 2, 0.5f, 1.5f);
    b = labs_test::random_floats(C, seed + 3);
  }
  const double eps = 1e-5;
  Ref ref = reference(rows, C, x, w, b, dy, eps);
  DeviceBuffer<float> dx_(n + off), dw_(C), db_(C), dy_(n + off), y(n + off), mean(rows),
      rstd(rows), gx(n + off), gw(C), gb(C);
  dx_.upload(x, off);
  dw_.upload(w);
  db_.upload(b);
  dy_.upload(dy, off);
  // The backward reads the float64 reference statistics (rounded), so its check does not
  // depend on the forward under test.
  std::vector<float> mean32(ref.mean.begin(), ref.mean.end()),
      rstd32(ref.rstd.begin(), ref.rstd.end());
  DeviceBuffer<float> mean_in(mean32), rstd_in(rstd32);
  const float* wp = o.affine ? dw_.data() : nullptr;
  const float* bp = o.affine ? db_.data() : nullptr;
  const std::string what = "rows " + std::to_string(rows) + " C " + std::to_string(C) +
                           (o.affine ? "" : " no-affine") + (o.misalign ? " misaligned" : "");
  for (int v = 0; v <= kernels::cuda::kLayernormVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v) + ", " + what);
    y.poison(), mean.poison(), rstd.poison(), gx.poison(), gw.poison(), gb.poison();
    kernels::cuda::layernorm_forward(
        v, dx_.data() + off, wp, bp, o.stats_only ? nullptr : y.data() + off,
        o.save_stats ? mean.data() : nullptr,
        o.save_stats ? rstd.data() : nullptr, rows, C, float(eps), nullptr);
    DeviceBuffer<char> ws(kernels::cuda::layernorm_backward_workspace(v, rows, C) + 1);
    kernels::cuda::layernorm_backward(v, dx_.data() + off, dy_.data() + off, mean_in.data(),
                                      rstd_in.data(), wp, o.want_dx ? gx.data() + off : nullptr,
                                      o.want_dw ? gw.data() : nullptr,
                                      o.want_db ? gb.data() : nullptr, rows, C, ws.data(), nullptr);
    // y is O(3): float32 rounding of mean, rstd and the affine map; the sums over C are short.
    if (o.stats_only) {
      for (float e : y.download()) ASSERT_TRUE(std::isnan(e)) << "y written although null";
    } else {
      EXPECT_TRUE(labs_test::close(y.download(n, off), ref.y, 1e-4, 1e-5, "y"));
    }
    if (o.save_stats) {
      EXPECT_TRUE(labs_test::close(mean.download(), ref.mean, 1e-5, 1e-6, "mean"));
      EXPECT_TRUE(labs_test::close(rstd.download(), ref.rstd, 1e-4, 0, "rstd"));
    } else {
      for (float m : mean.download()) ASSERT_TRUE(std::isnan(m)) << "mean written although null";
    }
    if (o.want_dx) {
      EXPECT_TRUE(labs_test::close(gx.download(n, off), ref.dx, 1e-4, 1e-4, "dx"));
    }
    // dw, db: float32 sums over rows of O(1) terms.
    const double atol = 2e-6 * rows + 1e-6;
    if (o.want_dw) {
      EXPECT_TRUE(labs_test::close(gw.download(), ref.dw, 1e-4, atol, "dw"));
    }
    if (o.want_db) {
      EXPECT_TRUE(labs_test::close(gb.download(), ref.db, 1e-4, atol, "db"));
    }
    if (!o.want_dx) {
      for (float d : gx.download()) ASSERT_TRUE(std::isnan(d)) << "dx written although null";
    }
  }
}

TEST(CudaLabsLayernorm, ConvNextWidths) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(1037, 96, 1);  // v3: 8 lanes x 3 float4; rows not a multiple of 32
  check_all_versions(301, 192, 2);  // 16 x 3
  check_all_versions(67, 384, 3);   // 32 x 3
  check_all_versions(29, 768, 4);   // 32 x 6
  check_all_versions(1, 96, 5);     // a single row
}

TEST(CudaLabsLayernorm, OtherWidthsAndFallbacks) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(45, 1000, 10);  // 32 x 8 with guards (250 float4)
  check_all_versions(33, 36, 11);    // 16 x 3 with guards
  check_all_versions(50, 4, 12);     // one float4 per row
  check_all_versions(101, 33, 13);   // C % 4 != 0: v3 -> v2
  check_all_versions(7, 3, 14);      // C = 3
  check_all_versions(9, 1100, 15);   // C > 1024: v3 -> v2
}

TEST(CudaLabsLayernorm, MisalignedAndOptionalOutputs) {
  LABS_SKIP_WITHOUT_CUDA();
  Options misaligned;
  misaligned.misalign = true;
  check_all_versions(77, 96, 20, misaligned);
  Options plain;
  plain.affine = false;
  plain.save_stats = false;
  check_all_versions(64, 192, 21, plain);
  Options dx_only;
  dx_only.want_dw = dx_only.want_db = false;
  check_all_versions(100, 96, 22, dx_only);
  Options params_only;
  params_only.want_dx = false;
  params_only.want_db = false;
  check_all_versions(513, 384, 23, params_only);
  // The statistics only (engine::layer_norm_mlp): every v3 configuration, and v2's fallback.
  Options stats_only;
  stats_only.stats_only = true;
  for (int c : {96, 192, 384, 768, 33}) check_all_versions(70, c, 24 + c, stats_only);
}

TEST(CudaLabsLayernorm, RejectsBadArguments) {
  float dummy = 0;
  try {
    kernels::cuda::layernorm_forward(4, &dummy, nullptr, nullptr, &dummy, nullptr, nullptr, 1, 1,
                                     1e-5f, nullptr);
    FAIL() << "version 4 accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::cuda::layernorm_forward(0, &dummy, nullptr, nullptr, &dummy, nullptr,
                                                nullptr, 0, 96, 1e-5f, nullptr),
               std::runtime_error);
  // No y and nowhere to put the statistics: nothing to compute.
  EXPECT_THROW(kernels::cuda::layernorm_forward(0, &dummy, nullptr, nullptr, nullptr, &dummy,
                                                nullptr, 1, 96, 1e-5f, nullptr),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::layernorm_backward(0, &dummy, &dummy, nullptr, &dummy, nullptr,
                                                 &dummy, nullptr, nullptr, 4, 96, nullptr, nullptr),
               std::runtime_error);
}

}  // namespace
