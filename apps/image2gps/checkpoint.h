// apps/image2gps/checkpoint.h — image2gps checkpoints: one safetensors file holding the model
// (our layouts, keys "model.<torchvision name>"), optionally the optimizer state
// ("optim.<...>"), and a string map of everything else (config JSON, epoch, RNG streams,
// scheduler, coordinate statistics). Written atomically, so a crash never leaves half a file.
#pragma once

#include <map>
#include <string>

#include "models/model.h"
#include "nn/optimizer.h"

namespace i2g {

struct Checkpoint {
  std::map<std::string, engine::Tensor> tensors;  // everything in the file, by key
  std::map<std::string, std::string> meta;
  std::string path;

  const std::string& get(const std::string& key) const;  // throws naming the file and key
  double get_number(const std::string& key) const;
  bool has(const std::string& key) const { return meta.count(key) > 0; }
};

void save_checkpoint(const std::string& path, nn::Module& model, const nn::Optimizer* optimizer,
                     const std::map<std::string, std::string>& meta);
Checkpoint read_checkpoint(const std::string& path);
// Copies "model.*" tensors into the model (strict: every key must exist with its shape).
void load_model_state(const Checkpoint& ckpt, nn::Module& model);
void load_optimizer_state(const Checkpoint& ckpt, nn::Optimizer& optimizer);

}  // namespace i2g
