// kernels/cuda/depthwise_conv2d_ops.h — the engine's entry points for depthwise convolution
// (groups == C == K) on the GPU: any float dtype, stride and dilation.
//
// float32 with stride 1 and dilation 1 (ConvNeXt's 7x7 and every 3x3 "same" layer) runs the
// kernel lab's fastest version (kernels/cuda/depthwise_conv2d.h, version 0; workspaces from
// the engine's caching allocator); everything else runs the simple kernels of
// depthwise_conv2d_ops.cu. Layouts as kernels/cpu/depthwise_conv2d.h: x [N, H, W, C],
// w [C, R, S, 1], y [N, P, Q, C], contiguous device memory, with the conv2d Conv2dShape.
// Work is queued on kernels::cuda::stream(); errors become engine::Error.
#pragma once

#include "kernels/cpu/conv2d.h"
#include "kernels/dtype.h"

namespace kernels::cuda {

using kernels::cpu::Conv2dShape;

// y = depthwise_conv(x, w) + bias; bias may be null.
void depthwise_conv2d_forward(const Conv2dShape& sh, const void* x, const void* w, const void* bias,
                              void* y, DType dtype);
// Overwrites dx [N, H, W, C].
void depthwise_conv2d_backward_data(const Conv2dShape& sh, const void* dy, const void* w, void* dx,
                                    DType dtype);
// Overwrites dw [C, R, S, 1] (deterministic: per-chunk partial sums added in order).
void depthwise_conv2d_backward_weight(const Conv2dShape& sh, const void* x, const void* dy,
                                      void* dw, DType dtype);

}  // namespace kernels::cuda
