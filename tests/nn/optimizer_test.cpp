// Optimizers: updates against torch.optim's formulas written out by hand in float64, param
// groups, skipped and frozen parameters, fused kernel vs composed twin, state save/restore.
#include <cmath>

#include "nn/layers.h"
#include "nn/optimizer.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::random;
using V = std::vector<double>;

namespace {

Tensor param(const V& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).requires_grad_(); }
void set_grad(const Tensor& p, const V& g) {
  p.set_grad(Tensor::from_vector(g, {static_cast<int64_t>(g.size())}));
}

// Four steps of gradients for a 5-element parameter: mixed signs, no zeros.
const std::vector<V> kGrads = {{0.3, -0.1, 0.2, 1.5, -0.7},
                               {0.5, 0.4, -0.3, -0.2, 0.05},
                               {-0.2, 0.1, 0.6, 0.9, -1.1},
                               {0.07, -0.8, 0.25, -0.4, 0.3}};
const V kStart = {1.0, -2.0, 0.5, 0.25, -0.75};

// torch.optim.SGD (torch 1.13 _single_tensor_sgd), plainly.
V sgd_reference(V p, double lr, double mom, double damp, double wd, bool nesterov, int steps) {
  V buf;
  for (int s = 0; s < steps; ++s) {
    V d(p.size());
    for (size_t i = 0; i < p.size(); ++i) d[i] = kGrads[s][i] + wd * p[i];
    if (mom != 0) {
      if (buf.empty()) buf = d;
      else for (size_t i = 0; i < p.size(); ++i) buf[i] = mom * buf[i] + (1 - damp) * d[i];
      for (size_t i = 0; i < p.size(); ++i) d[i] = nesterov ? d[i] + mom * buf[i] : buf[i];
    }
    for (size_t i = 0; i < p.size(); ++i) p[i] -= lr * d[i];
  }
  return p;
}

// torch.optim.Adam / AdamW (torch 1.13 _single_tensor_adam(w)), plainly.
V adam_reference(V p, double lr, double b1, double b2, double eps, double wd, bool decoupled,
                 int steps, V* m_out = nullptr) {
  V m(p.size(), 0), v(p.size(), 0);
  for (int s = 1; s <= steps; ++s) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGrads[s - 1][i];
      if (decoupled) p[i] *= 1 - lr * wd;
      else g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double bc1 = 1 - std::pow(b1, s), bc2 = 1 - std::pow(b2, s);
      p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + eps);
    }
  }
  if (m_out) *m_out = m;
  return p;
}

template <class Opt, class Options>
V run(const Options& o, int steps) {
  Tensor p = param(kStart);
  Opt opt(std::vector<Tensor>{p}, o);
  for (int s = 0; s < steps; ++s) {
    set_grad(p, kGrads[s]);
    opt.step();
  }
  return p.to_vector();
}

}  // namespace

TEST(SGD, PlainWithWeightDecayMatchesTorchFormula) {
  V got = run<nn::SGD>(nn::SGDOptions{.lr = 0.1, .weight_decay = 0.05}, 3);
  EXPECT_TRUE(all_close(got, sgd_reference(kStart, 0.1, 0, 0, 0.05, false, 3), 1e-14, 1e-15));
}

TEST(SGD, MomentumWithDampeningClonesOnFirstStep) {
  nn::SGDOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.01};
  V got = run<nn::SGD>(o, 4);
  EXPECT_TRUE(all_close(got, sgd_reference(kStart, 0.1, 0.9, 0.3, 0.01, false, 4), 1e-14, 1e-15));
  // A buffer that applied dampening on the first step too lands elsewhere: the test can tell.
  V wrong = kStart, buf(5, 0.0);
  for (int s = 0; s < 4; ++s)
    for (size_t i = 0; i < 5; ++i) {
      double d = kGrads[s][i] + 0.01 * wrong[i];
      buf[i] = 0.9 * buf[i] + 0.7 * d;
      wrong[i] -= 0.1 * buf[i];
    }
  EXPECT_FALSE(all_close(got, wrong, 1e-6, 1e-9));
}

TEST(SGD, Nesterov) {
  nn::SGDOptions o{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.02, .nesterov = true};
  V got = run<nn::SGD>(o, 4);
  EXPECT_TRUE(all_close(got, sgd_reference(kStart, 0.05, 0.8, 0, 0.02, true, 4), 1e-14, 1e-15));
  EXPECT_FALSE(all_close(got, sgd_reference(kStart, 0.05, 0.8, 0, 0.02, false, 4), 1e-6, 1e-9));
}

TEST(SGD, RejectsNesterovWithDampening) {
  Tensor p = param(kStart);
  EXPECT_THROW(nn::SGD({p}, nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1,
                                           .nesterov = true}),
               Error);
  EXPECT_THROW(nn::SGD({p}, nn::SGDOptions{.lr = 0.1, .nesterov = true}), Error);
}

TEST(Adam, L2DecayInGradientMatchesTorchFormula) {
  Tensor p = param(kStart);
  nn::Adam opt(std::vector<Tensor>{p}, {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6,
                                        .weight_decay = 0.1});
  for (int s = 0; s < 4; ++s) {
    set_grad(p, kGrads[s]);
    opt.step();
  }
  V m;
  V ref = adam_reference(kStart, 0.01, 0.8, 0.95, 1e-6, 0.1, false, 4, &m);
  EXPECT_TRUE(all_close(p.to_vector(), ref, 1e-13, 1e-15));
  EXPECT_TRUE(all_close(opt.state_tensor(0, "exp_avg").to_vector(), m, 1e-13, 1e-15));
  EXPECT_EQ(opt.state_step(0), 4);
}

TEST(AdamW, DecoupledDecayMatchesTorchFormulaAndDiffersFromAdam) {
  nn::AdamWOptions o{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.3};
  V got = run<nn::AdamW>(o, 4);
  EXPECT_TRUE(all_close(got, adam_reference(kStart, 0.01, 0.9, 0.99, 1e-8, 0.3, true, 4), 1e-13,
                        1e-15));
  EXPECT_FALSE(all_close(got, adam_reference(kStart, 0.01, 0.9, 0.99, 1e-8, 0.3, false, 4), 1e-6,
                         1e-9));
}

TEST(AdamW, DefaultsAreTorchs) {
  nn::AdamWOptions w;
  EXPECT_EQ(w.lr, 1e-3);
  EXPECT_EQ(w.weight_decay, 1e-2);
  EXPECT_EQ(w.eps, 1e-8);
  nn::AdamOptions a;
  EXPECT_EQ(a.weight_decay, 0.0);
}

TEST(Optimizer, ParamGroupsUseTheirOwnLrAndWeightDecay) {
  Tensor a = param(kStart), b = param(kStart), c = param(kStart);
  nn::SGD opt({nn::ParamGroup{{a}, 0.2, 0.0}, nn::ParamGroup{{b, c}, std::nullopt, 0.5}},
              {.lr = 0.05, .momentum = 0.5, .weight_decay = 0.01});
  ASSERT_EQ(opt.groups().size(), 2u);
  EXPECT_EQ(opt.groups()[0].lr, 0.2);
  EXPECT_EQ(opt.groups()[1].lr, 0.05);  // the default
  EXPECT_EQ(opt.groups()[1].weight_decay, 0.5);
  for (int s = 0; s < 3; ++s) {
    for (const Tensor& p : {a, b, c}) set_grad(p, kGrads[s]);
    opt.step();
  }
  EXPECT_TRUE(all_close(a.to_vector(), sgd_reference(kStart, 0.2, 0.5, 0, 0.0, false, 3), 1e-14, 1e-15));
  V ref_b = sgd_reference(kStart, 0.05, 0.5, 0, 0.5, false, 3);
  EXPECT_TRUE(all_close(b.to_vector(), ref_b, 1e-14, 1e-15));
  EXPECT_TRUE(all_close(c.to_vector(), ref_b, 1e-14, 1e-15));
}

TEST(Optimizer, ParametersWithoutGradientAreSkippedAndKeepTheirOwnStepCount) {
  Tensor a = param(kStart), b = param(kStart);
  nn::Adam opt(std::vector<Tensor>{a, b}, {.lr = 0.01});
  set_grad(a, kGrads[0]);
  opt.step();  // b has no gradient yet
  EXPECT_EQ(b.to_vector(), kStart);
  EXPECT_EQ(opt.state_step(1), 0);
  EXPECT_FALSE(opt.state_tensor(1, "exp_avg").defined());
  // b's first step is its step 1 (bias corrections of step 1), a's is its step 2.
  set_grad(a, kGrads[1]);
  set_grad(b, kGrads[0]);
  opt.step();
  EXPECT_EQ(opt.state_step(0), 2);
  EXPECT_EQ(opt.state_step(1), 1);
  EXPECT_TRUE(all_close(b.to_vector(), adam_reference(kStart, 0.01, 0.9, 0.999, 1e-8, 0, false, 1),
                        1e-13, 1e-15));
  EXPECT_TRUE(all_close(a.to_vector(), adam_reference(kStart, 0.01, 0.9, 0.999, 1e-8, 0, false, 2),
                        1e-13, 1e-15));
}

TEST(Optimizer, ZeroGradDropsGradients) {
  Tensor a = param(kStart);
  nn::SGD opt(std::vector<Tensor>{a}, {.lr = 0.1});
  set_grad(a, kGrads[0]);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  opt.step();
  EXPECT_EQ(a.to_vector(), kStart);
}

TEST(Optimizer, FrozenParameterGetsNoGradientAndNoUpdate) {
  Generator gen(3);
  nn::Linear lin(4, 3, gen);
  nn::AdamW opt(lin.all_parameters(), {.lr = 0.1, .weight_decay = 0.5});
  lin.weight.requires_grad_(false);  // freeze after the optimizer was built
  const V w0 = lin.weight.to_vector(), b0 = lin.bias.to_vector();
  Tensor x = random({2, 4}, 11, -1, 1, DType::Float32);
  sum(lin(x)).backward();
  EXPECT_FALSE(lin.weight.grad().defined());
  ASSERT_TRUE(lin.bias.grad().defined());
  // Even a stale gradient on a frozen parameter must not move it (nor decay it).
  lin.weight.set_grad(Tensor::ones({3, 4}));
  opt.step();
  EXPECT_EQ(lin.weight.to_vector(), w0);
  EXPECT_NE(lin.bias.to_vector(), b0);
  // Module-level freezing also drops stale gradients.
  lin.set_requires_grad(false);
  EXPECT_FALSE(lin.bias.grad().defined());
  EXPECT_TRUE(lin.parameters().empty());
  EXPECT_EQ(lin.all_parameters().size(), 2u);
}

TEST(Optimizer, FusedKernelAgreesWithComposedOps) {
  // float32 at awkward sizes; the two paths round the same formula in different orders only
  // where the engine's scalar ops do, so a few float32 ulps apart after 5 steps.
  for (int kind = 0; kind < 3; ++kind) {
    std::vector<Tensor> fused, composed;
    for (int64_t n : {1, 7, 1000, 70001}) {
      Tensor p = random({n}, 100 + n, -1, 1, DType::Float32);
      fused.push_back(p.clone().requires_grad_());
      composed.push_back(p.clone().requires_grad_());
    }
    std::unique_ptr<nn::Optimizer> f, c;
    if (kind == 0) {
      nn::SGDOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0.2, .weight_decay = 0.01};
      f = std::make_unique<nn::SGD>(fused, o);
      o.fused = false;
      c = std::make_unique<nn::SGD>(composed, o);
    } else if (kind == 1) {
      nn::AdamOptions o{.lr = 0.01, .weight_decay = 0.1};
      f = std::make_unique<nn::Adam>(fused, o);
      o.fused = false;
      c = std::make_unique<nn::Adam>(composed, o);
    } else {
      nn::AdamWOptions o{.lr = 0.01, .weight_decay = 0.1};
      f = std::make_unique<nn::AdamW>(fused, o);
      o.fused = false;
      c = std::make_unique<nn::AdamW>(composed, o);
    }
    for (int s = 0; s < 5; ++s) {
      for (size_t i = 0; i < fused.size(); ++i) {
        Tensor g = random(fused[i].shape(), 1000 * s + i, -2, 2, DType::Float32);
        fused[i].set_grad(g);
        composed[i].set_grad(g.clone());
      }
      f->step();
      c->step();
    }
    for (size_t i = 0; i < fused.size(); ++i) {
      EXPECT_TRUE(all_close(fused[i], composed[i], 2e-6, 2e-7)) << "kind " << kind << " param " << i;
      EXPECT_FALSE(all_close(fused[i], random(fused[i].shape(), 100 + fused[i].numel(), -1, 1,
                                              DType::Float32), 1e-4, 1e-4))
          << "the parameters did not move";
    }
  }
}

TEST(Optimizer, StateRestoreContinuesIdentically) {
  auto make_params = [] {
    return std::vector<Tensor>{random({3, 5}, 21, -1, 1, DType::Float32).requires_grad_(),
                               random({7}, 22, -1, 1, DType::Float32).requires_grad_()};
  };
  auto grads_at = [](int s, const std::vector<Tensor>& ps) {
    for (size_t i = 0; i < ps.size(); ++i)
      ps[i].set_grad(random(ps[i].shape(), 50 + 10 * s + i, -1, 1, DType::Float32));
  };
  for (int kind = 0; kind < 2; ++kind) {
    auto make_opt = [&](const std::vector<Tensor>& ps) -> std::unique_ptr<nn::Optimizer> {
      std::vector<nn::ParamGroup> groups = {{{ps[0]}, 0.02, std::nullopt}, {{ps[1]}, std::nullopt, 0.3}};
      if (kind == 0) return std::make_unique<nn::SGD>(groups, nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
      return std::make_unique<nn::AdamW>(groups, nn::AdamWOptions{.lr = 0.01});
    };
    std::vector<Tensor> ps = make_params();
    auto opt = make_opt(ps);
    for (int s = 0; s < 3; ++s) grads_at(s, ps), opt->step();
    nn::OptimizerState snap = opt->state_dict();
    std::vector<Tensor> saved;
    for (auto& p : ps) saved.push_back(p.detach().clone());
    for (int s = 3; s < 6; ++s) grads_at(s, ps), opt->step();

    // A fresh optimizer with other hyperparameters, restored from the snapshot.
    std::vector<Tensor> qs;
    for (auto& p : saved) qs.push_back(p.clone().requires_grad_());
    auto opt2 = make_opt(qs);
    opt2->groups()[0].lr = 123.0;
    opt2->load_state_dict(snap);
    EXPECT_EQ(opt2->groups()[0].lr, 0.02);
    for (int s = 3; s < 6; ++s) grads_at(s, qs), opt2->step();
    for (size_t i = 0; i < ps.size(); ++i)
      EXPECT_EQ(ps[i].to_vector(), qs[i].to_vector()) << "kind " << kind << " param " << i;
  }
}

TEST(Optimizer, LoadStateRejectsAnotherModel) {
  Tensor a = param(kStart), b = param({1.0, 2.0});
  nn::Adam opt(std::vector<Tensor>{a}, {.lr = 0.01});
  set_grad(a, kGrads[0]);
  opt.step();
  nn::OptimizerState snap = opt.state_dict();

  nn::Adam two(std::vector<Tensor>{a, b}, {.lr = 0.01});
  EXPECT_THROW(two.load_state_dict(snap), Error);
  nn::Adam other_shape(std::vector<Tensor>{b}, {.lr = 0.01});
  try {
    other_shape.load_state_dict(snap);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  EXPECT_EQ(other_shape.state_step(0), 0);  // unchanged
}

TEST(Optimizer, RejectsBadParameters) {
  Tensor a = param(kStart);
  EXPECT_THROW(nn::SGD(std::vector<Tensor>{a, a}, {.lr = 0.1}), Error);  // twice
  Tensor non_leaf = mul(a, 2.0);
  EXPECT_THROW(nn::SGD(std::vector<Tensor>{non_leaf}, {.lr = 0.1}), Error);
  EXPECT_THROW(nn::Adam(std::vector<Tensor>{a}, {.lr = -1}), Error);
  EXPECT_THROW(nn::Adam(std::vector<Tensor>{a}, {.lr = 0.1, .beta1 = 1.0}), Error);
}
