// bench/cuda/depthwise_conv2d_bench.cu — validates and times every version of
// kernels/cuda/depthwise_conv2d.cu on ConvNeXt-T's depthwise layers (batch 64, 7x7, pad 3).
//
//   depthwise_conv2d_bench [--version V] [--shape stage1|stage3|stage4|all] [--k 7]
//                          [--batch 64] [--reps 50] [--json FILE] [--no-check]
//
// For each shape: random inputs in [-1, 1], the float64 CPU reference (kernels/cpu), every
// version checked against it (forward, data gradient, weight + bias gradient), then timed
// (median of --reps runs after an L2 flush). "fwd+bwd" sums the three medians, the quantity
// PyTorch's 6.48 / 1.99 / 0.88 ms (H100, 2026-11-26, baselines/) measures for 7x7.
// Exit status: 0 when every version validated, 1 otherwise, 77 without a GPU.
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/depthwise_conv2d.h"
#include "kernels/cuda/depthwise_conv2d.h"

namespace {

struct Case {
  const char* name;
  int c, hw;
  double pytorch_fwd_ms, pytorch_fwdbwd_ms;  // 7x7 only; 0 = unknown
};
const Case kCases[] = {
    {"stage1", 96, 56, 0.46, 6.48},
    {"stage3", 384, 14, 0.14, 1.99},
    {"stage4", 768, 7, 0.10, 0.88},
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("depthwise_conv2d_bench");
  const std::string which = args.get("--shape", "all");
  const int k = args.get_int("--k", 7), batch = args.get_int("--batch", 64);
  const int reps = args.get_int("--reps", 50);
  const bool check = !args.has("--no-check");
  const std::vector<int> versions = bench::versions(args, kernels::cuda::kDepthwiseVersions);
  std::printf("depthwise_conv2d_bench on %s: batch %d, %dx%d pad %d, float32\n",
              bench::device_line().c_str(), batch, k, k, k / 2);

  cudaStream_t stream;
  bench::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows;
  bool all_valid = true;
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    kernels::cuda::DepthwiseShape sh;
    sh.n = batch, sh.h = cs.hw, sh.w = cs.hw, sh.c = cs.c, sh.r = k, sh.s = k;
    sh.pad_h = k / 2, sh.pad_w = k / 2;
    const size_t nx = size_t(sh.n) * sh.h * sh.w * sh.c, ny = size_t(sh.n) * sh.p() * sh.q() * sh.c;
    const size_t nw = size_t(sh.c) * k * k;
    std::vector<float> x = bench::random_floats(nx, 1), w = bench::random_floats(nw, 2),
                       b = bench::random_floats(sh.c, 3), dy = bench::random_floats(ny, 4);
    bench::Buffer<float> d_x(nx), d_w(nw), d_b(sh.c), d_dy(ny), d_y(ny), d_dx(nx), d_dw(nw),
        d_db(sh.c);
    d_x.upload(x);
    d_w.upload(w);
    d_b.upload(b);
    d_dy.upload(dy);
    char shape[64];
    std::snprintf(shape, sizeof shape, "%dx%dx%dx%d", sh.n, sh.h, sh.w, sh.c);

    std::vector<double> ry, rdx, rdw, rdb;
    if (check) {  // float64 reference from the CPU kernels
      kernels::cpu::Conv2dShape cs64;
      cs64.n = sh.n, cs64.h = sh.h, cs64.w = sh.w, cs64.c = sh.c, cs64.k = sh.c;
      cs64.r = k, cs64.s = k, cs64.p = sh.p(), cs64.q = sh.q();
      cs64.pad_h = sh.pad_h, cs64.pad_w = sh.pad_w, cs64.groups = sh.c;
      std::vector<double> x64 = bench::to_double(x), w64 = bench::to_double(w),
                          b64 = bench::to_double(b), dy64 = bench::to_double(dy);
      ry.resize(ny), rdx.resize(nx), rdw.resize(nw), rdb.assign(sh.c, 0.0);
      kernels::cpu::depthwise_conv2d_forward<double>(cs64, x64.data(), w64.data(), b64.data(),
                                                     ry.data());
      kernels::cpu::depthwise_conv2d_backward_data<double>(cs64, dy64.data(), w64.data(),
                                                           rdx.data());
      kernels::cpu::depthwise_conv2d_backward_weight<double>(cs64, x64.data(), dy64.data(),
                                                             rdw.data());
      for (size_t i = 0; i < ny; ++i) rdb[i % sh.c] += dy64[i];
    }
    const double bytes = 2.0 * 4.0 * double(nx);  // each op reads one activation, writes/reads one
    const double flops = 2.0 * k * k * double(ny);
    const double npq = double(sh.n) * sh.p() * sh.q();
    for (int v : versions) {
      bool valid = true;
      size_t ws_bytes = kernels::cuda::depthwise_conv2d_backward_weight_workspace(v, sh);
      bench::Buffer<char> ws(ws_bytes);
      auto fwd = [&] {
        kernels::cuda::depthwise_conv2d_forward(v, sh, d_x.get(), d_w.get(), d_b.get(), d_y.get(),
                                                stream);
      };
      auto dgrad = [&] {
        kernels::cuda::depthwise_conv2d_backward_data(v, sh, d_dy.get(), d_w.get(), d_dx.get(),
                                                      stream);
      };
      auto wgrad = [&] {
        kernels::cuda::depthwise_conv2d_backward_weight(v, sh, d_x.get(), d_dy.get(), d_dw.get(),
                                                        d_db.get(), ws.get(), stream);
      };
      if (check) {
        d_y.poison(), d_dx.poison(), d_dw.poison(), d_db.poison();
        fwd(), dgrad(), wgrad();
        bench::ok(cudaStreamSynchronize(stream), "validation run");
        // float32 sums of k*k (forward, dx) or N*P*Q (dw, db) products of values in [-1, 1]
        valid &= bench::validate("forward", d_y.download(), ry, 1e-5, 2e-6 * k * k);
        valid &= bench::validate("data gradient", d_dx.download(), rdx, 1e-5, 2e-6 * k * k);
        valid &= bench::validate("weight gradient", d_dw.download(), rdw, 1e-5, 1e-6 * npq);
        valid &= bench::validate("bias gradient", d_db.download(), rdb, 1e-5, 1e-6 * npq);
        all_valid &= valid;
      }
      bench::Timing tf = bench::time_it(fwd, stream, flusher, reps);
      bench::Timing td = bench::time_it(dgrad, stream, flusher, reps);
      bench::Timing tw = bench::time_it(wgrad, stream, flusher, reps);
      const bool seven = k == 7;
      bench::Row rf{"forward", shape, v,     tf.median_ms,
                    tf.min_ms, bytes, flops, seven ? cs.pytorch_fwd_ms : 0,
                    valid};
      bench::Row rd{"backward_data", shape, v, td.median_ms, td.min_ms, bytes, flops, 0, valid};
      bench::Row rw{"backward_weight", shape, v, tw.median_ms, tw.min_ms, bytes, flops, 0, valid};
      bench::Row rt{"fwd+bwd",
                    shape,
                    v,
                    tf.median_ms + td.median_ms + tw.median_ms,
                    tf.min_ms + td.min_ms + tw.min_ms,
                    3 * bytes,
                    3 * flops,
                    seven ? cs.pytorch_fwdbwd_ms : 0,
                    valid};
      rows.insert(rows.end(), {rf, rd, rw, rt});
    }
  }
  bench::print_header();
  for (const auto& r : rows) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "depthwise_conv2d", rows);
  cudaStreamDestroy(stream);
  if (!all_valid) std::printf("depthwise_conv2d_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
