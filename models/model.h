// models/model.h — what every backbone offers the app: an embedding, a head, and a factory.
//
//   auto model = models::create("convnext_tiny", /*num_outputs=*/2, models::Head::Mlp);
//   models::load_weights(*model, "convnext_tiny.safetensors");   // models/weights.h
//   Tensor emb = model->features(x);   // x [N, H, W, 3] NHWC -> [N, 768], before the head
//   Tensor out = model->forward(x);    // -> [N, 2]
//
// Parameter names are torchvision's state_dict keys. The head is a child named like
// torchvision's classifier, so ImageNet checkpoints load everything but the head:
//   Head::Linear  one Linear(embedding_dim, N)
//                   ResNet:   fc.weight [N, D], fc.bias [N]
//                   ConvNeXt: classifier.2.weight [N, D], classifier.2.bias [N]
//   Head::Mlp     Dropout(0.2) -> Linear(D, 256) -> ReLU -> Linear(256, N), a Sequential:
//                   ResNet:   fc.1.weight [256, D], fc.1.bias, fc.3.weight [N, 256], fc.3.bias
//                   ConvNeXt: classifier.2.1.weight [256, D], classifier.2.1.bias,
//                             classifier.2.3.weight [N, 256], classifier.2.3.bias
// (fc.0 / fc.2 are the parameter-free Dropout and ReLU.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace models {

using engine::Tensor;

enum class Head { Linear, Mlp };
// "linear" or "mlp" (throws engine::Error naming the choices).
Head parse_head(const std::string& name);
const char* head_name(Head head);

struct ModelOptions {
  uint64_t seed = 0;           // the init stream (every weight's initial value)
  uint64_t dropout_seed = 1;   // the stream of every Dropout / StochasticDepth mask
  double drop_path_rate = -1;  // ConvNeXt stochastic depth; < 0: torchvision's 0.1/0.4/0.5
  double head_dropout = 0.2;   // the MLP head's Dropout
  int64_t mlp_hidden = 256;    // the MLP head's hidden width
};

class Model : public nn::Module {
 public:
  // [N, H, W, 3] -> [N, num_outputs()] = forward_head(features(x)).
  Tensor forward(const Tensor& x) override;
  // [N, H, W, 3] -> [N, embedding_dim()]: the embedding the head sees (ResNet: global average
  // pool; ConvNeXt: global average pool then classifier.0's LayerNorm).
  virtual Tensor features(const Tensor& x) = 0;
  // [N, embedding_dim()] -> [N, num_outputs()].
  Tensor forward_head(const Tensor& embedding);

  const std::string& arch() const { return arch_; }
  int64_t embedding_dim() const { return embedding_dim_; }
  int64_t num_outputs() const { return num_outputs_; }
  Head head_type() const { return head_type_; }
  // The dotted name of the head module: "fc" (ResNet) or "classifier.2" (ConvNeXt).
  const std::string& head_prefix() const { return head_prefix_; }
  nn::Module& head() { return *head_; }

  // Freezes (requires_grad false) every parameter outside the head, or unfreezes them. The
  // BatchNorm statistics still update in training mode; call eval() on parts to stop that.
  void freeze_backbone(bool frozen = true);
  // The generator every Dropout / StochasticDepth of this model draws from; save its
  // (seed, offset) with a checkpoint so a resumed run draws the same masks.
  engine::Generator& dropout_generator() { return *dropout_gen_; }

 protected:
  Model(std::string arch, int64_t embedding_dim, int64_t num_outputs, Head head,
        std::string head_prefix, const ModelOptions& options);
  // Builds the head for this model's sizes (not registered: the subclass registers it where
  // torchvision has its classifier). Its Linears get nn.Linear's default init from `gen`, or
  // none with nn::skip_init (the caller initialises them).
  std::shared_ptr<nn::Module> make_head(engine::Generator& gen);
  std::shared_ptr<nn::Module> make_head(nn::SkipInit);
  // Throws unless x is NHWC with 3 channels.
  void check_input(const Tensor& x) const;

  std::shared_ptr<nn::Module> head_;
  std::shared_ptr<engine::Generator> dropout_gen_;
  ModelOptions options_;

 private:
  std::string arch_;
  int64_t embedding_dim_, num_outputs_;
  Head head_type_;
  std::string head_prefix_;
  std::shared_ptr<nn::Module> build_head(engine::Generator* gen);  // null: skip init
};

// "resnet18", "resnet34", "resnet50", "convnext_tiny", "convnext_small", "convnext_base".
std::vector<std::string> architectures();
// A freshly initialised model (torchvision's initialisation, drawn from options.seed).
std::shared_ptr<Model> create(const std::string& arch, int64_t num_outputs,
                              Head head = Head::Linear, const ModelOptions& options = {});

}  // namespace models
