// kernels/cpu/knn.h — the pieces of k-nearest-neighbour retrieval: pairwise squared L2
// distances (with backward), top-k selection (with backward), and a fused search that never
// materialises the [Q, N] distance matrix.
//
// All arrays are contiguous row-major. Distances use the GEMM identity
//   ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b
// (one GEMM instead of Q*N*D scalar loops), clamped at 0 because rounding can make the
// difference of two nearly equal large numbers slightly negative.
//
// Ordering everywhere: "best first"; equal values go to the lower index; NaN ranks above
// every number (as in torch.topk), so it is picked first by largest and last by smallest.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// out[i, j] = ||a_i - b_j||^2   a: [q, d], b: [n, d], out: [q, n]
template <class T>
void pairwise_sq_l2_forward(int64_t q, int64_t n, int64_t d, const T* a, const T* b, T* out);
// da = 2 (rowsum(g) * a - g b), db = 2 (colsum(g) * b - g^T a); da or db may be null (skipped).
template <class T>
void pairwise_sq_l2_backward(int64_t q, int64_t n, int64_t d, const T* a, const T* b, const T* g,
                             T* da, T* db);

// For each (o, i) of x [outer, n, inner]: the k best of x[o, :, i] into values/indices
// [outer, k, inner], best first (smallest values unless `largest`).
template <class T>
void topk_forward(int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest, const T* x,
                  T* values, int64_t* indices);
// dx = 0; dx[o, indices[o, j, i], i] += dy[o, j, i]
template <class T>
void topk_backward(int64_t outer, int64_t n, int64_t inner, int64_t k, const int64_t* indices,
                   const T* dy, T* dx);

// For each of the q queries [q, d], the k nearest of the n bank rows [n, d] into values/indices
// [q, k], best first. L2 (cosine = false): values are squared distances, smallest first.
// Cosine: rows are normalised (x / max(||x||, 1e-12), as F.normalize) and values are cosine
// similarities, largest first. The bank is processed in blocks: one GEMM per (query block,
// bank block) gives the block's dot products, and each query keeps a bounded heap of its k
// best so far, so memory is O(block^2 + q*k), never O(q*n). NaN scores count as the worst.
template <class T>
void knn_search(int64_t q, int64_t n, int64_t d, int64_t k, bool cosine, const T* queries,
                const T* bank, T* values, int64_t* indices);

}  // namespace kernels::cpu
