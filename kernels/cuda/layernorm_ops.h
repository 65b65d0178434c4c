// kernels/cuda/layernorm_ops.h — the engine's entry points for LayerNorm over the last dim on
// the GPU, any float dtype.
//
// float32 runs the kernel lab's fastest version (kernels/cuda/layernorm.h, version 0; the
// backward's workspace comes from the engine's caching allocator); float64 runs the simple
// kernels of layernorm_ops.cu. Layout and formulas as kernels/cpu/layernorm.h: x [m, c]
// contiguous, mean/rstd [m] saved by the forward (required); weight/bias may be null; y may be
// null (the statistics only); dx, dweight, dbias may each be null. Work is queued on kernels::cuda::stream(); errors become engine::Error.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

void layernorm_forward(int64_t m, int64_t c, const void* x, const void* weight, const void* bias,
                       double eps, void* y, void* mean, void* rstd, DType dtype);

void layernorm_backward(int64_t m, int64_t c, const void* x, const void* dy, const void* mean,
                        const void* rstd, const void* weight, void* dx, void* dweight, void* dbias,
                        DType dtype);

}  // namespace kernels::cuda
