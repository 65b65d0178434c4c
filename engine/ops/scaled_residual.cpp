// engine/ops/scaled_residual.cpp — see scaled_residual.h (kernels/cpu/scaled_residual.h,
// kernels/cuda/scaled_residual.h).
#include "engine/ops/scaled_residual.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"
#include "kernels/cpu/scaled_residual.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/scaled_residual.h"
#endif

namespace engine {

namespace {

void check_args(const Tensor& x, const Tensor& h, const Tensor& gamma, const Tensor& bias,
                const Tensor& sample_scale) {
  const char* op = "scaled_residual";
  check(x.defined() && h.defined() && gamma.defined(), op, ": undefined tensor argument");
  check(x.dim() >= 1, op, ": input must have a channel dim, got a 0-d tensor");
  check(x.shape() == h.shape(), op, ": residual ", x.shape(), " and branch ", h.shape(),
        " differ in shape");
  const int64_t c = x.size(-1);
  check(gamma.dim() == 1 && gamma.size(0) == c, op, ": gamma ", gamma.shape(),
        " does not match the last (channel) dim of ", x.shape());
  if (bias.defined())
    check(bias.dim() == 1 && bias.size(0) == c, op, ": bias ", bias.shape(),
          " does not match the last (channel) dim of ", x.shape());
  if (sample_scale.defined()) {
    check(x.dim() >= 2 && sample_scale.dim() == 1 && sample_scale.size(0) == x.size(0), op,
          ": sample_scale ", sample_scale.shape(), " must have one value per sample of ",
          x.shape());
    check(!sample_scale.requires_grad(), op, ": sample_scale is a mask and takes no gradient");
  }
  for (const Tensor* t : {&h, &gamma, &bias, &sample_scale}) {
    if (!t->defined()) continue;
    check(t->dtype() == x.dtype(), op, ": dtype mismatch (", x.dtype(), " and ", t->dtype(),
          ")");
    check(t->device() == x.device(), op, ": tensors are on different devices (", x.device(),
          " and ", t->device(), ")");
  }
}

// Pointer to an optional (contiguous) tensor's data, or null.
#ifdef ENGINE_WITH_CUDA
const void* raw_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
#endif
template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

Tensor scaled_residual(const Tensor& x, const Tensor& h, const Tensor& gamma, const Tensor& bias,
                       const Tensor& sample_scale) {
  profiler::Range range("scaled_residual");
  check_args(x, h, gamma, bias, sample_scale);
  const int64_t c = x.size(-1);
  const int64_t samples = sample_scale.defined() ? x.size(0) : 1;
  const int64_t rows = c * samples == 0 ? 0 : x.numel() / (c * samples);
  auto packed = [](const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); };
  const Tensor xc = packed(x), hc = packed(h), gc = packed(gamma), bc = packed(bias);
  const Tensor sc = packed(sample_scale);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::scaled_residual_forward(samples, rows, c, xc.raw_data(), hc.raw_data(),
                                           raw_or_null(bc), gc.raw_data(), raw_or_null(sc),
                                           y.raw_data(), y.dtype());
  else
#endif
    dispatch_float(x.dtype(), "scaled_residual", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::scaled_residual_forward<T>(samples, rows, c, xc.data<T>(), hc.data<T>(),
                                               data_or_null<T>(bc), gc.data<T>(),
                                               data_or_null<T>(sc), y.data<T>());
    });

  const bool gx = x.requires_grad(), gh = h.requires_grad(), gg = gamma.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  // h is read by the backward's one pass (gamma's gradient needs it; the others ride along).
  const Tensor keep_h = gh || gg || gb ? hc : Tensor();
  return record("scaled_residual", y, {x, h, gamma, bias}, [=](const Tensor& g) {
    std::vector<Tensor> grads{gx ? g : Tensor(), Tensor(), Tensor(), Tensor()};
    if (!(gh || gg || gb)) return grads;
    const Tensor gcont = g.contiguous();
    Tensor dh = gh ? Tensor::empty(gcont.shape(), g.dtype(), g.device()) : Tensor();
    Tensor sum_dy = Tensor::empty({c}, g.dtype(), g.device());
    Tensor sum_dyv = Tensor::empty({c}, g.dtype(), g.device());
    const Tensor& hh = keep_h;
#ifdef ENGINE_WITH_CUDA
    if (g.device().is_cuda())
      kernels::cuda::scaled_residual_backward(samples, rows, c, gcont.raw_data(), hh.raw_data(),
                                              raw_or_null(bc), gc.raw_data(), raw_or_null(sc),
                                              gh ? dh.raw_data() : nullptr, sum_dy.raw_data(),
                                              sum_dyv.raw_data(), g.dtype());
    else
#endif
      dispatch_float(g.dtype(), "scaled_residual_backward", [&](auto zero) {
        using T = decltype(zero);
        kernels::cpu::scaled_residual_backward<T>(
            samples, rows, c, gcont.data<T>(), hh.data<T>(), data_or_null<T>(bc), gc.data<T>(),
            data_or_null<T>(sc), gh ? dh.data<T>() : nullptr, sum_dy.data<T>(),
            sum_dyv.data<T>());
      });
    grads[1] = dh;
    if (gg) grads[2] = sum_dyv;
    if (gb) grads[3] = mul(gc, sum_dy);  // d/dbias of gamma * bias summed over the rows
    return grads;
  });
}

}  // namespace engine
