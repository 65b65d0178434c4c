// Module bookkeeping: dotted names in PyTorch's order, state dicts, lookup, freezing, train
// mode, moving and converting (identity kept) and registration errors.
#include "nn/layers.h"
#include "nn/module.h"
#include "tests/common/check.h"

using namespace engine;

namespace {

// A module shaped like a ResNet block, to check the names a model gets.
class Block : public nn::Module {
 public:
  explicit Block(Generator& gen) {
    scale = Tensor::ones({4});
    register_parameter("scale", &scale);
    conv = register_module("conv", std::make_shared<nn::Conv2d>(
                                       4, 4, 3, gen, nn::Conv2dOptions{.padding = 1, .bias = false}));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
    auto seq = std::make_shared<nn::Sequential>();
    seq->emplace<nn::Linear>(4, 2, gen);
    seq->emplace<nn::ReLU>();
    seq->emplace<nn::Linear>(2, 3, gen, false);
    head = register_module("head", seq);
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu((*bn)((*conv)(x))) * scale;
    return (*head)(global_avg_pool(y));
  }
  Tensor scale;
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Sequential> head;
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, t] : v) out.push_back(n);
  return out;
}

}  // namespace

TEST(Module, NamesAreDottedInTorchOrder) {
  Generator gen(1);
  Block b(gen);
  EXPECT_EQ(names(b.named_parameters()),
            (std::vector<std::string>{"scale", "conv.weight", "bn.weight", "bn.bias",
                                      "head.0.weight", "head.0.bias", "head.2.weight"}));
  EXPECT_EQ(names(b.named_buffers()),
            (std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}));
  auto sd = b.state_dict();
  EXPECT_EQ(sd.size(), 10u);
  EXPECT_EQ(sd.at("conv.weight").shape(), (Shape{4, 3, 3, 4}));  // [K, R, S, C]
  EXPECT_EQ(sd.at("bn.num_batches_tracked").dtype(), DType::Int64);
  EXPECT_EQ(sd.at("bn.num_batches_tracked").dim(), 0);
  // State dict entries alias the parameters (not copies).
  EXPECT_TRUE(sd.at("head.0.weight").same(b.head->at<nn::Linear>(0)->weight));
}

TEST(Module, NamedModulesAndLookup) {
  Generator gen(1);
  Block b(gen);
  std::vector<std::string> mods;
  for (auto& [n, m] : b.named_modules()) mods.push_back(n);
  EXPECT_EQ(mods, (std::vector<std::string>{"", "conv", "bn", "head", "head.0", "head.1", "head.2"}));
  Tensor* t = b.find_tensor("head.2.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t, &b.head->at<nn::Linear>(2)->weight);
  EXPECT_EQ(b.find_tensor("head.2.bias"), nullptr);  // registered without bias
  EXPECT_NE(b.find_tensor("bn.running_var"), nullptr);
  EXPECT_TRUE(b.is_parameter("bn.weight"));
  EXPECT_FALSE(b.is_parameter("bn.running_var"));
}

TEST(Module, FreezingAndTrainMode) {
  Generator gen(1);
  Block b(gen);
  EXPECT_EQ(b.parameters().size(), 7u);
  b.head->set_requires_grad(false);
  EXPECT_EQ(b.parameters().size(), 4u);
  EXPECT_EQ(b.all_parameters().size(), 7u);
  EXPECT_TRUE(b.is_training());
  b.eval();
  EXPECT_FALSE(b.bn->is_training());
  EXPECT_FALSE(b.head->at<nn::ReLU>(1)->is_training());
  b.train();
  EXPECT_TRUE(b.bn->is_training());
}

TEST(Module, BackwardReachesEveryTrainableParameterAndZeroGradClears) {
  Generator gen(2);
  Block b(gen);
  b.conv->set_requires_grad(false);
  Tensor x = Tensor::randn({2, 5, 6, 4}, gen);
  sum(b(x)).backward();
  for (auto& [n, p] : b.named_parameters()) {
    if (n == "conv.weight") EXPECT_FALSE(p.grad().defined());
    else EXPECT_TRUE(p.grad().defined()) << n;
  }
  b.zero_grad();
  for (auto& [n, p] : b.named_parameters()) EXPECT_FALSE(p.grad().defined()) << n;
}

TEST(Module, ToSameDeviceKeepsIdentity) {
  Generator gen(1);
  Block b(gen);
  Tensor w = b.conv->weight;
  const void* before = w.raw_data();
  b.to(Device::cpu());
  EXPECT_TRUE(w.same(b.conv->weight));
  EXPECT_EQ(before, b.conv->weight.raw_data());
  EXPECT_TRUE(b.conv->weight.requires_grad());
}

TEST(Module, ToCudaMovesInPlaceWhenAvailable) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  Generator gen(1);
  Block b(gen);
  Tensor w = b.conv->weight;
  const auto values = w.to_vector();
  b.to(Device::cuda());
  EXPECT_TRUE(w.device().is_cuda());  // the same handle sees the moved tensor
  EXPECT_EQ(w.to_vector(), values);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(b.bn->num_batches_tracked.device().is_cpu());  // host-side counter
}

TEST(Module, ToFloat64ConvertsInPlaceAndTrainsThere) {
  Generator gen(1);
  Block b(gen);
  Tensor w = b.conv->weight;  // a handle taken before, as an optimizer holds one
  const auto values = w.to_vector();
  Tensor x = testing_util::random({2, 5, 5, 4}, 2, -1, 1, DType::Float32);
  sum(b.forward(x)).backward();
  ASSERT_TRUE(w.grad().defined());
  b.to(DType::Float64);
  EXPECT_EQ(w.dtype(), DType::Float64);  // the same handle sees the converted tensor
  EXPECT_EQ(w.to_vector(), values);      // float32 values are exact in float64
  EXPECT_FALSE(w.grad().defined());      // the old float32 gradient is dropped
  EXPECT_TRUE(w.requires_grad() && w.is_leaf());
  EXPECT_EQ(b.bn->running_var.dtype(), DType::Float64);
  EXPECT_EQ(b.bn->num_batches_tracked.dtype(), DType::Int64);  // integer buffers keep theirs
  sum(b.forward(x.to(DType::Float64))).backward();
  EXPECT_EQ(w.grad().dtype(), DType::Float64);
  EXPECT_THROW(b.to(DType::Int64), Error);
}

TEST(Module, RegistrationErrors) {
  struct Bad : nn::Module {
    Tensor forward(const Tensor& x) override { return x; }
    Tensor a = Tensor::zeros({2}), undefined;
    void twice() { register_parameter("a", &a); register_parameter("a", &a); }
    void dotted() { register_parameter("a.b", &a); }
    void undef() { register_parameter("u", &undefined); }
    void clash() { register_parameter("a", &a); register_buffer("a", &a); }
  };
  EXPECT_THROW(Bad().twice(), Error);
  EXPECT_THROW(Bad().dotted(), Error);
  EXPECT_THROW(Bad().undef(), Error);
  EXPECT_THROW(Bad().clash(), Error);
}
