// kernels/cuda/knn_ops.h — the engine's entry points for k-NN on the GPU, any float dtype and
// any k: pairwise squared L2 distances, top-k along a dim (with its backward), fused search.
//
// float32 with k <= 64 (and top-k over the last dim) runs the kernel lab's fastest version
// (kernels/cuda/knn.h, version 0; its workspace comes from the engine's caching allocator);
// everything else (float64, k > 64, top-k over a middle dim) runs the simple kernels of
// knn_ops.cu. Ordering as kernels/cpu/knn.h: best first, ties to the lower index; in top-k NaN
// ranks above every number (first when largest, last when smallest), in knn_search a NaN score
// is the worst. Contiguous device arrays; work is queued on kernels::cuda::stream(); errors
// become engine::Error through kernels::cuda::raise.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// out[i, j] = ||a_i - b_j||^2 (clamped at 0)   a [q, d], b [n, d], out [q, n]
void pairwise_sq_l2_forward(int64_t q, int64_t n, int64_t d, const void* a, const void* b,
                            void* out, DType dtype);

// For each (o, i) of x [outer, n, inner]: the k best of x[o, :, i] into values/indices
// [outer, k, inner], best first (smallest unless `largest`).
void topk_forward(int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest, const void* x,
                  void* values, int64_t* indices, DType dtype);
// dx = 0; dx[o, indices[o, j, i], i] = dy[o, j, i] (indices of one column are distinct).
void topk_backward(int64_t outer, int64_t n, int64_t inner, int64_t k, const int64_t* indices,
                   const void* dy, void* dx, DType dtype);

// For each of the q queries [q, d] the k nearest of the n bank rows [n, d] into values/indices
// [q, k]: L2 squared distances smallest first, or cosine similarities largest first.
void knn_search(int64_t q, int64_t n, int64_t d, int64_t k, bool cosine, const void* queries,
                const void* bank, void* values, int64_t* indices, DType dtype);

}  // namespace kernels::cuda
