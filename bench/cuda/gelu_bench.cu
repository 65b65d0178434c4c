// bench/cuda/gelu_bench.cu — validates and times every version of kernels/cuda/gelu.cu.
//
//   gelu_bench [--version V] [--shape stage1|stage3|stage4|mlp1|all] [--batch 64] [--reps 50]
//              [--json FILE] [--no-check]
//
// Shapes: ConvNeXt-T activations [64,56,56,96], [64,14,14,384], [64,7,7,768] (PyTorch's GELU
// probes) and stage 1's MLP hidden layer [64,56,56,384] (where bias + GELU follows pwconv1).
// x in [-6, 6], the float64 CPU reference (kernels/cpu/gelu), every version validated, then
// timed (median after an L2 flush). Target >= 2.0 TB/s.
// PyTorch on the same card (baselines/, 2026-11-26, L2 not flushed): forward 0.061 ms at
// stage 1; forward+backward 0.238 / 0.143 / 0.142 ms. Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/gelu.h"
#include "kernels/cuda/gelu.h"

namespace {

struct Case {
  const char* name;
  int c, hw;
  double pytorch_fwd_ms, pytorch_fwdbwd_ms;
};
const Case kCases[] = {
    {"stage1", 96, 56, 0.0606, 0.238},
    {"stage3", 384, 14, 0, 0.143},
    {"stage4", 768, 7, 0, 0.142},
    {"mlp1", 384, 56, 0, 0},
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("gelu_bench");
  const std::string which = args.get("--shape", "all");
  const int batch = args.get_int("--batch", 64), reps = args.get_int("--reps", 50);
  const bool check = !args.has("--no-check");
  const int only = args.get_int("--version", -1);
  std::printf("gelu_bench on %s: batch %d, float32\n", bench::device_line().c_str(), batch);

  cudaStream_t stream;
  bench::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  bench::L2Flusher flusher;
  std::vector<bench::Row> out;
  bool all_valid = true;
  const double rtol = 2e-5, atol = 1e-6;  // float32 erfc/exp vs float64; absolute near gelu' = 0
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    const int64_t rows = int64_t(batch) * cs.hw * cs.hw;
    const int C = cs.c;
    const size_t n = size_t(rows) * C;
    std::vector<float> x = bench::random_floats(n, 1, -6.f, 6.f), dy = bench::random_floats(n, 2);
    std::vector<float> b = bench::random_floats(C, 3);
    std::vector<double> ry(n), rdx(n), rby(n), rbdx(n);
    if (check) {
      std::vector<double> x64 = bench::to_double(x), dy64 = bench::to_double(dy),
                          b64 = bench::to_double(b);
      kernels::cpu::gelu_forward<double>(int64_t(n), x64.data(), ry.data());
      kernels::cpu::gelu_backward<double>(int64_t(n), x64.data(), dy64.data(), rdx.data());
      kernels::cpu::bias_gelu_forward<double>(rows, C, x64.data(), b64.data(), rby.data());
      kernels::cpu::bias_gelu_backward<double>(rows, C, x64.data(), b64.data(), dy64.data(),
                                               rbdx.data());
    }
    bench::Buffer<float> d_x(n), d_dy(n), d_b(C), d_y(n), d_dx(n);
    d_x.upload(x), d_dy.upload(dy), d_b.upload(b);
    char shape[64];
    std::snprintf(shape, sizeof shape, "%dx%dx%dx%d", batch, cs.hw, cs.hw, C);
    const double fb = 8.0 * n, bb = 12.0 * n, fl = 20.0 * n;

    // Plain GELU: versions 1..3 (--version 0 runs kGeluFastest, the engine's).
    for (int v = 1; v <= kernels::cuda::kGeluVersions; ++v) {
      if (only >= 0 && v != (only == 0 ? kernels::cuda::kGeluFastest : only)) continue;
      auto fwd = [&] { kernels::cuda::gelu_forward(v, d_x.get(), d_y.get(), int64_t(n), stream); };
      auto bwd = [&] {
        kernels::cuda::gelu_backward(v, d_x.get(), d_dy.get(), d_dx.get(), int64_t(n), stream);
      };
      bool valid = true;
      if (check) {
        d_y.poison(), d_dx.poison();
        fwd(), bwd();
        valid &= bench::validate("gelu forward", d_y.download(), ry, rtol, atol);
        valid &= bench::validate("gelu backward", d_dx.download(), rdx, rtol, atol);
        all_valid &= valid;
      }
      bench::Timing tf = bench::time_it(fwd, stream, flusher, reps);
      bench::Timing tb = bench::time_it(bwd, stream, flusher, reps);
      out.push_back(
          {"gelu_forward", shape, v, tf.median_ms, tf.min_ms, fb, fl, cs.pytorch_fwd_ms, valid});
      out.push_back({"gelu_backward", shape, v, tb.median_ms, tb.min_ms, bb, fl, 0, valid});
      out.push_back({"gelu_fwd+bwd", shape, v, tf.median_ms + tb.median_ms, tf.min_ms + tb.min_ms,
                     fb + bb, 2 * fl, cs.pytorch_fwdbwd_ms, valid});
    }
    // Bias + GELU: versions 1..3 (1 = composed).
    for (int v = 1; v <= kernels::cuda::kBiasGeluVersions; ++v) {
      if (only >= 0 && v != (only == 0 ? kernels::cuda::kBiasGeluVersions : only)) continue;
      auto fwd = [&] {
        kernels::cuda::bias_gelu_forward(v, d_x.get(), d_b.get(), d_y.get(), rows, C, stream);
      };
      auto bwd = [&] {
        kernels::cuda::bias_gelu_backward(v, d_x.get(), d_b.get(), d_dy.get(), d_dx.get(), rows, C,
                                          stream);
      };
      bool valid = true;
      if (check) {
        d_y.poison(), d_dx.poison();
        fwd(), bwd();
        valid &= bench::validate("bias_gelu forward", d_y.download(), rby, rtol, atol);
        valid &= bench::validate("bias_gelu backward", d_dx.download(), rbdx, rtol, atol);
        all_valid &= valid;
      }
      bench::Timing tf = bench::time_it(fwd, stream, flusher, reps);
      bench::Timing tb = bench::time_it(bwd, stream, flusher, reps);
      // The floor counts the bytes of the fused op, so v1's extra pass shows as a lower %.
      out.push_back({"bias_gelu_forward", shape, v, tf.median_ms, tf.min_ms, fb, fl, 0, valid});
      out.push_back({"bias_gelu_backward", shape, v, tb.median_ms, tb.min_ms, bb, fl, 0, valid});
    }
    // Backward with the bias gradient: versions 1..3 (1 = backward, then a column-sum pass over
    // dx; 2 = one pass; 3 = one pass, two rows a step, a full GPU of blocks). The floor counts
    // the fused op's 12 bytes per element.
    std::vector<double> rdb(C, 0.0), rdb_abs(C, 0.0);
    if (check)
      for (size_t i = 0; i < n; ++i) rdb[i % C] += rbdx[i], rdb_abs[i % C] += std::abs(rbdx[i]);
    bench::Buffer<float> d_db(C);
    bench::Buffer<char> d_ws(kernels::cuda::bias_gelu_backward_dbias_workspace(rows, C) + 1);
    for (int v = 1; v <= kernels::cuda::kBiasGeluDbiasVersions; ++v) {
      if (only >= 0 && v != (only == 0 ? kernels::cuda::kBiasGeluDbiasFastest : only)) continue;
      auto bwd = [&] {
        kernels::cuda::bias_gelu_backward_dbias(v, d_x.get(), d_b.get(), d_dy.get(), d_dx.get(),
                                                d_db.get(), nullptr, rows, C, d_ws.get(), stream);
      };
      bool valid = true;
      if (check) {
        d_dx.poison(), d_db.poison();
        bwd();
        valid &= bench::validate("bias_gelu backward+dbias dx", d_dx.download(), rbdx, rtol, atol);
        // dbias: float sums of `rows` terms, within 1e-5 of the sum of their magnitudes.
        std::vector<float> got = d_db.download();
        for (int c = 0; c < C; ++c)
          if (!(std::abs(double(got[c]) - rdb[c]) <= 1e-6 + 1e-5 * rdb_abs[c])) {
            std::printf("  FAIL dbias[%d]: got %.8g expected %.8g\n", c, got[c], rdb[c]);
            valid = false;
            break;
          }
        all_valid &= valid;
      }
      bench::Timing tb = bench::time_it(bwd, stream, flusher, reps);
      out.push_back({"bias_gelu_bwd+dbias", shape, v, tb.median_ms, tb.min_ms, bb, fl, 0, valid});
    }
  }
  bench::print_header();
  for (const auto& r : out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "gelu", out);
  cudaStreamDestroy(stream);
  if (!all_valid) std::printf("gelu_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
