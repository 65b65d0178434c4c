// models/weights.h — PyTorch state dicts in and out of our models.
//
// Checkpoints keep PyTorch's names and layouts (weights/convert.py writes them as
// .safetensors): conv weights are OIHW there and [K, R, S, C/groups] here, so loading permutes
// every Conv2d weight (found by walking the model's Conv2d modules, not by guessing from
// shapes) and saving permutes it back. Everything else has the same layout on both sides.
//
//   auto model = models::create("resnet50", 2, models::Head::Mlp);
//   models::LoadReport r = models::load_weights(*model, "resnet50.safetensors");
//   // r.dropped_head = {"fc.bias", "fc.weight"}: the 1000-class ImageNet head was left out,
//   // r.head_initialised = {"fc.1.weight", ...}: our head keeps its fresh initialisation.
//
// Loading is strict by default: any missing, unexpected or shape-mismatched key throws an
// engine::Error that lists them, before anything is copied. Two differences from PyTorch are
// tolerated, as PyTorch's own loader tolerates them: a missing BatchNorm num_batches_tracked
// (old torchvision checkpoints predate it; it stays 0) and, with the default head policy, an
// ImageNet head on a model with another head.
//
// timm's ConvNeXt names are mapped onto torchvision's (detected automatically):
//   stem.0 / stem.1                      -> features.0.0 / features.0.1
//   stages.N.downsample.0 / .1           -> features.{2N}.0 / .1           (N >= 1)
//   stages.N.blocks.M.conv_dw            -> features.{2N+1}.M.block.0
//   stages.N.blocks.M.norm               -> features.{2N+1}.M.block.2
//   stages.N.blocks.M.mlp.fc1 / .fc2     -> features.{2N+1}.M.block.3 / .5
//   stages.N.blocks.M.gamma [C]          -> features.{2N+1}.M.layer_scale [C, 1, 1]
//   head.norm / head.fc                  -> classifier.0 / classifier.2
// timm's ResNet names already equal torchvision's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "models/model.h"
#include "nn/module.h"

namespace models {

using StateDict = std::map<std::string, Tensor>;

enum class KeyStyle { Auto, Torchvision, Timm };

// What to do when the checkpoint's head does not fit the model's head.
enum class HeadMismatch {
  Error,         // count it like any other mismatch
  DropImageNet,  // drop it when it is a 1000-class Linear (an ImageNet classifier), else error
  Drop,          // drop any head that does not fit
};

struct LoadOptions {
  bool strict = true;
  HeadMismatch head = HeadMismatch::DropImageNet;
  KeyStyle keys = KeyStyle::Auto;
  // Dotted name of the model's head ("fc", "classifier.2"); the Model overloads fill it in.
  std::string head_prefix = {};
};

struct LoadReport {
  std::vector<std::string> loaded;            // model keys that received a checkpoint tensor
  std::vector<std::string> missing;           // model keys the checkpoint lacks
  std::vector<std::string> unexpected;        // checkpoint keys the model lacks
  std::vector<std::string> mismatched;        // "key: checkpoint [..] (layout) vs model [..]"
  std::vector<std::string> dropped_head;      // checkpoint head keys left out
  std::vector<std::string> head_initialised;  // model head keys left at their initial values
  std::vector<std::string> defaulted;         // missing num_batches_tracked (left as they were)
  std::vector<std::string> renamed;           // "timm key -> torchvision key"

  // True when nothing is missing, unexpected or mismatched.
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // One paragraph for a log: counts, then the problem keys (at most 10 per list).
  std::string summary() const;
};

// Copies `state` (PyTorch names and layouts, any device/float dtype) into `model`'s
// parameters and buffers in place (their identity is kept, so an optimizer built before stays
// valid). Throws engine::Error when strict and the report is not ok(); nothing is copied then.
LoadReport load_state_dict(nn::Module& model, const StateDict& state, LoadOptions options = {});
LoadReport load_state_dict(Model& model, const StateDict& state, LoadOptions options = {});
// Reads a .safetensors file (engine/io/safetensors.h) and loads it as above; errors name the file.
LoadReport load_weights(Model& model, const std::string& path, LoadOptions options = {});
LoadReport load_weights(nn::Module& model, const std::string& path, LoadOptions options = {});

// True when the keys look like timm's ConvNeXt (stem.*, stages.*, head.fc.*).
bool looks_like_timm(const StateDict& state);
// timm ConvNeXt names -> torchvision names (see the table above); other keys pass unchanged.
// `renamed` (optional) receives "old -> new" for every renamed key.
StateDict timm_to_torchvision(const StateDict& state, std::vector<std::string>* renamed = nullptr);

// The model's state dict in PyTorch layouts (Conv2d weights OIHW), contiguous CPU copies:
// what torchvision's model.state_dict() would hold for the same weights.
StateDict export_state_dict(const nn::Module& model);
// Writes export_state_dict(model) as .safetensors (metadata "format": "pt" plus `metadata`).
void save_weights(const nn::Module& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace models
