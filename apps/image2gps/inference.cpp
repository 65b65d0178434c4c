#include "apps/image2gps/inference.h"

namespace i2g {

Predictions run_model(models::Model& model, const Dataset& data, const CoordNorm& norm,
                      engine::Device device, const InferenceOptions& options) {
  engine::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.augment.size = options.image_size;
  lo.workers = options.workers;
  lo.skip_bad = options.skip_bad;
  Loader loader(data, norm, lo, /*epoch=*/0);

  Predictions p;
  std::vector<engine::Tensor> embs;
  double loss_sum = 0;
  Batch b;
  while (loader.next(b)) {
    engine::Tensor x = b.images.to(device);
    engine::Tensor e = model.features(x);
    engine::Tensor y = model.forward_head(e);
    if (options.embeddings) embs.push_back(e.detach());
    loss_sum += engine::mse_loss(y, b.targets.to(device), engine::Reduction::Sum).item();
    std::vector<float> out = y.to_float_vector();
    for (size_t i = 0; i < b.indices.size(); ++i) {
      auto ll = norm.denormalize(out[2 * i], out[2 * i + 1]);
      p.pred.push_back({ll[0], ll[1]});
      const GeoRecord& r = data.records[b.indices[i]];
      p.truth.push_back({r.lat, r.lon});
      p.rows.push_back(b.indices[i]);
    }
  }
  model.train(was_training);
  engine::check(!p.rows.empty(), data.dir, ": no readable images");
  p.loss = loss_sum / (2.0 * static_cast<double>(p.rows.size()));
  if (options.embeddings) p.embeddings = embs.size() == 1 ? embs[0] : engine::cat(embs, int64_t{0});
  return p;
}

}  // namespace i2g
