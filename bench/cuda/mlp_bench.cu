// bench/cuda/mlp_bench.cu — ConvNeXt's MLP (engine::mlp: Linear C -> 4C, GELU, Linear 4C -> C
// without its bias), forward + backward through the engine, the four ways it can run:
//   version 1 = engine::mlp, our GEMM: the fused path (the bias, GELU and gelu' ride inside the
//               GEMMs' loads and epilogues, kernels::cuda::gemm_fused; one 4C tensor written)
//   version 2 = linear -> bias_gelu -> linear, our GEMM (the unfused twin the engine ran before)
//   version 3 = engine::mlp, cuBLAS (GEMMs + GELU passes; one 4C tensor kept)
//   version 4 = linear -> bias_gelu -> linear, cuBLAS (PyTorch eager's composition)
// each in fp32 and in TF32 math (ENGINE_CUDA_TF32's switch). Rows carry `cublas_ms` = version 4
// in the same math, the eager baseline. Operation `ln_mlp_fwd_bwd` does the same with the
// block's LayerNorm in front (engine::layer_norm_mlp, ConvNeXt's block.2 to block.5): versions
// 1 and 3 are layer_norm_mlp (on our GEMM the LayerNorm rides inside the GEMMs' loads and its
// output is never written), 2 and 4 are layer_norm followed by version 2's / 4's composition.
//
//   mlp_bench [--version V] [--op mlp|ln_mlp|all] [--shape stage1|stage3|all] [--batch 64]
//             [--reps 20] [--json FILE] [--no-check]
//
// Shapes: ConvNeXt-T stage 1 (C = 96 at 56x56: M = 200,704 rows at batch 64) and stage 3 (C = 384
// at 14x14: M = 12,544). Roofline of forward + backward, with MC = M * C floats:
//   bytes: forward reads x, writes h (4 MC), reads h, writes y: 10 MC; backward reads dy, h and
//   writes dh (dh GEMM, 9 MC), reads dy and h (dW2, 5), dh (db1, 4), dh and x (dW1, 5), dh and
//   writes dx (dx, 5): 28 MC; 38 MC floats = 152 MC bytes. Stage 1: 2.93 GB -> 1.13 ms at 2.6 TB/s.
//   FLOPs: six GEMMs of 2 * M * C * 4C: 48 M C^2. Stage 1: 88.8 GFLOP -> 1.33 ms at 67 TFLOP/s
//   FP32, 0.18 ms at 495 TF32: TF32 is memory-bound, fp32 compute-bound.
//   With the LayerNorm, fused: + its statistics pass (reads x, 1 MC) and its backward (reads x and
//   the gradient at its output, writes dx: 3 MC): 42 MC floats, 168 MC bytes, 1.25 ms at stage 1.
// Inputs uniform (x in [-1, 1), w1 scaled by 1.5/sqrt(C) so GELU sees its curved part); each
// version's output and every gradient are checked against the fused op on the CPU (float32)
// per tensor against its largest element: 1e-4 of it (fp32), 1e-2 (TF32). Timed: median of
// `reps` forward + backward runs after an L2 flush, gradients dropped between runs.
// Exit: 0 valid, 1 invalid, 77 no GPU.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "engine/engine.h"
#include "kernels/cuda/impl.h"
#include "kernels/cuda/runtime.h"

namespace {

using engine::DType;
using engine::Tensor;

struct Case {
  const char* name;
  int64_t c, hw;  // channels, spatial side
};
const Case kCases[] = {{"stage1", 96, 56}, {"stage3", 384, 14}};

Tensor host_uniform(const engine::Shape& shape, uint64_t seed, float scale) {
  std::vector<float> v = bench::random_floats(size_t(engine::numel(shape)), seed, -scale, scale);
  return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), shape).to(DType::Float32);
}

constexpr double kEps = 1e-6;  // ConvNeXt's LayerNorm

// The op under test: version 1/3 the fused op, 2/4 its composition. in: x, w1, b1, w2, and with
// the LayerNorm (with_ln) its weight and bias.
Tensor run(bool with_ln, int version, const std::vector<Tensor>& in) {
  if (with_ln && version % 2 == 1)
    return engine::layer_norm_mlp(in[0], in[4], in[5], kEps, in[1], in[2], in[3]);
  if (version % 2 == 1) return engine::mlp(in[0], in[1], in[2], in[3]);
  const Tensor x = with_ln ? engine::layer_norm(in[0], in[4], in[5], kEps) : in[0];
  return engine::linear(engine::bias_gelu(engine::linear(x, in[1]), in[2]), in[3]);
}

// max |got - ref| <= tol * max |ref|, per tensor.
bool close_to_scale(const char* what, const Tensor& got, const Tensor& ref, double tol) {
  const Tensor g = got.to(engine::Device::cpu()).to(DType::Float64);
  const Tensor r = ref.to(DType::Float64);
  const double scale = engine::max(engine::abs(r)).item();
  const double err = engine::max(engine::abs(engine::sub(g, r))).item();
  const bool ok = err <= tol * scale;
  if (!ok) std::printf("  %s: max error %.3g against max |ref| %.3g: FAILED\n", what, err, scale);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("mlp_bench");
  const std::string which = args.get("--shape", "all");
  const std::string op = args.get("--op", "all");
  if (op != "all" && op != "mlp" && op != "ln_mlp") {
    std::fprintf(stderr, "mlp_bench: --op must be mlp, ln_mlp or all, got '%s'\n", op.c_str());
    return 2;
  }
  const int64_t batch = args.get_int("--batch", 64);
  const int reps = args.get_int("--reps", 20);
  const bool check = !args.has("--no-check");
  const std::vector<int> versions = bench::versions(args, 4);
  std::printf("mlp_bench on %s: float32, NHWC rows, batch %ld\n", bench::device_line().c_str(),
              long(batch));
  namespace kc = kernels::cuda;
  const engine::Device gpu = engine::Device::cuda(0);
  cudaStream_t stream = kc::stream();
  bench::L2Flusher flusher;
  std::vector<bench::Row> rows_out;
  bool all_valid = true;
  for (const bool with_ln : {false, true}) {
    if (op != "all" && op != (with_ln ? "ln_mlp" : "mlp")) continue;
    for (const Case& cs : kCases) {
      if (which != "all" && which != cs.name) continue;
      const int64_t c = cs.c, m = batch * cs.hw * cs.hw;
      std::vector<Tensor> host = {
          host_uniform({batch, cs.hw, cs.hw, c}, 1, 1.f),
          host_uniform({4 * c, c}, 2, float(1.5 / std::sqrt(double(c)))),
          host_uniform({4 * c}, 3, 1.f), host_uniform({c, 4 * c}, 4, 1.f)};
      if (with_ln)  // the LayerNorm's weight in [0.5, 1.5), bias in [-1, 1)
        host.insert(host.end(), {engine::add(host_uniform({c}, 6, 0.5f), 1.0),
                                 host_uniform({c}, 7, 1.f)});
      const Tensor dy_host = host_uniform({batch, cs.hw, cs.hw, c}, 5, 1.f);
      std::vector<Tensor> ref;  // y and every input's gradient, on the CPU
      if (check) {
        std::vector<Tensor> leaves;
        for (const Tensor& t : host) leaves.push_back(t.detach().clone().requires_grad_());
        Tensor y = run(with_ln, 1, leaves);
        y.backward(dy_host);
        ref.push_back(y.detach());
        for (const Tensor& t : leaves) ref.push_back(t.grad());
      }
      std::vector<Tensor> dev;
      for (const Tensor& t : host) dev.push_back(t.to(gpu).requires_grad_());
      const Tensor dy = dy_host.to(gpu);
      char shape[64];
      std::snprintf(shape, sizeof shape, "%s M=%ld C=%ld", cs.name, long(m), long(c));
      const double mc = double(m) * double(c);
      const double bytes = (with_ln ? 168.0 : 152.0) * mc, flops = 48.0 * mc * double(c);
      const size_t first = rows_out.size();
      for (bool tf32 : {false, true})
        for (int v : versions) {
          const int version = v == 0 ? 1 : v;
          kc::set_impl(kc::Family::Gemm, version <= 2 ? kc::Impl::Ours : kc::Impl::Vendor);
          kc::set_tf32(tf32);
          auto step = [&] {
            for (const Tensor& t : dev) t.zero_grad();
            run(with_ln, version, dev).backward(dy);
          };
          bool valid = true;
          if (check) {
            for (const Tensor& t : dev) t.zero_grad();
            Tensor y = run(with_ln, version, dev);
            y.backward(dy);
            const double tol = tf32 ? 1e-2 : 1e-4;
            const char* names[] = {"y", "dx", "dw1", "db1", "dw2", "dln_weight", "dln_bias"};
            valid = close_to_scale(names[0], y, ref[0], tol);
            for (size_t i = 0; i < dev.size(); ++i)
              valid = close_to_scale(names[i + 1], dev[i].grad(), ref[i + 1], tol) && valid;
            all_valid &= valid;
          }
          bench::Timing t = bench::time_it(step, stream, flusher, reps);
          bench::Row row{with_ln ? "ln_mlp_fwd_bwd" : "mlp_fwd_bwd", shape, version, t.median_ms,
                         t.min_ms, bytes, flops, 0, valid};
          row.math = tf32 ? "tf32" : "fp32";
          rows_out.push_back(row);
        }
      // Every version against PyTorch eager's composition (version 4) in the same math.
      for (size_t i = first; i < rows_out.size(); ++i)
        for (size_t j = first; j < rows_out.size(); ++j)
          if (rows_out[j].version == 4 && rows_out[i].math == rows_out[j].math)
            rows_out[i].cublas_ms = rows_out[j].ms;
    }
  }
  kc::set_tf32(false);
  bench::print_header();
  for (const auto& r : rows_out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "mlp", rows_out);
  if (!all_valid) std::printf("mlp_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
