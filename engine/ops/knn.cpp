// engine/ops/knn.cpp — pairwise_sq_l2, topk and the fused knn_search (kernels/cpu/knn.h).
//
// pairwise_sq_l2 is the differentiable building block (metric learning on small batches);
// knn_search is what retrieval over a large bank uses: the same arithmetic, blocked, with
// per-query heaps instead of a [Q, N] matrix that would not fit for a big gallery.
// On CUDA (kernels/cuda/knn_ops.h) the forwards run the k-NN lab's kernels for float32 and
// simple kernels otherwise; pairwise_sq_l2's backward is composed of engine ops (two GEMMs and
// two row sums), the same formula as the CPU kernel.
#include "engine/ops/knn.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/knn.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/knn_ops.h"
#endif

namespace engine {

namespace {

void check_rows_pair(const Tensor& a, const Tensor& b, const char* op, const char* an,
                     const char* bn) {
  check(a.defined() && b.defined(), op, ": undefined tensor argument");
  check(a.dim() == 2 && b.dim() == 2, op, ": ", an, " and ", bn, " must be 2-D [rows, dim], got ",
        a.shape(), " and ", b.shape());
  check(a.size(1) == b.size(1), op, ": ", an, " ", a.shape(), " and ", bn, " ", b.shape(),
        " have different feature sizes (", a.size(1), " vs ", b.size(1), ")");
  check(a.dtype() == b.dtype(), op, ": dtype mismatch (", a.dtype(), " and ", b.dtype(), ")");
  check(a.device() == b.device(), op, ": tensors are on different devices (", a.device(), " and ",
        b.device(), ")");
}

}  // namespace

Tensor pairwise_sq_l2(const Tensor& a, const Tensor& b) {
  profiler::Range range("pairwise_sq_l2");
  check_rows_pair(a, b, "pairwise_sq_l2", "a", "b");
  const int64_t q = a.size(0), n = b.size(0), d = a.size(1);
  Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
  Tensor out = Tensor::empty({q, n}, a.dtype(), a.device());
#ifdef ENGINE_WITH_CUDA
  if (a.device().is_cuda())
    kernels::cuda::pairwise_sq_l2_forward(q, n, d, ac.raw_data(), bc.raw_data(), out.raw_data(),
                                          out.dtype());
  else
#endif
    dispatch_float(a.dtype(), "pairwise_sq_l2", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::pairwise_sq_l2_forward<T>(q, n, d, ac.data<T>(), bc.data<T>(),
                                              out.data<T>());
    });
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record("pairwise_sq_l2", out, {a, b}, [=](const Tensor& g) {
    Tensor gc = g.contiguous();
    if (gc.device().is_cuda()) {
      // da = 2 (rowsum(g) * a - g b),  db = 2 (colsum(g) * b - g^T a)
      Tensor da = ga ? (ac * sum(gc, {1}, true) - matmul(gc, bc)) * 2.0 : Tensor();
      Tensor db = gb ? (bc * sum(gc, {0}, true).reshape({n, 1}) - matmul(gc.transpose(0, 1), ac))
                           * 2.0
                     : Tensor();
      return std::vector<Tensor>{da, db};
    }
    Tensor da = ga ? Tensor::empty({q, d}, g.dtype(), g.device()) : Tensor();
    Tensor db = gb ? Tensor::empty({n, d}, g.dtype(), g.device()) : Tensor();
    dispatch_float(g.dtype(), "pairwise_sq_l2_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::pairwise_sq_l2_backward<T>(q, n, d, ac.data<T>(), bc.data<T>(), gc.data<T>(),
                                               ga ? da.data<T>() : nullptr,
                                               gb ? db.data<T>() : nullptr);
    });
    return std::vector<Tensor>{da, db};
  });
}

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  profiler::Range range("topk");
  check(x.defined(), "topk: undefined tensor argument");
  check(x.dim() > 0, "topk: the input must have at least one dimension");
  const int64_t d = wrap_dim(dim, x.dim(), "topk");
  check(k >= 0 && k <= x.size(d), "topk: k = ", k, " is out of range for dimension ", d,
        " of size ", x.size(d), " (shape ", x.shape(), ")");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d) outer *= x.size(i);
    if (i > d) inner *= x.size(i);
  }
  const int64_t n = x.size(d);
  Shape out_shape = x.shape();
  out_shape[d] = k;
  Tensor xc = x.detach().contiguous();
  TopK r{Tensor::empty(out_shape, x.dtype(), x.device()),
         Tensor::empty(out_shape, DType::Int64, x.device())};
#ifdef ENGINE_WITH_CUDA
  if (x.device().is_cuda())
    kernels::cuda::topk_forward(outer, n, inner, k, largest, xc.raw_data(), r.values.raw_data(),
                                r.indices.data<int64_t>(), x.dtype());
  else
#endif
    dispatch_float(x.dtype(), "topk", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::topk_forward<T>(outer, n, inner, k, largest, xc.data<T>(), r.values.data<T>(),
                                    r.indices.data<int64_t>());
    });
  Shape in_shape = x.shape();
  r.values = record("topk", r.values, {x}, [=, idx = r.indices](const Tensor& g) {
    Tensor gc = g.contiguous();
    Tensor dx = Tensor::empty(in_shape, g.dtype(), g.device());
#ifdef ENGINE_WITH_CUDA
    if (dx.device().is_cuda()) {
      kernels::cuda::topk_backward(outer, n, inner, k, idx.data<int64_t>(), gc.raw_data(),
                                   dx.raw_data(), dx.dtype());
      return std::vector<Tensor>{dx};
    }
#endif
    dispatch_float(g.dtype(), "topk_backward", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::topk_backward<T>(outer, n, inner, k, idx.data<int64_t>(), gc.data<T>(),
                                     dx.data<T>());
    });
    return std::vector<Tensor>{dx};
  });
  return r;
}

TopK knn_search(const Tensor& queries, const Tensor& bank, int64_t k, KnnMetric metric) {
  profiler::Range range("knn_search");
  check_rows_pair(queries, bank, "knn_search", "queries", "bank");
  const int64_t q = queries.size(0), n = bank.size(0), d = queries.size(1);
  check(k >= 0 && k <= n, "knn_search: k = ", k, " but the bank has ", n, " rows (shape ",
        bank.shape(), ")");
  Tensor qc = queries.detach().contiguous(), bc = bank.detach().contiguous();
  TopK r{Tensor::empty({q, k}, queries.dtype(), queries.device()),
         Tensor::empty({q, k}, DType::Int64, queries.device())};
#ifdef ENGINE_WITH_CUDA
  if (queries.device().is_cuda())
    kernels::cuda::knn_search(q, n, d, k, metric == KnnMetric::Cosine, qc.raw_data(), bc.raw_data(),
                              r.values.raw_data(), r.indices.data<int64_t>(), queries.dtype());
  else
#endif
    dispatch_float(queries.dtype(), "knn_search", [&](auto zero) {
      using T = decltype(zero);
      kernels::cpu::knn_search<T>(q, n, d, k, metric == KnnMetric::Cosine, qc.data<T>(),
                                  bc.data<T>(), r.values.data<T>(), r.indices.data<int64_t>());
    });
  return r;  // no autograd: retrieval is evaluation
}

}  // namespace engine
