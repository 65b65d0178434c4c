// kernels/cuda/gelu_ops.cu — GELU for the engine: the lab's version 0 for float32 (see gelu.cu
// for its algorithm and roofline), and a plain grid-stride kernel per op for float64, where
// the engine mostly runs gradient checks and references rather than training.
//   gelu(x) = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt 2)   (erfc: no cancellation for x << 0)
//   gelu'(x) = Phi(x) + x * exp(-x^2 / 2) / sqrt(2 pi)
#include <climits>

#include "kernels/cuda/gelu.h"
#include "kernels/cuda/gelu_math.cuh"
#include "kernels/cuda/gelu_ops.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;


// y[i] = gelu(x[i] + bias[i % channels]) (channels = 1, bias = null: plain gelu). No
// __restrict__ on x / y: they may be the same array (engine::bias_gelu_, in place).
__global__ void gelu_forward_f64(int64_t n, int64_t channels, const double* x,
                                 const double* __restrict__ bias, double* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = gelu_at(bias ? x[i] + bias[i % channels] : x[i]);
}

// dx[i] = dy[i] * gelu'(v) with v = x[i] (+ bias[i % channels]), and y[i] = gelu(v) when y is
// not null. No __restrict__ on dy / dx: they may alias (each thread reads its element first).
__global__ void gelu_backward_f64(int64_t n, int64_t channels, const double* __restrict__ x,
                                  const double* __restrict__ bias, const double* dy, double* dx,
                                  double* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = bias ? x[i] + bias[i % channels] : x[i];
    dx[i] = dy[i] * gelu_grad_at(v);
    if (y) y[i] = gelu_at(v);
  }
}

int channels_int(const char* op, int64_t channels) {
  if (channels > INT_MAX)
    raise(std::string(op) + ": " + std::to_string(channels) +
          " channels exceed the 32-bit size the CUDA kernel takes");
  return static_cast<int>(channels);
}

}  // namespace

void gelu_forward(int64_t n, const void* x, void* y, DType dtype) {
  dispatch_float(dtype, "gelu", [&](auto zero) {
    using T = decltype(zero);
    if (n <= 0) return;
    if constexpr (sizeof(T) == 4) {
      call_lab("gelu", [&] {
        gelu_forward(0, static_cast<const float*>(x), static_cast<float*>(y), n, stream());
      });
    } else {
      gelu_forward_f64<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
          n, 1, static_cast<const double*>(x), nullptr, static_cast<double*>(y));
    }
    KCUDA_CHECK_LAUNCH("gelu");
  });
}

void gelu_backward(int64_t n, const void* x, const void* dy, void* dx, DType dtype) {
  dispatch_float(dtype, "gelu_backward", [&](auto zero) {
    using T = decltype(zero);
    if (n <= 0) return;
    if constexpr (sizeof(T) == 4) {
      call_lab("gelu_backward", [&] {
        gelu_backward(0, static_cast<const float*>(x), static_cast<const float*>(dy),
                      static_cast<float*>(dx), n, stream());
      });
    } else {
      gelu_backward_f64<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
          n, 1, static_cast<const double*>(x), nullptr, static_cast<const double*>(dy),
          static_cast<double*>(dx), nullptr);
    }
    KCUDA_CHECK_LAUNCH("gelu_backward");
  });
}

void bias_gelu_forward(int64_t rows, int64_t channels, const void* x, const void* bias, void* y,
                       DType dtype) {
  dispatch_float(dtype, "bias_gelu", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = rows * channels;
    if (n <= 0) return;
    if constexpr (sizeof(T) == 4) {
      const int c = channels_int("bias_gelu", channels);
      call_lab("bias_gelu", [&] {
        bias_gelu_forward(0, static_cast<const float*>(x), static_cast<const float*>(bias),
                          static_cast<float*>(y), rows, c, stream());
      });
    } else {
      gelu_forward_f64<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
          n, channels, static_cast<const double*>(x), static_cast<const double*>(bias),
          static_cast<double*>(y));
    }
    KCUDA_CHECK_LAUNCH("bias_gelu");
  });
}

void bias_gelu_backward(int64_t rows, int64_t channels, const void* x, const void* bias,
                        const void* dy, void* dx, void* y, DType dtype) {
  dispatch_float(dtype, "bias_gelu_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = rows * channels;
    if (n <= 0) return;
    if constexpr (sizeof(T) == 4) {
      const int c = channels_int("bias_gelu_backward", channels);
      call_lab("bias_gelu_backward", [&] {
        if (y)
          bias_gelu_forward(0, static_cast<const float*>(x), static_cast<const float*>(bias),
                            static_cast<float*>(y), rows, c, stream());
        bias_gelu_backward(0, static_cast<const float*>(x), static_cast<const float*>(bias),
                           static_cast<const float*>(dy), static_cast<float*>(dx), rows, c,
                           stream());
      });
    } else {
      gelu_backward_f64<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
          n, channels, static_cast<const double*>(x), static_cast<const double*>(bias),
          static_cast<const double*>(dy), static_cast<double*>(dx), static_cast<double*>(y));
    }
    KCUDA_CHECK_LAUNCH("bias_gelu_backward");
  });
}

void bias_gelu_backward_dbias(int64_t rows, int64_t channels, const float* x, const float* bias,
                              const float* dy, float* dx, float* dbias, float* y) {
  const int c = channels_int("bias_gelu_backward", channels);
  Scratch ws(bias_gelu_backward_dbias_workspace(rows, c));
  call_lab("bias_gelu_backward", [&] {
    bias_gelu_backward_dbias(0, x, bias, dy, dx, dbias, y, rows, c, ws.get(), stream());
  });
  KCUDA_CHECK_LAUNCH("bias_gelu_backward");
}

}  // namespace kernels::cuda
