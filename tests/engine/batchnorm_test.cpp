// tests/engine/batchnorm_test.cpp — batch_norm on NHWC inputs (statistics per last-dim channel).
//
// The reference is plain loops in float64: batch mean, biased variance for normalising, and
// PyTorch's running-stat rule (momentum, UNBIASED variance). Gradients are checked by central
// differences in both modes; the eval-mode gradient must treat the running stats as constants.
#include <cmath>
#include <string>
#include <vector>

#include "tests/common/check.h"

namespace {

using namespace engine;
using testing_util::all_close;
using testing_util::grad_check;
using testing_util::random;

struct Stats {
  std::vector<double> mean, var_biased, var_unbiased;
};

// Per-channel statistics of x viewed as [m, c] rows (c = last dim).
Stats stats_ref(const Tensor& x) {
  const int64_t c = x.size(-1), m = x.numel() / c;
  std::vector<double> v = x.to_vector();
  Stats s;
  for (int64_t ch = 0; ch < c; ++ch) {
    double mu = 0;
    for (int64_t r = 0; r < m; ++r) mu += v[r * c + ch];
    mu /= m;
    double ss = 0;
    for (int64_t r = 0; r < m; ++r) ss += (v[r * c + ch] - mu) * (v[r * c + ch] - mu);
    s.mean.push_back(mu);
    s.var_biased.push_back(ss / m);
    s.var_unbiased.push_back(ss / (m - 1));
  }
  return s;
}

// y = (x - mean) / sqrt(var + eps) * w + b; w/b empty means no affine.
std::vector<double> normalize_ref(const Tensor& x, const std::vector<double>& mean,
                                  const std::vector<double>& var, const std::vector<double>& w,
                                  const std::vector<double>& b, double eps) {
  const int64_t c = x.size(-1), m = x.numel() / c;
  std::vector<double> v = x.to_vector(), y(v.size());
  for (int64_t r = 0; r < m; ++r)
    for (int64_t ch = 0; ch < c; ++ch) {
      double t = (v[r * c + ch] - mean[ch]) / std::sqrt(var[ch] + eps);
      y[r * c + ch] = t * (w.empty() ? 1.0 : w[ch]) + (b.empty() ? 0.0 : b[ch]);
    }
  return y;
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an engine::Error containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(BatchNorm, TrainingForwardMatchesReference) {
  const std::vector<Shape> shapes = {{2, 5, 3, 7}, {1, 3, 4, 1}, {6, 5}, {3, 1, 9, 33}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    const int64_t c = s.back();
    Tensor x = random(s, seed++, -2, 3);
    Tensor w = random({c}, seed++, 0.5, 2), b = random({c}, seed++, -1, 1);
    Stats st = stats_ref(x);
    std::vector<double> ref = normalize_ref(x, st.mean, st.var_biased, w.to_vector(),
                                            b.to_vector(), 1e-5);
    Tensor y = batch_norm(x, w, b, {}, {}, /*training=*/true);
    EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-10, 1e-10)) << cat(s);
    std::vector<double> ref_plain = normalize_ref(x, st.mean, st.var_biased, {}, {}, 1e-3);
    Tensor y_plain = batch_norm(x, {}, {}, {}, {}, true, 0.1, 1e-3);
    EXPECT_TRUE(all_close(y_plain.to_vector(), ref_plain, 1e-10, 1e-10)) << "no affine " << cat(s);
  }
}

TEST(BatchNorm, Float32WithLargeMeanStaysAccurate) {
  // mean 100, std ~0.29: E[x^2] - E[x]^2 in float would lose every digit of the variance.
  // The reference runs on the float32 values themselves, so only the kernel's error is left.
  // Its largest part: the mean is kept in float (as PyTorch's saved mean), off by up to half
  // an ulp of 100 = 3.8e-6 = 1.3e-5 standard deviations, times |w| <= 1.5: atol 3e-5.
  Tensor x = add(random({4, 6, 5, 24}, 110, -0.5, 0.5), 100.0).to(DType::Float32);
  Tensor x64 = x.to(DType::Float64);
  Tensor w = random({24}, 111, 0.5, 1.5), b = random({24}, 112, -1, 1);
  Stats st = stats_ref(x64);
  std::vector<double> ref = normalize_ref(x64, st.mean, st.var_biased, w.to_vector(),
                                          b.to_vector(), 1e-5);
  Tensor y = batch_norm(x, w.to(DType::Float32), b.to(DType::Float32), {}, {}, true);
  EXPECT_TRUE(all_close(y.to_vector(), ref, 1e-5, 3e-5));
}

TEST(BatchNorm, RunningStatsFollowPyTorchsRule) {
  Shape s = {3, 4, 5, 6};
  Tensor rm = random({6}, 120, -1, 1), rv = random({6}, 121, 0.5, 2);
  std::vector<double> em = rm.to_vector(), ev = rv.to_vector();
  const double momentum = 0.3;
  for (int step = 0; step < 2; ++step) {
    Tensor x = random(s, 122 + step, -1, 4);
    Stats st = stats_ref(x);
    batch_norm(x, {}, {}, rm, rv, /*training=*/true, momentum);
    for (int ch = 0; ch < 6; ++ch) {
      em[ch] = (1 - momentum) * em[ch] + momentum * st.mean[ch];
      ev[ch] = (1 - momentum) * ev[ch] + momentum * st.var_unbiased[ch];  // unbiased!
    }
    EXPECT_TRUE(all_close(rm.to_vector(), em, 1e-12, 1e-12)) << "step " << step;
    EXPECT_TRUE(all_close(rv.to_vector(), ev, 1e-12, 1e-12)) << "step " << step;
  }
  // Eval normalises with the running stats and leaves them alone.
  const std::vector<double> rm_before = rm.to_vector(), rv_before = rv.to_vector();
  Tensor x = random(s, 130, -1, 1);
  Tensor w = random({6}, 131, 0.5, 2), b = random({6}, 132, -1, 1);
  Tensor y = batch_norm(x, w, b, rm, rv, /*training=*/false);
  EXPECT_TRUE(all_close(y.to_vector(), normalize_ref(x, em, ev, w.to_vector(), b.to_vector(), 1e-5),
                        1e-12, 1e-12));
  EXPECT_TRUE(all_close(rm.to_vector(), rm_before, 0, 0));
  EXPECT_TRUE(all_close(rv.to_vector(), rv_before, 0, 0));
}

TEST(BatchNorm, LargeInputUsesThreadedStatistics) {
  // Big enough for the per-thread partial sums (the small cases run on one chunk).
  Tensor x = random({4, 17, 19, 35}, 140, -1, 2).to(DType::Float32);
  Tensor rm = Tensor::zeros({35}), rv = Tensor::ones({35});
  Stats st = stats_ref(x);
  Tensor y = batch_norm(x, {}, {}, rm, rv, true, 0.1);
  EXPECT_TRUE(all_close(y.to_vector(), normalize_ref(x, st.mean, st.var_biased, {}, {}, 1e-5),
                        1e-5, 1e-5));
  std::vector<double> em, ev;
  for (int ch = 0; ch < 35; ++ch) {
    em.push_back(0.1 * st.mean[ch]);
    ev.push_back(0.9 + 0.1 * st.var_unbiased[ch]);
  }
  EXPECT_TRUE(all_close(rm.to_vector(), em, 1e-6, 1e-7));
  EXPECT_TRUE(all_close(rv.to_vector(), ev, 1e-6, 1e-7));
}

TEST(BatchNorm, TrainingGradCheck) {
  Tensor x = random({2, 3, 2, 5}, 150, -1, 2).requires_grad_();
  Tensor w = random({5}, 151, 0.5, 2).requires_grad_();
  Tensor b = random({5}, 152, -1, 1).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], {}, {}, true); },
      {x, w, b}));
  Tensor x2 = random({5, 3}, 153, -1, 2).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) { return batch_norm(in[0], {}, {}, {}, {}, true); },
      {x2}));
}

TEST(BatchNorm, EvalGradCheck) {
  Tensor rm = random({4}, 160, -1, 1), rv = random({4}, 161, 0.3, 2);
  Tensor x = random({2, 3, 3, 4}, 162, -1, 2).requires_grad_();
  Tensor w = random({4}, 163, 0.5, 2).requires_grad_();
  Tensor b = random({4}, 164, -1, 1).requires_grad_();
  EXPECT_TRUE(grad_check(
      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); },
      {x, w, b}));
}

TEST(BatchNorm, OnlySomeInputsNeedGradients) {
  // Only the bias, then only x in eval: the kernel skips what is not asked for.
  Tensor x = random({3, 2, 2, 4}, 170, -1, 1);
  Tensor w = random({4}, 171, 0.5, 2);
  Tensor b = random({4}, 172, -1, 1).requires_grad_();
  Tensor gy = random({3, 2, 2, 4}, 173, -1, 1);
  batch_norm(x, w, b, {}, {}, true).backward(gy);
  EXPECT_TRUE(all_close(b.grad(), sum(gy, {0, 1, 2}), 1e-12, 1e-12));

  Tensor rm = random({4}, 174, -1, 1), rv = random({4}, 175, 0.3, 2);
  Tensor xg = x.detach().clone().requires_grad_();
  batch_norm(xg, w, Tensor(), rm, rv, false).backward(gy);
  std::vector<double> g = gy.to_vector(), wv = w.to_vector(), rvv = rv.to_vector(), ref;
  for (size_t i = 0; i < g.size(); ++i)
    ref.push_back(g[i] * wv[i % 4] / std::sqrt(rvv[i % 4] + 1e-5));
  EXPECT_TRUE(all_close(xg.grad().to_vector(), ref, 1e-12, 1e-12));
}

TEST(BatchNorm, StridedInputAndParameters) {
  // Every other element of a longer vector, and a permuted input: same result as packed copies.
  Tensor w = random({10}, 185, 0.5, 2).slice(0, 0, 10, 2), b = random({10}, 186).slice(0, 1, 10, 2);
  Tensor x = random({3, 5, 4, 2}, 187).permute({0, 2, 3, 1});  // [3,4,2,5], channels strided
  Tensor y = batch_norm(x, w, b, {}, {}, true);
  Tensor ref = batch_norm(x.contiguous(), w.contiguous(), b.contiguous(), {}, {}, true);
  EXPECT_TRUE(all_close(y, ref, 0, 0));
}

// batch_norm(..., relu = true) is relu(batch_norm(...)): outputs, the gradients of x, weight
// and bias, and the running statistics, in training and eval, with and without the affine part,
// float64 and float32; plus a column whose pre-activation is exactly 0 (the fused backward
// recomputes the mask, which must say "not kept" there as relu's does).
TEST(BatchNorm, FusedReluIsReluOfBatchNorm) {
  uint64_t seed = 300;
  for (DType t : {DType::Float64, DType::Float32})
    for (bool training : {true, false})
      for (bool affine : {true, false}) {
        const double tol = t == DType::Float64 ? 1e-13 : 2e-5;
        const int64_t c = 6;
        Tensor x0 = random({3, 5, 4, c}, ++seed, -1, 1).to(t);
        // Column 0 holds -1, 0, 1 repeated: mean 0 exactly, so the x = 0 entries sit exactly on
        // the ReLU's kink in training mode (bias 0 there); eval uses running mean 0 for it.
        {
          std::vector<double> v = x0.to(DType::Float64).to_vector();
          for (size_t i = 0; i < v.size(); i += c) v[i] = double(int64_t(i / c) % 3) - 1.0;
          x0 = Tensor::from_vector(v, x0.shape()).to(t);
        }
        Tensor w0 = affine ? random({c}, ++seed, 0.5, 1.5).to(t) : Tensor();
        Tensor b0 = Tensor();
        if (affine) {
          std::vector<double> bv = random({c}, ++seed, -0.5, 0.5).to_vector();
          bv[0] = 0.0;
          b0 = Tensor::from_vector(bv, {c}).to(t);
        }
        std::vector<double> rm(c), rv(c, 1.3);
        for (int64_t i = 1; i < c; ++i) rm[i] = 0.1 * double(i);
        Tensor rm0 = Tensor::from_vector(rm, {c}).to(t), rv0 = Tensor::from_vector(rv, {c}).to(t);
        Tensor g = random({3, 5, 4, c}, ++seed).to(t);

        std::vector<Tensor> results[2];
        for (int fused = 0; fused < 2; ++fused) {
          Tensor x = x0.clone().requires_grad_();
          Tensor w = affine ? w0.clone().requires_grad_() : Tensor();
          Tensor b = affine ? b0.clone().requires_grad_() : Tensor();
          Tensor rmean = rm0.clone(), rvar = rv0.clone();
          Tensor y = fused ? batch_norm(x, w, b, rmean, rvar, training, 0.1, 1e-5, true)
                           : relu(batch_norm(x, w, b, rmean, rvar, training, 0.1, 1e-5));
          y.backward(g);
          results[fused] = {y.detach(), x.grad(), rmean, rvar};
          if (affine) results[fused].push_back(w.grad()), results[fused].push_back(b.grad());
        }
        const char* names[] = {"y", "dx", "running_mean", "running_var", "dweight", "dbias"};
        for (size_t i = 0; i < results[0].size(); ++i)
          EXPECT_TRUE(all_close(results[1][i], results[0][i], tol, tol))
              << names[i] << " " << t << (training ? " train" : " eval")
              << (affine ? " affine" : "");
        // The kink: where x = 0 in column 0 the output is exactly 0 and no gradient flows.
        if (training) {
          std::vector<double> y = results[1][0].to(DType::Float64).to_vector();
          for (size_t i = 0; i < y.size(); i += c) {
            if ((int64_t(i / c) % 3) == 1) EXPECT_EQ(y[i], 0.0) << "row " << i / c;
          }
        }
      }
}

// The backward's partial paths (only dx, only dweight, only dbias wanted: some skip the sums or
// the x - mean terms) keep the ReLU mask too.
TEST(BatchNorm, FusedReluWithOnlySomeGradients) {
  Tensor x0 = random({2, 6, 5, 7}, 340), w0 = random({7}, 341, 0.5, 1.5);
  Tensor b0 = random({7}, 342, -0.5, 0.5), rm = random({7}, 343), rv = random({7}, 344, 0.5, 2);
  Tensor g = random({2, 6, 5, 7}, 345);
  for (bool training : {true, false})
    for (int which = 0; which < 3; ++which) {  // the one input that requires grad
      Tensor got, ref;
      for (int fused = 0; fused < 2; ++fused) {
        Tensor in[3] = {x0.clone(), w0.clone(), b0.clone()};
        in[which].requires_grad_();
        Tensor rmean = rm.clone(), rvar = rv.clone();
        Tensor y = fused ? batch_norm(in[0], in[1], in[2], rmean, rvar, training, 0.1, 1e-5, true)
                         : relu(batch_norm(in[0], in[1], in[2], rmean, rvar, training, 0.1, 1e-5));
        y.backward(g);
        (fused ? got : ref) = in[which].grad();
      }
      EXPECT_TRUE(all_close(got, ref, 1e-13, 1e-13))
          << "input " << which << (training ? " train" : " eval");
    }
}

// batch_norm_add_relu(x, z, ...) is add_relu(batch_norm(x, ...), z): the output bit for bit
// (the fused pass rounds the affine, the sum and the ReLU as the two ops do), the gradients of
// x, weight, bias and the residual, and the running statistics; training and eval, float64 and
// float32, with and without the affine part, and with only some inputs wanting a gradient.
TEST(BatchNorm, FusedAddReluIsAddReluOfBatchNorm) {
  uint64_t seed = 700;
  for (DType t : {DType::Float64, DType::Float32})
    for (bool training : {true, false})
      for (int wants = 0; wants < 3; ++wants) {  // 0: all, 1: x and residual only, 2: residual
        const bool affine = wants != 1;
        const double tol = t == DType::Float64 ? 1e-13 : 2e-5;
        const int64_t c = 7;
        const Shape shape{2, 5, 3, c};
        Tensor x0 = random(shape, ++seed, -1, 1).to(t), z0 = random(shape, ++seed, -1, 1).to(t);
        Tensor w0 = affine ? random({c}, ++seed, 0.5, 1.5).to(t) : Tensor();
        Tensor b0 = affine ? random({c}, ++seed, -0.5, 0.5).to(t) : Tensor();
        Tensor rm0 = random({c}, ++seed, -0.2, 0.2).to(t), rv0 = random({c}, ++seed, 0.5, 2).to(t);
        Tensor g = random(shape, ++seed).to(t);
        std::vector<Tensor> results[2];
        for (int fused = 0; fused < 2; ++fused) {
          Tensor x = x0.clone(), z = z0.clone();
          Tensor w = affine ? w0.clone() : Tensor(), b = affine ? b0.clone() : Tensor();
          if (wants != 2) x.requires_grad_();
          z.requires_grad_();
          if (affine && wants == 0) w.requires_grad_(), b.requires_grad_();
          Tensor rmean = rm0.clone(), rvar = rv0.clone();
          Tensor y = fused ? batch_norm_add_relu(x, z, w, b, rmean, rvar, training, 0.1, 1e-5)
                           : add_relu(batch_norm(x, w, b, rmean, rvar, training, 0.1, 1e-5), z);
          y.backward(g);
          results[fused] = {y.detach(), z.grad(), rmean, rvar};
          if (wants != 2) results[fused].push_back(x.grad());
          if (affine && wants == 0) {
            results[fused].push_back(w.grad());
            results[fused].push_back(b.grad());
          }
        }
        EXPECT_TRUE(all_close(results[1][0], results[0][0], 0, 0)) << "y " << t;
        const char* names[] = {"y", "dresidual", "running_mean", "running_var", "dx", "dweight",
                               "dbias"};
        for (size_t i = 1; i < results[0].size(); ++i)
          EXPECT_TRUE(all_close(results[1][i], results[0][i], tol, tol))
              << names[i] << " " << t << (training ? " train" : " eval") << " wants " << wants;
      }
}

TEST(BatchNorm, FusedAddReluGradCheck) {
  Tensor x = random({2, 3, 2, 3}, 720).requires_grad_();
  Tensor z = random({2, 3, 2, 3}, 721).requires_grad_();
  Tensor w = random({3}, 722, 0.5, 1.5).requires_grad_();
  Tensor b = random({3}, 723).requires_grad_();
  EXPECT_TRUE(grad_check(
      [](const std::vector<Tensor>& in) {
        return batch_norm_add_relu(in[0], in[1], in[2], in[3], {}, {}, true);
      },
      {x, z, w, b}));
}

TEST(BatchNorm, BadArgumentsAreClearErrors) {
  Tensor x = random({2, 3, 3, 4}, 180);
  expect_error([&] { batch_norm(random({1, 1, 1, 4}, 181), {}, {}, {}, {}, true); },
               "more than 1 value per channel");
  expect_error([&] { batch_norm(x, {}, {}, {}, {}, false); }, "running_mean and running_var");
  expect_error([&] { batch_norm(x, random({3}, 182), {}, {}, {}, true); },
               "weight has shape [3] but input [2,3,3,4] has 4 channels");
  expect_error([&] { batch_norm(x, {}, {}, Tensor::zeros({4}), Tensor::ones({4}), true); },
               "running_mean is float32 but input is float64");
  expect_error([&] { batch_norm(random({4}, 183), {}, {}, {}, {}, true); }, "NHWC");
  expect_error([&] { batch_norm_add_relu(x, random({2, 3, 3, 5}, 184), {}, {}, {}, {}, true); },
               "residual has shape [2,3,3,5] but input has shape [2,3,3,4]");
  expect_error([&] { batch_norm_add_relu(x, x.to(DType::Float32), {}, {}, {}, {}, true); },
               "residual is float32 but input is float64");
  expect_error([&] { batch_norm_add_relu(x, Tensor(), {}, {}, {}, {}, true); },
               "undefined residual");
}

}  // namespace
