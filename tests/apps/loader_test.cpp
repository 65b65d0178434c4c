// apps/image2gps/loader.h: each epoch delivers every image once in a seeded order, the batches
// (images, targets, rows) do not depend on how many worker threads decode them, unreadable
// images stop the epoch with the file's name or are skipped and counted, and "auto" worker
// counts follow the device.
#include "apps/image2gps/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <thread>

#include "tests/apps/data_test_util.h"

namespace {

using i2g_test::TempDir;

// A folder of `n` small PNGs (each its own random colours) with their metadata.csv.
i2g::Dataset make_dataset(const TempDir& tmp, int n) {
  std::vector<i2g::GeoRecord> records;
  for (int i = 0; i < n; ++i) {
    const std::string name = "img" + std::to_string(i) + ".png";
    const int w = 20 + i % 3, h = 16;  // not all the same size: the loader resizes them all
    i2g_test::write_bytes(tmp.file(name),
                          i2g_test::encode_png(w, h, 8, 2, i2g_test::random_bytes(w * h * 3, i)));
    records.push_back({name, 39.95 + 1e-4 * i, -75.19 - 2e-4 * i});
  }
  i2g::write_metadata_csv(tmp.file("metadata.csv"), records);
  return i2g::Dataset::open(tmp.path().string());
}

i2g::LoaderOptions options(int workers) {
  i2g::LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = true;
  o.seed = 5;
  o.augment.preset = i2g::AugmentPreset::GeoSafe;
  o.augment.size = 12;
  o.workers = workers;
  return o;
}

std::vector<i2g::Batch> epoch(const i2g::Dataset& data, const i2g::LoaderOptions& o,
                              uint64_t e) {
  i2g::Loader loader(data, i2g::CoordNorm::fit(data.records), o, e);
  std::vector<i2g::Batch> out;
  i2g::Batch b;
  while (loader.next(b)) out.push_back(b);
  EXPECT_EQ(out.size(), loader.num_batches());
  return out;
}

std::vector<size_t> rows_of(const std::vector<i2g::Batch>& batches) {
  std::vector<size_t> rows;
  for (const auto& b : batches) rows.insert(rows.end(), b.indices.begin(), b.indices.end());
  return rows;
}

bool same_bytes(const engine::Tensor& a, const engine::Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.numel() * sizeof(float)) == 0;
}

TEST(Loader, EveryImageOnceAnEpochInASeededOrder) {
  TempDir tmp;
  const i2g::Dataset data = make_dataset(tmp, 13);
  const auto e0 = epoch(data, options(2), 0);
  ASSERT_EQ(e0.size(), 4u);  // 4 + 4 + 4 + 1
  EXPECT_EQ(e0.back().indices.size(), 1u);
  std::vector<size_t> rows = rows_of(e0);
  EXPECT_EQ(rows_of(epoch(data, options(2), 0)), rows);  // the same seed and epoch
  EXPECT_NE(rows_of(epoch(data, options(2), 1)), rows);  // another epoch: another order
  std::sort(rows.begin(), rows.end());
  std::vector<size_t> all(13);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(rows, all);

  i2g::LoaderOptions drop = options(2);
  drop.drop_last = true;
  const auto d = epoch(data, drop, 0);
  ASSERT_EQ(d.size(), 3u);
  for (const auto& b : d) {
    EXPECT_EQ(b.images.shape(), (engine::Shape{4, 12, 12, 3}));
    EXPECT_EQ(b.targets.shape(), (engine::Shape{4, 2}));
  }
}

TEST(Loader, BatchesDoNotDependOnTheWorkerCount) {
  TempDir tmp;
  const i2g::Dataset data = make_dataset(tmp, 13);
  const auto one = epoch(data, options(1), 3);
  for (int workers : {2, 5}) {
    const auto many = epoch(data, options(workers), 3);
    ASSERT_EQ(many.size(), one.size());
    for (size_t b = 0; b < one.size(); ++b) {
      EXPECT_EQ(many[b].indices, one[b].indices) << workers << " workers, batch " << b;
      EXPECT_TRUE(same_bytes(many[b].images, one[b].images)) << workers << " workers, " << b;
      EXPECT_TRUE(same_bytes(many[b].targets, one[b].targets)) << workers << " workers, " << b;
    }
  }
  // The targets are the records' coordinates, normalised with the dataset's statistics.
  const i2g::CoordNorm norm = i2g::CoordNorm::fit(data.records);
  const i2g::GeoRecord& r = data.records[one[0].indices[0]];
  const auto want = norm.normalize(r.lat, r.lon);
  const std::vector<float> t = one[0].targets.to_float_vector();  // [4, 2]
  EXPECT_EQ(t[0], want[0]);
  EXPECT_EQ(t[1], want[1]);
}

TEST(Loader, AnUnreadableImageStopsTheEpochOrIsSkipped) {
  TempDir tmp;
  const i2g::Dataset data = make_dataset(tmp, 9);
  i2g_test::write_bytes(tmp.file("img4.png"), i2g_test::random_bytes(100, 7));  // corrupt
  try {
    epoch(data, options(2), 0);
    FAIL() << "a corrupt image was loaded";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("img4.png"), std::string::npos) << e.what();
  }
  i2g::LoaderOptions skip = options(2);
  skip.skip_bad = true;
  i2g::Loader loader(data, i2g::CoordNorm::fit(data.records), skip, 0);
  std::vector<size_t> rows;
  i2g::Batch b;
  while (loader.next(b)) rows.insert(rows.end(), b.indices.begin(), b.indices.end());
  EXPECT_EQ(loader.skipped(), 1u);
  EXPECT_EQ(rows.size(), 8u);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), size_t{4}), 0);
}

TEST(Loader, AutoWorkerCountFollowsTheDevice) {
  EXPECT_EQ(i2g::decode_workers(3, engine::Device::cpu()), 3);
  EXPECT_EQ(i2g::decode_workers(3, engine::Device::cuda()), 3);
  EXPECT_EQ(i2g::decode_workers(0, engine::Device::cpu()), 2);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(i2g::decode_workers(0, engine::Device::cuda()), std::clamp(cores - 1, 2, 16));
}

}  // namespace
