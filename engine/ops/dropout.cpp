// engine/ops/dropout.cpp — dropout and drop_path (kernels/cpu/dropout.h).
//
// Each training call reserves one counter per element (dropout) or per sample (drop_path) from
// the caller's Generator, so a run is reproducible from its seed and the CPU and GPU draw the
// same mask. The backward multiplies by the mask the forward saved (never re-draws). Calls that
// are the identity (eval, p = 0) return x itself and consume no counters, as PyTorch.
#include "engine/ops/dropout.h"

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "kernels/cpu/dropout.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/dropout.h"
#endif

namespace engine {

namespace {

void check_args(const Tensor& x, double p, const char* op) {
  check(x.defined(), op, ": undefined tensor argument");
  check(p >= 0 && p <= 1, op, ": probability p must be in [0, 1], got ", p);
}

// 1/(1-p) keeps the expected value; with p = 1 nothing survives and the scale is moot (0, not
// inf, so that 0 * inf never makes a NaN).
double keep_scale(double p) { return p < 1 ? 1.0 / (1.0 - p) : 0.0; }

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  profiler::Range range("dropout");
  check_args(x, p, "dropout");
  if (!training || p == 0) return x;
  const int64_t n = x.numel();
  const uint64_t first = gen.reserve(static_cast<uint64_t>(n));
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::dropout_forward(n, xc.raw_data(), gen.seed(), first, p, keep_scale(p),
                                   y.raw_data(), mask.raw_data(), y.dtype());
  else
#endif
    dispatch_float(x.dtype(), "dropout", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::dropout_forward<T>(n, xc.data<T>(), gen.seed(), first, p, T(keep_scale(p)),
                                       y.data<T>(), mask.data<T>());
    });
  return record("dropout", y, {x}, [mask](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(mask.shape(), mask.dtype(), mask.device());
#ifdef ENGINE_WITH_CUDA
    if (dx.device().is_cuda()) {
      kernels::cuda::dropout_backward(mask.numel(), gc.raw_data(), mask.raw_data(), dx.raw_data(),
                                      dx.dtype());
      return std::vector<Tensor>{dx};
    }
#endif
    dispatch_float(mask.dtype(), "dropout_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::dropout_backward<T>(mask.numel(), gc.data<T>(), mask.data<T>(), dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor drop_path(const Tensor& x, double p, bool training, Generator& gen) {
  profiler::Range range("drop_path");
  check_args(x, p, "drop_path");
  check(x.dim() >= 1, "drop_path: input needs a batch dim (dim 0), got a 0-d tensor");
  if (!training || p == 0) return x;
  const int64_t samples = x.size(0), per_sample = samples == 0 ? 0 : x.numel() / samples;
  const uint64_t first = gen.reserve(static_cast<uint64_t>(samples));
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor scale = Tensor::empty({samples}, x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::drop_path_forward(samples, per_sample, xc.raw_data(), gen.seed(), first, p,
                                     keep_scale(p), y.raw_data(), scale.raw_data(), y.dtype());
  else
#endif
    dispatch_float(x.dtype(), "drop_path", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::drop_path_forward<T>(samples, per_sample, xc.data<T>(), gen.seed(), first, p,
                                         T(keep_scale(p)), y.data<T>(), scale.data<T>());
    });
  Shape shape = x.shape();
  return record("drop_path", y, {x}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(shape, g.dtype(), g.device());
#ifdef ENGINE_WITH_CUDA
    if (dx.device().is_cuda()) {
      kernels::cuda::drop_path_backward(samples, per_sample, gc.raw_data(), scale.raw_data(),
                                        dx.raw_data(), dx.dtype());
      return std::vector<Tensor>{dx};
    }
#endif
    dispatch_float(g.dtype(), "drop_path_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::drop_path_backward<T>(samples, per_sample, gc.data<T>(), scale.data<T>(),
                                          dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor drop_path_scale(int64_t samples, double p, bool training, Generator& gen, DType dtype,
                       Device device) {
  profiler::Range range("drop_path_scale");
  check(p >= 0 && p <= 1, "drop_path: probability p must be in [0, 1], got ", p);
  check(samples >= 0, "drop_path: negative sample count ", samples);
  if (!training || p == 0) return Tensor();
  const uint64_t first = gen.reserve(static_cast<uint64_t>(samples));
  Tensor scale = Tensor::empty({samples}, dtype, device);
  // drop_path's kernels with no elements per sample: they only draw the factors.
#ifdef ENGINE_WITH_CUDA
  if (device.is_cuda())
    kernels::cuda::drop_path_forward(samples, 0, nullptr, gen.seed(), first, p, keep_scale(p),
                                     nullptr, scale.raw_data(), dtype);
  else
#endif
    dispatch_float(dtype, "drop_path", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::drop_path_forward<T>(samples, 0, nullptr, gen.seed(), first, p,
                                         T(keep_scale(p)), nullptr, scale.data<T>());
    });
  return scale;
}

}  // namespace engine
