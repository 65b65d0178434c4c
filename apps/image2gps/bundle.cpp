#include "apps/image2gps/bundle.h"

#include <filesystem>

#include "apps/image2gps/checkpoint.h"
#include "apps/image2gps/inference.h"
#include "engine/io/safetensors.h"

namespace i2g {

namespace fs = std::filesystem;

KnnBank build_bank(models::Model& model, const Dataset& data, const CoordNorm& norm,
                   engine::Device device, int image_size, int batch_size, int workers) {
  InferenceOptions io;
  io.image_size = image_size;
  io.batch_size = batch_size;
  io.workers = workers;
  io.embeddings = true;
  Predictions p = run_model(model, data, norm, device, io);
  std::vector<double> xy;
  for (const LatLon& t : p.truth) xy.push_back(t.lat), xy.push_back(t.lon);
  KnnBank bank;
  bank.embeddings = p.embeddings;
  bank.coords = engine::Tensor::from_vector(xy, {static_cast<int64_t>(p.truth.size()), 2});
  return bank;
}

void export_bundle(const std::string& run_dir, const std::string& out_path,
                   engine::Device device, int64_t knn_k, double temperature, int workers) {
  const std::string best = (fs::path(run_dir) / "best.ckpt").string();
  engine::check(fs::exists(best), run_dir, ": no best.ckpt (has this run finished an epoch?)");
  LoadedModel lm = load_trained_model(best, device);
  Dataset train = Dataset::open((fs::path(lm.config.data_dir) / "train").string());
  KnnBank bank = build_bank(*lm.model, train, lm.norm, device, lm.config.image_size,
                            lm.config.batch_size, workers);

  Checkpoint ck = read_checkpoint(best);
  std::map<std::string, engine::Tensor> tensors;
  for (auto& [k, t] : ck.tensors)
    if (k.rfind("model.", 0) == 0) tensors[k] = t;
  tensors["knn.embeddings"] = bank.embeddings;
  tensors["knn.coords"] = bank.coords;
  std::map<std::string, std::string> meta = ck.meta;
  meta["format"] = "image2gps-bundle";
  meta["knn_k"] = std::to_string(knn_k);
  meta["knn_temperature"] = std::to_string(temperature);
  engine::io::save_safetensors(out_path, tensors, meta);
}

Bundle load_bundle(const std::string& path, engine::Device device) {
  auto f = engine::io::load_safetensors(path);
  engine::check(f.metadata.count("format") && f.metadata.at("format") == "image2gps-bundle",
                path, ": not an image2gps bundle (make one with image2gps export)");
  Checkpoint ck;
  ck.path = path;
  ck.meta = f.metadata;
  ck.tensors = f.tensors;
  Bundle b;
  b.net.config = TrainConfig::from_json(nlohmann::json::parse(ck.get("config")));
  b.net.norm = CoordNorm::from_metadata(ck.meta, path);
  models::ModelOptions mo;
  mo.seed = b.net.config.seed;
  b.net.model = models::create(b.net.config.arch, 2, models::parse_head(b.net.config.head), mo);
  load_model_state(ck, *b.net.model);
  b.net.model->to(device);
  b.net.model->eval();
  engine::check(f.tensors.count("knn.embeddings") && f.tensors.count("knn.coords"), path,
                ": the bundle has no k-NN bank");
  b.bank.embeddings = f.tensors.at("knn.embeddings").to(device);
  b.bank.coords = f.tensors.at("knn.coords");
  engine::check(b.bank.embeddings.dim() == 2 &&
                    b.bank.embeddings.size(1) == b.net.model->embedding_dim() &&
                    b.bank.coords.dim() == 2 && b.bank.coords.size(0) == b.bank.embeddings.size(0),
                path, ": the k-NN bank's shapes do not fit the model");
  b.knn_k = static_cast<int64_t>(ck.get_number("knn_k"));
  b.temperature = ck.get_number("knn_temperature");
  return b;
}

}  // namespace i2g
