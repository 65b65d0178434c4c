// nn/scheduler.h — learning-rate schedules that set an optimizer's group lrs.
//
//   nn::AdamW opt(params, {.lr = 1e-3});
//   nn::WarmupCosineLR sched(opt, /*warmup=*/2, /*total=*/30);  // sets lr for epoch 0 now
//   for (int epoch = 0; epoch < 30; ++epoch) { train_one_epoch(); sched.step(); }
//
// Like torch.optim.lr_scheduler, a scheduler remembers each group's lr at construction as its
// base lr, sets the lr of epoch 0 at once, and step() moves to the next epoch (call it per
// iteration instead to schedule per iteration). Every schedule is a closed form of
// (epoch, base lr), so restoring (last_epoch, base lrs) resumes it exactly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/optimizer.h"

namespace nn {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances to the next epoch and sets every group's lr.
  void step();
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  // The lr a group with base lr `base` has at `epoch` (epoch >= 0).
  virtual double lr_at(int64_t epoch, double base) const = 0;

  // {"last_epoch": e, "base_lr.<g>": lr, ...}; loading sets the optimizer's lrs for that epoch.
  std::map<std::string, double> state_dict() const;
  void load_state_dict(const std::map<std::string, double>& state);

 protected:
  explicit LRScheduler(Optimizer& opt);
  void apply();  // sets each group's lr to lr_at(last_epoch_, base)

  Optimizer& opt_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = 0;
};

// torch.optim.lr_scheduler.StepLR: lr = base * gamma^floor(epoch / step_size).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// Linear warmup then cosine decay, as torch's SequentialLR([LinearLR(start_factor,
// total_iters=warmup), CosineAnnealingLR(T_max=total-warmup, eta_min=min_lr)], [warmup]):
//   epoch <  warmup:  base * (start_factor + (1 - start_factor) * epoch / warmup)
//   epoch >= warmup:  min_lr + (base - min_lr) * (1 + cos(pi * (epoch - warmup) / (total - warmup))) / 2
//   epoch >= total:   min_lr (held, where torch's cosine would rise again)
class WarmupCosineLR : public LRScheduler {
 public:
  WarmupCosineLR(Optimizer& opt, int64_t warmup, int64_t total, double min_lr = 0.0,
                 double start_factor = 1.0 / 3.0);
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t warmup_, total_;
  double min_lr_, start_factor_;
};

}  // namespace nn
