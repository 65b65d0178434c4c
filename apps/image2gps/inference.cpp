#include "apps/image2gps/inference.h"

#include "engine/readback.h"

namespace i2g {

Predictions run_model(models::Model& model, const Dataset& data, const CoordNorm& norm,
                      engine::Device device, const InferenceOptions& options) {
  engine::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.augment.size = options.image_size;
  lo.workers = decode_workers(options.workers, device);
  lo.skip_bad = options.skip_bad;
  Loader loader(data, norm, lo, /*epoch=*/0);

  Predictions p;
  std::vector<engine::Tensor> embs;
  double loss_sum = 0;  // squared errors on normalised coordinates, summed in double
  // Batch b's outputs are read after batch b + 1 is queued (engine::Readback): on a GPU it
  // computes one batch while the host reads the one before, instead of waiting per batch.
  engine::Readback pending;
  std::vector<size_t> pending_rows;
  std::vector<float> pending_targets;
  auto collect = [&] {
    if (!pending.started()) return;
    const std::vector<double>& out = pending.get();  // [B, 2], values of float32 outputs
    for (size_t i = 0; i < pending_rows.size(); ++i) {
      for (size_t k = 2 * i; k < 2 * i + 2; ++k) {
        const double d = out[k] - pending_targets[k];
        loss_sum += d * d;
      }
      auto ll = norm.denormalize(static_cast<float>(out[2 * i]),
                                 static_cast<float>(out[2 * i + 1]));
      p.pred.push_back({ll[0], ll[1]});
      const GeoRecord& r = data.records[pending_rows[i]];
      p.truth.push_back({r.lat, r.lon});
      p.rows.push_back(pending_rows[i]);
    }
    pending = engine::Readback();
  };
  Batch b;
  while (loader.next(b)) {
    engine::Tensor x = b.images.to(device);
    engine::Tensor e = model.features(x);
    engine::Tensor y = model.forward_head(e);
    if (options.embeddings) embs.push_back(e.detach());
    collect();
    pending = engine::Readback(y);
    pending_rows = b.indices;
    pending_targets = b.targets.to_float_vector();  // on the host already: no wait
  }
  collect();
  model.train(was_training);
  engine::check(!p.rows.empty(), data.dir, ": no readable images");
  p.loss = loss_sum / (2.0 * static_cast<double>(p.rows.size()));
  if (options.embeddings) p.embeddings = embs.size() == 1 ? embs[0] : engine::cat(embs, int64_t{0});
  return p;
}

}  // namespace i2g
