// engine/ops/indexing.cpp — cat, stack, index_select, gather (kernels/cpu/indexing.h).
//
// Each op sees its contiguous operands as [outer, n, inner] around `dim`, so no data is
// permuted. Backwards: cat hands each input its slice of the gradient (a view, no copy);
// index_select and gather scatter-ADD the gradient back, because an index may repeat and then
// one input element feeds several outputs. stack is unsqueeze + cat.
// On CUDA (kernels/cuda/indexing.h) the index is copied to the host once to check its range
// (one synchronisation, so a bad index is an error naming it, never a fault on the device);
// index_select's backward builds the index's inverse there too, so the GPU gathers instead
// of scattering with atomics.
#include "engine/ops/indexing.h"

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "kernels/cpu/indexing.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/indexing.h"
#endif

namespace engine {

namespace {

// Like dispatch_float, plus int64 (these ops also move indices and labels around).
template <class F>
void dispatch_all(DType t, const char* op, F&& f) {
  if (t == DType::Int64) return f(int64_t{});
  dispatch_float(t, op, f);
}

void check_index(const Tensor& index, const Tensor& x, const char* op) {
  check(index.defined(), op, ": undefined index tensor");
  check(index.dtype() == DType::Int64, op, ": index must be an int64 tensor, got ", index.dtype());
  check(index.device() == x.device(), op, ": index is on ", index.device(), " but input is on ",
        x.device());
}

// Every index must lie in [0, size): report the first that does not, with its position.
// Returns the index on the host (itself when it is there already).
Tensor check_range(const Tensor& index, int64_t size, int64_t dim, const Tensor& x,
                   const char* op) {
  Tensor host = index.device().is_cpu() ? index : index.to(Device::cpu());
  const int64_t* p = host.data<int64_t>();
  for (int64_t j = 0; j < index.numel(); ++j)
    check(p[j] >= 0 && p[j] < size, op, ": index ", p[j], " (at position ", j,
          ") is out of range for dimension ", dim, " of size ", size, " (input shape ", x.shape(),
          ")");
  return host;
}

#ifdef ENGINE_WITH_CUDA
// The inverse of a 1-D index [m] over n rows, as CSR in one int64 tensor on `device`:
// [row_start (n + 1) | by_row (m)], by_row listing the j with index[j] == r in ascending j.
Tensor inverse_index(const Tensor& host_index, int64_t n, Device device) {
  const int64_t m = host_index.numel();
  const int64_t* p = host_index.data<int64_t>();
  std::vector<int64_t> csr(n + 1 + m, 0);
  for (int64_t j = 0; j < m; ++j) ++csr[p[j] + 1];
  for (int64_t r = 0; r < n; ++r) csr[r + 1] += csr[r];
  std::vector<int64_t> fill(csr.begin(), csr.begin() + n);
  for (int64_t j = 0; j < m; ++j) csr[n + 1 + fill[p[j]]++] = j;
  return Tensor::from_vector(csr, {n + 1 + m}, device);
}
#endif

}  // namespace

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  profiler::Range range("cat");
  check(!xs.empty(), "cat: expected at least one tensor");
  for (const Tensor& x : xs) check(x.defined(), "cat: undefined tensor in the list");
  const Tensor& x0 = xs[0];
  check(x0.dim() > 0, "cat: cannot concatenate 0-d tensors; unsqueeze or use stack()");
  const int64_t d = wrap_dim(dim, x0.dim(), "cat");
  Shape out_shape = x0.shape();
  out_shape[d] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    check(x.dtype() == x0.dtype(), "cat: tensor ", k, " is ", x.dtype(), " but tensor 0 is ",
          x0.dtype());
    check(x.device() == x0.device(), "cat: tensor ", k, " is on ", x.device(),
          " but tensor 0 is on ", x0.device());
    bool same = x.dim() == x0.dim();
    for (int64_t i = 0; same && i < x0.dim(); ++i) same = i == d || x.size(i) == x0.size(i);
    check(same, "cat: tensor ", k, " has shape ", x.shape(), " but tensor 0 has shape ", x0.shape(),
          "; all sizes except dimension ", d, " must match");
    out_shape[d] += x.size(d);
  }

  Tensor out = Tensor::empty(out_shape, x0.dtype(), x0.device());
  const Around a = around_dim(out_shape, d);
  std::vector<int64_t> offsets;  // where each input starts along d, for the backward
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    Tensor xc = x.detach().contiguous();
#ifdef ENGINE_WITH_CUDA
    if (out.device().is_cuda()) {
      kernels::cuda::cat_copy(a.outer, x.size(d), a.inner, xc.raw_data(), a.n, offset,
                              out.raw_data(), out.dtype());
      offsets.push_back(offset);
      offset += x.size(d);
      continue;
    }
#endif
    dispatch_all(x0.dtype(), "cat", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::cat_copy<T>(a.outer, x.size(d), a.inner, xc.data<T>(), a.n, offset,
                                out.data<T>());
    });
    offsets.push_back(offset);
    offset += x.size(d);
  }
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(d));
  return record("cat", out, xs, [d, offsets, sizes](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t k = 0; k < sizes.size(); ++k)
      grads.push_back(g.slice(d, offsets[k], offsets[k] + sizes[k]));
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  check(!xs.empty(), "stack: expected at least one tensor");
  for (size_t k = 0; k < xs.size(); ++k) {
    check(xs[k].defined(), "stack: undefined tensor in the list");
    check(xs[k].shape() == xs[0].shape(), "stack: tensor ", k, " has shape ", xs[k].shape(),
          " but tensor 0 has shape ", xs[0].shape(), "; stacked tensors must have equal shapes");
  }
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& x : xs) us.push_back(x.unsqueeze(d));
  return cat(us, d);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  profiler::Range range("index_select");
  check(x.defined(), "index_select: undefined tensor argument");
  check_index(index, x, "index_select");
  check(x.dim() > 0, "index_select: the input must have at least one dimension");
  check(index.dim() <= 1, "index_select: index must be 1-D, got shape ", index.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Tensor idx = index.contiguous();
  Tensor host_idx = check_range(idx, x.size(d), d, x, "index_select");

  const Around a = around_dim(x.shape(), d);
  const int64_t m = idx.numel();
  Shape out_shape = x.shape();
  out_shape[d] = m;
  Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  Shape in_shape = x.shape();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) {
    kernels::cuda::index_select_forward(a.outer, a.n, a.inner, xc.raw_data(), m,
                                        idx.data<int64_t>(), out.raw_data(), out.dtype());
    return record("index_select", out, {x}, [a, m, host_idx, in_shape](const Tensor& g) {
      Tensor gc = g.contiguous();
      Tensor dx = Tensor::empty(in_shape, g.dtype(), g.device());
      Tensor inv = inverse_index(host_idx, a.n, g.device());
      const int64_t* row_start = inv.data<int64_t>();
      kernels::cuda::index_select_backward(a.outer, a.n, a.inner, m, row_start,
                                           row_start + a.n + 1, gc.raw_data(), dx.raw_data(),
                                           dx.dtype());
      return std::vector<Tensor>{dx};
    });
  }
#endif
  dispatch_all(x.dtype(), "index_select", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::index_select_forward<T>(a.outer, a.n, a.inner, xc.data<T>(), m,
                                          idx.data<int64_t>(), out.data<T>());
  });
  return record("index_select", out, {x}, [a, m, idx, in_shape](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(in_shape, g.dtype(), g.device());
    dispatch_float(g.dtype(), "index_select_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::index_select_backward<T>(a.outer, a.n, a.inner, m, idx.data<int64_t>(),
                                             gc.data<T>(), dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  profiler::Range range("gather");
  check(x.defined(), "gather: undefined tensor argument");
  check_index(index, x, "gather");
  check(x.dim() > 0, "gather: the input must have at least one dimension");
  check(index.dim() == x.dim(), "gather: index ", index.shape(), " must have the rank of input ",
        x.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  // As torch.gather, the index may be smaller than x on the other dims: gather from the
  // leading corner of x. Slicing x there (a differentiable view) makes the two shapes agree
  // off `d`, and the slice's own backward pads the gradient back to x's shape.
  Tensor src = x;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i == d) continue;
    check(index.size(i) <= x.size(i), "gather: index ", index.shape(), " is larger than input ",
          x.shape(), " in dimension ", i);
    if (index.size(i) < x.size(i)) src = src.slice(i, 0, index.size(i));
  }
  Tensor idx = index.contiguous();
  check_range(idx, x.size(d), d, x, "gather");

  const Around a = around_dim(src.shape(), d);
  const int64_t m = idx.size(d);
  Tensor xc = src.detach().contiguous();
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  Shape src_shape = src.shape();
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda()) {
    kernels::cuda::gather_forward(a.outer, a.n, a.inner, xc.raw_data(), m, idx.data<int64_t>(),
                                  out.raw_data(), out.dtype());
    return record("gather", out, {src}, [a, m, idx, src_shape](const Tensor& g) {
      Tensor gc = g.contiguous();
      Tensor dx = Tensor::empty(src_shape, g.dtype(), g.device());
      kernels::cuda::gather_backward(a.outer, a.n, a.inner, m, idx.data<int64_t>(),
                                     gc.raw_data(), dx.raw_data(), dx.dtype());
      return std::vector<Tensor>{dx};
    });
  }
#endif
  dispatch_all(x.dtype(), "gather", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::gather_forward<T>(a.outer, a.n, a.inner, xc.data<T>(), m, idx.data<int64_t>(),
                                    out.data<T>());
  });
  return record("gather", out, {src}, [a, m, idx, src_shape](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(src_shape, g.dtype(), g.device());
    dispatch_float(g.dtype(), "gather_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::gather_backward<T>(a.outer, a.n, a.inner, m, idx.data<int64_t>(), gc.data<T>(),
                                       dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace engine
