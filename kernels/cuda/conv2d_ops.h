// kernels/cuda/conv2d_ops.h — general 2-D convolution on NHWC activations on the GPU: ours
// (the implicit-GEMM lab kernels/cuda/conv2d.h for float32 groups == 1, im2col + GEMM for the
// rest), and cuDNN's convolutions (the engine picks with kernels::cuda::impl(Family::Conv), and
// Family::Depthwise for groups == C == K).
//
// Layouts as kernels/cpu/conv2d.h (x [N, H, W, C], w [K, R, S, C/G], y [N, P, Q, K], all
// contiguous device memory) and the same Conv2dShape (the caller fills p, q). Ours takes
// float32 and float64 and any stride, padding, dilation and groups. float32 with groups == 1
// runs the lab's version 0 (fp32 CUDA cores), or its TF32 tensor-core version when
// kernels::cuda::tf32() is on; the im2col GEMMs go through kernels::cuda::gemm (so
// ENGINE_CUDA_IMPL_GEMM picks our tiled GEMM or cuBLAS beneath them).
// cuDNN here takes float32. Work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/cpu/conv2d.h"
#include "kernels/dtype.h"

namespace kernels::cuda {

using kernels::cpu::Conv2dShape;

// y = conv(x, w) + bias; bias may be null.
void conv2d_forward(const Conv2dShape& sh, const void* x, const void* w, const void* bias, void* y,
                    DType dtype);
// dx = d(sum(y * dy)) / dx; overwrites dx.
void conv2d_backward_data(const Conv2dShape& sh, const void* dy, const void* w, void* dx,
                          DType dtype);
// dw = d(sum(y * dy)) / dw; overwrites dw.
void conv2d_backward_weight(const Conv2dShape& sh, const void* x, const void* dy, void* dw,
                            DType dtype);

// ---- cuDNN (also runs depthwise convolutions: groups = C) ------------------------------------
// The first of cuDNN's heuristically ranked algorithms (cudnnGet*Algorithm_v7) that runs with
// FMA math (TF32 too when tf32() is on; never FP16 conversion), deterministic for the backward
// passes (kernels/cuda/cudnn_algos.h), chosen once per pass, shape and TF32 setting and then
// reused (conv2d_ops.cu); workspaces from the engine's allocator. Each returns
// false, having written nothing, when cuDNN has no such algorithm for the shape: the caller
// runs our kernel instead (engine/ops/conv.cpp), a line on stderr says so once per op, and
// conv_vendor_fallbacks() counts it, so tests and benchmarks can tell which path ran.
bool conv_vendor_takes(DType dtype);
[[nodiscard]] bool conv2d_forward_vendor(const Conv2dShape& sh, const void* x, const void* w,
                                         const void* bias, void* y, DType dtype);
[[nodiscard]] bool conv2d_backward_data_vendor(const Conv2dShape& sh, const void* dy,
                                               const void* w, void* dx, DType dtype);
[[nodiscard]] bool conv2d_backward_weight_vendor(const Conv2dShape& sh, const void* x,
                                                 const void* dy, void* dw, DType dtype);
int64_t conv_vendor_fallbacks();
// In cuDNN's benchmark mode (runtime.h, cudnn_benchmark()): how many times timing the
// algorithms failed and the heuristics chose instead (said once on stderr).
int64_t conv_benchmark_failures();

// y[r, k] += bias[k] over a contiguous [rows, k] array (shared by the conv paths).
void add_bias_rows(int64_t rows, int64_t k, const void* bias, void* y, DType dtype);

}  // namespace kernels::cuda
