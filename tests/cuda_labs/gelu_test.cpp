// GELU kernel lab (kernels/cuda/gelu.cu): every version of gelu and bias_gelu, forward and
// backward, against float64 erf on sizes with float4 tails, misaligned pointers, in-place
// calls, and inputs reaching the far negative tail where 1 + erf would cancel.
#include "kernels/cuda/gelu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tests/cuda_labs/labs_test_util.h"

namespace {

using labs_test::DeviceBuffer;

double gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_grad(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

// float32 erfc/exp are good to a few ulp; near gelu'(x) = 0 (x ~ -0.75) only an absolute
// bound makes sense.
constexpr double kRtol = 2e-5, kAtol = 1e-6;

void check_gelu(int64_t n, uint64_t seed, bool misalign, bool in_place) {
  const size_t off = misalign ? 1 : 0;
  std::vector<float> x = labs_test::random_floats(n, seed, -9.f, 6.f);
  std::vector<float> dy = labs_test::random_floats(n, seed + 1);
  std::vector<double> ry(n), rdx(n);
  for (int64_t i = 0; i < n; ++i) {
    ry[i] = gelu(x[i]);
    rdx[i] = dy[i] * gelu_grad(x[i]);
  }
  DeviceBuffer<float> dx_in(n + off), ddy(n + off), out(n + off);
  for (int v = 0; v <= kernels::cuda::kGeluVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v) + " n " + std::to_string(n) +
                 (misalign ? " misaligned" : "") + (in_place ? " in place" : ""));
    dx_in.upload(x, off);
    ddy.upload(dy, off);
    out.poison();
    float* y = in_place ? dx_in.data() + off : out.data() + off;
    kernels::cuda::gelu_forward(v, dx_in.data() + off, y, n, nullptr);
    EXPECT_TRUE(labs_test::close(in_place ? dx_in.download(n, off) : out.download(n, off), ry,
                                 kRtol, kAtol, "gelu forward"));
    dx_in.upload(x, off);
    out.poison();
    float* dx = in_place ? ddy.data() + off : out.data() + off;
    kernels::cuda::gelu_backward(v, dx_in.data() + off, ddy.data() + off, dx, n, nullptr);
    EXPECT_TRUE(labs_test::close(in_place ? ddy.download(n, off) : out.download(n, off), rdx, kRtol,
                                 kAtol, "gelu backward"));
  }
}

// Also checks that the fused versions equal the composed one (v1) bit for bit: the same
// float x + b goes through the same gelu either way.
void check_bias_gelu(int64_t rows, int C, uint64_t seed, bool misalign, bool in_place) {
  const size_t n = size_t(rows) * C, off = misalign ? 1 : 0;
  std::vector<float> x = labs_test::random_floats(n, seed, -7.f, 5.f);
  std::vector<float> b = labs_test::random_floats(C, seed + 1, -2.f, 2.f);
  std::vector<float> dy = labs_test::random_floats(n, seed + 2);
  std::vector<double> ry(n), rdx(n);
  for (size_t i = 0; i < n; ++i) {
    double t = double(x[i] + b[i % C]);  // the float sum, as every version computes it
    ry[i] = gelu(t);
    rdx[i] = dy[i] * gelu_grad(t);
  }
  DeviceBuffer<float> dx_in(n + off), db(C + off), ddy(n + off), out(n + off);
  db.upload(b, off);
  std::vector<float> composed_y, composed_dx;
  for (int v = 1; v <= kernels::cuda::kBiasGeluVersions; ++v) {
    SCOPED_TRACE("bias version " + std::to_string(v) + " rows " + std::to_string(rows) + " C " +
                 std::to_string(C) + (misalign ? " misaligned" : "") +
                 (in_place ? " in place" : ""));
    dx_in.upload(x, off);
    out.poison();
    float* y = in_place ? dx_in.data() + off : out.data() + off;
    kernels::cuda::bias_gelu_forward(v, dx_in.data() + off, db.data() + off, y, rows, C, nullptr);
    std::vector<float> got_y = in_place ? dx_in.download(n, off) : out.download(n, off);
    EXPECT_TRUE(labs_test::close(got_y, ry, kRtol, kAtol, "bias_gelu forward"));
    dx_in.upload(x, off);
    ddy.upload(dy, off);
    out.poison();
    float* dx = in_place ? ddy.data() + off : out.data() + off;
    kernels::cuda::bias_gelu_backward(v, dx_in.data() + off, db.data() + off, ddy.data() + off, dx,
                                      rows, C, nullptr);
    std::vector<float> got_dx = in_place ? ddy.download(n, off) : out.download(n, off);
    EXPECT_TRUE(labs_test::close(got_dx, rdx, kRtol, kAtol, "bias_gelu backward"));
    if (v == 1) {
      composed_y = got_y, composed_dx = got_dx;
    } else {
      EXPECT_EQ(0, std::memcmp(got_y.data(), composed_y.data(), n * sizeof(float)))
          << "fused forward differs from composed";
      EXPECT_EQ(0, std::memcmp(got_dx.data(), composed_dx.data(), n * sizeof(float)))
          << "fused backward differs from composed";
    }
  }
  // Version 0 is the fastest one.
  out.poison();
  dx_in.upload(x, off);
  kernels::cuda::bias_gelu_forward(0, dx_in.data() + off, db.data() + off, out.data() + off, rows,
                                   C, nullptr);
  EXPECT_TRUE(labs_test::close(out.download(n, off), ry, kRtol, kAtol, "bias_gelu version 0"));
}

// dx and the bias gradient (column sums of dx) of every bias_gelu_backward_dbias version against
// float64; the fused version's dx must equal bias_gelu_backward's bit for bit (same arithmetic),
// and a rerun must give the same dbias bits (fixed-order sums). recompute: y = gelu(x + b) is
// asked for too, and must equal bias_gelu_forward's output bit for bit.
void check_bias_grad(int64_t rows, int C, uint64_t seed, bool misalign, bool in_place,
                     bool recompute = false) {
  const size_t n = size_t(rows) * C, off = misalign ? 1 : 0;
  std::vector<float> x = labs_test::random_floats(n, seed, -4.f, 3.f);
  std::vector<float> b = labs_test::random_floats(C, seed + 1, -1.f, 1.f);
  std::vector<float> dy = labs_test::random_floats(n, seed + 2);
  std::vector<double> rdx(n), rdb(C, 0.0), abs_sum(C, 0.0);
  for (size_t i = 0; i < n; ++i) {
    rdx[i] = dy[i] * gelu_grad(double(x[i] + b[i % C]));
    rdb[i % C] += rdx[i];
    abs_sum[i % C] += std::abs(rdx[i]);
  }
  DeviceBuffer<float> dxin(n + off), dbias_in(C + off), ddy(n + off), out(n + off), db(C);
  dbias_in.upload(b, off);
  DeviceBuffer<float> ys(n + off);
  std::vector<float> plain_dx, plain_y;
  {
    dxin.upload(x, off);
    ddy.upload(dy, off);
    out.poison();
    kernels::cuda::bias_gelu_backward(0, dxin.data() + off, dbias_in.data() + off,
                                      ddy.data() + off, out.data() + off, rows, C, nullptr);
    plain_dx = out.download(n, off);
    kernels::cuda::bias_gelu_forward(0, dxin.data() + off, dbias_in.data() + off,
                                     out.data() + off, rows, C, nullptr);
    plain_y = out.download(n, off);
  }
  for (int v = 0; v <= kernels::cuda::kBiasGeluDbiasVersions; ++v) {
    SCOPED_TRACE("dbias version " + std::to_string(v) + " rows " + std::to_string(rows) + " C " +
                 std::to_string(C) + (misalign ? " misaligned" : "") +
                 (in_place ? " in place" : "") + (recompute ? " recompute" : ""));
    std::vector<float> got_db[2];
    for (int run = 0; run < 2; ++run) {
      dxin.upload(x, off);
      ddy.upload(dy, off);
      out.poison(), db.poison(), ys.poison();
      float* dx = in_place ? ddy.data() + off : out.data() + off;
      kernels::cuda::bias_gelu_backward_dbias(v, dxin.data() + off, dbias_in.data() + off,
                                              ddy.data() + off, dx, db.data(),
                                              recompute ? ys.data() + off : nullptr, rows, C,
                                              nullptr, nullptr);
      if (recompute) {
        std::vector<float> got_y = ys.download(n, off);
        EXPECT_EQ(0, std::memcmp(got_y.data(), plain_y.data(), n * sizeof(float)))
            << "y differs from bias_gelu_forward's";
      }
      std::vector<float> got_dx = in_place ? ddy.download(n, off) : out.download(n, off);
      EXPECT_EQ(0, std::memcmp(got_dx.data(), plain_dx.data(), n * sizeof(float)))
          << "dx differs from bias_gelu_backward's";
      got_db[run] = db.download(C);
    }
    // Float sums of `rows` terms, added in chunks: well within 1e-5 of the sum of magnitudes
    // here, while one row missing or counted twice moves a column by ~1/rows of it.
    for (int c = 0; c < C; ++c)
      EXPECT_NEAR(got_db[0][c], rdb[c], 1e-6 + 1e-5 * abs_sum[c]) << "dbias[" << c << "]";
    EXPECT_EQ(0, std::memcmp(got_db[0].data(), got_db[1].data(), C * sizeof(float)))
        << "dbias differs between two identical runs";
  }
}

TEST(CudaLabsGelu, BiasGradientVersions) {
  LABS_SKIP_WITHOUT_CUDA();
  check_bias_grad(37, 96, 40, false, false);     // float4 columns, one tile
  check_bias_grad(1001, 384, 41, false, false);  // float4, several chunks
  check_bias_grad(203, 1540, 42, false, false);  // 385 float4 columns: 4 tiles, the last short
  check_bias_grad(77, 33, 43, false, false);     // C % 4 != 0: float columns
  check_bias_grad(1, 1, 44, false, false);       // one element
  check_bias_grad(0, 8, 45, false, false);       // no rows: dbias = 0
  check_bias_grad(61, 20, 46, true, false);      // misaligned: float columns
  check_bias_grad(64, 24, 47, false, true);      // in place (dx == dy)
  // With gelu(x + b) recomputed into y (engine::mlp's backward).
  check_bias_grad(1001, 384, 48, false, false, true);  // float4
  check_bias_grad(77, 33, 49, false, true, true);      // float columns, in place
  check_bias_grad(61, 20, 50, true, false, true);      // misaligned
}

TEST(CudaLabsGelu, SizesWithTails) {
  LABS_SKIP_WITHOUT_CUDA();
  for (int64_t n : {1, 3, 4, 7, 1001, 4099, 262147}) check_gelu(n, n, false, false);
}

TEST(CudaLabsGelu, MisalignedAndInPlace) {
  LABS_SKIP_WITHOUT_CUDA();
  check_gelu(4097, 1, true, false);
  check_gelu(5003, 2, false, true);
  check_gelu(5003, 3, true, true);
}

TEST(CudaLabsGelu, BiasVariants) {
  LABS_SKIP_WITHOUT_CUDA();
  check_bias_gelu(37, 96, 10, false, false);     // float4 path
  check_bias_gelu(13, 33, 11, false, false);     // C % 4 != 0: v3 -> v2
  check_bias_gelu(1, 1, 12, false, false);       // one element
  check_bias_gelu(6001, 384, 13, false, false);  // several grid-stride laps: the carried column
  // C = 100 divides no grid stride (an H100's 132 x 2048 threads is 704 rows of 384, so above
  // the column never wraps there; here it must).
  check_bias_gelu(30001, 100, 16, false, false);
  check_bias_gelu(9, 12, 14, true, false);       // misaligned
  check_bias_gelu(50, 20, 15, false, true);      // in place
}

TEST(CudaLabsGelu, RejectsBadArguments) {
  float dummy = 0;
  EXPECT_THROW(kernels::cuda::gelu_forward(kernels::cuda::kGeluVersions + 1, &dummy, &dummy, 1, nullptr),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::bias_gelu_forward(0, &dummy, nullptr, &dummy, 1, 1, nullptr),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::bias_gelu_backward(0, &dummy, &dummy, &dummy, &dummy, 1, 0, nullptr),
               std::runtime_error);
  EXPECT_THROW(kernels::cuda::bias_gelu_backward_dbias(kernels::cuda::kBiasGeluDbiasVersions + 1, &dummy, &dummy, &dummy, &dummy, &dummy,
                                                       nullptr, 1, 1, nullptr, nullptr),
               std::runtime_error);
}

}  // namespace
