// nn/scheduler.cpp — see scheduler.h.
#include "nn/scheduler.h"

#include <cmath>
#include <numbers>

namespace nn {

using engine::check;

LRScheduler::LRScheduler(Optimizer& opt) : opt_(opt) {
  for (const auto& g : opt.groups()) base_lrs_.push_back(g.lr);
}

void LRScheduler::apply() {
  auto& groups = opt_.groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].lr = lr_at(last_epoch_, base_lrs_[g]);
}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

std::map<std::string, double> LRScheduler::state_dict() const {
  std::map<std::string, double> s{{"last_epoch", static_cast<double>(last_epoch_)}};
  for (size_t g = 0; g < base_lrs_.size(); ++g) s["base_lr." + std::to_string(g)] = base_lrs_[g];
  return s;
}

void LRScheduler::load_state_dict(const std::map<std::string, double>& s) {
  auto it = s.find("last_epoch");
  check(it != s.end(), "LRScheduler.load_state_dict: the snapshot has no 'last_epoch'");
  std::vector<double> base(opt_.groups().size());
  for (size_t g = 0; g < base.size(); ++g) {
    auto b = s.find("base_lr." + std::to_string(g));
    check(b != s.end(), "LRScheduler.load_state_dict: the snapshot has no base lr for group ", g,
          " (the optimizer has ", base.size(), " groups)");
    base[g] = b->second;
  }
  check(!s.count("base_lr." + std::to_string(base.size())),
        "LRScheduler.load_state_dict: the snapshot has more groups than the optimizer (",
        base.size(), ")");
  last_epoch_ = static_cast<int64_t>(it->second);
  base_lrs_ = std::move(base);
  apply();
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  check(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
  check(gamma > 0, "StepLR: gamma must be positive, got ", gamma);
  apply();
}

double StepLR::lr_at(int64_t epoch, double base) const {
  return base * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

WarmupCosineLR::WarmupCosineLR(Optimizer& opt, int64_t warmup, int64_t total, double min_lr,
                               double start_factor)
    : LRScheduler(opt), warmup_(warmup), total_(total), min_lr_(min_lr),
      start_factor_(start_factor) {
  check(warmup >= 0 && total > warmup, "WarmupCosineLR: needs 0 <= warmup < total (got warmup=",
        warmup, ", total=", total, ")");
  check(start_factor > 0 && start_factor <= 1,
        "WarmupCosineLR: start_factor must be in (0, 1], got ", start_factor);
  check(min_lr >= 0, "WarmupCosineLR: min_lr must be >= 0, got ", min_lr);
  apply();
}

double WarmupCosineLR::lr_at(int64_t epoch, double base) const {
  if (epoch < warmup_) {
    return base * (start_factor_ + (1.0 - start_factor_) * static_cast<double>(epoch) /
                                       static_cast<double>(warmup_));
  }
  if (epoch >= total_) return min_lr_;
  const double t = static_cast<double>(epoch - warmup_) / static_cast<double>(total_ - warmup_);
  return min_lr_ + (base - min_lr_) * (1.0 + std::cos(std::numbers::pi * t)) / 2.0;
}

}  // namespace nn
