// Weight loading and saving: PyTorch layouts at the boundary, strict error reports that change
// nothing, ImageNet heads dropped, timm names, safetensors round trips.
#include <cstdio>
#include <filesystem>
#include <functional>

#include <unistd.h>

#include "models/convnext.h"
#include "models/resnet.h"
#include "models/weights.h"
#include "tests/common/check.h"

using namespace engine;
using testing_util::all_close;
using testing_util::random;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "-" + std::to_string(static_cast<long>(::getpid())) + ".safetensors"))
      .string();
}

// Makes BatchNorm buffers and affine parameters non-default, so loading them is visible.
void perturb_batchnorm(nn::Module& m, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, t] : m.state_dict()) {
    if (name.ends_with("running_mean") || name.ends_with(".bias"))
      t.detach().copy_(Tensor::rand(t.shape(), gen, -0.2, 0.2));
    if (name.ends_with("running_var")) t.detach().copy_(Tensor::rand(t.shape(), gen, 0.5, 1.5));
    if (name.ends_with("num_batches_tracked")) t.fill_(static_cast<double>(seed));
  }
}

std::map<std::string, std::vector<double>> values(const nn::Module& m) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [k, t] : m.state_dict()) out[k] = t.to_vector();
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Weights, SafetensorsRoundTripReproducesTheModel) {
  auto a = models::resnet18(4, models::Head::Mlp, {.seed = 1});
  perturb_batchnorm(*a, 5);
  const std::string path = temp_path("weights_roundtrip");
  models::save_weights(*a, path, {{"arch", "resnet18"}});
  auto b = models::resnet18(4, models::Head::Mlp, {.seed = 2});
  Tensor w_before = b->conv1->weight;
  models::LoadReport r = models::load_weights(*b, path);
  std::filesystem::remove(path);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.loaded.size(), b->state_dict().size());
  EXPECT_TRUE(w_before.same(b->conv1->weight));  // loaded in place: optimizers stay valid
  EXPECT_TRUE(b->conv1->weight.requires_grad());
  EXPECT_EQ(values(*a), values(*b));
  a->eval();
  b->eval();
  Tensor x = random({2, 33, 45, 3}, 4, -1, 1, DType::Float32);
  EXPECT_TRUE(all_close(a->forward(x), b->forward(x), 0, 0));
}

TEST(Weights, ExportUsesPyTorchLayouts) {
  auto m = models::resnet18(3);
  auto sd = models::export_state_dict(*m);
  const Tensor& oihw = sd.at("layer1.0.conv1.weight");
  ASSERT_EQ(oihw.shape(), (Shape{64, 64, 3, 3}));
  EXPECT_TRUE(oihw.device().is_cpu());
  EXPECT_TRUE(oihw.is_contiguous());
  auto ours = m->state_dict().at("layer1.0.conv1.weight").to_vector();  // [K, R, S, C]
  auto theirs = oihw.to_vector();
  for (int o : {0, 17, 63})
    for (int i : {0, 5, 63})
      for (int h = 0; h < 3; ++h)
        for (int w = 0; w < 3; ++w)
          ASSERT_EQ(theirs[((o * 64 + i) * 3 + h) * 3 + w], ours[((o * 3 + h) * 3 + w) * 64 + i]);
  EXPECT_EQ(sd.at("fc.weight").shape(), (Shape{3, 512}));
  EXPECT_EQ(sd.at("bn1.num_batches_tracked").dtype(), DType::Int64);
}

TEST(Weights, StrictLoadListsEveryProblemAndChangesNothing) {
  auto a = models::resnet18(4, models::Head::Linear, {.seed = 1});
  auto sd = models::export_state_dict(*a);
  sd.erase("layer1.0.conv1.weight");
  sd["extra.weight"] = Tensor::zeros({3});
  sd["layer2.0.bn1.bias"] = Tensor::zeros({7});
  sd["layer3.0.conv2.weight"] = Tensor::zeros({256, 256, 5, 5});
  auto b = models::resnet18(4, models::Head::Linear, {.seed = 2});
  const auto before = values(*b);
  const std::string msg = error_of([&] { models::load_state_dict(*b, sd); });
  ASSERT_FALSE(msg.empty());
  for (const char* s : {"layer1.0.conv1.weight", "extra.weight", "layer2.0.bn1.bias",
                        "[7]", "[128]", "layer3.0.conv2.weight", "[256,256,5,5]", "[256,256,3,3]"})
    EXPECT_NE(msg.find(s), std::string::npos) << s << " not in: " << msg;
  EXPECT_EQ(values(*b), before);

  models::LoadReport r = models::load_state_dict(*b, sd, {.strict = false});
  EXPECT_EQ(r.missing, std::vector<std::string>{"layer1.0.conv1.weight"});
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"extra.weight"});
  EXPECT_EQ(r.mismatched.size(), 2u);
  EXPECT_EQ(r.loaded.size(), a->state_dict().size() - 3);
  EXPECT_EQ(b->conv1->weight.to_vector(), a->conv1->weight.to_vector());
  EXPECT_EQ(b->state_dict().at("layer1.0.conv1.weight").to_vector(),
            before.at("layer1.0.conv1.weight"));
}

TEST(Weights, ImageNetHeadIsDroppedForAnotherHead) {
  auto a = models::resnet18(1000, models::Head::Linear, {.seed = 1});
  perturb_batchnorm(*a, 3);
  auto sd = models::export_state_dict(*a);
  const auto a_values = values(*a);
  for (models::Head head : {models::Head::Mlp, models::Head::Linear}) {
    auto b = models::resnet18(2, head, {.seed = 2});
    const auto before = values(*b);
    models::LoadReport r = models::load_state_dict(*b, sd);
    EXPECT_TRUE(r.ok()) << r.summary();
    EXPECT_EQ(r.dropped_head, (std::vector<std::string>{"fc.bias", "fc.weight"}));
    if (head == models::Head::Mlp) {
      EXPECT_EQ(r.head_initialised, (std::vector<std::string>{"fc.1.bias", "fc.1.weight",
                                                              "fc.3.bias", "fc.3.weight"}));
    }
    for (auto& [k, v] : values(*b)) {
      if (k.starts_with("fc.")) EXPECT_EQ(v, before.at(k)) << k;  // our head kept
      else EXPECT_EQ(v, a_values.at(k)) << k;  // the backbone is the checkpoint's
    }
    EXPECT_NE(r.summary().find("dropped"), std::string::npos);
    EXPECT_THROW(models::load_state_dict(*b, sd, {.head = models::HeadMismatch::Error}), Error);
  }
}

TEST(Weights, OtherHeadMismatchIsAnErrorUnlessAskedToDrop) {
  auto sd = models::export_state_dict(*models::resnet18(10));
  auto b = models::resnet18(2);
  const std::string msg = error_of([&] { models::load_state_dict(*b, sd); });
  EXPECT_NE(msg.find("fc.weight: checkpoint [10,512]"), std::string::npos) << msg;
  models::LoadReport r = models::load_state_dict(*b, sd, {.head = models::HeadMismatch::Drop});
  EXPECT_EQ(r.dropped_head.size(), 2u);
  // A plain nn::Module load knows no head: the mismatch stays an error.
  EXPECT_THROW(models::load_state_dict(static_cast<nn::Module&>(*b), sd), Error);
}

TEST(Weights, MissingNumBatchesTrackedIsToleratedAsPyTorchDoes) {
  auto a = models::resnet18(5);
  auto sd = models::export_state_dict(*a);
  std::erase_if(sd, [](const auto& kv) { return kv.first.ends_with("num_batches_tracked"); });
  auto b = models::resnet18(5);
  models::LoadReport r = models::load_state_dict(*b, sd);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.defaulted.size(), 20u);  // resnet18 has 20 BatchNorms
}

TEST(Weights, TimmConvNeXtNamesAreMapped) {
  auto a = models::convnext_tiny(1000, models::Head::Linear, {.seed = 1});
  for (auto& [name, p] : a->named_parameters())
    if (name.ends_with("layer_scale")) p.detach().copy_(Tensor::rand(p.shape(), *std::make_unique<Generator>(name.size()), 0.1, 1));
  // timm's names for the same weights, written out from its module structure.
  models::StateDict timm;
  const std::vector<std::string> block_parts = {"conv_dw", "", "norm", "mlp.fc1", "", "mlp.fc2"};
  for (auto& [key, t] : models::export_state_dict(*a)) {
    std::string name;
    Tensor v = t;
    int i = 0, m = 0, k = 0;
    char rest[64] = {0};
    if (std::sscanf(key.c_str(), "features.%d.%d.block.%d.%63s", &i, &m, &k, rest) == 4) {
      name = "stages." + std::to_string((i - 1) / 2) + ".blocks." + std::to_string(m) + "." +
             block_parts.at(k) + "." + rest;
    } else if (std::sscanf(key.c_str(), "features.%d.%d.layer_scal%63s", &i, &m, rest) == 3) {
      name = "stages." + std::to_string((i - 1) / 2) + ".blocks." + std::to_string(m) + ".gamma";
      v = t.reshape({t.numel()});  // timm keeps [C]
    } else if (key.starts_with("features.0.")) {
      name = "stem." + key.substr(11);
    } else if (std::sscanf(key.c_str(), "features.%d.%63s", &i, rest) == 2) {
      name = "stages." + std::to_string(i / 2) + ".downsample." + rest;
    } else if (key.starts_with("classifier.0.")) {
      name = "head.norm." + key.substr(13);
    } else if (key.starts_with("classifier.2.")) {
      name = "head.fc." + key.substr(13);
    }
    ASSERT_FALSE(name.empty()) << key;
    timm[name] = v;
  }
  ASSERT_TRUE(timm.count("stages.2.blocks.8.mlp.fc2.weight"));
  ASSERT_TRUE(timm.count("stages.3.downsample.1.weight"));
  ASSERT_EQ(timm.at("stages.0.blocks.0.gamma").shape(), (Shape{96}));
  EXPECT_TRUE(models::looks_like_timm(timm));

  auto b = models::convnext_tiny(1000, models::Head::Linear, {.seed = 2});
  models::LoadReport r = models::load_state_dict(*b, timm);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.renamed.size(), timm.size());
  EXPECT_EQ(values(*a), values(*b));

  timm["stages.0.blocks.0.shortcut.weight"] = Tensor::zeros({2});
  const std::string msg = error_of([&] { models::load_state_dict(*b, timm); });
  // Keys the map does not know are reported under the checkpoint's own name.
  EXPECT_NE(msg.find("unexpected [stages.0.blocks.0.shortcut.weight]"), std::string::npos) << msg;
}

TEST(Weights, FileErrorsNameTheFile) {
  auto m = models::resnet18(2);
  const std::string msg = error_of([&] { models::load_weights(*m, "/nonexistent/r18.safetensors"); });
  EXPECT_NE(msg.find("/nonexistent/r18.safetensors"), std::string::npos) << msg;
}
