// engine/ops/softmax.cpp — softmax / log_softmax along any dim (kernels/cpu/softmax.h).
//
// The input is made contiguous and seen as [outer, n, inner] around `dim`, so softmax over
// the channel dim of an NHWC tensor is a run over contiguous rows and softmax over H walks
// whole W*C rows at a time; nothing is permuted. Backward uses the saved output only.
#include "engine/ops/softmax.h"

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "kernels/cpu/softmax.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/softmax.h"
#endif

namespace engine {

namespace {

Tensor softmax_backward(const Tensor& y, const Tensor& g, const Around& a, bool log) {
  Tensor gc = g.contiguous();
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
#ifdef ENGINE_WITH_CUDA
  if (y.device().is_cuda()) {
    kernels::cuda::softmax_backward(a.outer, a.n, a.inner, y.raw_data(), gc.raw_data(),
                                    dx.raw_data(), log, dx.dtype());
    return dx;
  }
#endif
  dispatch_float(y.dtype(), log ? "log_softmax_backward" : "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::softmax_backward<T>(a.outer, a.n, a.inner, y.data<T>(), gc.data<T>(),
                                      dx.data<T>(), log);
  });
  return dx;
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  profiler::Range range(log ? "log_softmax" : "softmax");
  const char* name = log ? "log_softmax" : "softmax";
  check(x.defined(), name, ": undefined tensor argument");
  // A 0-d tensor is a softmax over one element, as in PyTorch.
  const int64_t d = x.dim() == 0 ? 0 : wrap_dim(dim, x.dim(), name);
  const Around a = x.dim() == 0 ? Around{} : around_dim(x.shape(), d);
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::softmax_forward(a.outer, a.n, a.inner, xc.raw_data(), y.raw_data(), log,
                                   y.dtype());
  else
#endif
    dispatch_float(x.dtype(), name, [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::softmax_forward<T>(a.outer, a.n, a.inner, xc.data<T>(), y.data<T>(), log);
    });
  return record(name, y, {x}, [a, log, y_ = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{softmax_backward(y_, g, a, log)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace engine
