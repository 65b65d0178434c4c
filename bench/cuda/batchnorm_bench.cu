// bench/cuda/batchnorm_bench.cu — validates and times training-mode BatchNorm on ResNet-50's
// NHWC activations (batch 64): our kernels (kernels/cuda/batchnorm.cu) against cuDNN's two
// training modes, in one process on the same inputs.
//
//   batchnorm_bench [--version V] [--shape NAME|all] [--batch 64] [--reps 30] [--json FILE]
//                   [--no-check] [--relu off|on|both]
//
// Versions (not a lab of several kernels of ours; the question is which one the engine uses):
//   v1  ours: batchnorm_training_stats (column sums of x - x[0, c] in double, then one
//       kernel for mean, invstd and the running statistics), batchnorm_forward; backward:
//       column sums of dy and dy * (x - mean), then dx. Since 2026-11-27 (after the H200
//       run) every pass moves 16 bytes per thread access with a thread's channel constants in
//       registers, and the forward is 3 launches instead of 5.
//   v2  cuDNN, CUDNN_BATCHNORM_SPATIAL: the mode the engine used until 2026-11-27, when it took
//       1.4 ms per forward and 2.1 ms per backward in ResNet-50's step on an H200 (92% of it).
//   v3  cuDNN, CUDNN_BATCHNORM_SPATIAL_PERSISTENT: its NHWC path, what PyTorch calls for
//       channels-last training and the engine's cuDNN default since then. (Should cuDNN refuse
//       it, the engine says so once on stderr and runs SPATIAL: v3's rows then time v2.)
// --relu on (or both, the default: plain first): BatchNorm followed by ReLU, as ResNet runs 33 of
// its 53 BatchNorms and as the engine runs each side: ours fuses the ReLU into its passes (the
// backward recomputes the mask from x), cuDNN's calls are followed by the engine's ReLU kernels
// (forward: y = max(bn, 0), one more read and write; backward: dy zeroed where y <= 0 before
// cuDNN's backward). Rows are then named forward+relu / backward+relu / fwd+bwd+relu, with the same
// floors. Forward = the statistics, the running-stat update and y; backward = dx, dweight, dbias
// from the saved mean and invstd (the reference's, so the backward's check does not depend on the
// forward). Floors count each tensor once: forward reads x and writes y (8 bytes an element),
// backward reads x and dy and writes dx (12); a two-pass kernel reads x twice, so ours can
// reach 67% / 75% of them at best. x uniform in [-1, 3] (a mean away from 0, as after a
// ReLU), weight in [0.5, 1.5], bias and dy in [-1, 1]; every version's y, saved mean and
// invstd, running stats, dx, dweight and dbias checked against float64 on the CPU
// (kernels/cpu/batchnorm). Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"

namespace kc = kernels::cuda;

namespace {

struct Case {
  const char* name;
  int hw, c;
};
// The BatchNorm inputs of ResNet-50 at 224x224, one per distinct shape family.
const Case kCases[] = {
    {"stem", 112, 64},      // bn1
    {"res2_64", 56, 64},    // layer1 bn1/bn2
    {"res2_256", 56, 256},  // layer1 bn3
    {"res3_512", 28, 512},  // layer2 bn3
    {"res4_1024", 14, 1024}, {"res5_2048", 7, 2048},
};
constexpr int kVersions = 3;
const char* kNames[kVersions + 1] = {"", "ours", "cuDNN spatial", "cuDNN persistent"};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("batchnorm_bench");
  const std::string which = args.get("--shape", "all");
  const int batch = args.get_int("--batch", 64), reps = args.get_int("--reps", 30);
  const bool check = !args.has("--no-check");
  const std::string relu_mode = args.get("--relu", "both");
  if (relu_mode != "off" && relu_mode != "on" && relu_mode != "both") {
    std::fprintf(stderr, "batchnorm_bench: --relu takes off, on or both, not '%s'\n",
                 relu_mode.c_str());
    return 2;
  }
  std::vector<bool> relu_modes;
  if (relu_mode != "on") relu_modes.push_back(false);
  if (relu_mode != "off") relu_modes.push_back(true);
  std::vector<int> versions = bench::versions(args, kVersions);
  for (int& v : versions) v = v == 0 ? 1 : v;
  const double eps = 1e-5, momentum = 0.1;
  std::printf("batchnorm_bench on %s: batch %d, NHWC float32, training mode (ReLU after it: %s)\n",
              bench::device_line().c_str(), batch, relu_mode.c_str());
  for (int v : versions) std::printf("  v%d = %s\n", v, kNames[v]);

  cudaStream_t stream = kc::stream();                 // where our kernels and cuDNN's handle run
  const bool persistent = kc::cudnn_bn_persistent();  // v2 and v3 switch it; restored at the end
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows_out;
  bool all_valid = true;
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    for (const bool relu : relu_modes) {
      const int64_t m = int64_t(batch) * cs.hw * cs.hw, C = cs.c;
      const size_t n = size_t(m) * C;
      std::vector<float> x = bench::random_floats(n, 1, -1.f, 3.f);
      const std::vector<float> dy = bench::random_floats(n, 2),
                               w = bench::random_floats(C, 3, 0.5f, 1.5f),
                               b = bench::random_floats(C, 4),
                               rm0 = bench::random_floats(C, 5, -0.5f, 0.5f),
                               rv0 = bench::random_floats(C, 6, 0.5f, 2.f);
      // The float64 reference: statistics, y, running stats and the training-mode gradients.
      std::vector<double> rmean(C), rvar(C), rinv(C), ry, rdx, rdw(C), rdb(C);
      std::vector<double> rrm(rm0.begin(), rm0.end()), rrv(rv0.begin(), rv0.end());
      if (check && relu) {
        // An element whose pre-activation is within float rounding of 0 may fall on either side
        // of the ReLU on the GPU (float) and in the reference (double), and its whole gradient
        // with it. Move every x whose pre-activation is within 1e-4 of 0 to 3e-4 from it (a few
        // per million elements; the statistics move by far less than that margin).
        kernels::cpu::batchnorm_stats<double>(m, C, bench::to_double(x).data(), rmean.data(),
                                              rvar.data());
        kernels::cpu::batchnorm_invstd<double>(C, rvar.data(), eps, rinv.data());
        size_t moved = 0;
        for (size_t i = 0; i < n; ++i) {
          const size_t ch = i % size_t(C);
          const double scale = rinv[ch] * w[ch], pre = (x[i] - rmean[ch]) * scale + b[ch];
          if (std::fabs(pre) >= 1e-4) continue;
          x[i] = float(x[i] + ((pre >= 0 ? 3e-4 : -3e-4) - pre) / scale);
          ++moved;
        }
        std::printf("  %s: %zu elements moved off the ReLU's kink\n", cs.name, moved);
      }
      if (check) {
        const std::vector<double> x64 = bench::to_double(x), dy64 = bench::to_double(dy),
                                  w64 = bench::to_double(w), b64 = bench::to_double(b);
        ry.resize(n), rdx.resize(n);
        kernels::cpu::batchnorm_stats<double>(m, C, x64.data(), rmean.data(), rvar.data());
        kernels::cpu::batchnorm_invstd<double>(C, rvar.data(), eps, rinv.data());
        kernels::cpu::batchnorm_update_running<double>(m, C, rmean.data(), rvar.data(), momentum,
                                                       rrm.data(), rrv.data());
        kernels::cpu::batchnorm_forward<double>(m, C, x64.data(), rmean.data(), rinv.data(),
                                                w64.data(), b64.data(), nullptr, relu, ry.data());
        kernels::cpu::batchnorm_backward<double>(m, C, x64.data(), dy64.data(), rmean.data(),
                                                 rinv.data(), w64.data(), b64.data(), relu, true,
                                                 rdx.data(), rdw.data(), rdb.data());
      }
      bench::Buffer<float> d_x(n), d_dy(n), d_w(C), d_b(C), d_y(n), d_dx(n), d_dw(C), d_db(C),
          d_mean(C), d_inv(C), d_rm(C), d_rv(C), d_mean_ref(C), d_inv_ref(C), d_pre(relu ? n : 1),
          d_g(relu ? n : 1);  // cuDNN + ReLU: its output, the masked dy
      d_x.upload(x), d_dy.upload(dy), d_w.upload(w), d_b.upload(b);
      d_mean_ref.upload(std::vector<float>(rmean.begin(), rmean.end()));
      d_inv_ref.upload(std::vector<float>(rinv.begin(), rinv.end()));
      char shape[64];
      std::snprintf(shape, sizeof shape, "%dx%dx%dx%d", batch, cs.hw, cs.hw, cs.c);
      const double fwd_bytes = 8.0 * n, bwd_bytes = 12.0 * n;
      for (int v : versions) {
        auto fwd = [&] {
          if (v == 1) {
            kc::batchnorm_training_stats(m, C, d_x.get(), eps, momentum, d_mean.get(), d_inv.get(),
                                         d_rm.get(), d_rv.get(), kernels::DType::Float32);
            kc::batchnorm_forward(m, C, d_x.get(), d_mean.get(), d_inv.get(), d_w.get(), d_b.get(),
                                  nullptr, relu, d_y.get(), kernels::DType::Float32);
          } else {
            kc::set_cudnn_bn_persistent(v == 3);
            kc::batchnorm_forward_training_vendor(batch, cs.hw, cs.hw, C, d_x.get(), d_w.get(),
                                                  d_b.get(), momentum, eps, d_rm.get(), d_rv.get(),
                                                  relu ? d_pre.get() : d_y.get(), d_mean.get(),
                                                  d_inv.get(), kernels::DType::Float32);
            if (relu)
              kc::unary(kernels::cpu::UnaryOp::Relu, int64_t(n), d_pre.get(), d_y.get(),
                        kernels::DType::Float32);
          }
        };
        auto bwd = [&] {
          if (v == 1) {
            kc::batchnorm_backward(m, C, d_x.get(), d_dy.get(), d_mean_ref.get(), d_inv_ref.get(),
                                   d_w.get(), d_b.get(), relu, true, d_dx.get(), d_dw.get(),
                                   d_db.get(), kernels::DType::Float32);
          } else {
            kc::set_cudnn_bn_persistent(v == 3);
            if (relu)  // the engine's ReLU backward reads its output (the forward's y)
              kc::unary_backward(kernels::cpu::UnaryOp::Relu, int64_t(n), nullptr, d_y.get(),
                                 d_dy.get(), d_g.get(), kernels::DType::Float32);
            kc::batchnorm_backward_vendor(batch, cs.hw, cs.hw, C, d_x.get(),
                                          relu ? d_g.get() : d_dy.get(), d_w.get(),
                                          d_mean_ref.get(), d_inv_ref.get(), eps, d_dx.get(),
                                          d_dw.get(), d_db.get(), kernels::DType::Float32);
          }
        };
        bool valid = true;
        if (check) {
          d_y.poison(), d_dx.poison(), d_dw.poison(), d_db.poison(), d_mean.poison(),
              d_inv.poison();
          d_rm.upload(rm0), d_rv.upload(rv0);
          fwd(), bwd();
          bench::ok(cudaStreamSynchronize(stream), "validation run");
          const std::string tag = std::string(kNames[v]) + " " + shape + " ";
          valid &= bench::validate((tag + "y").c_str(), d_y.download(), ry, 2e-4, 2e-4);
          valid &= bench::validate((tag + "mean").c_str(), d_mean.download(), rmean, 1e-5, 1e-5);
          valid &= bench::validate((tag + "invstd").c_str(), d_inv.download(), rinv, 1e-4, 0);
          valid &=
              bench::validate((tag + "running_mean").c_str(), d_rm.download(), rrm, 1e-5, 1e-6);
          valid &= bench::validate((tag + "running_var").c_str(), d_rv.download(), rrv, 1e-4, 1e-6);
          valid &= bench::validate((tag + "dx").c_str(), d_dx.download(), rdx, 2e-4, 2e-4);
          // float32 sums over m O(1) terms
          valid &= bench::validate((tag + "dweight").c_str(), d_dw.download(), rdw, 1e-4, 2e-6 * m);
          valid &= bench::validate((tag + "dbias").c_str(), d_db.download(), rdb, 1e-4, 2e-6 * m);
          all_valid &= valid;
        }
        const bench::Timing tf = bench::time_it(fwd, stream, flusher, reps);
        const bench::Timing tb = bench::time_it(bwd, stream, flusher, reps);
        const std::string suffix = relu ? "+relu" : "";
        rows_out.push_back(
            {"forward" + suffix, shape, v, tf.median_ms, tf.min_ms, fwd_bytes, 4.0 * n, 0, valid});
        rows_out.push_back(
            {"backward" + suffix, shape, v, tb.median_ms, tb.min_ms, bwd_bytes, 8.0 * n, 0, valid});
        rows_out.push_back({"fwd+bwd" + suffix, shape, v, tf.median_ms + tb.median_ms,
                            tf.min_ms + tb.min_ms, fwd_bytes + bwd_bytes, 12.0 * n, 0, valid});
      }
      // The rows so far, each shape as it finishes (12 shape x mode cases with float64
      // references: a time limit that stops the run still leaves what was measured).
      bench::write_json(args.get("--json", ""), "batchnorm", rows_out);
    }
  }
  kc::set_cudnn_bn_persistent(persistent);
  bench::print_header();
  for (const auto& r : rows_out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "batchnorm", rows_out);
  if (!all_valid) std::printf("batchnorm_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
