#include "engine/ops/reduce.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"
#include "kernels/cpu/reduce.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/reduce.h"
#endif

namespace engine {

namespace {

// A reduction plan: the input arranged as a contiguous [outer, r, inner] array.
struct Plan {
  std::vector<bool> reduced;  // per input dim
  Shape out_keep;             // output shape with keepdim (reduced dims are 1)
  Shape out_shape;            // output shape as requested
  std::vector<int64_t> perm;  // permutation applied to the input (identity if none)
  int64_t outer = 1, r = 1, inner = 1;
};

Plan make_plan(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  Plan p;
  const int64_t nd = x.dim();
  p.reduced.assign(nd, dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, nd, op);
    check(!p.reduced[w] || dims.empty(), op, ": dimension ", d, " listed twice");
    p.reduced[w] = true;
  }
  for (int64_t d = 0; d < nd; ++d) {
    p.out_keep.push_back(p.reduced[d] ? 1 : x.shape()[d]);
    if (!p.reduced[d] || keepdim) p.out_shape.push_back(p.out_keep.back());
  }
  // Adjacent reduced dims reduce in place; otherwise move kept dims first, reduced last.
  int64_t first = nd, last = -1;
  for (int64_t d = 0; d < nd; ++d)
    if (p.reduced[d]) first = std::min(first, d), last = std::max(last, d);
  bool block = true;
  for (int64_t d = first; d <= last; ++d) block = block && p.reduced[d];
  if (block) {
    for (int64_t d = 0; d < nd; ++d) p.perm.push_back(d);
    for (int64_t d = 0; d < nd; ++d) {
      int64_t s = x.shape()[d];
      if (d < first) p.outer *= s;
      else if (d > last) p.inner *= s;
      else p.r *= s;
    }
  } else {
    for (int64_t d = 0; d < nd; ++d)
      if (!p.reduced[d]) p.perm.push_back(d), p.outer *= x.shape()[d];
    for (int64_t d = 0; d < nd; ++d)
      if (p.reduced[d]) p.perm.push_back(d), p.r *= x.shape()[d];
  }
  return p;
}

Tensor arranged(const Tensor& x, const Plan& p) {
  return x.detach().permute(p.perm).contiguous();
}

Tensor sum_forward(const Tensor& x, const Plan& p) {
  Tensor xc = arranged(x, p);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) {
    kernels::cuda::reduce_sum(p.outer, p.r, p.inner, xc.raw_data(), out.raw_data(), x.dtype());
    return out;
  }
#endif
  dispatch_float(x.dtype(), "sum", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::reduce_sum<T>(p.outer, p.r, p.inner, xc.data<T>(), out.data<T>());
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  profiler::Range range("sum");
  Plan p = make_plan(x, dims, keepdim, "sum");
  Tensor out = sum_forward(x, p);
  Shape in_shape = x.shape(), keep = p.out_keep;
  return record("sum", out, {x}, [in_shape, keep](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep).expand(in_shape).contiguous()};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  profiler::Range range("mean");
  Plan p = make_plan(x, dims, keepdim, "mean");
  check(p.r > 0, "mean: reducing over an empty dimension of shape ", x.shape());
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(p.r));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  profiler::Range range("max");
  Plan p = make_plan(x, dims, keepdim, "max");
  check(p.r > 0, "max: reducing over an empty dimension of shape ", x.shape());
  Tensor xc = arranged(x, p);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  Tensor idx = Tensor::empty({p.outer * p.inner}, DType::Int64, x.device());
  if (x.device().is_cuda()) {  // (a CPU-only build cannot make CUDA tensors)
#ifdef ENGINE_WITH_CUDA
    kernels::cuda::reduce_max(p.outer, p.r, p.inner, xc.raw_data(), out.raw_data(),
                              idx.data<int64_t>(), x.dtype());
#endif
  } else {
    dispatch_float(x.dtype(), "max", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::reduce_max<T>(p.outer, p.r, p.inner, xc.data<T>(), out.data<T>(),
                                  idx.data<int64_t>());
    });
  }
  Shape arranged_shape = xc.shape();
  std::vector<int64_t> inverse(p.perm.size());
  for (size_t i = 0; i < p.perm.size(); ++i) inverse[p.perm[i]] = static_cast<int64_t>(i);
  return record("max", out, {x}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(arranged_shape, g.dtype(), g.device());
#ifdef ENGINE_WITH_CUDA
    if (g.device().is_cuda()) {
      kernels::cuda::reduce_max_backward(p.outer, p.r, p.inner, gc.raw_data(),
                                         idx.data<int64_t>(), dx.raw_data(), g.dtype());
      return std::vector<Tensor>{dx.permute(inverse).contiguous()};
    }
#endif
    dispatch_float(g.dtype(), "max_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::reduce_max_backward<T>(p.outer, p.r, p.inner, gc.data<T>(),
                                           idx.data<int64_t>(), dx.data<T>());
    });
    return std::vector<Tensor>{dx.permute(inverse).contiguous()};
  });
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  profiler::Range range("var");
  Plan p = make_plan(x, dims, keepdim, "var");
  check(p.r - correction > 0, "var: ", p.r, " elements with correction ", correction,
        " leave no degrees of freedom (shape ", x.shape(), ")");
  Tensor centered = sub(x, mean(x, dims, /*keepdim=*/true));
  return mul(sum(mul(centered, centered), dims, keepdim),
             1.0 / static_cast<double>(p.r - correction));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  profiler::Range range("sum_to");
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  check(lead >= 0, "sum_to: cannot sum shape ", x.shape(), " to larger shape ", shape);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) dims.push_back(d);
    else if (shape[d - lead] == 1 && x.shape()[d] != 1) dims.push_back(d);
    else check(shape[d - lead] == x.shape()[d], "sum_to: shape ", x.shape(),
               " does not broadcast from ", shape);
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, /*keepdim=*/true).reshape(shape);
}

}  // namespace engine
