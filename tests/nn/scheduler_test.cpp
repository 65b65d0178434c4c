// Learning-rate schedules: values per epoch against torch's closed forms (computed by hand
// here; the same numbers torch 1.13's StepLR and SequentialLR(LinearLR, CosineAnnealingLR)
// give), per group, and save/restore.
#include <cmath>
#include <numbers>

#include "nn/scheduler.h"
#include "tests/common/check.h"

using namespace engine;

namespace {
Tensor param() { return Tensor::zeros({3}).requires_grad_(); }
}  // namespace

TEST(StepLR, DecaysEveryStepSizeEpochsPerGroup) {
  Tensor a = param(), b = param();
  nn::SGD opt({nn::ParamGroup{{a}, 0.1, std::nullopt}, nn::ParamGroup{{b}, 0.03, std::nullopt}},
              {.lr = 1.0});
  nn::StepLR sched(opt, 3, 0.5);
  for (int e = 0; e <= 10; ++e) {
    const double f = std::pow(0.5, e / 3);
    EXPECT_DOUBLE_EQ(opt.groups()[0].lr, 0.1 * f) << "epoch " << e;
    EXPECT_DOUBLE_EQ(opt.groups()[1].lr, 0.03 * f) << "epoch " << e;
    EXPECT_EQ(sched.last_epoch(), e);
    sched.step();
  }
}

TEST(WarmupCosineLR, MatchesTorchSequentialLinearThenCosine) {
  // torch: SequentialLR([LinearLR(start_factor=0.5, total_iters=2),
  //                      CosineAnnealingLR(T_max=4, eta_min=0.001)], milestones=[2]), lr 0.1
  const double expect[] = {0.05, 0.075, 0.1, 0.0855017856687341, 0.0505, 0.0154982143312659,
                           0.001, 0.001};
  Tensor a = param();
  nn::AdamW opt(std::vector<Tensor>{a}, {.lr = 0.1});
  nn::WarmupCosineLR sched(opt, 2, 6, 0.001, 0.5);
  for (int e = 0; e < 8; ++e) {
    EXPECT_NEAR(opt.groups()[0].lr, expect[e], 1e-15) << "epoch " << e;
    sched.step();
  }
}

TEST(WarmupCosineLR, NoWarmupIsPlainCosineFromTheBaseLr) {
  Tensor a = param();
  nn::SGD opt(std::vector<Tensor>{a}, {.lr = 0.2});
  nn::WarmupCosineLR sched(opt, 0, 5);
  for (int e = 0; e <= 5; ++e) {
    EXPECT_NEAR(opt.groups()[0].lr, 0.1 * (1 + std::cos(std::numbers::pi * e / 5)), 1e-15);
    sched.step();
  }
}

TEST(LRScheduler, SaveRestoreResumesTheSchedule) {
  Tensor a = param(), b = param();
  auto make_opt = [&] {
    return std::make_unique<nn::SGD>(
        std::vector<nn::ParamGroup>{{{a}, 0.1, std::nullopt}, {{b}, 0.4, std::nullopt}},
        nn::SGDOptions{.lr = 1.0});
  };
  auto opt = make_opt();
  nn::WarmupCosineLR sched(*opt, 3, 11, 1e-4, 0.1);
  for (int e = 0; e < 5; ++e) sched.step();
  auto snap = sched.state_dict();
  std::vector<std::vector<double>> rest;
  for (int e = 0; e < 6; ++e) {
    sched.step();
    rest.push_back({opt->groups()[0].lr, opt->groups()[1].lr});
  }
  // A resumed run builds its optimizer with the configured lrs again, then restores.
  auto opt2 = make_opt();
  nn::WarmupCosineLR sched2(*opt2, 3, 11, 1e-4, 0.1);
  sched2.load_state_dict(snap);
  EXPECT_EQ(sched2.last_epoch(), 5);
  for (int e = 0; e < 6; ++e) {
    sched2.step();
    EXPECT_EQ(opt2->groups()[0].lr, rest[e][0]);
    EXPECT_EQ(opt2->groups()[1].lr, rest[e][1]);
  }
  nn::SGD one(std::vector<Tensor>{a}, {.lr = 1.0});
  nn::StepLR wrong(one, 2);
  EXPECT_THROW(wrong.load_state_dict(snap), Error);  // two groups saved, one here
}

TEST(LRScheduler, RejectsBadSettings) {
  Tensor a = param();
  nn::SGD opt(std::vector<Tensor>{a}, {.lr = 0.1});
  EXPECT_THROW(nn::StepLR(opt, 0), Error);
  EXPECT_THROW(nn::WarmupCosineLR(opt, 5, 5), Error);
  EXPECT_THROW(nn::WarmupCosineLR(opt, 1, 5, 0.0, 0.0), Error);
}
