// kernels/cuda/layernorm_ops.cu — LayerNorm for the engine: the lab's version 0 for float32
// (layernorm.cu has its algorithms and roofline), simple kernels for float64:
//   forward / dx: a warp per row (lanes stride the row: coalesced), two passes for the mean and
//     the variance around it, as the CPU.
//   dweight / dbias: per (row chunk, column) partial sums, then a thread per column adds the
//     chunks in order: deterministic, no atomics.
#include <algorithm>
#include <climits>

#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/layernorm_ops.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int64_t kChunkRows = 256;  // rows per partial dweight/dbias row (float64 path)

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int d = kWarp / 2; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}

__global__ void ln_forward_f64(int64_t m, int64_t c, const double* __restrict__ x,
                               const double* __restrict__ w, const double* __restrict__ b,
                               double eps, double* __restrict__ y, double* __restrict__ mean,
                               double* __restrict__ rstd) {
  const int64_t row = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= m) return;  // whole warps leave together
  const double* xr = x + row * c;
  double s = 0;
  for (int64_t ch = lane; ch < c; ch += kWarp) s += xr[ch];
  const double mu = warp_sum(s) / static_cast<double>(c);
  double sq = 0;
  for (int64_t ch = lane; ch < c; ch += kWarp) sq += (xr[ch] - mu) * (xr[ch] - mu);
  const double rs = 1.0 / sqrt(warp_sum(sq) / static_cast<double>(c) + eps);
  if (y != nullptr) {  // null: the statistics only
    double* yr = y + row * c;
    for (int64_t ch = lane; ch < c; ch += kWarp)
      yr[ch] = (xr[ch] - mu) * rs * (w ? w[ch] : 1.0) + (b ? b[ch] : 0.0);
  }
  if (lane == 0) mean[row] = mu, rstd[row] = rs;
}

__global__ void ln_dx_f64(int64_t m, int64_t c, const double* __restrict__ x,
                          const double* __restrict__ dy, const double* __restrict__ mean,
                          const double* __restrict__ rstd, const double* __restrict__ w,
                          double* __restrict__ dx) {
  const int64_t row = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= m) return;
  const double* xr = x + row * c;
  const double* gr = dy + row * c;
  const double mu = mean[row], rs = rstd[row];
  double sg = 0, sgx = 0;  // sum(dy * w), sum(dy * w * xhat)
  for (int64_t ch = lane; ch < c; ch += kWarp) {
    const double g = gr[ch] * (w ? w[ch] : 1.0);
    sg += g;
    sgx += g * (xr[ch] - mu) * rs;
  }
  const double a = warp_sum(sg) / static_cast<double>(c),
               bb = warp_sum(sgx) / static_cast<double>(c);
  double* dr = dx + row * c;
  for (int64_t ch = lane; ch < c; ch += kWarp)
    dr[ch] = rs * (gr[ch] * (w ? w[ch] : 1.0) - a - (xr[ch] - mu) * rs * bb);
}

// part[chunk][0][ch] = sum dy * xhat, part[chunk][1][ch] = sum dy over the chunk's rows.
__global__ void ln_param_partial_f64(int64_t m, int64_t c, const double* __restrict__ x,
                                     const double* __restrict__ dy, const double* __restrict__ mean,
                                     const double* __restrict__ rstd, double* __restrict__ part) {
  const int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (ch >= c) return;
  const int64_t r0 = blockIdx.y * kChunkRows, r1 = r0 + kChunkRows < m ? r0 + kChunkRows : m;
  double sw = 0, sb = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const double g = dy[r * c + ch];
    sw += g * (x[r * c + ch] - mean[r]) * rstd[r];
    sb += g;
  }
  part[blockIdx.y * 2 * c + ch] = sw;
  part[blockIdx.y * 2 * c + c + ch] = sb;
}

__global__ void ln_param_finish_f64(int64_t c, int64_t chunks, const double* __restrict__ part,
                                    double* __restrict__ dw, double* __restrict__ db) {
  for (int64_t ch = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t k = 0; k < chunks; ++k) sw += part[k * 2 * c + ch], sb += part[k * 2 * c + c + ch];
    if (dw) dw[ch] = sw;
    if (db) db[ch] = sb;
  }
}

int64_t warp_blocks(int64_t rows) { return (rows * kWarp + kThreads - 1) / kThreads; }

void check_sizes(const char* op, int64_t m, int64_t c) {
  if (c > INT_MAX || warp_blocks(m) > INT_MAX)
    raise(std::string(op) + ": input [" + std::to_string(m) + ", " + std::to_string(c) +
          "] is too large for the CUDA kernel");
}

}  // namespace

void layernorm_forward(int64_t m, int64_t c, const void* x, const void* weight, const void* bias,
                       double eps, void* y, void* mean, void* rstd, DType dtype) {
  dispatch_float(dtype, "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    if (m <= 0 || c <= 0) return;
    check_sizes("layer_norm", m, c);
    if constexpr (sizeof(T) == 4) {
      call_lab("layer_norm", [&] {
        layernorm_forward(0, static_cast<const float*>(x), static_cast<const float*>(weight),
                          static_cast<const float*>(bias), static_cast<float*>(y),
                          static_cast<float*>(mean), static_cast<float*>(rstd), m,
                          static_cast<int>(c), static_cast<float>(eps), stream());
      });
    } else {
      ln_forward_f64<<<static_cast<unsigned>(warp_blocks(m)), kThreads, 0, stream()>>>(
          m, c, static_cast<const double*>(x), static_cast<const double*>(weight),
          static_cast<const double*>(bias), eps, static_cast<double*>(y),
          static_cast<double*>(mean), static_cast<double*>(rstd));
    }
    KCUDA_CHECK_LAUNCH("layer_norm");
  });
}

void layernorm_backward(int64_t m, int64_t c, const void* x, const void* dy, const void* mean,
                        const void* rstd, const void* weight, void* dx, void* dweight, void* dbias,
                        DType dtype) {
  dispatch_float(dtype, "layer_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    if (c <= 0) return;
    if (m <= 0) {  // nothing to sum: zero parameter gradients
      if (dweight) KCUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(T) * c, stream()));
      if (dbias) KCUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(T) * c, stream()));
      return;
    }
    check_sizes("layer_norm_backward", m, c);
    if constexpr (sizeof(T) == 4) {
      call_lab("layer_norm_backward", [&] {
        Scratch ws(layernorm_backward_workspace(0, m, static_cast<int>(c)));
        layernorm_backward(0, static_cast<const float*>(x), static_cast<const float*>(dy),
                           static_cast<const float*>(mean), static_cast<const float*>(rstd),
                           static_cast<const float*>(weight), static_cast<float*>(dx),
                           static_cast<float*>(dweight), static_cast<float*>(dbias), m,
                           static_cast<int>(c), ws.get(), stream());
      });
      KCUDA_CHECK_LAUNCH("layer_norm_backward");
    } else {
      const double* px = static_cast<const double*>(x);
      const double* pdy = static_cast<const double*>(dy);
      const double* pm = static_cast<const double*>(mean);
      const double* pr = static_cast<const double*>(rstd);
      if (dx) {
        ln_dx_f64<<<static_cast<unsigned>(warp_blocks(m)), kThreads, 0, stream()>>>(
            m, c, px, pdy, pm, pr, static_cast<const double*>(weight), static_cast<double*>(dx));
        KCUDA_CHECK_LAUNCH("layer_norm_backward");
      }
      if (dweight || dbias) {
        const int64_t chunks = (m + kChunkRows - 1) / kChunkRows;
        if (chunks > 65535) raise("layer_norm_backward: too many rows for the float64 kernel");
        Scratch part(sizeof(double) * 2 * c * chunks);
        const dim3 grid(static_cast<unsigned>((c + kThreads - 1) / kThreads),
                        static_cast<unsigned>(chunks));
        ln_param_partial_f64<<<grid, kThreads, 0, stream()>>>(m, c, px, pdy, pm, pr,
                                                              static_cast<double*>(part.get()));
        KCUDA_CHECK_LAUNCH("layer_norm_backward");
        ln_param_finish_f64<<<grid_for(c, kThreads), kThreads, 0, stream()>>>(
            c, chunks, static_cast<const double*>(part.get()), static_cast<double*>(dweight),
            static_cast<double*>(dbias));
        KCUDA_CHECK_LAUNCH("layer_norm_backward");
      }
    }
  });
}

}  // namespace kernels::cuda
