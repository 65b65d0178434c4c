// kernels/cuda/gelu_ops.h — the engine's entry points for GELU on the GPU, any float dtype.
//
// float32 runs the kernel lab's fastest version (kernels/cuda/gelu.h, version 0) on
// kernels::cuda::stream(); float64 runs the simple grid-stride kernels of gelu_ops.cu (same
// erfc form as the lab). Errors become engine::Error through kernels::cuda::raise.
// Contiguous device arrays; the bias variants see [rows, channels] with bias [channels].
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

void gelu_forward(int64_t n, const void* x, void* y, DType dtype);
// dx = dy * gelu'(x)
void gelu_backward(int64_t n, const void* x, const void* dy, void* dx, DType dtype);
// y[r, c] = gelu(x[r, c] + bias[c]); y may be x (in place)
void bias_gelu_forward(int64_t rows, int64_t channels, const void* x, const void* bias, void* y,
                       DType dtype);
// dx[r, c] = dy[r, c] * gelu'(x[r, c] + bias[c]); the bias gradient is the engine's column sum.
// y: null, or it receives gelu(x[r, c] + bias[c]) recomputed (kernels/cpu/gelu.h); float32
// writes it with the lab's bias_gelu_forward first, float64 in the same pass. dx may alias dy.
void bias_gelu_backward(int64_t rows, int64_t channels, const void* x, const void* bias,
                        const void* dy, void* dx, void* y, DType dtype);
// The same dx and dbias[c] = sum over rows of dx[r, c] in one pass (the lab's
// bias_gelu_backward_dbias, float32 only; scratch from the engine's allocator).
// y: null, or it receives gelu(x + b) recomputed in the same pass (engine::mlp); dx may alias dy.
void bias_gelu_backward_dbias(int64_t rows, int64_t channels, const float* x, const float* bias,
                              const float* dy, float* dx, float* dbias, float* y = nullptr);

}  // namespace kernels::cuda
