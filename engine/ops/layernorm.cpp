// LayerNorm over the last dim (the channels of an NHWC tensor). Kernels:
// kernels/cpu/layernorm.cpp (on CUDA kernels/cuda/layernorm_ops.h: the LayerNorm lab's kernels
// for float32); the composed slow twin (mean/var/sub/mul ops) is in the test.
#include "engine/ops/layernorm.h"

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "kernels/cpu/layernorm.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/layernorm_ops.h"
#endif

namespace engine {

namespace {

void check_param(const Tensor& t, const char* what, const Tensor& x) {
  if (!t.defined()) return;
  const int64_t c = x.size(-1);
  check(t.dim() == 1 && t.size(0) == c, "layer_norm: ", what, " has shape ", t.shape(),
        " but input ", x.shape(), " has ", c, " features in its last dim; expected [", c, "]");
  check(t.dtype() == x.dtype(), "layer_norm: ", what, " is ", t.dtype(), " but input is ",
        x.dtype());
  check(t.device() == x.device(), "layer_norm: ", what, " is on ", t.device(),
        " but input is on ", x.device());
}

#ifdef ENGINE_WITH_CUDA
void* ptr(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
#endif

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  profiler::Range range("layer_norm");
  check(x.defined(), "layer_norm: undefined input");
  check(x.dim() >= 1 && x.size(-1) > 0, "layer_norm: input ", x.shape(),
        " needs a non-empty last dim to normalise over");
  check(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);
  check_param(weight, "weight", x);
  check_param(bias, "bias", x);
  const int64_t c = x.size(-1), m = x.numel() / c;

  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({m}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({m}, x.dtype(), x.device());
  Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::layernorm_forward(m, c, xc.raw_data(), ptr(wd), ptr(bd), eps, y.raw_data(),
                                     mean.raw_data(), rstd.raw_data(), x.dtype());
  else
#endif
    dispatch_float(x.dtype(), "layer_norm", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::layernorm_forward<T>(m, c, xc.data<T>(),
                                         wd.defined() ? wd.data<T>() : nullptr,
                                         bd.defined() ? bd.data<T>() : nullptr, eps, y.data<T>(),
                                         mean.data<T>(), rstd.data<T>());
    });

  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  if (!grad_enabled() || !(gx || gw || gb)) return y;
  // Saved: the input, mean and rstd per row (not the normalised output), and the weight.
  return record("layer_norm", y, {x, weight, bias}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = gx ? Tensor::empty(g.shape(), g.dtype(), g.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
#ifdef ENGINE_WITH_CUDA
    if (g.device().is_cuda()) {
      kernels::cuda::layernorm_backward(m, c, xc.raw_data(), gc.raw_data(), mean.raw_data(),
                                        rstd.raw_data(), ptr(wd), ptr(dx), ptr(dw), ptr(db),
                                        g.dtype());
      return std::vector<Tensor>{dx, dw, db};
    }
#endif
    dispatch_float(g.dtype(), "layer_norm_backward", [&](auto zero) {
      using T = decltype(zero);
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      kernels::cpu::layernorm_backward<T>(m, c, xc.data<T>(), gc.data<T>(), mean.data<T>(),
                                          rstd.data<T>(), ptr(wd), ptr(dx), ptr(dw), ptr(db));
    });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace engine
