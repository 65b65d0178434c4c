// BatchNorm on NHWC activations: channels are the last dim, statistics run over all other
// dims (N, H, W; or N for a [N, C] input). Kernels: kernels/cpu/batchnorm.cpp; on CUDA
// kernels/cuda/batchnorm.cu, ours or cuDNN's (ENGINE_CUDA_IMPL_BATCHNORM), see batch_norm_cuda.
#include "engine/ops/batchnorm.h"

#include <utility>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"
#include "kernels/cpu/batchnorm.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/impl.h"
#endif

namespace engine {

namespace {

// A per-channel parameter or buffer must be [C], of x's dtype and device. Running stats are
// written in place, so they must also be contiguous.
void check_channel_tensor(const Tensor& t, const char* what, const Tensor& x, bool in_place) {
  if (!t.defined()) return;
  const int64_t c = x.size(-1);
  check(t.dim() == 1 && t.size(0) == c, "batch_norm: ", what, " has shape ", t.shape(),
        " but input ", x.shape(), " has ", c, " channels (last dim); expected [", c, "]");
  check(t.dtype() == x.dtype(), "batch_norm: ", what, " is ", t.dtype(), " but input is ",
        x.dtype());
  check(t.device() == x.device(), "batch_norm: ", what, " is on ", t.device(),
        " but input is on ", x.device());
  check(!in_place || t.is_contiguous(), "batch_norm: ", what,
        " is updated in place and must be contiguous");
}

// Which of batch_norm's inputs want a gradient, and the shape of its autograd node: inputs
// {x, weight, bias}, or {x, weight, bias, residual} for batch_norm_add_relu, whose residual's
// gradient is the ReLU's output gradient itself. Holds no tensor (the backward captures it).
struct Grads {
  bool x, w, b, r, with_residual;
  Grads(const Tensor& x_, const Tensor& weight, const Tensor& bias, const Tensor& residual)
      : x(x_.requires_grad()),
        w(weight.defined() && weight.requires_grad()),
        b(bias.defined() && bias.requires_grad()),
        r(residual.defined() && residual.requires_grad()),
        with_residual(residual.defined()) {}
  bool any() const { return grad_enabled() && (x || w || b || r); }
  const char* name() const { return with_residual ? "batch_norm_add_relu" : "batch_norm"; }
  static std::vector<Tensor> inputs(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                    const Tensor& residual) {
    if (residual.defined()) return {x, weight, bias, residual};
    return {x, weight, bias};
  }
  // g: the gradient at the BatchNorm's output (after the ReLU's mask, with a residual).
  std::vector<Tensor> outputs(Tensor dx, Tensor dw, Tensor db, const Tensor& g) const {
    std::vector<Tensor> out{std::move(dx), std::move(dw), std::move(db)};
    if (with_residual) out.push_back(r ? g : Tensor());
    return out;
  }
};

#ifdef ENGINE_WITH_CUDA
// batch_norm on CUDA, after batch_norm's checks: xc is the contiguous detached input; m rows
// of c channels. cuDNN (float32) needs a
// weight and a bias, and its training backward reads x and the weight whatever is wanted; its
// eval backward is ours (dy * weight * invstd, no statistics involved).
Tensor batch_norm_cuda(const Tensor& x, const Tensor& xc, const Tensor& residual,
                       const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, bool training, double momentum, double eps,
                       bool relu, int64_t m, int64_t c) {
  namespace kc = kernels::cuda;
  const Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  auto ptr = [](const Tensor& t) -> void* { return t.defined() ? t.raw_data() : nullptr; };
  const DType t = x.dtype();
  const bool vendor =
      kc::impl(kc::Family::BatchNorm) == kc::Impl::Vendor && kc::batchnorm_vendor_takes(t) && m > 0;
  // cuDNN has no fused ReLU or residual here: its BatchNorm, then engine::relu / add_relu.
  if (vendor && (relu || residual.defined())) {
    Tensor bn = batch_norm_cuda(x, xc, Tensor(), weight, bias, running_mean, running_var,
                                training, momentum, eps, false, m, c);
    return residual.defined() ? engine::add_relu(bn, residual) : engine::relu(bn);
  }
  const Tensor rc = residual.defined() ? residual.detach().contiguous() : Tensor();
  // cuDNN's NHWC descriptor: [N, H, 1, C] with H the product of the middle dims.
  const int64_t n = x.size(0), h = m / std::max<int64_t>(n, 1);
  Tensor wv = wd, bv = bd;
  if (vendor && !wv.defined()) wv = Tensor::ones({c}, t, x.device());
  if (vendor && !bv.defined()) bv = Tensor::zeros({c}, t, x.device());

  Tensor y = Tensor::empty(x.shape(), t, x.device());
  Tensor mean = Tensor::empty({c}, t, x.device());
  Tensor invstd = Tensor::empty({c}, t, x.device());
  if (training && vendor) {
    kc::batchnorm_forward_training_vendor(n, h, 1, c, xc.raw_data(), wv.raw_data(), bv.raw_data(),
                                          momentum, eps, ptr(running_mean), ptr(running_var),
                                          y.raw_data(), mean.raw_data(), invstd.raw_data(), t);
  } else if (training) {
    kc::batchnorm_training_stats(m, c, xc.raw_data(), eps, momentum, mean.raw_data(),
                                 invstd.raw_data(), ptr(running_mean), ptr(running_var), t);
    kc::batchnorm_forward(m, c, xc.raw_data(), mean.raw_data(), invstd.raw_data(), ptr(wd),
                          ptr(bd), ptr(rc), relu, y.raw_data(), t);
  } else {
    mean.copy_(running_mean);  // a snapshot: a later training step may update the buffers
    kc::batchnorm_invstd(c, running_var.raw_data(), eps, invstd.raw_data(), t);
    if (vendor)
      kc::batchnorm_forward_inference_vendor(n, h, 1, c, xc.raw_data(), wv.raw_data(),
                                             bv.raw_data(), running_mean.raw_data(),
                                             running_var.raw_data(), eps, y.raw_data(), t);
    else
      kc::batchnorm_forward(m, c, xc.raw_data(), mean.raw_data(), invstd.raw_data(), ptr(wd),
                            ptr(bd), ptr(rc), relu, y.raw_data(), t);
  }

  const Grads grads(x, weight, bias, residual);
  if (!grads.any()) return y;
  const bool vendor_backward = vendor && training;
  const bool mask_from_x = relu && !residual.defined();  // else the ReLU's mask is y > 0
  // x: dweight, training-mode dx and a fused ReLU's mask; the weight: dx and the mask.
  Tensor saved_x =
      (vendor_backward || grads.w || (training && grads.x) || mask_from_x) ? xc : Tensor();
  Tensor saved_w = vendor_backward ? wv : (grads.x || mask_from_x ? wd : Tensor());
  Tensor saved_b = mask_from_x ? bd : Tensor();
  Tensor saved_y = residual.defined() ? y.detach() : Tensor();
  return record(grads.name(), y, Grads::inputs(x, weight, bias, residual),
                [=](const Tensor& g_out) {
    // With a residual: the ReLU's backward first (from the output), which is also the
    // residual's gradient; the BatchNorm's backward then runs without a mask.
    const Tensor g = saved_y.defined() ? relu_backward(saved_y, g_out) : g_out;
    const bool gx = grads.x, gw = grads.w, gb = grads.b;
    Tensor gc = g.contiguous();
    if (vendor_backward) {  // cuDNN writes all three
      Tensor dx = Tensor::empty(g.shape(), t, g.device());
      Tensor dw = Tensor::empty({c}, t, g.device()), db = Tensor::empty({c}, t, g.device());
      kc::batchnorm_backward_vendor(n, h, 1, c, saved_x.raw_data(), gc.raw_data(),
                                    saved_w.raw_data(), mean.raw_data(), invstd.raw_data(), eps,
                                    dx.raw_data(), dw.raw_data(), db.raw_data(), t);
      return grads.outputs(gx ? dx : Tensor(), gw ? dw : Tensor(), gb ? db : Tensor(), g);
    }
    Tensor dx = gx ? Tensor::empty(g.shape(), t, g.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty({c}, t, g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({c}, t, g.device()) : Tensor();
    kc::batchnorm_backward(m, c, ptr(saved_x), gc.raw_data(), mean.raw_data(), invstd.raw_data(),
                           ptr(saved_w), ptr(saved_b), mask_from_x, training, ptr(dx), ptr(dw),
                           ptr(db), t);
    return grads.outputs(dx, dw, db, g);
  });
}
#endif

// batch_norm and batch_norm_add_relu (residual defined, relu true).
Tensor batch_norm_impl(const Tensor& x, const Tensor& residual, const Tensor& weight,
                       const Tensor& bias, const Tensor& running_mean, const Tensor& running_var,
                       bool training, double momentum, double eps, bool relu) {
  check(x.defined(), "batch_norm: undefined input");
  check(x.dim() >= 2, "batch_norm: expected an NHWC tensor [N,H,W,C] (or [N,C]), got shape ",
        x.shape());
  check(eps >= 0, "batch_norm: eps must be non-negative, got ", eps);
  check_channel_tensor(weight, "weight", x, false);
  check_channel_tensor(bias, "bias", x, false);
  check_channel_tensor(running_mean, "running_mean", x, true);
  check_channel_tensor(running_var, "running_var", x, true);
  check(running_mean.defined() == running_var.defined(),
        "batch_norm: pass both running_mean and running_var, or neither");
  const int64_t c = x.size(-1), m = x.numel() / std::max<int64_t>(c, 1);
  check(training || running_mean.defined(),
        "batch_norm: eval mode needs running_mean and running_var");
  // As PyTorch: one value per channel has no variance to normalise by (or to unbias).
  check(!training || m > 1, "batch_norm: expected more than 1 value per channel when training, "
        "got input shape ", x.shape());

  if (residual.defined()) {
    check(residual.shape() == x.shape(), "batch_norm_add_relu: residual has shape ",
          residual.shape(), " but input has shape ", x.shape());
    check(residual.dtype() == x.dtype(), "batch_norm_add_relu: residual is ", residual.dtype(),
          " but input is ", x.dtype());
    check(residual.device() == x.device(), "batch_norm_add_relu: residual is on ",
          residual.device(), " but input is on ", x.device());
  }

  Tensor xc = x.detach().contiguous();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    return batch_norm_cuda(x, xc, residual, weight, bias, running_mean, running_var, training,
                           momentum, eps, relu, m, c);
#endif
  const Tensor rc = residual.defined() ? residual.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // mean / invstd used to normalise: the batch's in training, the running stats' in eval.
  Tensor mean = Tensor::empty({c}, x.dtype(), x.device());
  Tensor invstd = Tensor::empty({c}, x.dtype(), x.device());
  // The kernels index weight/bias as plain arrays.
  Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  dispatch_float(x.dtype(), "batch_norm", [&](auto zero) {
    using T = decltype(zero);
    auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    if (training) {
      // The running statistics in place and outside autograd, as PyTorch's buffers.
      kernels::cpu::batchnorm_training_stats<T>(m, c, xc.data<T>(), eps, momentum,
                                                mean.data<T>(), invstd.data<T>(),
                                                ptr(running_mean), ptr(running_var));
    } else {
      mean.copy_(running_mean);  // a snapshot: a later training step may update the buffers
      kernels::cpu::batchnorm_invstd<T>(c, running_var.data<T>(), eps, invstd.data<T>());
    }
    kernels::cpu::batchnorm_forward<T>(m, c, xc.data<T>(), mean.data<T>(), invstd.data<T>(),
                                       ptr(wd), ptr(bd), ptr(rc), relu, y.data<T>());
  });

  const Grads grads(x, weight, bias, residual);
  if (!grads.any()) return y;
  const bool mask_from_x = relu && !residual.defined();  // else the ReLU's mask is y > 0
  // x is needed by dweight, the training-mode dx and a fused ReLU's mask; the weight by dx and
  // the mask; the bias only by the mask. With a residual the mask is read from the output.
  Tensor saved_x = (grads.w || (training && grads.x) || mask_from_x) ? xc : Tensor();
  Tensor saved_w = grads.x || mask_from_x ? wd : Tensor();
  Tensor saved_b = mask_from_x ? bd : Tensor();
  Tensor saved_y = residual.defined() ? y.detach() : Tensor();
  return record(grads.name(), y, Grads::inputs(x, weight, bias, residual),
                [=](const Tensor& g_out) {
    // With a residual: the ReLU's backward first, from the output (it is also the residual's
    // gradient); the BatchNorm's backward then runs without a mask.
    const Tensor g = saved_y.defined() ? relu_backward(saved_y, g_out) : g_out;
    Tensor gc = g.contiguous();
    Tensor dx = grads.x ? Tensor::empty(g.shape(), g.dtype(), g.device()) : Tensor();
    Tensor dw = grads.w ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    Tensor db = grads.b ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    dispatch_float(g.dtype(), "batch_norm_backward", [&](auto zero) {
      using T = decltype(zero);
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      kernels::cpu::batchnorm_backward<T>(m, c, ptr(saved_x), gc.data<T>(), mean.data<T>(),
                                          invstd.data<T>(), ptr(saved_w), ptr(saved_b),
                                          mask_from_x, training, ptr(dx), ptr(dw), ptr(db));
    });
    return grads.outputs(dx, dw, db, g);
  });
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps, bool relu) {
  profiler::Range range("batch_norm");
  return batch_norm_impl(x, Tensor(), weight, bias, running_mean, running_var, training,
                         momentum, eps, relu);
}

Tensor batch_norm_add_relu(const Tensor& x, const Tensor& residual, const Tensor& weight,
                           const Tensor& bias, const Tensor& running_mean,
                           const Tensor& running_var, bool training, double momentum,
                           double eps) {
  profiler::Range range("batch_norm_add_relu");
  check(residual.defined(), "batch_norm_add_relu: undefined residual");
  return batch_norm_impl(x, residual, weight, bias, running_mean, running_var, training,
                         momentum, eps, /*relu=*/true);
}

}  // namespace engine
