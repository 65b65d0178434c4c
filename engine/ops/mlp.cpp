// engine/ops/mlp.cpp — see mlp.h. Two paths, chosen at the forward and kept for its backward:
//   fused     (GPU, our GEMM): four kernels::cuda::gemm_fused calls carry the bias, the GELU,
//             its slope and the bias gradient (column sums); h = x w1^T + b1 is what is saved.
//             layer_norm_mlp adds a statistics-only LayerNorm pass, and two of the GEMMs (the
//             forward's first, the first weight gradient) normalise x as they load it.
//   composed  (CPU, cuBLAS): GEMMs and GELU passes; h = x w1^T (without b1) is saved and the
//             GELU passes add b1 on the fly, as bias_gelu does. layer_norm_mlp writes the
//             LayerNorm's output in the forward and again (recomputed) in the backward.
#include "engine/ops/mlp.h"

#include <atomic>

#include "engine/autograd.h"
#include "engine/ops/gelu.h"
#include "engine/ops/layernorm.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/gelu.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/gelu_ops.h"
#include "kernels/cuda/impl.h"
#include "kernels/cuda/matmul.h"
#endif

namespace engine {

namespace {

void check_args(const char* name, const Tensor& x, const Tensor& w1, const Tensor& b1,
                const Tensor& w2) {
  check(x.defined() && w1.defined() && b1.defined() && w2.defined(), name,
        ": undefined tensor argument");
  check(w1.dim() == 2 && w2.dim() == 2, name, ": weights must be [out, in], got ", w1.shape(),
        " and ", w2.shape());
  check(x.dim() >= 1 && x.size(-1) == w1.size(1), name, ": input ", x.shape(), " has ",
        x.dim() ? x.size(-1) : 0, " features but the first weight ", w1.shape(), " expects ",
        w1.size(1));
  check(b1.dim() == 1 && b1.size(0) == w1.size(0), name, ": bias ", b1.shape(),
        " does not match the first weight ", w1.shape());
  check(w2.size(1) == w1.size(0), name, ": the second weight ", w2.shape(), " expects ",
        w2.size(1), " hidden features but the first weight ", w1.shape(), " makes ", w1.size(0));
  for (const Tensor* t : {&w1, &b1, &w2}) {
    check(t->dtype() == x.dtype(), name, ": dtype mismatch (", x.dtype(), " and ", t->dtype(),
          ")");
    check(t->device() == x.device(), name, ": tensors are on different devices (", x.device(),
          " and ", t->device(), ")");
  }
}

std::atomic<bool> g_fusion{true};

// Whether this call takes the fused path: the GPU with our GEMM selected, fusion not off.
bool fused_path(const Tensor& x) {
#ifdef ENGINE_WITH_CUDA
  namespace kc = kernels::cuda;
  return x.device().is_cuda() && kc::impl(kc::Family::Gemm) == kc::Impl::Ours && g_fusion;
#else
  (void)x;
  return false;
#endif
}

#ifdef ENGINE_WITH_CUDA
// c = op(a) op(b) with fusions; a, b, c contiguous and row-major, op(t) = t^T when trans.
Tensor fused_gemm(int64_t m, int64_t n, const Tensor& a, bool ta, const Tensor& b, bool tb,
                  const kernels::cuda::GemmFusion& fusion) {
  Tensor c = Tensor::empty({m, n}, a.dtype(), a.device());
  const int64_t k = ta ? a.size(0) : a.size(1);
  kernels::cuda::gemm_fused(ta, tb, m, n, k, 1.0, a.raw_data(), 0, a.size(1), b.raw_data(), 0,
                            b.size(1), 0.0, c.raw_data(), 0, n, c.dtype(), fusion);
  return c;
}
#endif

// The composed path's GELU backward, in place over dg: dg becomes dh = dg * gelu'(h + b), and
// when `act` is defined it receives gelu(h + b) (recomputed for the second weight gradient).
// On the GPU in float32 the GELU lab's one-pass kernel also sums dh's columns: the bias
// gradient is returned then (else undefined: the caller sums dh itself).
Tensor gelu_backward_in_place(const Tensor& h, const Tensor& b, const Tensor& dg,
                              const Tensor& act) {
  const int64_t rows = h.size(0), c = h.size(1);
#ifdef ENGINE_WITH_CUDA
  if (h.device().is_cuda() && h.dtype() == DType::Float32) {
    Tensor db = Tensor::empty({c}, h.dtype(), h.device());
    kernels::cuda::bias_gelu_backward_dbias(rows, c, h.data<float>(), b.data<float>(),
                                            dg.data<float>(), dg.data<float>(), db.data<float>(),
                                            act.defined() ? act.data<float>() : nullptr);
    return db;
  }
  if (h.device().is_cuda()) {
    kernels::cuda::bias_gelu_backward(rows, c, h.raw_data(), b.raw_data(), dg.raw_data(),
                                      dg.raw_data(), act.defined() ? act.raw_data() : nullptr,
                                      h.dtype());
    return Tensor();
  }
#endif
  dispatch_float(h.dtype(), "mlp_backward", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::bias_gelu_backward<T>(rows, c, h.data<T>(), b.data<T>(), dg.data<T>(),
                                        dg.data<T>(), act.defined() ? act.data<T>() : nullptr);
  });
  return Tensor();
}

}  // namespace

void set_mlp_fusion(bool on) { g_fusion = on; }
bool mlp_fusion() { return g_fusion; }

namespace {

// layer_norm_mlp's LayerNorm; weight and bias may be undefined (no affine).
struct Norm {
  Tensor weight, bias;
  double eps;
};

void check_norm(const Tensor& x, const Norm& norm) {
  check(norm.eps >= 0, "layer_norm_mlp: eps must be non-negative, got ", norm.eps);
  for (const auto& [t, what] : {std::pair{&norm.weight, "weight"}, {&norm.bias, "bias"}}) {
    if (!t->defined()) continue;
    check(t->dim() == 1 && t->size(0) == x.size(-1), "layer_norm_mlp: the LayerNorm's ", what,
          " ", t->shape(), " does not match the input's ", x.size(-1), " features");
    check(t->dtype() == x.dtype(), "layer_norm_mlp: dtype mismatch (", x.dtype(), " and ",
          t->dtype(), ")");
    check(t->device() == x.device(), "layer_norm_mlp: tensors are on different devices (",
          x.device(), " and ", t->device(), ")");
  }
}

bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

#ifdef ENGINE_WITH_CUDA
// The GEMM's LayerNorm fusion from a LayerNorm's statistics and parameters.
kernels::cuda::GemmRowNorm row_norm(const Tensor& mean, const Tensor& rstd, const Tensor& weight,
                                    const Tensor& bias) {
  return {mean.raw_data(), rstd.raw_data(), weight.defined() ? weight.raw_data() : nullptr,
          bias.defined() ? bias.raw_data() : nullptr};
}
#endif

// mlp (norm null) and layer_norm_mlp: the MLP of x, or of layer_norm(x) when norm is given.
Tensor mlp_op(const char* name, const Tensor& x, const Norm* norm, const Tensor& w1,
              const Tensor& b1, const Tensor& w2) {
  profiler::Range range(name);
  check_args(name, x, w1, b1, w2);
  if (norm) check_norm(x, *norm);
  const int64_t in = w1.size(1), hidden = w1.size(0), out = w2.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out;
  // Detached: the node below is the only record of the whole op.
  const Tensor x2 = x.detach().reshape({-1, in}).contiguous();
  const Tensor w1c = w1.detach().contiguous(), b1c = b1.detach().contiguous();
  const Tensor w2c = w2.detach().contiguous();
  [[maybe_unused]] const int64_t rows = x2.size(0);  // (the fused GEMMs' m)
  const bool fused = fused_path(x);

  // The LayerNorm: its statistics, kept for the backward, and on the composed path its output
  // u, the first Linear's input, freed after the forward (the fused GEMM normalises x itself).
  Tensor lnw, lnb, mean, rstd, u = x2;
  if (norm) {
    lnw = norm->weight.defined() ? norm->weight.detach().contiguous() : Tensor();
    lnb = norm->bias.defined() ? norm->bias.detach().contiguous() : Tensor();
    LayerNormRows stats = layer_norm_rows(x2, lnw, lnb, norm->eps, /*with_output=*/!fused);
    mean = stats.mean, rstd = stats.rstd, u = stats.y;
  }

  const bool gx = x.requires_grad(), gw1 = w1.requires_grad(), gb1 = b1.requires_grad();
  const bool gw2 = w2.requires_grad();
  const bool glnw = norm && wants_grad(norm->weight), glnb = norm && wants_grad(norm->bias);
  const bool backward = grad_enabled() && (gx || glnw || glnb || gw1 || gb1 || gw2);

  Tensor h, y;  // h: the pre-activation kept for the backward ([rows, hidden])
  if (fused) {
#ifdef ENGINE_WITH_CUDA
    kernels::cuda::GemmFusion first{.bias = b1c.raw_data()};
    if (norm) first.norm_a = row_norm(mean, rstd, lnw, lnb);
    h = fused_gemm(rows, hidden, x2, false, w1c, true, first);
    y = fused_gemm(rows, out, h, false, w2c, true, {.gelu_a = true});
#endif
  } else {
    h = matmul(u, w1c.transpose(0, 1));
    u = Tensor();  // the LayerNorm's output, when there was one: the backward recomputes it
    if (backward) {
      y = matmul(bias_gelu(h, b1c), w2c.transpose(0, 1));  // the GELU output is freed here
    } else {
      // Inference: nothing keeps h, so GELU runs in place and one hidden-wide tensor is ever
      // alive (PyTorch's eager Linear -> GELU -> Linear holds two at the GELU).
      bias_gelu_(h, b1c);
      y = matmul(h, w2c.transpose(0, 1));
    }
  }
  u = Tensor();  // (on the fused path: x itself, or nothing)
  y = y.reshape(out_shape);
  if (!backward) return y;
  const bool need_du = gx || glnw || glnb;     // the gradient at the first Linear's input
  const bool need_dh = need_du || gw1 || gb1;  // the gradient at the pre-activation
  const double eps = norm ? norm->eps : 0.0;
  const Shape x_shape = x.shape();
  const Tensor keep_x = gw1 || (norm && need_du) ? x2 : Tensor();
  std::vector<Tensor> inputs = {x, w1, b1, w2};
  if (norm) inputs.insert(inputs.begin() + 1, {norm->weight, norm->bias});
  return record(name, y, inputs, [=, has_norm = norm != nullptr](const Tensor& g) {
    const Tensor dy = g.reshape({-1, out}).contiguous();
    Tensor dh, dw2, db1;
    if (fused) {
#ifdef ENGINE_WITH_CUDA
      // dh = (dy @ w2) * gelu'(h), with db1 = its column sums from the same GEMM's epilogue;
      // dw2 = dy^T @ gelu(h).
      if (gb1) db1 = Tensor::empty({hidden}, h.dtype(), h.device());
      if (need_dh)
        dh = fused_gemm(rows, hidden, dy, false, w2c, false,
                        {.gelu_grad_of = h.raw_data(),
                         .ld_aux = hidden,
                         .col_sums = gb1 ? db1.raw_data() : nullptr});
      if (gw2) dw2 = fused_gemm(out, hidden, dy, true, h, false, {.gelu_b = true});
#endif
    } else {
      Tensor act;  // gelu(h + b1), recomputed
      if (need_dh) {
        dh = matmul(dy, w2c);  // the gradient at the GELU's output, made dh in place
        if (gw2) act = Tensor::empty(h.shape(), h.dtype(), h.device());
        db1 = gelu_backward_in_place(h, b1c, dh, act);
      } else {
        act = bias_gelu(h, b1c);
      }
      if (gw2) dw2 = matmul(dy.transpose(0, 1), act);
    }
    // dw1 = dh^T @ u, u = x or its LayerNorm: applied by the GEMM as it loads x (fused), or
    // recomputed from x (composed; the same kernel on the same x gives the same u).
    Tensor dw1;
    if (gw1 && has_norm && fused) {
#ifdef ENGINE_WITH_CUDA
      dw1 = fused_gemm(hidden, in, dh, true, keep_x, false,
                       {.norm_b = row_norm(mean, rstd, lnw, lnb)});
#endif
    } else if (gw1) {
      const Tensor normed = has_norm ? layer_norm_rows(keep_x, lnw, lnb, eps).y : keep_x;
      dw1 = matmul(dh.transpose(0, 1), normed);
    }
    if (gb1 && !db1.defined()) db1 = sum_to(dh, {hidden});
    Tensor du = need_du ? matmul(dh, w1c) : Tensor();
    if (!has_norm)
      return std::vector<Tensor>{gx ? du.reshape(x_shape) : Tensor(), dw1, db1, dw2};
    Tensor dx = gx ? Tensor::empty(du.shape(), du.dtype(), du.device()) : Tensor();
    Tensor dlnw = glnw ? Tensor::empty({in}, du.dtype(), du.device()) : Tensor();
    Tensor dlnb = glnb ? Tensor::empty({in}, du.dtype(), du.device()) : Tensor();
    if (need_du) layer_norm_rows_backward(keep_x, du, mean, rstd, lnw, dx, dlnw, dlnb);
    return std::vector<Tensor>{gx ? dx.reshape(x_shape) : Tensor(), dlnw, dlnb, dw1, db1, dw2};
  });
}

}  // namespace

Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2) {
  return mlp_op("mlp", x, nullptr, w1, b1, w2);
}

Tensor layer_norm_mlp(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias, double eps,
                      const Tensor& w1, const Tensor& b1, const Tensor& w2) {
  const Norm norm{ln_weight, ln_bias, eps};
  return mlp_op("layer_norm_mlp", x, &norm, w1, b1, w2);
}

}  // namespace engine
