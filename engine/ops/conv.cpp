// engine/ops/conv.cpp — conv2d on NHWC activations: argument checks, kernel dispatch, backward.
//
// Two CPU kernels: the depthwise direct kernel (kernels/cpu/depthwise_conv2d.h) when
// groups == C == K, where a GEMM would have one channel of work per group; im2col + GEMM
// (kernels/cpu/conv2d.h) for everything else. Both take the same Conv2dShape.
// On CUDA the same split (kernels/cuda/depthwise_conv2d_ops.h, kernels/cuda/conv2d_ops.h), or
// cuDNN for either (ENGINE_CUDA_IMPL_DEPTHWISE / ENGINE_CUDA_IMPL_CONV); see *_cuda below.
#include "engine/ops/conv.h"

#include "engine/autograd.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/depthwise_conv2d.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/conv2d_ops.h"
#include "kernels/cuda/depthwise_conv2d_ops.h"
#include "kernels/cuda/impl.h"
#endif

namespace engine {

namespace {

using kernels::cpu::Conv2dShape;

bool is_depthwise(const Conv2dShape& sh) { return sh.groups == sh.c && sh.k == sh.c; }

// Validates x / weight / bias / params and returns the kernel geometry. Messages name the op,
// the offending shapes and the numbers that disagree, so a user can fix the call.
Conv2dShape check_and_shape(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const Conv2dParams& pr) {
  check(x.defined() && weight.defined(), "conv2d: input and weight must be defined tensors");
  check(weight.device() == x.device(), "conv2d: weight is on ", weight.device(),
        " but input is on ", x.device());
  check(x.dtype() == DType::Float32 || x.dtype() == DType::Float64,
        "conv2d: expected a float32 or float64 input, got ", x.dtype());
  check(weight.dtype() == x.dtype(), "conv2d: weight dtype ", weight.dtype(),
        " differs from input dtype ", x.dtype());
  check(x.dim() == 4, "conv2d: input must be 4-D NHWC [N, H, W, C], got shape ", x.shape());
  check(weight.dim() == 4, "conv2d: weight must be 4-D [K, R, S, C/groups], got shape ",
        weight.shape());
  check(pr.stride_h >= 1 && pr.stride_w >= 1, "conv2d: stride must be >= 1, got (", pr.stride_h,
        ", ", pr.stride_w, ")");
  check(pr.dilation_h >= 1 && pr.dilation_w >= 1, "conv2d: dilation must be >= 1, got (",
        pr.dilation_h, ", ", pr.dilation_w, ")");
  check(pr.pad_h >= 0 && pr.pad_w >= 0, "conv2d: padding must be >= 0, got (", pr.pad_h, ", ",
        pr.pad_w, ")");
  check(pr.groups >= 1, "conv2d: groups must be >= 1, got ", pr.groups);

  Conv2dShape sh;
  sh.n = x.size(0), sh.h = x.size(1), sh.w = x.size(2), sh.c = x.size(3);
  sh.k = weight.size(0), sh.r = weight.size(1), sh.s = weight.size(2);
  const int64_t cg = weight.size(3);
  check(sh.c % pr.groups == 0, "conv2d: groups=", pr.groups, " must divide the input's ", sh.c,
        " channels (input ", x.shape(), ")");
  check(sh.k % pr.groups == 0, "conv2d: groups=", pr.groups, " must divide the weight's ", sh.k,
        " output channels (weight ", weight.shape(), ")");
  if (pr.groups == 1)
    check(cg == sh.c, "conv2d: input ", x.shape(), " has ", sh.c, " channels but weight ",
          weight.shape(), " expects ", cg);
  else
    check(cg * pr.groups == sh.c, "conv2d: input ", x.shape(), " has ", sh.c,
          " channels but weight ", weight.shape(), " with groups=", pr.groups, " expects ",
          cg * pr.groups, " (", cg, " per group)");
  if (bias.defined()) {
    check(bias.device() == x.device(), "conv2d: bias is on ", bias.device(), " but input is on ",
          x.device());
    check(bias.dtype() == x.dtype(), "conv2d: bias dtype ", bias.dtype(),
          " differs from input dtype ", x.dtype());
    check(bias.dim() == 1 && bias.size(0) == sh.k, "conv2d: bias must be [", sh.k,
          "] (one per output channel of weight ", weight.shape(), "), got ", bias.shape());
  }

  sh.stride_h = pr.stride_h, sh.stride_w = pr.stride_w;
  sh.pad_h = pr.pad_h, sh.pad_w = pr.pad_w;
  sh.dil_h = pr.dilation_h, sh.dil_w = pr.dilation_w;
  sh.groups = pr.groups;
  // The dilated filter must fit inside the padded input, else there is no output pixel.
  const int64_t span_h = sh.dil_h * (sh.r - 1) + 1, span_w = sh.dil_w * (sh.s - 1) + 1;
  check(sh.r >= 1 && sh.s >= 1 && span_h <= sh.h + 2 * sh.pad_h && span_w <= sh.w + 2 * sh.pad_w,
        "conv2d: output would be empty: input ", x.shape(), " padded by (", sh.pad_h, ", ",
        sh.pad_w, ") is ", sh.h + 2 * sh.pad_h, "x", sh.w + 2 * sh.pad_w,
        ", smaller than the weight's ", sh.r, "x", sh.s, " filter dilated to ", span_h, "x",
        span_w);
  sh.p = (sh.h + 2 * sh.pad_h - span_h) / sh.stride_h + 1;
  sh.q = (sh.w + 2 * sh.pad_w - span_w) / sh.stride_w + 1;
  return sh;
}

// An empty batch or channel dim leaves nothing to compute; kernels assume every size >= 1.
bool has_work(const Conv2dShape& sh) {
  return sh.n > 0 && sh.h > 0 && sh.w > 0 && sh.c > 0 && sh.k > 0;
}

#ifdef ENGINE_WITH_CUDA
// cuDNN (float32 only) or ours, per family: Depthwise for groups == C == K, else Conv.
bool use_vendor(const Conv2dShape& sh, DType t) {
  namespace kc = kernels::cuda;
  const kc::Family f = is_depthwise(sh) ? kc::Family::Depthwise : kc::Family::Conv;
  return kc::impl(f) == kc::Impl::Vendor && kc::conv_vendor_takes(t);
}

void forward_cuda(const Conv2dShape& sh, const Tensor& x, const Tensor& w, const Tensor& b,
                  const Tensor& y) {
  namespace kc = kernels::cuda;
  const void* bp = b.defined() ? b.raw_data() : nullptr;
  // The vendor calls return false when cuDNN has no algorithm for the shape: ours runs then.
  if (use_vendor(sh, x.dtype()) &&
      kc::conv2d_forward_vendor(sh, x.raw_data(), w.raw_data(), bp, y.raw_data(), x.dtype()))
    return;
  if (is_depthwise(sh))
    kc::depthwise_conv2d_forward(sh, x.raw_data(), w.raw_data(), bp, y.raw_data(), x.dtype());
  else
    kc::conv2d_forward(sh, x.raw_data(), w.raw_data(), bp, y.raw_data(), x.dtype());
}

Tensor backward_data_cuda(const Conv2dShape& sh, const Tensor& dy, const Tensor& w) {
  namespace kc = kernels::cuda;
  Tensor dx = Tensor::empty({sh.n, sh.h, sh.w, sh.c}, dy.dtype(), dy.device());
  if (use_vendor(sh, dy.dtype()) &&
      kc::conv2d_backward_data_vendor(sh, dy.raw_data(), w.raw_data(), dx.raw_data(), dx.dtype()))
    return dx;
  if (is_depthwise(sh))
    kc::depthwise_conv2d_backward_data(sh, dy.raw_data(), w.raw_data(), dx.raw_data(), dx.dtype());
  else
    kc::conv2d_backward_data(sh, dy.raw_data(), w.raw_data(), dx.raw_data(), dx.dtype());
  return dx;
}

Tensor backward_weight_cuda(const Conv2dShape& sh, const Shape& w_shape, const Tensor& x,
                            const Tensor& dy) {
  namespace kc = kernels::cuda;
  Tensor dw = Tensor::empty(w_shape, dy.dtype(), dy.device());
  if (use_vendor(sh, dy.dtype()) &&
      kc::conv2d_backward_weight_vendor(sh, x.raw_data(), dy.raw_data(), dw.raw_data(),
                                        dw.dtype()))
    return dw;
  if (is_depthwise(sh))
    kc::depthwise_conv2d_backward_weight(sh, x.raw_data(), dy.raw_data(), dw.raw_data(),
                                         dw.dtype());
  else
    kc::conv2d_backward_weight(sh, x.raw_data(), dy.raw_data(), dw.raw_data(), dw.dtype());
  return dw;
}
#endif

void forward_cpu(const Conv2dShape& sh, const Tensor& x, const Tensor& w, const Tensor& b,
                 const Tensor& y) {
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) return forward_cuda(sh, x, w, b, y);
#endif
  dispatch_float(x.dtype(), "conv2d", [&](auto zero) {
    using T = decltype(zero);
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    if (is_depthwise(sh))
      kernels::cpu::depthwise_conv2d_forward<T>(sh, x.data<T>(), w.data<T>(), bp, y.data<T>());
    else
      kernels::cpu::conv2d_forward<T>(sh, x.data<T>(), w.data<T>(), bp, y.data<T>());
  });
}

Tensor backward_data_cpu(const Conv2dShape& sh, const Tensor& dy, const Tensor& w) {
#ifdef ENGINE_WITH_CUDA
  if (dy.device().is_cuda()) return backward_data_cuda(sh, dy, w);
#endif
  Tensor dx = Tensor::empty({sh.n, sh.h, sh.w, sh.c}, dy.dtype(), dy.device());
  dispatch_float(dy.dtype(), "conv2d backward", [&](auto zero) {
    using T = decltype(zero);
    if (is_depthwise(sh))
      kernels::cpu::depthwise_conv2d_backward_data<T>(sh, dy.data<T>(), w.data<T>(), dx.data<T>());
    else
      kernels::cpu::conv2d_backward_data<T>(sh, dy.data<T>(), w.data<T>(), dx.data<T>());
  });
  return dx;
}

Tensor backward_weight_cpu(const Conv2dShape& sh, const Shape& w_shape, const Tensor& x,
                           const Tensor& dy) {
#ifdef ENGINE_WITH_CUDA
  if (dy.device().is_cuda()) return backward_weight_cuda(sh, w_shape, x, dy);
#endif
  Tensor dw = Tensor::empty(w_shape, dy.dtype(), dy.device());
  dispatch_float(dy.dtype(), "conv2d backward", [&](auto zero) {
    using T = decltype(zero);
    if (is_depthwise(sh))
      kernels::cpu::depthwise_conv2d_backward_weight<T>(sh, x.data<T>(), dy.data<T>(),
                                                        dw.data<T>());
    else
      kernels::cpu::conv2d_backward_weight<T>(sh, x.data<T>(), dy.data<T>(), dw.data<T>());
  });
  return dw;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params) {
  const Conv2dShape sh = check_and_shape(x, weight, bias, params);
  // Named apart in profiles and error messages: the two run different kernels.
  const char* name = is_depthwise(sh) ? "depthwise_conv2d" : "conv2d";
  profiler::Range range(name);
  Tensor xc = x.detach().contiguous(), wc = weight.detach().contiguous();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty({sh.n, sh.p, sh.q, sh.k}, x.dtype(), x.device());
  if (has_work(sh)) {
    forward_cpu(sh, xc, wc, bc, y);
  } else if (bc.defined()) {
    y.copy_(bc.expand(y.shape()));
  } else {
    y.fill_(0);
  }

  const bool gx = x.requires_grad(), gw = weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  // dx needs only the weight and dw only the input: keep just those (detached, no cycles).
  Tensor keep_x = gw ? xc : Tensor(), keep_w = gx ? wc : Tensor();
  const Shape x_shape = x.shape(), w_shape = weight.shape();
  return record(name, y, {x, weight, bias}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();  // dy [N, P, Q, K]
    Tensor dx, dw, db;
    if (gx)
      dx = has_work(sh) ? backward_data_cpu(sh, gc, keep_w)
                        : Tensor::zeros(x_shape, g.dtype(), g.device());
    if (gw)
      dw = has_work(sh) ? backward_weight_cpu(sh, w_shape, keep_x, gc)
                        : Tensor::zeros(w_shape, g.dtype(), g.device());
    if (gb) db = sum(gc, {0, 1, 2});  // the bias was added at every (n, p, q)
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace engine
