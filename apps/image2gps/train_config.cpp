#include "apps/image2gps/train_config.h"

#include "engine/error.h"

namespace i2g {

// nlohmann-json's macro writes to_json/from_json from one field list; fields missing from
// an older config.json keep their defaults.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainConfig, data_dir, run_dir, image_size,
                                                augment, hflip, workers, skip_bad, arch, head,
                                                weights, optimizer, lr, weight_decay, momentum,
                                                scheduler, step_size, gamma, warmup_epochs,
                                                epochs, batch_size, freeze_epochs, head_lr, loss,
                                                huber_delta, drop_path, seed, device, threads)

nlohmann::json TrainConfig::to_json() const { return *this; }

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  try {
    return j.get<TrainConfig>();
  } catch (const nlohmann::json::exception& e) {
    engine::fail("training config: ", e.what());
  }
}

void TrainConfig::validate() const {
  using engine::check;
  check(image_size >= 32, "--image-size must be at least 32, got ", image_size);
  check(augment == "none" || augment == "geo-safe", "--augment must be none or geo-safe, got '",
        augment, "'");
  check(head == "linear" || head == "mlp", "--head must be linear or mlp, got '", head, "'");
  check(optimizer == "adam" || optimizer == "adamw" || optimizer == "sgd",
        "--optimizer must be adam, adamw or sgd, got '", optimizer, "'");
  check(scheduler == "step" || scheduler == "cosine" || scheduler == "none",
        "--scheduler must be step, cosine or none, got '", scheduler, "'");
  check(loss == "mse" || loss == "huber", "--loss must be mse or huber, got '", loss, "'");
  check(lr > 0, "--lr must be positive, got ", lr);
  check(weight_decay >= 0, "--weight-decay must be >= 0, got ", weight_decay);
  check(epochs >= 1, "--epochs must be at least 1, got ", epochs);
  check(batch_size >= 1, "--batch-size must be at least 1, got ", batch_size);
  check(freeze_epochs >= 0 && freeze_epochs <= epochs,
        "--freeze-epochs must be between 0 and --epochs, got ", freeze_epochs);
  check(step_size >= 1, "--step-size must be at least 1, got ", step_size);
  check(gamma > 0, "--gamma must be positive, got ", gamma);
  check(huber_delta > 0, "--huber-delta must be positive, got ", huber_delta);
  check(device == "auto" || device == "cpu" || device.rfind("cuda", 0) == 0,
        "--device must be auto, cpu or cuda, got '", device, "'");
}

}  // namespace i2g
