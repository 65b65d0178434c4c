// bench/cuda/matmul_bench.cu — validates and times the GEMMs behind kernels::cuda::gemm:
//   version 1 = our tiled kernel, fp32 (kernels/cuda/matmul.cu)
//   version 2 = cuBLAS, FP32 math
//   version 3 = our TF32 tensor-core kernel (kernels/cuda/matmul_tf32.cu)
//   version 4 = cuBLAS, TF32 tensor-op math
//   version 5 = version 3 with each operand element rounded to TF32 once in shared memory and
//               the fragments read by ldmatrix (kernels::cuda::set_tf32_ldmatrix): the same
//               bits in fewer instructions per mma.sync
//   version 6 = version 5 with 64x64 warp tiles on 128x128 blocks (kernels::cuda::set_tf32_wide;
//               conv2d's v6): the same bits, a third fewer shared-memory fragment reads
// (3 and 4 are what the engine runs with ENGINE_CUDA_TF32=1, as PyTorch with allow_tf32.)
//
//   matmul_bench [--version V] [--shape NAME|all] [--reps 50] [--json FILE] [--no-check]
//
// Inputs uniform in [-1, 1); the reference is OpenBLAS in float64 (kernels/cpu/matmul) on the
// same values; TF32 versions are held to k * 2^-11 absolute (2^-9 of sum |a| |b|, whose
// expectation is k/4). Shapes: squares, ConvNeXt-T pointwise layers at batch 16 (stage 1
// forward, and the weight gradients of stages 1 and 3, whose k = N*H*W is long: our kernels
// split it, see kernels/cuda/matmul_args.cuh) and a classifier head. The floor is FLOPs at
// 67 TFLOP/s FP32 or 495 TF32 (or bytes at 2.6 TB/s when larger). Each of ours is compared with
// cuBLAS in the same math, same run. The engine uses cuBLAS until ours is faster on these
// shapes (kernels/cuda/impl.h). Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"

namespace {

struct Case {
  const char* name;
  int64_t m, n, k;
  bool trans_a;  // A stored [k, m] (the weight gradient reads X^T)
};
const Case kCases[] = {
    {"square1024", 1024, 1024, 1024, false},
    {"square4096", 4096, 4096, 4096, false},
    {"pw_expand", 50176, 384, 96, false},   // [N*H*W, 96] @ [96, 384]
    {"pw_project", 50176, 96, 384, false},  // [N*H*W, 384] @ [384, 96]
    {"pw_wgrad", 96, 384, 50176, true},     // X^T [96, N*H*W] @ dY [N*H*W, 384]
    {"pw_wgrad_s3", 1536, 384, 3136, true}, // stage 3: dY^T [1536, N*H*W] @ X [N*H*W, 384]
    {"head", 64, 1000, 768, false},
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("matmul_bench");
  const std::string which = args.get("--shape", "all");
  const int reps = args.get_int("--reps", 50);
  const bool check = !args.has("--no-check");
  const std::vector<int> versions = bench::versions(args, 6);
  std::printf("matmul_bench on %s: float32, row-major\n", bench::device_line().c_str());

  cudaStream_t stream = kernels::cuda::stream();
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows_out;
  bool all_valid = true;
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    const int64_t m = cs.m, n = cs.n, k = cs.k;
    const int64_t lda = cs.trans_a ? m : k;
    std::vector<float> a = bench::random_floats(m * k, 1), b = bench::random_floats(k * n, 2);
    std::vector<double> ref(m * n);
    if (check) {
      std::vector<double> a64 = bench::to_double(a), b64 = bench::to_double(b);
      kernels::cpu::gemm<double>(cs.trans_a, false, m, n, k, 1.0, a64.data(), lda, b64.data(), n,
                                 0.0, ref.data(), n);
    }
    bench::Buffer<float> d_a(m * k), d_b(k * n), d_c(m * n);
    d_a.upload(a), d_b.upload(b);
    // Buffer's upload/poison use the legacy default stream, which does not order with the
    // non-blocking compute stream: wait for them before any launch.
    bench::ok(cudaDeviceSynchronize(), "upload");
    char shape[64];
    std::snprintf(shape, sizeof shape, "%s %ldx%ldx%ld", cs.name, long(m), long(n), long(k));
    const double flops = 2.0 * m * n * k, bytes = 4.0 * (m * k + k * n + m * n);
    const size_t first = rows_out.size();
    for (int v : versions) {
      const int version = v == 0 ? 2 : v;  // 0 = the engine's default
      const bool ours = version != 2 && version != 4, tf32 = version >= 3;
      kernels::cuda::set_impl(kernels::cuda::Family::Gemm,
                              ours ? kernels::cuda::Impl::Ours : kernels::cuda::Impl::Vendor);
      kernels::cuda::set_tf32(tf32);
      kernels::cuda::set_tf32_ldmatrix(version >= 5);
      kernels::cuda::set_tf32_wide(version == 6);
      if (ours)
        std::printf("%s, version %d: %d split(s) of k\n", shape, version,
                    kernels::cuda::gemm_ours_splits(m, n, k, kernels::DType::Float32));
      auto run = [&] {
        kernels::cuda::gemm(cs.trans_a, false, m, n, k, 1.0, d_a.get(), 0, lda, d_b.get(), 0, n,
                            0.0, d_c.get(), 0, n, kernels::DType::Float32);
      };
      bool valid = true;
      if (check) {
        d_c.poison();
        bench::ok(cudaDeviceSynchronize(), "poison");
        run();
        // Each side's float32 rounding grows like k * 2^-24 * |terms| in the worst case; TF32
        // operands keep 10 mantissa bits (see the header).
        valid = tf32 ? bench::validate("C", d_c.download(), ref, 0, std::ldexp(double(k), -11))
                     : bench::validate("C", d_c.download(), ref, 1e-5, 5e-7 * double(k));
        all_valid &= valid;
      }
      bench::Timing t = bench::time_it(run, stream, flusher, reps);
      bench::Row row{"gemm", shape, ours ? version : -1, t.median_ms, t.min_ms, bytes, flops,
                     0, valid};
      row.math = tf32 ? "tf32" : "fp32";
      rows_out.push_back(row);
    }
    // Ours against cuBLAS in the same math (vendor rows carry version -1).
    for (size_t i = first; i < rows_out.size(); ++i)
      for (size_t j = first; j < rows_out.size(); ++j)
        if (rows_out[i].version > 0 && rows_out[j].version < 0 &&
            rows_out[i].math == rows_out[j].math)
          rows_out[i].cublas_ms = rows_out[j].ms;
  }
  kernels::cuda::set_tf32(false);
  kernels::cuda::set_tf32_ldmatrix(false);
  kernels::cuda::set_tf32_wide(false);
  bench::print_header();
  for (const auto& r : rows_out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "matmul", rows_out);
  if (!all_valid) std::printf("matmul_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
