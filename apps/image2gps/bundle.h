// apps/image2gps/bundle.h — the deployable bundle (`image2gps export`, `image2gps predict`).
//
// One safetensors file: the best checkpoint's weights ("model.*"), the k-NN bank (the training
// images' embeddings "knn.embeddings" [N, D] and their coordinates "knn.coords" [N, 2]), and in
// its metadata the config, the coordinate statistics and the k-NN settings. Everything needed
// to place a new photo, nothing else.
#pragma once

#include <string>

#include "apps/image2gps/knn_bank.h"
#include "apps/image2gps/loader.h"
#include "apps/image2gps/trainer.h"

namespace i2g {

struct Bundle {
  LoadedModel net;
  KnnBank bank;
  int64_t knn_k = 15;
  double temperature = 0.1;
};

// Embeds run_dir's training split with best.ckpt and writes the bundle atomically.
void export_bundle(const std::string& run_dir, const std::string& out_path,
                   engine::Device device, int64_t knn_k, double temperature, int workers);
Bundle load_bundle(const std::string& path, engine::Device device);

// The embedding bank of a dataset under a trained model.
KnnBank build_bank(models::Model& model, const Dataset& data, const CoordNorm& norm,
                   engine::Device device, int image_size, int batch_size, int workers);

}  // namespace i2g
