// engine/ops/loss.cpp — mse_loss (composed of elementwise ops) and huber_loss (one fused
// elementwise kernel, kernels/cpu/loss.h), each followed by the requested reduction.
#include "engine/ops/loss.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/loss.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/loss.h"
#endif

namespace engine {

namespace {

void check_loss_args(const Tensor& pred, const Tensor& target, const char* op) {
  check(pred.defined() && target.defined(), op, ": undefined tensor argument");
  // No silent broadcasting: a [B,2] prediction against a [B] target is almost always a bug.
  check(pred.shape() == target.shape(), op, ": prediction ", pred.shape(), " and target ",
        target.shape(), " must have the same shape");
  check(pred.dtype() == target.dtype(), op, ": dtype mismatch (prediction ", pred.dtype(),
        ", target ", target.dtype(), ")");
  check(pred.device() == target.device(), op, ": prediction is on ", pred.device(),
        " but target is on ", target.device());
}

Tensor reduce(const Tensor& per_element, Reduction r) {
  switch (r) {
    case Reduction::Mean:
      return mean(per_element);
    case Reduction::Sum:
      return sum(per_element);
    case Reduction::None:
      return per_element;
  }
  fail("loss: unknown reduction");
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction r) {
  profiler::Range range("mse_loss");
  check_loss_args(pred, target, "mse_loss");
  Tensor d = sub(pred, target.detach());  // the target gets no gradient
  return reduce(mul(d, d), r);
}

Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta, Reduction r) {
  profiler::Range range("huber_loss");
  check_loss_args(pred, target, "huber_loss");
  check(delta > 0, "huber_loss: delta must be positive, got ", delta);
  Tensor p = pred.detach().contiguous(), t = target.detach().contiguous();
  Tensor out = Tensor::empty(pred.shape(), pred.dtype(), pred.device());
#ifdef ENGINE_WITH_CUDA
  if (out.device().is_cuda())
    kernels::cuda::huber_forward(p.numel(), p.raw_data(), t.raw_data(), delta, out.raw_data(),
                                 out.dtype());
  else
#endif
    dispatch_float(pred.dtype(), "huber_loss", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::huber_forward<T>(p.numel(), p.data<T>(), t.data<T>(), T(delta),
                                     out.data<T>());
    });
  Tensor elems = record("huber_loss", out, {pred}, [p, t, delta](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dp = Tensor::empty(p.shape(), p.dtype(), p.device());
#ifdef ENGINE_WITH_CUDA
    if (dp.device().is_cuda()) {
      kernels::cuda::huber_backward(p.numel(), p.raw_data(), t.raw_data(), delta, gc.raw_data(),
                                    dp.raw_data(), dp.dtype());
      return std::vector<Tensor>{dp};
    }
#endif
    dispatch_float(p.dtype(), "huber_loss_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::huber_backward<T>(p.numel(), p.data<T>(), t.data<T>(), T(delta), gc.data<T>(),
                                      dp.data<T>());
    });
    return std::vector<Tensor>{dp};
  });
  return reduce(elems, r);
}

}  // namespace engine
