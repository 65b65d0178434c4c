// The factory and head options.
#include <algorithm>

#include "models/model.h"
#include "tests/common/check.h"

using namespace engine;

TEST(Models, FactoryBuildsEveryResNetAndNamesItsChoicesOnError) {
  for (const char* arch : {"resnet18", "resnet34"}) {
    auto m = models::create(arch, 3, models::Head::Mlp);
    EXPECT_EQ(m->arch(), arch);
    EXPECT_EQ(m->num_outputs(), 3);
    EXPECT_EQ(m->embedding_dim(), 512);
  }
  const auto archs = models::architectures();
  for (const char* a : {"resnet18", "resnet34", "resnet50", "convnext_tiny", "convnext_small",
                        "convnext_base"})
    EXPECT_NE(std::find(archs.begin(), archs.end(), a), archs.end()) << a;
  try {
    models::create("resnet19", 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("resnet19"), std::string::npos);
    for (const auto& a : models::architectures()) EXPECT_NE(msg.find(a), std::string::npos) << a;
  }
  EXPECT_THROW(models::create("resnet18", 0), Error);
}

TEST(Models, ParseHead) {
  EXPECT_EQ(models::parse_head("linear"), models::Head::Linear);
  EXPECT_EQ(models::parse_head("mlp"), models::Head::Mlp);
  EXPECT_STREQ(models::head_name(models::Head::Mlp), "mlp");
  EXPECT_THROW(models::parse_head("MLP2"), Error);
}

TEST(Models, HeadAloneMapsEmbeddingsToOutputs) {
  auto m = models::create("resnet18", 4, models::Head::Mlp, {.head_dropout = 0.0});
  Tensor e = testing_util::random({3, 512}, 1, -1, 1, DType::Float32);
  EXPECT_EQ(m->forward_head(e).shape(), (Shape{3, 4}));
  EXPECT_THROW(m->forward_head(testing_util::random({3, 500}, 1, -1, 1, DType::Float32)), Error);
}
