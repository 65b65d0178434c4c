// kernels/cpu/layernorm.h — LayerNorm over the last dim, forward and backward.
//
// Layout: x is a contiguous [m, c] array: m rows (N*H*W positions of an NHWC tensor, or the
// samples of an [N, C] batch), each normalised over its c contiguous values. Rows are split
// across threads; inside a row every loop runs over c and is vectorised (the reductions with
// `omp simd reduction`, which lets the compiler keep 8 float partial sums in one register).
//
// Work for the ConvNeXt-T stage-1 shape [8,56,56,96] in float32 (m = 25088, c = 96):
//   forward  reads x, writes y (+ 2 floats per row):        ~19 MB moved, ~6 FLOPs/element
//   backward reads x, dy, writes dx (+ dweight/dbias):       ~29 MB moved, ~13 FLOPs/element
#pragma once

#include <cstdint>

namespace kernels::cpu {

// y = (x - mean) * rstd * weight + bias per row, rstd = 1 / sqrt(biased var + eps).
// Saves mean[m] and rstd[m] for the backward. weight/bias [c] may be null (no affine); y may be
// null (the statistics only).
template <class T>
void layernorm_forward(int64_t m, int64_t c, const T* x, const T* weight, const T* bias,
                       double eps, T* y, T* mean, T* rstd);

// With xhat = (x - mean) * rstd and g = dy * weight (per row, c values):
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dweight = sum over rows of dy * xhat,  dbias = sum over rows of dy
// dweight/dbias are summed per thread into partial rows, added up at the end.
// weight may be null (treated as 1); dx, dweight, dbias may each be null (not wanted).
template <class T>
void layernorm_backward(int64_t m, int64_t c, const T* x, const T* dy, const T* mean,
                        const T* rstd, const T* weight, T* dx, T* dweight, T* dbias);

}  // namespace kernels::cpu
