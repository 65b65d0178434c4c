// apps/image2gps/train_config.h — every setting of a training run, saved with the run as
// config.json and inside each checkpoint, so `--resume` and `eval` rebuild the same model.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace i2g {

struct TrainConfig {
  // data: DATA with train/ val/ (test/) subfolders, each with metadata.csv
  std::string data_dir;
  std::string run_dir = "runs/latest";
  int image_size = 224;
  std::string augment = "none";  // none | geo-safe
  bool hflip = false;
  int workers = 0;  // decoding threads; 0: auto (decode_workers in loader.h)
  bool skip_bad = false;

  // model
  std::string arch = "resnet18";
  std::string head = "linear";    // linear | mlp
  std::string weights;            // converted ImageNet safetensors, or "" for random init

  // optimisation
  std::string optimizer = "adamw";  // adam | adamw | sgd
  double lr = 1e-3;
  double weight_decay = 1e-4;
  double momentum = 0.9;            // sgd only
  std::string scheduler = "step";   // step | cosine | none
  int step_size = 5;                // StepLR
  double gamma = 0.5;               // StepLR
  int warmup_epochs = 1;            // cosine
  int epochs = 10;
  int batch_size = 32;
  int freeze_epochs = 0;            // train only the head for this many epochs first
  double head_lr = -1;              // head learning rate (< 0: same as lr)
  std::string loss = "mse";         // mse | huber
  double huber_delta = 1.0;
  double drop_path = -1;            // ConvNeXt stochastic depth (< 0: torchvision default)

  uint64_t seed = 0;
  std::string device = "auto";      // auto | cpu | cuda
  int threads = 0;                  // CPU threads (0: all cores)
  // Not saved in config.json (a diagnostic of one invocation): profile training steps
  // 2..profile_steps+1 op by op into RUN_DIR/profile.txt and profile.trace.json.
  int profile_steps = 0;

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  // Throws engine::Error naming the first bad setting.
  void validate() const;
};

}  // namespace i2g
