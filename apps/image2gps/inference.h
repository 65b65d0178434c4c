// apps/image2gps/inference.h — running a model over a dataset: predicted coordinates (and
// optionally the embeddings that feed k-NN), in eval mode without autograd.
#pragma once

#include <vector>

#include "apps/image2gps/coords.h"
#include "apps/image2gps/geodesic.h"
#include "apps/image2gps/loader.h"
#include "models/model.h"

namespace i2g {

struct Predictions {
  std::vector<LatLon> pred;    // regression head, denormalised to degrees
  std::vector<LatLon> truth;   // the dataset's labels, same order
  std::vector<size_t> rows;    // dataset rows, same order (unreadable images skipped)
  engine::Tensor embeddings;   // [N, D] float32 on the model's device (when asked for)
  double loss = 0;             // mean MSE on normalised coordinates
};

struct InferenceOptions {
  int image_size = 224;
  int batch_size = 32;
  int workers = 0;  // decoding threads; 0: auto (decode_workers in loader.h)
  bool embeddings = false;
  bool skip_bad = false;
};

Predictions run_model(models::Model& model, const Dataset& data, const CoordNorm& norm,
                      engine::Device device, const InferenceOptions& options);

}  // namespace i2g
