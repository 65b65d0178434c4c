// apps/image2gps/trainer.h — `image2gps train`: the course's recipe as one loop.
//
// Targets are (lat, lon) standardised with the training split's statistics; loss MSE or Huber;
// Adam/AdamW/SGD with StepLR or warmup+cosine; optional freeze-then-unfreeze (the backbone is
// frozen for the first --freeze-epochs epochs, the head trains at --head-lr throughout).
// Every epoch: validation RMSE and mean error in meters, a JSONL log line, the best-validation
// checkpoint (best.ckpt) and the resume checkpoint (last.ckpt), both written atomically.
// Ctrl-C saves last.ckpt at the current batch and stops; --resume continues from it exactly.
#pragma once

#include <string>

#include "apps/image2gps/coords.h"
#include "apps/image2gps/train_config.h"
#include "models/model.h"

namespace i2g {

struct TrainResult {
  double best_val_rmse_m = 0;
  double best_val_mean_m = 0;
  int best_epoch = -1;       // 0-based
  int epochs_done = 0;
  bool interrupted = false;  // stopped by Ctrl-C (last.ckpt holds the position)
  std::string run_dir;
};

// Starts a new run in cfg.run_dir (refuses to overwrite a run that has a last.ckpt).
TrainResult train(const TrainConfig& cfg);
// Continues the run in run_dir from its last.ckpt with the config saved there; `epochs` > 0
// extends or shortens the total number of epochs.
TrainResult resume(const std::string& run_dir, int epochs = 0);

// The model a checkpoint was trained as, with its weights, on `device`.
struct LoadedModel {
  std::shared_ptr<models::Model> model;
  TrainConfig config;
  CoordNorm norm;
};
LoadedModel load_trained_model(const std::string& ckpt_path, engine::Device device);

// "auto" -> cuda when a GPU is visible, else cpu. On a GPU it first applies the command line's
// --kernels / --tf32 / --cudnn-benchmark / --cudnn-nondeterministic (gpu_choices()), and says
// once on stderr what the op families run.
engine::Device resolve_device(const std::string& name);

// The GPU options every subcommand with --device takes (cli.h: add_device_options).
struct GpuChoices {
  std::string kernels = "default";  // default | ours | vendor (engine::set_gpu_kernels)
  bool tf32 = false;                // on: TF32 tensor cores for float32 (off: as the env says)
  bool cudnn_benchmark = false;     // on: cuDNN algorithms chosen by timing (off: as the env says)
  bool cudnn_nondeterministic = false;  // on: any cuDNN backward algorithm (off: as the env says)
};
GpuChoices& gpu_choices();

}  // namespace i2g
