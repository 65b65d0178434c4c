// Pooling on NHWC activations: max_pool2d (ResNet's stem), adaptive_avg_pool2d and the global
// average pool before a classifier head. Kernels: kernels/cpu/pool.cpp; on CUDA
// kernels/cuda/pool.cu, ours or cuDNN's (ENGINE_CUDA_IMPL_POOL; cuDNN's max-pool backward
// needs the forward's input and output instead of the argmax, so each path saves its own).
#include "engine/ops/pool.h"

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "kernels/cpu/pool.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/impl.h"
#include "kernels/cuda/pool.h"
#endif

namespace engine {

namespace {

void check_nhwc(const Tensor& x, const char* op) {
  check(x.defined(), op, ": undefined input");
  check(x.dim() == 4, op, ": expected an NHWC tensor [N,H,W,C], got shape ", x.shape());
  check(x.numel() > 0, op, ": input ", x.shape(), " is empty");
}

#ifdef ENGINE_WITH_CUDA
// max_pool2d on CUDA from the checked geometry s and the contiguous input xc.
Tensor max_pool2d_cuda(const Tensor& x, const Tensor& xc, const kernels::cpu::PoolShape& s) {
  namespace kc = kernels::cuda;
  Tensor y = Tensor::empty({s.n, s.p, s.q, s.c}, x.dtype(), x.device());
  if (kc::impl(kc::Family::Pool) == kc::Impl::Vendor && kc::pool_vendor_takes(x.dtype())) {
    kc::max_pool2d_forward_vendor(s, xc.raw_data(), y.raw_data(), y.dtype());
    if (!x.requires_grad()) return y;
    return record("max_pool2d", y, {x}, [s, xc, yd = y.detach()](const Tensor& g) {
      Tensor gc = g.contiguous();
      Tensor dx = Tensor::empty({s.n, s.h, s.w, s.c}, g.dtype(), g.device());
      kc::max_pool2d_backward_vendor(s, xc.raw_data(), yd.raw_data(), gc.raw_data(),
                                     dx.raw_data(), dx.dtype());
      return std::vector<Tensor>{dx};
    });
  }
  Tensor idx = Tensor::empty({s.n, s.p, s.q, s.c}, DType::Int64, x.device());
  kc::max_pool2d_forward(s, xc.raw_data(), y.raw_data(), idx.data<int64_t>(), y.dtype());
  if (!x.requires_grad()) return y;
  return record("max_pool2d", y, {x}, [s, idx](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty({s.n, s.h, s.w, s.c}, g.dtype(), g.device());
    kc::max_pool2d_backward(s, gc.raw_data(), idx.data<int64_t>(), dx.raw_data(), dx.dtype());
    return std::vector<Tensor>{dx};
  });
}
#endif

}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  profiler::Range range("max_pool2d");
  check_nhwc(x, "max_pool2d");
  check(kernel >= 1 && stride >= 1 && padding >= 0, "max_pool2d: kernel (", kernel,
        ") and stride (", stride, ") must be positive and padding (", padding,
        ") non-negative");
  // As PyTorch: a window must always hold at least one real element.
  check(2 * padding <= kernel, "max_pool2d: padding ", padding,
        " must be at most half the kernel size ", kernel);
  kernels::cpu::PoolShape s{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0,
                            kernel, stride, padding};
  check(s.h + 2 * padding >= kernel && s.w + 2 * padding >= kernel, "max_pool2d: input ",
        x.shape(), " is smaller than the kernel ", kernel, " (padding ", padding, ")");
  s.p = (s.h + 2 * padding - kernel) / stride + 1;
  s.q = (s.w + 2 * padding - kernel) / stride + 1;

  Tensor xc = x.detach().contiguous();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) return max_pool2d_cuda(x, xc, s);
#endif
  Tensor y = Tensor::empty({s.n, s.p, s.q, s.c}, x.dtype(), x.device());
  // Index (h * W + w) of each output's argmax: all the backward needs (not the input).
  Tensor idx = Tensor::empty({s.n, s.p, s.q, s.c}, DType::Int64, x.device());
  dispatch_float(x.dtype(), "max_pool2d", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::max_pool2d_forward<T>(s, xc.data<T>(), y.data<T>(), idx.data<int64_t>());
  });
  if (!x.requires_grad()) return y;
  return record("max_pool2d", y, {x}, [s, idx](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty({s.n, s.h, s.w, s.c}, g.dtype(), g.device());
    dispatch_float(g.dtype(), "max_pool2d_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::max_pool2d_backward<T>(s, gc.data<T>(), idx.data<int64_t>(), dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

namespace {

// Shared by adaptive_avg_pool2d and global_avg_pool (a 1x1 adaptive pool); `name` labels
// errors and the autograd node. Returns [N, P, Q, C].
Tensor adaptive_avg(const Tensor& x, int64_t p, int64_t q, const char* name) {
  profiler::Range range(name);
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty({n, p, q, c}, x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  namespace kc = kernels::cuda;
  if (x.device().is_cuda()) {
    // cuDNN takes windows that tile the input (the global pool); the backward is always ours
    // (a gather of dy / window size, no saved tensors).
    if (kc::impl(kc::Family::Pool) == kc::Impl::Vendor &&
        kc::avg_pool_vendor_takes(h, w, p, q, x.dtype()))
      kc::avg_pool2d_forward_vendor(n, h, w, c, p, q, xc.raw_data(), y.raw_data(), y.dtype());
    else
      kc::adaptive_avg_pool2d_forward(n, h, w, c, p, q, xc.raw_data(), y.raw_data(), y.dtype());
  } else
#endif
    dispatch_float(x.dtype(), name, [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::adaptive_avg_pool2d_forward<T>(n, h, w, c, p, q, xc.data<T>(), y.data<T>());
    });
  return record(name, y, {x}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty({n, h, w, c}, g.dtype(), g.device());
#ifdef ENGINE_WITH_CUDA
    if (dx.device().is_cuda()) {
      kernels::cuda::adaptive_avg_pool2d_backward(n, h, w, c, p, q, gc.raw_data(), dx.raw_data(),
                                                  dx.dtype());
      return std::vector<Tensor>{dx};
    }
#endif
    dispatch_float(g.dtype(), name, [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::adaptive_avg_pool2d_backward<T>(n, h, w, c, p, q, gc.data<T>(),
                                                    dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_nhwc(x, "adaptive_avg_pool2d");
  check(out_h >= 1 && out_w >= 1, "adaptive_avg_pool2d: output size ", out_h, "x", out_w,
        " must be positive");
  return adaptive_avg(x, out_h, out_w, "adaptive_avg_pool2d");
}

Tensor global_avg_pool(const Tensor& x) {
  check_nhwc(x, "global_avg_pool");
  return adaptive_avg(x, 1, 1, "global_avg_pool").view({x.size(0), x.size(3)});
}

}  // namespace engine
