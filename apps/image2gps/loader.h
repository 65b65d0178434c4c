// apps/image2gps/loader.h — datasets on disk and the batch loader that feeds training.
//
// A dataset is a folder with a metadata.csv (image_file,Latitude,Longitude). The Loader decodes
// and augments images on worker threads, several batches ahead of the training step, so
// decoding overlaps compute. Batches come out in a fixed order for a given (seed, epoch), and
// each image's augmentation depends only on (seed, image index, epoch): a resumed run sees
// exactly the batches the interrupted one would have.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apps/image2gps/augment.h"
#include "apps/image2gps/coords.h"
#include "apps/image2gps/image_io.h"
#include "apps/image2gps/metadata.h"
#include "engine/engine.h"

namespace i2g {

struct Dataset {
  std::string dir;                 // the folder that holds metadata.csv
  std::vector<GeoRecord> records;  // image_file is relative to dir

  // Reads DIR/metadata.csv and checks that every listed image file exists (the error names
  // the csv line's file); unreadable images are found later, when decoded.
  static Dataset open(const std::string& dir);
  std::string path(size_t i) const;
  size_t size() const { return records.size(); }
};

// Decoded (upright) images kept in memory across epochs, up to a byte budget.
class ImageCache {
 public:
  explicit ImageCache(size_t budget_bytes) : budget_(budget_bytes) {}
  // The decoded image of `path` (decoding it on a miss). Thread-safe.
  std::shared_ptr<const Image> get(const std::string& path);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Image>> images_;
  size_t budget_, used_ = 0;
};

// Decoding threads for a requested count; 0 means "auto": 2 when the model runs on the CPU
// (its own threads need the cores, and 2 workers decode far more than a CPU trains on: ~690
// img/s with geo-safe augmentation against 5-20 consumed, docs/BENCHMARKS.md); on a GPU, which
// consumes thousands of images per second, every core but one (the thread that queues the
// GPU's work), at most 16.
int decode_workers(int requested, engine::Device device);

struct LoaderOptions {
  int batch_size = 32;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;        // data order and augmentation streams
  AugmentOptions augment;   // preset and output size (augment.size x augment.size)
  int workers = 2;          // decoding threads
  int prefetch = 4;         // batches decoded ahead of the consumer
  bool skip_bad = false;    // skip unreadable images (counted) instead of failing
};

struct Batch {
  engine::Tensor images;       // [B, S, S, 3] float32, NHWC, ImageNet-normalised
  engine::Tensor targets;      // [B, 2] float32, coordinates normalised by CoordNorm
  std::vector<size_t> indices;  // dataset rows of the batch, in order
};

class Loader {
 public:
  Loader(const Dataset& data, const CoordNorm& norm, const LoaderOptions& options,
         uint64_t epoch, std::shared_ptr<ImageCache> cache = nullptr);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch of this epoch; false when the epoch is over. Rethrows a worker's error.
  bool next(Batch& out);
  size_t num_batches() const { return ranges_.size(); }
  size_t skipped() const { return skipped_.load(); }
  // Images decoded+augmented per second of worker time, per worker (decode cost per core).
  double images_per_second_per_worker() const;

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  void work();
  Slot build(size_t b);

  const Dataset& data_;
  CoordNorm norm_;
  LoaderOptions opt_;
  uint64_t epoch_;
  std::shared_ptr<ImageCache> cache_;
  std::vector<size_t> order_;
  std::vector<std::pair<size_t, size_t>> ranges_;  // [begin, end) into order_ per batch

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<size_t, Slot> ready_;
  size_t consumed_ = 0;
  std::atomic<size_t> next_build_{0};
  std::atomic<size_t> skipped_{0};
  std::atomic<uint64_t> decoded_{0}, busy_ns_{0};
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace i2g
