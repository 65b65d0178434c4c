// engine/ops/gelu.cpp — gelu and the fused bias_gelu (kernels/cpu/gelu.h).
//
// bias_gelu is ConvNeXt's "Linear -> GELU" with the Linear's bias folded into the activation
// pass: one read and one write of the activation instead of two of each. Activations are NHWC
// (or [tokens, channels]), so the bias runs along the last, contiguous dim.
#include "engine/ops/gelu.h"

#include "engine/autograd.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/gelu.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/gelu_ops.h"
#endif

namespace engine {

Tensor gelu(const Tensor& x) {
  profiler::Range range("gelu");
  check(x.defined(), "gelu: undefined tensor argument");
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::gelu_forward(x.numel(), xc.raw_data(), y.raw_data(), y.dtype());
  else
#endif
    dispatch_float(x.dtype(), "gelu", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::gelu_forward<T>(x.numel(), xc.data<T>(), y.data<T>());
    });
  return record("gelu", y, {x}, [xc](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
#ifdef ENGINE_WITH_CUDA
    if (dx.device().is_cuda()) {
      kernels::cuda::gelu_backward(xc.numel(), xc.raw_data(), gc.raw_data(), dx.raw_data(),
                                   dx.dtype());
      return std::vector<Tensor>{dx};
    }
#endif
    dispatch_float(xc.dtype(), "gelu_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::gelu_backward<T>(xc.numel(), xc.data<T>(), gc.data<T>(), dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

namespace {

// What bias_gelu and bias_gelu_ require of their arguments; returns (rows, channels).
std::pair<int64_t, int64_t> check_bias_gelu(const Tensor& x, const Tensor& bias) {
  check(x.defined() && bias.defined(), "bias_gelu: undefined tensor argument");
  check(x.dim() >= 1, "bias_gelu: input must have a channel dim, got a 0-d tensor");
  check(bias.dim() == 1 && bias.size(0) == x.size(-1), "bias_gelu: bias ", bias.shape(),
        " does not match the last (channel) dim of input ", x.shape());
  check(x.dtype() == bias.dtype(), "bias_gelu: dtype mismatch (input ", x.dtype(), ", bias ",
        bias.dtype(), ")");
  check(x.device() == bias.device(), "bias_gelu: input is on ", x.device(), " but bias is on ",
        bias.device());
  const int64_t c = x.size(-1), rows = c == 0 ? 0 : x.numel() / c;
  return {rows, c};
}

// y = gelu(x + b) over [rows, c] contiguous arrays; y may be x.
void bias_gelu_into(int64_t rows, int64_t c, const Tensor& x, const Tensor& b, const Tensor& y) {
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::bias_gelu_forward(rows, c, x.raw_data(), b.raw_data(), y.raw_data(),
                                     y.dtype());
  else
#endif
    dispatch_float(x.dtype(), "bias_gelu", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::bias_gelu_forward<T>(rows, c, x.data<T>(), b.data<T>(), y.data<T>());
    });
}

}  // namespace

void bias_gelu_(const Tensor& x, const Tensor& bias) {
  profiler::Range range("bias_gelu_");
  const auto [rows, c] = check_bias_gelu(x, bias);
  check(x.is_contiguous(), "bias_gelu_: the input must be contiguous, got strides ", x.strides());
  check(!(grad_enabled() && x.requires_grad()),
        "bias_gelu_: in place on a tensor that requires a gradient (its autograd would lose "
        "the pre-activation); use bias_gelu");
  bias_gelu_into(rows, c, x, bias.detach().contiguous(), x);
}

Tensor bias_gelu(const Tensor& x, const Tensor& bias) {
  profiler::Range range("bias_gelu");
  const auto [rows, c] = check_bias_gelu(x, bias);
  Tensor xc = x.detach().contiguous(), bc = bias.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  bias_gelu_into(rows, c, xc, bc, y);
  const bool need_bias = bias.requires_grad();
  return record("bias_gelu", y, {x, bias}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
#ifdef ENGINE_WITH_CUDA
    // float32 on the GPU: the bias gradient is summed in the same pass that computes dx.
    if (dx.device().is_cuda() && need_bias && dx.dtype() == DType::Float32) {
      Tensor db = Tensor::empty(bc.shape(), bc.dtype(), bc.device());
      kernels::cuda::bias_gelu_backward_dbias(rows, c, xc.data<float>(), bc.data<float>(),
                                              gc.data<float>(), dx.data<float>(),
                                              db.data<float>());
      return std::vector<Tensor>{dx, db};
    }
    if (dx.device().is_cuda())
      kernels::cuda::bias_gelu_backward(rows, c, xc.raw_data(), bc.raw_data(), gc.raw_data(),
                                        dx.raw_data(), nullptr, dx.dtype());
    else
#endif
      dispatch_float(xc.dtype(), "bias_gelu_backward", [&](auto zero) {
        using T = decltype(zero);
        kernels::cpu::bias_gelu_backward<T>(rows, c, xc.data<T>(), bc.data<T>(), gc.data<T>(),
                                            dx.data<T>());
      });
    // d(x + b)/db sums over every row the bias was broadcast to.
    return std::vector<Tensor>{dx, need_bias ? sum_to(dx, bc.shape()) : Tensor()};
  });
}

}  // namespace engine
