#include "engine/ops/matmul.h"

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/matmul.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/matmul.h"
#endif

namespace engine {

namespace {

// How a [.., rows, cols] operand is handed to GEMM without copying: row-major with leading
// dimension ld, or (trans) as the transpose of a row-major [cols, rows] matrix.
struct Operand {
  Tensor t;  // possibly a packed copy
  bool trans = false;
  int64_t ld = 0;
};

Operand as_gemm_operand(const Tensor& x) {
  const int64_t nd = x.dim();
  const int64_t rows = x.shape()[nd - 2], cols = x.shape()[nd - 1];
  const int64_t sr = x.strides()[nd - 2], sc = x.strides()[nd - 1];
  if ((sc == 1 || cols == 1) && sr >= std::max<int64_t>(cols, 1)) return {x, false, sr};
  if ((sr == 1 || rows == 1) && sc >= std::max<int64_t>(rows, 1)) return {x, true, sc};
  Tensor c = x.contiguous();
  return {c, false, std::max<int64_t>(cols, 1)};
}

// out[batch..., m, n] = a @ b for already-broadcast batch dims (a, b expanded to out's batch).
void matmul_into(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t nd = out.dim();
  const int64_t m = out.shape()[nd - 2], n = out.shape()[nd - 1], k = a.shape()[nd - 1];
  Operand oa = as_gemm_operand(a), ob = as_gemm_operand(b);
  const int64_t batch = out.numel() / std::max<int64_t>(m * n, 1);
  // Offsets of batch item i in each operand (through its batch strides, 0 where broadcast).
  auto offset_of = [&](const Tensor& t, int64_t i) {
    int64_t off = 0;
    for (int64_t d = nd - 3; d >= 0; --d) {
      off += (i % t.shape()[d]) * t.strides()[d];
      i /= t.shape()[d];
    }
    return off;
  };
#ifdef ENGINE_WITH_CUDA
  if (out.device().is_cuda()) {
    for (int64_t i = 0; i < batch; ++i)
      kernels::cuda::gemm(oa.trans, ob.trans, m, n, k, 1.0, oa.t.raw_data(), offset_of(oa.t, i),
                          oa.ld, ob.t.raw_data(), offset_of(ob.t, i), ob.ld, 0.0, out.raw_data(),
                          i * m * n, n, out.dtype());
    return;
  }
#endif
  dispatch_float(out.dtype(), "matmul", [&](auto zero) {
    using T = decltype(zero);
    for (int64_t i = 0; i < batch; ++i)
      kernels::cpu::gemm<T>(oa.trans, ob.trans, m, n, k, T(1), oa.t.data<T>() + offset_of(oa.t, i),
                            oa.ld, ob.t.data<T>() + offset_of(ob.t, i), ob.ld, T(0),
                            out.data<T>() + i * m * n, n);
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  profiler::Range range("matmul");
  check(a.defined() && b.defined(), "matmul: undefined tensor argument");
  check(a.dim() >= 2 && b.dim() >= 2, "matmul: both operands need at least 2 dims, got ",
        a.shape(), " and ", b.shape());
  check(a.dtype() == b.dtype(), "matmul: dtype mismatch (", a.dtype(), " and ", b.dtype(), ")");
  check(a.device() == b.device(), "matmul: tensors are on different devices (", a.device(),
        " and ", b.device(), ")");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  check(b.size(-2) == k, "matmul: inner sizes differ: ", a.shape(), " @ ", b.shape());

  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  so.insert(so.end(), {m, n});
  Tensor ae = a.detach().expand(sa), be = b.detach().expand(sb);
  Tensor out = Tensor::empty(so, a.dtype(), a.device());
  matmul_into(out, ae, be);

  bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor keep_a = gb ? a.detach() : Tensor(), keep_b = ga ? b.detach() : Tensor();
  Shape sha = a.shape(), shb = b.shape();
  return record("matmul", out, {a, b}, [=](const Tensor& g) {
    // dA = g @ B^T, dB = A^T @ g (transposes are views; GEMM reads them transposed).
    Tensor da = ga ? sum_to(matmul(g, keep_b.transpose(-1, -2)), sha) : Tensor();
    Tensor db = gb ? sum_to(matmul(keep_a.transpose(-1, -2), g), shb) : Tensor();
    return std::vector<Tensor>{da, db};
  });
}

// One node for the whole layer rather than matmul + transpose + add: the weight gradient is
// then computed as g^T @ x, a fresh [out, in] tensor that becomes weight.grad() as it is. Through
// matmul's own backward it came out as the transposed view of x^T @ g, which the autograd has to
// copy into a contiguous .grad (perf, 2026-11-26: that strided copy was 1.9% of ConvNeXt-T's CPU
// training step, and it briefly doubled each MLP weight's gradient memory).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Range range("linear");
  check(weight.dim() == 2, "linear: weight must be [out, in], got ", weight.shape());
  check(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.shape(),
        " has ", x.dim() ? x.size(-1) : 0, " features but weight ", weight.shape(), " expects ",
        weight.size(1));
  if (bias.defined())
    check(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias ", bias.shape(),
          " does not match weight ", weight.shape());
  const int64_t in = weight.size(1), out = weight.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out;
  // Detached: the node below is the only record of this layer.
  const Tensor x2 = x.detach().reshape({-1, in}), w = weight.detach();
  Tensor y = matmul(x2, w.transpose(0, 1));
  if (bias.defined()) y = add(y, bias.detach());
  y = y.reshape(out_shape);

  const bool gx = x.requires_grad(), gw = weight.requires_grad();
  const bool gb = bias.defined() && bias.requires_grad();
  if (!grad_enabled() || !(gx || gw || gb)) return y;
  const Shape x_shape = x.shape();
  // Saved: the input only for the weight gradient, the weight only for the input gradient.
  const Tensor keep_x = gw ? x2 : Tensor(), keep_w = gx ? w : Tensor();
  return record("linear", y, {x, weight, bias}, [=](const Tensor& g) {
    const Tensor g2 = g.reshape({-1, out});
    Tensor dx = gx ? matmul(g2, keep_w).reshape(x_shape) : Tensor();  // [rows, out] @ [out, in]
    Tensor dw = gw ? matmul(g2.transpose(0, 1), keep_x) : Tensor();   // [out, rows] @ [rows, in]
    Tensor db = gb ? sum_to(g2, {out}) : Tensor();
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace engine
