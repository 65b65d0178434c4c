// Depthwise convolution kernel lab (kernels/cuda/depthwise_conv2d.cu): every version, forward,
// data gradient and weight + bias gradient, against a float64 reference on awkward shapes.
#include "kernels/cuda/depthwise_conv2d.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/cuda_labs/labs_test_util.h"

namespace {

using kernels::cuda::DepthwiseShape;
using labs_test::DeviceBuffer;

std::string name(const DepthwiseShape& sh) {
  return "[" + std::to_string(sh.n) + "," + std::to_string(sh.h) + "," + std::to_string(sh.w) +
         "," + std::to_string(sh.c) + "] " + std::to_string(sh.r) + "x" + std::to_string(sh.s) +
         " pad " + std::to_string(sh.pad_h) + "," + std::to_string(sh.pad_w);
}

// Plain loops in float64: the definition, nothing clever.
struct Reference {
  std::vector<double> y, dx, dw, db;
};
Reference reference(const DepthwiseShape& sh, const std::vector<double>& x,
                    const std::vector<double>& w, const std::vector<double>& b,
                    const std::vector<double>& dy) {
  const int P = sh.p(), Q = sh.q(), C = sh.c, RS = sh.r * sh.s;
  Reference ref;
  ref.y.assign(size_t(sh.n) * P * Q * C, 0.0);
  ref.dx.assign(x.size(), 0.0);
  ref.dw.assign(size_t(C) * RS, 0.0);
  ref.db.assign(C, 0.0);
  for (int n = 0; n < sh.n; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int c = 0; c < C; ++c) {
          size_t yi = ((size_t(n) * P + p) * Q + q) * C + c;
          double acc = b[c];
          ref.db[c] += dy[yi];
          for (int r = 0; r < sh.r; ++r)
            for (int s = 0; s < sh.s; ++s) {
              int h = p - sh.pad_h + r, ww = q - sh.pad_w + s;
              if (h < 0 || h >= sh.h || ww < 0 || ww >= sh.w) continue;
              size_t xi = ((size_t(n) * sh.h + h) * sh.w + ww) * C + c;
              size_t wi = size_t(c) * RS + r * sh.s + s;
              acc += x[xi] * w[wi];
              ref.dx[xi] += dy[yi] * w[wi];
              ref.dw[wi] += dy[yi] * x[xi];
            }
          ref.y[yi] = acc;
        }
  return ref;
}

// Runs every version on one shape. misalign: hand the kernels x/dy pointers offset by one
// float, which must push the 16-byte-load paths onto their scalar fallback.
void check_all_versions(const DepthwiseShape& sh, uint64_t seed, bool integers, bool misalign) {
  const size_t nx = size_t(sh.n) * sh.h * sh.w * sh.c;
  const size_t ny = size_t(sh.n) * sh.p() * sh.q() * sh.c;
  const size_t nw = size_t(sh.c) * sh.r * sh.s;
  auto gen = [&](size_t n, uint64_t s) {
    return integers ? labs_test::random_ints(n, s) : labs_test::random_floats(n, s);
  };
  std::vector<float> x = gen(nx, seed), w = gen(nw, seed + 1), b = gen(sh.c, seed + 2),
                     dy = gen(ny, seed + 3);
  Reference ref = reference(sh, labs_test::to_double(x), labs_test::to_double(w),
                            labs_test::to_double(b), labs_test::to_double(dy));
  const size_t off = misalign ? 1 : 0;
  DeviceBuffer<float> dx_in(nx + off), dw_(nw), db_(sh.c), ddy(ny + off), dy_out(ny), ddx(nx),
      dgw(nw), dgb(sh.c);
  dx_in.upload(x, off);
  dw_.upload(w);
  db_.upload(b);
  ddy.upload(dy, off);
  // Exact for small integers; otherwise float32 sums of up to R*S (forward, dx) or N*P*Q
  // (weight gradient) products of values in [-1, 1].
  const double fwd_atol = integers ? 0 : 2e-6 * sh.r * sh.s;
  const double wgt_atol = integers ? 0 : 2e-6 * sh.n * sh.p() * sh.q();
  for (int v = 0; v <= kernels::cuda::kDepthwiseVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v) + " shape " + name(sh) +
                 (misalign ? " misaligned" : ""));
    dy_out.poison();
    ddx.poison();
    dgw.poison();
    dgb.poison();
    kernels::cuda::depthwise_conv2d_forward(v, sh, dx_in.data() + off, dw_.data(), db_.data(),
                                            dy_out.data(), nullptr);
    kernels::cuda::depthwise_conv2d_backward_data(v, sh, ddy.data() + off, dw_.data(), ddx.data(),
                                                  nullptr);
    DeviceBuffer<char> ws(kernels::cuda::depthwise_conv2d_backward_weight_workspace(v, sh) + 1);
    kernels::cuda::depthwise_conv2d_backward_weight(v, sh, dx_in.data() + off, ddy.data() + off,
                                                    dgw.data(), dgb.data(), ws.data(), nullptr);
    EXPECT_TRUE(labs_test::close(dy_out.download(), ref.y, 1e-5, fwd_atol, "forward"));
    EXPECT_TRUE(labs_test::close(ddx.download(), ref.dx, 1e-5, fwd_atol, "data gradient"));
    EXPECT_TRUE(labs_test::close(dgw.download(), ref.dw, 1e-5, wgt_atol, "weight gradient"));
    EXPECT_TRUE(labs_test::close(dgb.download(), ref.db, 1e-5, wgt_atol, "bias gradient"));
  }
}

DepthwiseShape shape(int n, int h, int w, int c, int r, int s, int ph, int pw) {
  DepthwiseShape sh;
  sh.n = n, sh.h = h, sh.w = w, sh.c = c, sh.r = r, sh.s = s, sh.pad_h = ph, sh.pad_w = pw;
  return sh;
}

TEST(CudaLabsDepthwise, SevenBySevenAwkwardShapes) {
  LABS_SKIP_WITHOUT_CUDA();
  // odd C (scalar path, partial slab), H != W, tiles that overhang the image
  check_all_versions(shape(2, 9, 11, 33, 7, 7, 3, 3), 1, false, false);
  // C a multiple of 4 over several slabs: 16-byte path
  check_all_versions(shape(3, 13, 10, 96, 7, 7, 3, 3), 2, false, false);
  // batch 1, image smaller than the filter's reach
  check_all_versions(shape(1, 2, 3, 8, 7, 7, 3, 3), 3, false, false);
}

TEST(CudaLabsDepthwise, OtherFiltersAndPaddings) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(1, 8, 8, 64, 3, 3, 1, 1), 10, false, false);    // 3x3, exact tile
  check_all_versions(shape(2, 7, 6, 5, 5, 5, 2, 2), 11, false, false);     // 5x5, C = 5
  check_all_versions(shape(2, 6, 9, 8, 3, 5, 1, 2), 12, false, false);     // R != S: v3 -> v2
  check_all_versions(shape(2, 10, 12, 12, 3, 3, 0, 0), 13, false, false);  // no padding
  check_all_versions(shape(1, 5, 4, 7, 3, 3, 3, 2), 14, false, false);     // padding > R-1
  check_all_versions(shape(1, 9, 9, 4, 9, 9, 4, 4), 15, false, false);     // 9x9: v3 -> v2
}

TEST(CudaLabsDepthwise, MisalignedPointersTakeTheScalarPath) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(2, 9, 9, 64, 7, 7, 3, 3), 20, false, true);
}

TEST(CudaLabsDepthwise, SmallIntegersMatchExactly) {
  LABS_SKIP_WITHOUT_CUDA();
  check_all_versions(shape(2, 11, 9, 40, 7, 7, 3, 3), 30, true, false);
  check_all_versions(shape(3, 8, 8, 36, 3, 3, 1, 1), 31, true, false);
}

// Argument errors are reported before any CUDA call, so these run without a GPU too.
TEST(CudaLabsDepthwise, RejectsBadArguments) {
  float dummy = 0;
  DepthwiseShape sh = shape(1, 8, 8, 4, 7, 7, 3, 3);
  try {
    kernels::cuda::depthwise_conv2d_forward(9, sh, &dummy, &dummy, nullptr, &dummy, nullptr);
    FAIL() << "version 9 accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 9"), std::string::npos) << e.what();
  }
  DepthwiseShape tiny = shape(1, 2, 2, 4, 7, 7, 0, 0);  // 7x7 filter, 2x2 input, no padding
  try {
    kernels::cuda::depthwise_conv2d_forward(0, tiny, &dummy, &dummy, nullptr, &dummy, nullptr);
    FAIL() << "filter larger than the padded input accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
  DepthwiseShape neg = shape(1, 8, 8, 0, 3, 3, 1, 1);
  EXPECT_THROW(
      kernels::cuda::depthwise_conv2d_backward_data(0, neg, &dummy, &dummy, &dummy, nullptr),
      std::runtime_error);
}

}  // namespace
