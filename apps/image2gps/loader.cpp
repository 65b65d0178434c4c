#include "apps/image2gps/loader.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>

#include "apps/image2gps/resize.h"

namespace i2g {

namespace fs = std::filesystem;

Dataset Dataset::open(const std::string& dir) {
  Dataset d;
  d.dir = dir;
  const std::string csv = (fs::path(dir) / "metadata.csv").string();
  engine::check(fs::exists(csv), dir, ": no metadata.csv (expected image_file,Latitude,Longitude)");
  d.records = read_metadata_csv(csv);
  engine::check(!d.records.empty(), csv, ": no rows");
  for (size_t i = 0; i < d.records.size(); ++i)
    engine::check(fs::exists(d.path(i)), csv, ": row ", i + 2, " names '",
                  d.records[i].image_file, "', which does not exist");
  return d;
}

std::string Dataset::path(size_t i) const {
  return (fs::path(dir) / records[i].image_file).string();
}

std::shared_ptr<const Image> ImageCache::get(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = images_.find(path);
    if (it != images_.end()) return it->second;
  }
  auto img = std::make_shared<const Image>(load_image(path));  // decode outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  if (used_ + img->rgb.size() <= budget_ && !images_.count(path)) {
    images_[path] = img;
    used_ += img->rgb.size();
  }
  return img;
}

Loader::Loader(const Dataset& data, const CoordNorm& norm, const LoaderOptions& options,
               uint64_t epoch, std::shared_ptr<ImageCache> cache)
    : data_(data), norm_(norm), opt_(options), epoch_(epoch), cache_(std::move(cache)) {
  engine::check(opt_.batch_size >= 1, "loader: batch size must be at least 1");
  engine::check(opt_.augment.size >= 8, "loader: image size must be at least 8");
  order_.resize(data_.size());
  std::iota(order_.begin(), order_.end(), size_t{0});
  if (opt_.shuffle) {
    // The data-order stream: its own generator, seeded from (seed, epoch).
    std::mt19937_64 gen(opt_.seed * 0x9E3779B97F4A7C15ULL + epoch_ + 1);
    std::shuffle(order_.begin(), order_.end(), gen);
  }
  for (size_t b = 0; b < order_.size(); b += opt_.batch_size) {
    size_t e = std::min(order_.size(), b + opt_.batch_size);
    if (opt_.drop_last && e - b < static_cast<size_t>(opt_.batch_size)) break;
    ranges_.push_back({b, e});
  }
  if (!cache_) cache_ = std::make_shared<ImageCache>(0);
  int nw = std::max(1, std::min<int>(opt_.workers, static_cast<int>(ranges_.size())));
  for (int i = 0; i < nw && !ranges_.empty(); ++i) threads_.emplace_back([this] { work(); });
}

int decode_workers(int requested, engine::Device device) {
  if (requested > 0) return requested;
  if (!device.is_cuda()) return 2;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores - 1, 2, 16);
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Loader::work() {
  for (;;) {
    size_t b = next_build_.fetch_add(1);
    if (b >= ranges_.size()) return;
    {
      // Stay at most `prefetch` batches ahead of the consumer (bounded memory).
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || b < consumed_ + std::max(1, opt_.prefetch); });
      if (stop_) return;
    }
    Slot slot = build(b);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace(b, std::move(slot));
    }
    cv_.notify_all();
  }
}

Loader::Slot Loader::build(size_t b) {
  Slot slot;
  auto t0 = std::chrono::steady_clock::now();
  try {
    const int s = opt_.augment.size;
    const size_t per_image = static_cast<size_t>(s) * s * 3;
    auto [begin, end] = ranges_[b];
    std::vector<float> pixels;
    std::vector<float> targets;
    pixels.reserve((end - begin) * per_image);
    for (size_t i = begin; i < end; ++i) {
      size_t row = order_[i];
      std::shared_ptr<const Image> img;
      try {
        img = cache_->get(data_.path(row));
      } catch (const engine::Error&) {
        if (!opt_.skip_bad) throw;
        skipped_.fetch_add(1);
        continue;
      }
      Image view = augment(*img, opt_.augment, opt_.seed, row, epoch_);
      pixels.resize(pixels.size() + per_image);
      to_normalized_nhwc(view, pixels.data() + pixels.size() - per_image);
      auto t = norm_.normalize(data_.records[row].lat, data_.records[row].lon);
      targets.insert(targets.end(), t.begin(), t.end());
      slot.batch.indices.push_back(row);
    }
    const int64_t n = static_cast<int64_t>(slot.batch.indices.size());
    slot.batch.images = engine::Tensor::from_vector(pixels, {n, s, s, 3});
    slot.batch.targets = engine::Tensor::from_vector(targets, {n, 2});
    decoded_.fetch_add(n);
  } catch (...) {
    slot.error = std::current_exception();
  }
  busy_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count());
  return slot;
}

bool Loader::next(Batch& out) {
  for (;;) {
    Slot slot;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (consumed_ >= ranges_.size()) return false;
      cv_.wait(lock, [&] { return ready_.count(consumed_) > 0; });
      auto it = ready_.find(consumed_);
      slot = std::move(it->second);
      ready_.erase(it);
      ++consumed_;
    }
    cv_.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    if (slot.batch.indices.empty()) continue;  // every image of this batch was skipped
    out = std::move(slot.batch);
    return true;
  }
}

double Loader::images_per_second_per_worker() const {
  double busy = static_cast<double>(busy_ns_.load()) * 1e-9;
  return busy > 0 ? static_cast<double>(decoded_.load()) / busy : 0.0;
}

}  // namespace i2g
