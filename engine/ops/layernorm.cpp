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

LayerNormRows layer_norm_rows(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              double eps, bool with_output) {
  const int64_t c = x.size(-1), m = x.numel() / c;
  LayerNormRows out;
  if (with_output) out.y = Tensor::empty(x.shape(), x.dtype(), x.device());
  out.mean = Tensor::empty({m}, x.dtype(), x.device());
  out.rstd = Tensor::empty({m}, x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) {
    kernels::cuda::layernorm_forward(m, c, x.raw_data(), ptr(weight), ptr(bias), eps, ptr(out.y),
                                     out.mean.raw_data(), out.rstd.raw_data(), x.dtype());
    return out;
  }
#endif
  dispatch_float(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    kernels::cpu::layernorm_forward<T>(m, c, x.data<T>(), ptr(weight), ptr(bias), eps, ptr(out.y),
                                       out.mean.data<T>(), out.rstd.data<T>());
  });
  return out;
}

void layer_norm_rows_backward(const Tensor& x, const Tensor& dy, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, const Tensor& dx,
                              const Tensor& dweight, const Tensor& dbias) {
  const int64_t c = x.size(-1), m = x.numel() / c;
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) {
    kernels::cuda::layernorm_backward(m, c, x.raw_data(), dy.raw_data(), mean.raw_data(),
                                      rstd.raw_data(), ptr(weight), ptr(dx), ptr(dweight),
                                      ptr(dbias), x.dtype());
    return;
  }
#endif
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    kernels::cpu::layernorm_backward<T>(m, c, x.data<T>(), dy.data<T>(), mean.data<T>(),
                                        rstd.data<T>(), ptr(weight), ptr(dx), ptr(dweight),
                                        ptr(dbias));
  });
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  profiler::Range range("layer_norm");
  check(x.defined(), "layer_norm: undefined input");
  check(x.dim() >= 1 && x.size(-1) > 0, "layer_norm: input ", x.shape(),
        " needs a non-empty last dim to normalise over");
  check(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);
  check_param(weight, "weight", x);
  check_param(bias, "bias", x);
  const int64_t c = x.size(-1);

  Tensor xc = x.detach().contiguous();
  Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  LayerNormRows fwd = layer_norm_rows(xc, wd, bd, eps);

  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  if (!grad_enabled() || !(gx || gw || gb)) return fwd.y;
  // Saved: the input, mean and rstd per row (not the normalised output), and the weight.
  const Tensor mean = fwd.mean, rstd = fwd.rstd;
  return record("layer_norm", fwd.y, {x, weight, bias}, [=](const Tensor& g) {
    Tensor dx = gx ? Tensor::empty(g.shape(), g.dtype(), g.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    layer_norm_rows_backward(xc, g.contiguous(), mean, rstd, wd, dx, dw, db);
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace engine
