// models/model.cpp — the shared Model pieces (head, input check, freezing) and the factory.
#include "models/model.h"

#include "models/convnext.h"
#include "models/resnet.h"
#include "models/small_cnn.h"

namespace models {

using engine::check;

Head parse_head(const std::string& name) {
  if (name == "linear") return Head::Linear;
  if (name == "mlp") return Head::Mlp;
  engine::fail("unknown head '", name, "': choose 'linear' or 'mlp'");
}

const char* head_name(Head head) { return head == Head::Linear ? "linear" : "mlp"; }

Model::Model(std::string arch, int64_t embedding_dim, int64_t num_outputs, Head head,
             std::string head_prefix, const ModelOptions& options)
    : dropout_gen_(std::make_shared<engine::Generator>(options.dropout_seed)),
      options_(options),
      arch_(std::move(arch)),
      embedding_dim_(embedding_dim),
      num_outputs_(num_outputs),
      head_type_(head),
      head_prefix_(std::move(head_prefix)) {
  check(num_outputs > 0, arch_, ": num_outputs must be positive, got ", num_outputs);
  check(options.mlp_hidden > 0, arch_, ": mlp_hidden must be positive, got ", options.mlp_hidden);
}

std::shared_ptr<nn::Module> Model::make_head(engine::Generator& gen) { return build_head(&gen); }
std::shared_ptr<nn::Module> Model::make_head(nn::SkipInit) { return build_head(nullptr); }

std::shared_ptr<nn::Module> Model::build_head(engine::Generator* gen) {
  auto linear = [&](int64_t in, int64_t out) {
    return gen ? std::make_shared<nn::Linear>(in, out, *gen)
               : std::make_shared<nn::Linear>(in, out, nn::skip_init);
  };
  if (head_type_ == Head::Linear) return linear(embedding_dim_, num_outputs_);
  auto mlp = std::make_shared<nn::Sequential>();
  mlp->emplace<nn::Dropout>(options_.head_dropout, dropout_gen_);  // fc.0
  mlp->push_back(linear(embedding_dim_, options_.mlp_hidden));     // fc.1
  mlp->emplace<nn::ReLU>();                                        // fc.2
  mlp->push_back(linear(options_.mlp_hidden, num_outputs_));       // fc.3
  return mlp;
}

void Model::check_input(const Tensor& x) const {
  check(x.defined() && x.dim() == 4 && x.size(3) == 3, arch_,
        ": expected a batch of RGB images in NHWC layout [N, H, W, 3], got ",
        x.defined() ? x.shape() : engine::Shape{});
}

Tensor Model::forward(const Tensor& x) { return forward_head(features(x)); }

Tensor Model::forward_head(const Tensor& embedding) {
  check(embedding.dim() == 2 && embedding.size(1) == embedding_dim_, arch_,
        ": the head expects embeddings [N, ", embedding_dim_, "], got ", embedding.shape());
  return head_->forward(embedding);
}

void Model::freeze_backbone(bool frozen) {
  set_requires_grad(!frozen);
  if (frozen) head_->set_requires_grad(true);
}

std::vector<std::string> architectures() {
  return {"resnet18", "resnet34", "resnet50", "convnext_tiny", "convnext_small", "convnext_base",
          "small_cnn"};
}

std::shared_ptr<Model> create(const std::string& arch, int64_t num_outputs, Head head,
                              const ModelOptions& options) {
  if (arch == "resnet18") return resnet18(num_outputs, head, options);
  if (arch == "resnet34") return resnet34(num_outputs, head, options);
  if (arch == "resnet50") return resnet50(num_outputs, head, options);
  if (arch == "convnext_tiny") return convnext_tiny(num_outputs, head, options);
  if (arch == "convnext_small") return convnext_small(num_outputs, head, options);
  if (arch == "convnext_base") return convnext_base(num_outputs, head, options);
  if (arch == "small_cnn") return small_cnn(num_outputs, head, options);
  std::string all;
  for (const auto& a : architectures()) all += (all.empty() ? "" : ", ") + a;
  engine::fail("unknown architecture '", arch, "': choose one of ", all);
}

}  // namespace models
