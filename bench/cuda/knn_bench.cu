// bench/cuda/knn_bench.cu — validates and times every version of kernels/cuda/knn.cu.
//
//   knn_bench [--version V] [--shape q1024|q1|all] [--metric l2|cosine|both] [--k 15]
//             [--reps 20] [--json FILE] [--no-check]
//
// Shapes: Q=1024 queries against N=100,000 bank rows of D=768 (PyTorch cdist + topk: 5.8 ms on
// the same card, baselines/ 2026-11-26) and one query against N=1,000,000. Random rows in
// [-1, 1]. Validation against the float64 CPU search (kernels/cpu/knn): for every query the k
// indices must be distinct, sorted, each value within a tolerance of the float64 score of its
// index, and none worse than the float64 k-th best by more than twice that tolerance (float32
// GEMM rounding may swap near-ties). Exit: 0 valid, 1 invalid, 77 no GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cpu/knn.h"
#include "kernels/cuda/knn.h"

namespace {

struct Case {
  const char* name;
  int64_t q, n;
  int d;
  double pytorch_ms;  // L2 only
};
const Case kCases[] = {
    {"q1024", 1024, 100000, 768, 5.80},
    {"q1", 1, 1000000, 768, 0},
};

// Checks the GPU result of one search against the CPU float64 one (see the header comment).
bool validate_knn(const Case& cs, int k, bool cosine, const std::vector<float>& qs,
                  const std::vector<float>& bank, const std::vector<double>& ref_values,
                  const std::vector<float>& values, const std::vector<int64_t>& indices) {
  const int d = cs.d;
  int64_t bad = 0;
  for (int64_t i = 0; i < cs.q && bad < 5; ++i) {
    double qq = 0;
    for (int c = 0; c < d; ++c) qq += double(qs[i * d + c]) * qs[i * d + c];
    const double tol = cosine ? 1e-6 * d + 1e-6 : 2.5e-7 * d * (qq + d / 3.0) + 1e-5;
    const double kth = cosine ? -ref_values[i * k + k - 1] : ref_values[i * k + k - 1];
    std::set<int64_t> seen;
    double prev = -1e300;
    for (int e = 0; e < k; ++e) {
      const int64_t j = indices[i * k + e];
      if (j < 0 || j >= cs.n || !seen.insert(j).second) {
        std::printf("  FAIL query %lld slot %d: index %lld invalid or repeated\n", (long long)i, e,
                    (long long)j);
        ++bad;
        break;
      }
      double bb = 0, qb = 0, dd = 0;
      for (int c = 0; c < d; ++c) {
        double a = qs[i * d + c], b = bank[j * d + c];
        bb += b * b, qb += a * b, dd += (a - b) * (a - b);
      }
      const double exact =
          cosine ? -qb / (std::max(std::sqrt(qq), 1e-12) * std::max(std::sqrt(bb), 1e-12)) : dd;
      const double got = cosine ? -double(values[i * k + e]) : values[i * k + e];
      if (!(std::fabs(got - exact) <= tol) || exact > kth + 2 * tol || got < prev) {
        std::printf(
            "  FAIL query %lld slot %d: index %lld value %.6g exact %.6g k-th %.6g tol %.3g\n",
            (long long)i, e, (long long)j, got, exact, kth, tol);
        ++bad;
        break;
      }
      prev = got;
    }
  }
  return bad == 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("knn_bench");
  const std::string which = args.get("--shape", "all"), metric = args.get("--metric", "both");
  const int k = args.get_int("--k", 15), reps = args.get_int("--reps", 20);
  const bool check = !args.has("--no-check");
  const std::vector<int> versions = bench::versions(args, kernels::cuda::kKnnVersions);
  std::printf("knn_bench on %s: k %d, float32\n", bench::device_line().c_str(), k);

  cudaStream_t stream;
  bench::ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  bench::L2Flusher flusher;
  std::vector<bench::Row> out;
  bool all_valid = true;
  for (const Case& cs : kCases) {
    if (which != "all" && which != cs.name) continue;
    std::vector<float> qs = bench::random_floats(size_t(cs.q) * cs.d, 1);
    std::vector<float> bank = bench::random_floats(size_t(cs.n) * cs.d, 2);
    bench::Buffer<float> d_q(qs.size()), d_bank(bank.size()), d_values(size_t(cs.q) * k);
    bench::Buffer<int64_t> d_indices(size_t(cs.q) * k);
    d_q.upload(qs), d_bank.upload(bank);
    char shape[64];
    std::snprintf(shape, sizeof shape, "Q%lld N%lld D%d k%d", (long long)cs.q, (long long)cs.n,
                  cs.d, k);
    const double flops = 2.0 * cs.q * cs.n * cs.d, bytes = 4.0 * (cs.q + cs.n) * cs.d;
    for (bool cosine : {false, true}) {
      if ((metric == "l2" && cosine) || (metric == "cosine" && !cosine)) continue;
      std::vector<double> ref_values(size_t(cs.q) * k);
      if (check) {
        std::vector<double> q64 = bench::to_double(qs), b64 = bench::to_double(bank);
        std::vector<int64_t> ref_idx(size_t(cs.q) * k);
        kernels::cpu::knn_search<double>(cs.q, cs.n, cs.d, k, cosine, q64.data(), b64.data(),
                                         ref_values.data(), ref_idx.data());
      }
      for (int v : versions) {
        bench::Buffer<char> ws(kernels::cuda::knn_search_workspace(v, cs.q, cs.n, cs.d, k, cosine));
        auto search = [&] {
          kernels::cuda::knn_search(v, d_q.get(), d_bank.get(), cs.q, cs.n, cs.d, k, cosine,
                                    d_values.get(), d_indices.get(), ws.get(), stream);
        };
        bool valid = true;
        if (check) {
          d_values.poison(), d_indices.poison();
          search();
          bench::ok(cudaStreamSynchronize(stream), "validation run");
          valid = validate_knn(cs, k, cosine, qs, bank, ref_values, d_values.download(),
                               d_indices.download());
          all_valid &= valid;
        }
        bench::Timing t = bench::time_it(search, stream, flusher, reps);
        out.push_back({cosine ? "knn_cosine" : "knn_l2", shape, v, t.median_ms, t.min_ms, bytes,
                       flops, cosine ? 0 : cs.pytorch_ms, valid});
      }
    }
  }
  bench::print_header();
  for (const auto& r : out) bench::print_row(r);
  bench::write_json(args.get("--json", ""), "knn", out);
  cudaStreamDestroy(stream);
  if (!all_valid) std::printf("knn_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
