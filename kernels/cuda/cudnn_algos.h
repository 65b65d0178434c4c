// kernels/cuda/cudnn_algos.h — which of cuDNN's ranked convolution algorithms the engine may run.
//
// cudnnGetConvolution*Algorithm_v7 returns every algorithm, best first, each with a status, a
// determinism flag and the math type it would use. The engine keeps, in cuDNN's order:
//   - those cuDNN says can run (status CUDNN_STATUS_SUCCESS);
//   - never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: it lets cuDNN convert float32 data to FP16
//     (FP16's range, 65504), which no float32 caller asked for;
//   - without TF32 (kernels::cuda::tf32() off) only FMA math: CUDNN_FMA_MATH, or
//     CUDNN_DEFAULT_MATH reported for an algorithm that runs under the FMA descriptor anyway;
//     CUDNN_TENSOR_OP_MATH would be TF32 on sm_80+. With TF32 on, the algorithm's own math type
//     is set on the descriptor before it runs (as PyTorch does);
//   - for the backward passes, only deterministic algorithms while
//     kernels::cuda::cudnn_deterministic() is on (the default): ours are, and a reference path
//     that changes its answer between runs would make ours-vs-vendor comparisons noisy. Off,
//     any algorithm may run, as PyTorch's default (the GPU benchmarks compare that way).
// The caller tries them in order and falls back to our kernel when none runs (conv2d_ops.cu).
//
// Plain C++ on cuDNN's types, so tests can check the filter without a GPU.
#pragma once

#include <cudnn.h>

#include <vector>

namespace kernels::cuda {

template <class Perf>
std::vector<Perf> conv_algo_candidates(const Perf* ranked, int count, bool allow_tf32,
                                       bool deterministic) {
  std::vector<Perf> keep;
  for (int i = 0; i < count; ++i) {
    const Perf& p = ranked[i];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (!allow_tf32 && p.mathType == CUDNN_TENSOR_OP_MATH) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    keep.push_back(p);
  }
  return keep;
}

}  // namespace kernels::cuda
