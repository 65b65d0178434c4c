// bench/cuda/layernorm_bench.cu — validates and times every version of
// kernels/cuda/layernorm.cu on ConvNeXt-T's LayerNorm inputs (batch 64, NHWC, eps 1e-6).
//
//   layernorm_bench [--version V] [--shape stage1|stage2|stage3|stage4|all] [--batch 64]
//                   [--reps 50] [--json FILE] [--no-check]
//
// Random x in [-1, 3], w in [0.5, 1.5], b and dy in [-1, 1]; the float64 CPU reference
// (kernels/cpu/layernorm) checks y, mean, rstd, dx, dw, db of every version, then each version
// is timed (median after an L2 flush). The backward is fed the reference mean/rstd so its check
// does not depend on the forward. Target: forward >= 1.5 TB/s at C = 96.
// PyTorch on the same card (baselines/, 2026-11-26, L2 not flushed): forward 0.32 ms at
// stage 1; forward+backward 0.66 / - / 0.22 / 0.22 ms. Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/layernorm.h"
#include "kernels/cuda/layernorm.h"

namespace {

struct Case {
  const char* name;
  int c, hw;
  double pytorch_fwd_ms, pytorch_fwdbwd_ms;  // 0 = not measured
};
const Case kCases[] = {
    {"stage1", 96, 56, 0.323, 0.664},
    {"stage2", 192, 28, 0, 0},
    {"stage3", 384, 14, 0, 0.224},
    {"stage4", 768, 7, 0, 0.216},
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("layernorm_bench");
  const std::string which = args.get("--shape", "all");
  const int batch = args.get_int("--batch", 64), reps = args.get_int("--reps", 50);
  const bool check = !args.has("--no-check");
  const std::vector<int> versions = bench::versions(args, kernels::cuda::kLayernormVersions);
  const float eps = 1e-6f;
  std::printf("layernorm_bench on %s: batch %d, float32\n", bench::device_line().c_str(), batch);

  cudaStream_t stream;
  bench::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows_out;
  bool all_valid = true;
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    const int64_t rows = int64_t(batch) * cs.hw * cs.hw;
    const int C = cs.c;
    const size_t n = size_t(rows) * C;
    std::vector<float> x = bench::random_floats(n, 1, -1.f, 3.f), dy = bench::random_floats(n, 2);
    std::vector<float> w = bench::random_floats(C, 3, 0.5f, 1.5f), b = bench::random_floats(C, 4);
    std::vector<double> ry(n), rmean(rows), rrstd(rows), rdx(n), rdw(C), rdb(C);
    if (check) {
      std::vector<double> x64 = bench::to_double(x), dy64 = bench::to_double(dy),
                          w64 = bench::to_double(w), b64 = bench::to_double(b);
      kernels::cpu::layernorm_forward<double>(rows, C, x64.data(), w64.data(), b64.data(), eps,
                                              ry.data(), rmean.data(), rrstd.data());
      kernels::cpu::layernorm_backward<double>(rows, C, x64.data(), dy64.data(), rmean.data(),
                                               rrstd.data(), w64.data(), rdx.data(), rdw.data(),
                                               rdb.data());
    }
    bench::Buffer<float> d_x(n), d_dy(n), d_w(C), d_b(C), d_y(n), d_mean(rows), d_rstd(rows),
        d_dx(n), d_dw(C), d_db(C), d_mean_ref(rows), d_rstd_ref(rows);
    d_x.upload(x), d_dy.upload(dy), d_w.upload(w), d_b.upload(b);
    d_mean_ref.upload(std::vector<float>(rmean.begin(), rmean.end()));
    d_rstd_ref.upload(std::vector<float>(rrstd.begin(), rrstd.end()));
    char shape[64];
    std::snprintf(shape, sizeof shape, "%dx%dx%dx%d", batch, cs.hw, cs.hw, C);
    const double fwd_bytes = 8.0 * n + 8.0 * rows, bwd_bytes = 12.0 * n + 8.0 * rows;
    for (int v : versions) {
      bench::Buffer<char> ws(kernels::cuda::layernorm_backward_workspace(v, rows, C));
      auto fwd = [&] {
        kernels::cuda::layernorm_forward(v, d_x.get(), d_w.get(), d_b.get(), d_y.get(),
                                         d_mean.get(), d_rstd.get(), rows, C, eps, stream);
      };
      auto bwd = [&] {
        kernels::cuda::layernorm_backward(v, d_x.get(), d_dy.get(), d_mean_ref.get(),
                                          d_rstd_ref.get(), d_w.get(), d_dx.get(), d_dw.get(),
                                          d_db.get(), rows, C, ws.get(), stream);
      };
      bool valid = true;
      if (check) {
        d_y.poison(), d_mean.poison(), d_rstd.poison(), d_dx.poison(), d_dw.poison(), d_db.poison();
        fwd(), bwd();
        bench::ok(cudaStreamSynchronize(stream), "validation run");
        valid &= bench::validate("y", d_y.download(), ry, 1e-4, 1e-5);
        valid &= bench::validate("mean", d_mean.download(), rmean, 1e-5, 1e-6);
        valid &= bench::validate("rstd", d_rstd.download(), rrstd, 1e-4, 0);
        valid &= bench::validate("dx", d_dx.download(), rdx, 1e-4, 1e-4);
        // float32 sums over `rows` O(1) terms
        valid &= bench::validate("dw", d_dw.download(), rdw, 1e-4, 2e-6 * rows);
        valid &= bench::validate("db", d_db.download(), rdb, 1e-4, 2e-6 * rows);
        all_valid &= valid;
      }
      bench::Timing tf = bench::time_it(fwd, stream, flusher, reps);
      bench::Timing tb = bench::time_it(bwd, stream, flusher, reps);
      rows_out.push_back({"forward", shape, v, tf.median_ms, tf.min_ms, fwd_bytes, 7.0 * n,
                          cs.pytorch_fwd_ms, valid});
      rows_out.push_back(
          {"backward", shape, v, tb.median_ms, tb.min_ms, bwd_bytes, 12.0 * n, 0, valid});
      rows_out.push_back({"fwd+bwd", shape, v, tf.median_ms + tb.median_ms, tf.min_ms + tb.min_ms,
                          fwd_bytes + bwd_bytes, 19.0 * n, cs.pytorch_fwdbwd_ms, valid});
    }
  }
  bench::print_header();
  for (const auto& r : rows_out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "layernorm", rows_out);
  cudaStreamDestroy(stream);
  if (!all_valid) std::printf("layernorm_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
