// kernels/cuda/indexing.h — concatenation and index-driven copies on the GPU, with their
// gradient scatters, on contiguous arrays seen as [outer, n, inner] around the indexed dim.
//
// The CUDA twins of kernels/cpu/indexing.h. Forwards move raw 4- or 8-byte words, so they take
// float32, float64 and int64 alike; backwards are float32/float64. Indices are device int64
// arrays assumed in range (the engine checks them first and names the offending value).
// Backwards never use atomics: each gradient element has one owner thread that adds its
// contributions in increasing j, the order the CPU kernel adds them in, so the two agree bit
// for bit. Work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// out[o, offset + k, i] = src[o, k, i]; src [outer, n, inner], out [outer, total, inner].
void cat_copy(int64_t outer, int64_t n, int64_t inner, const void* src, int64_t total,
              int64_t offset, void* out, DType dtype);

// out[o, j, i] = x[o, index[j], i]   x [outer, n, inner], index [m], out [outer, m, inner]
void index_select_forward(int64_t outer, int64_t n, int64_t inner, const void* x, int64_t m,
                          const int64_t* index, void* out, DType dtype);

// dx[o, r, i] = sum over j with index[j] == r of dy[o, j, i], given the inverse of the index
// as CSR: the j's with index[j] == r are by_row[row_start[r] .. row_start[r + 1]), ascending
// (row_start has n + 1 entries, by_row m). The engine builds it on the host, where it has
// the index anyway to check its range; one thread per dx element then gathers its sum.
void index_select_backward(int64_t outer, int64_t n, int64_t inner, int64_t m,
                           const int64_t* row_start, const int64_t* by_row, const void* dy,
                           void* dx, DType dtype);

// out[o, j, i] = x[o, index[o, j, i], i]   x [outer, n, inner], index/out [outer, m, inner]
void gather_forward(int64_t outer, int64_t n, int64_t inner, const void* x, int64_t m,
                    const int64_t* index, void* out, DType dtype);

// dx = 0; dx[o, index[o, j, i], i] += dy[o, j, i]: one thread owns the column dx[o, :, i]
// and walks j in order.
void gather_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                     const void* dy, void* dx, DType dtype);

}  // namespace kernels::cuda
