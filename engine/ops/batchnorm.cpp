// BatchNorm on NHWC activations: channels are the last dim, statistics run over all other
// dims (N, H, W; or N for a [N, C] input). Kernels: kernels/cpu/batchnorm.cpp; on CUDA
// kernels/cuda/batchnorm.cu, ours or cuDNN's (ENGINE_CUDA_IMPL_BATCHNORM), see batch_norm_cuda.
#include "engine/ops/batchnorm.h"

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

#ifdef ENGINE_WITH_CUDA
// batch_norm on CUDA, after batch_norm's checks: xc is the contiguous detached input; m rows
// of c channels. cuDNN (float32) needs a
// weight and a bias, and its training backward reads x and the weight whatever is wanted; its
// eval backward is ours (dy * weight * invstd, no statistics involved).
Tensor batch_norm_cuda(const Tensor& x, const Tensor& xc, const Tensor& weight, const Tensor& bias,
                       const Tensor& running_mean, const Tensor& running_var, bool training,
                       double momentum, double eps, bool relu, int64_t m, int64_t c) {
  namespace kc = kernels::cuda;
  const Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor bd = bias.defined() ? bias.detach().contiguous() : Tensor();
  auto ptr = [](const Tensor& t) -> void* { return t.defined() ? t.raw_data() : nullptr; };
  const DType t = x.dtype();
  const bool vendor =
      kc::impl(kc::Family::BatchNorm) == kc::Impl::Vendor && kc::batchnorm_vendor_takes(t) && m > 0;
  // cuDNN has no fused ReLU here: its BatchNorm, then engine::relu.
  if (vendor && relu)
    return engine::relu(batch_norm_cuda(x, xc, weight, bias, running_mean, running_var, training,
                                         momentum, eps, false, m, c));
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
                          ptr(bd), relu, y.raw_data(), t);
  } else {
    mean.copy_(running_mean);  // a snapshot: a later training step may update the buffers
    kc::batchnorm_invstd(c, running_var.raw_data(), eps, invstd.raw_data(), t);
    if (vendor)
      kc::batchnorm_forward_inference_vendor(n, h, 1, c, xc.raw_data(), wv.raw_data(),
                                             bv.raw_data(), running_mean.raw_data(),
                                             running_var.raw_data(), eps, y.raw_data(), t);
    else
      kc::batchnorm_forward(m, c, xc.raw_data(), mean.raw_data(), invstd.raw_data(), ptr(wd),
                            ptr(bd), relu, y.raw_data(), t);
  }

  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  if (!grad_enabled() || !(gx || gw || gb)) return y;
  const bool vendor_backward = vendor && training;
  // x: dweight, training-mode dx and a fused ReLU's mask; the weight: dx and the mask.
  Tensor saved_x = (vendor_backward || gw || (training && gx) || relu) ? xc : Tensor();
  Tensor saved_w = vendor_backward ? wv : (gx || relu ? wd : Tensor());
  Tensor saved_b = relu ? bd : Tensor();
  return record("batch_norm", y, {x, weight, bias}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    if (vendor_backward) {  // cuDNN writes all three
      Tensor dx = Tensor::empty(g.shape(), t, g.device());
      Tensor dw = Tensor::empty({c}, t, g.device()), db = Tensor::empty({c}, t, g.device());
      kc::batchnorm_backward_vendor(n, h, 1, c, saved_x.raw_data(), gc.raw_data(),
                                    saved_w.raw_data(), mean.raw_data(), invstd.raw_data(), eps,
                                    dx.raw_data(), dw.raw_data(), db.raw_data(), t);
      return std::vector<Tensor>{gx ? dx : Tensor(), gw ? dw : Tensor(), gb ? db : Tensor()};
    }
    Tensor dx = gx ? Tensor::empty(g.shape(), t, g.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty({c}, t, g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({c}, t, g.device()) : Tensor();
    kc::batchnorm_backward(m, c, ptr(saved_x), gc.raw_data(), mean.raw_data(), invstd.raw_data(),
                           ptr(saved_w), ptr(saved_b), relu, training, ptr(dx), ptr(dw), ptr(db),
                           t);
    return std::vector<Tensor>{dx, dw, db};
  });
}
#endif

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps, bool relu) {
  profiler::Range range("batch_norm");
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

  Tensor xc = x.detach().contiguous();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    return batch_norm_cuda(x, xc, weight, bias, running_mean, running_var, training, momentum,
                           eps, relu, m, c);
#endif
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
                                       ptr(wd), ptr(bd), relu, y.data<T>());
  });

  const bool gx = x.requires_grad();
  const bool gw = weight.defined() && weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  if (!grad_enabled() || !(gx || gw || gb)) return y;
  // x is needed by dweight, the training-mode dx and a fused ReLU's mask; the weight by dx and
  // the mask; the bias only by the mask.
  Tensor saved_x = (gw || (training && gx) || relu) ? xc : Tensor();
  Tensor saved_w = gx || relu ? wd : Tensor();
  Tensor saved_b = relu ? bd : Tensor();
  return record("batch_norm", y, {x, weight, bias}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = gx ? Tensor::empty(g.shape(), g.dtype(), g.device()) : Tensor();
    Tensor dw = gw ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({c}, g.dtype(), g.device()) : Tensor();
    dispatch_float(g.dtype(), "batch_norm_backward", [&](auto zero) {
      using T = decltype(zero);
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      kernels::cpu::batchnorm_backward<T>(m, c, ptr(saved_x), gc.data<T>(), mean.data<T>(),
                                          invstd.data<T>(), ptr(saved_w), ptr(saved_b), relu,
                                          training, ptr(dx), ptr(dw), ptr(db));
    });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace engine
