// kernels/cuda/pool.h — 2-D pooling on NHWC activations on the GPU, forward and backward: our
// kernels, and cuDNN's for comparison (kernels::cuda::impl(Family::Pool) picks in the engine).
//
// The CUDA twins of kernels/cpu/pool.h: same layouts (x [n, h, w, c], y [n, p, q, c],
// contiguous device memory), same window rules, same argmax index (hh * w + ww of the first
// maximum in scan order, NaN winning) and the same order of additions, so our kernels agree
// with the CPU bit for bit. float32 or float64; work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/cpu/pool.h"
#include "kernels/dtype.h"

namespace kernels::cuda {

using kernels::cpu::PoolShape;

void max_pool2d_forward(const PoolShape& s, const void* x, void* y, int64_t* idx, DType dtype);
// dx[b, pos, ch] = sum of dy over the output cells whose argmax is pos (overwrites dx).
void max_pool2d_backward(const PoolShape& s, const void* dy, const int64_t* idx, void* dx,
                         DType dtype);

// torch.nn.AdaptiveAvgPool2d windows; sums in double.
void adaptive_avg_pool2d_forward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                 const void* x, void* y, DType dtype);
void adaptive_avg_pool2d_backward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                  const void* dy, void* dx, DType dtype);

// ---- cuDNN (the reference our kernels are measured against) ----------------------------------
// float32 only (what the engine routes here). Max pooling: CUDNN_POOLING_MAX_DETERMINISTIC with
// NaN propagation; its backward needs the forward's x and y instead of an argmax.
bool pool_vendor_takes(DType dtype);
void max_pool2d_forward_vendor(const PoolShape& s, const void* x, void* y, DType dtype);
void max_pool2d_backward_vendor(const PoolShape& s, const void* x, const void* y, const void* dy,
                                void* dx, DType dtype);
// Average pooling whose windows tile the input (h % p == 0 and w % q == 0, e.g. the global
// pool): one cuDNN window of (h / p) x (w / q). Other adaptive grids have overlapping or
// uneven windows cuDNN does not express; the engine runs ours for those.
bool avg_pool_vendor_takes(int64_t h, int64_t w, int64_t p, int64_t q, DType dtype);
void avg_pool2d_forward_vendor(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                               const void* x, void* y, DType dtype);

}  // namespace kernels::cuda
