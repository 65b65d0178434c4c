// kernels/cuda/knn.h — k-nearest-neighbour search on the GPU: pairwise squared L2 distances,
// per-row top-k selection, and the fused search that never writes the [Q, N] distance matrix.
// Algorithms and roofline: knn.cu.
//
// All arrays are contiguous row-major device memory, float32: queries [Q, D], bank [N, D],
// values [Q, k], indices [Q, k] (int64). Distances use ||a-b||^2 = ||a||^2 + ||b||^2 - 2 a.b,
// clamped at 0. Cosine: similarity of rows normalised as F.normalize (x / max(||x||, 1e-12)),
// largest first. Ordering as kernels/cpu/knn.h: best first, equal values to the lower index,
// NaN counts as the worst score (so it is returned only when fewer than k others exist).
// Work is queued on `stream`; bad arguments and launch failures throw std::runtime_error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kernels::cuda {

inline constexpr int kKnnVersions = 5;
// What version 0 runs: v4 (tensor cores), measured faster than v3 on an H200 (2026-11-27:
// 3.79 against 4.45 ms for 1,024 queries x 100,000 x 768, L2 and cosine; equal for one query,
// where both stream the bank) and validated against the CPU there.
inline constexpr int kKnnFastest = 4;
inline constexpr int kKnnMaxK = 64;     // k <= 64: a warp holds a top-k list in 2 registers/lane

// Bytes of scratch knn_search needs for (version, Q, N, D, k, cosine): the distance matrix for
// versions 1 and 2, row norms and per-split partial top-k lists for versions 3 to 5 (v5: also
// its candidates).
size_t knn_search_workspace(int version, int64_t q, int64_t n, int d, int k, bool cosine);

// For each query the k nearest bank rows. v1: simple tiled distance matrix + per-row selection;
// v2: register-blocked 128x128 distance matrix + selection; v3: fused (distance tiles never
// leave shared memory; Q <= 8 streams the bank once with warp dot products instead); v4: v3 with
// the distance tiles on tensor cores (3xTF32, about float32's accuracy); v5: candidates by plain
// TF32 tiles (1xTF32), re-ranked in float32 (v4 for k > 48; not yet timed on a GPU).
// workspace: at least knn_search_workspace() bytes, or null (then cudaMallocAsync on stream).
void knn_search(int version, const float* queries, const float* bank, int64_t q, int64_t n, int d,
                int k, bool cosine, float* values, int64_t* indices, void* workspace,
                cudaStream_t stream);

// out[i, j] = ||a_i - b_j||^2 (clamped at 0) for a [Q, D], b [N, D]; version 1 or 2 (0 = 2).
// Scratch for the row norms is taken with cudaMallocAsync on the stream.
void pairwise_sq_l2(int version, const float* a, const float* b, float* out, int64_t q, int64_t n,
                    int d, cudaStream_t stream);

// For each row of x [rows, n]: the k smallest (largest = false) or largest values and their
// column indices, best first, ties to the lower index; NaN ranks as torch.topk does (first when
// largest, last when smallest). k <= 64 and k <= n.
void topk_rows(const float* x, int64_t rows, int64_t n, int k, bool largest, float* values,
               int64_t* indices, cudaStream_t stream);

}  // namespace kernels::cuda
