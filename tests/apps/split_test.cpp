// tests/apps/split_test.cpp — grouped, seeded train/val/test splits: no group straddles two
// splits, sizes follow the fractions, same seed same split, other seed other split.
#include "apps/image2gps/split.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

std::vector<i2g::GeoRecord> random_records(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> lat(39.9504, 39.9527), lon(-75.1926, -75.1901);
  std::vector<i2g::GeoRecord> v;
  for (size_t i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "img_%05zu.jpg", i);
    v.push_back({name, lat(rng), lon(rng)});
  }
  return v;
}

// 100 source photos x 5 crops, named like the course's crops224.
std::vector<i2g::GeoRecord> crop_records() {
  std::vector<i2g::GeoRecord> v;
  for (int p = 0; p < 100; ++p)
    for (int k = 0; k < 5; ++k) {
      char name[32];
      std::snprintf(name, sizeof(name), "img_%05d_%d.jpg", p, k);
      v.push_back({name, 39.95 + p * 1e-5, -75.19});
    }
  return v;
}

// Which split (0 train, 1 val, 2 test) each index went to; fails if one is in two or none.
std::vector<int> membership(const i2g::SplitIndices& s, size_t n) {
  std::vector<int> m(n, -1);
  const std::vector<size_t>* parts[3] = {&s.train, &s.val, &s.test};
  for (int k = 0; k < 3; ++k)
    for (size_t i : *parts[k]) {
      EXPECT_LT(i, n);
      EXPECT_EQ(m[i], -1) << "index " << i << " in two splits";
      m[i] = k;
    }
  for (size_t i = 0; i < n; ++i) EXPECT_NE(m[i], -1) << "index " << i << " in no split";
  return m;
}

TEST(Split, RandomHitsFractionsExactlyAndIsSeeded) {
  const auto recs = random_records(1003, 1);
  i2g::SplitOptions o;
  o.seed = 42;
  const i2g::SplitIndices a = i2g::split_indices(recs, o);
  membership(a, recs.size());
  EXPECT_EQ(a.val.size(), 100u);  // round(0.1 * 1003)
  EXPECT_EQ(a.test.size(), 100u);
  EXPECT_EQ(a.train.size(), 803u);
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end()));

  const i2g::SplitIndices again = i2g::split_indices(recs, o);
  EXPECT_EQ(again.train, a.train);
  EXPECT_EQ(again.val, a.val);
  EXPECT_EQ(again.test, a.test);
  o.seed = 43;
  const i2g::SplitIndices other = i2g::split_indices(recs, o);
  EXPECT_NE(other.test, a.test);
  EXPECT_NE(other.val, a.val);

  // Not simply the first/last records: test indices spread over the whole range.
  EXPECT_LT(a.test.front(), 100u);
  EXPECT_GT(a.test.back(), 900u);
}

TEST(Split, ResultDoesNotDependOnInputOrder) {
  auto recs = random_records(200, 2);
  i2g::SplitOptions o;
  o.seed = 7;
  const i2g::SplitRecords a = i2g::split_records(recs, o);
  std::shuffle(recs.begin(), recs.end(), std::mt19937(99));
  const i2g::SplitRecords b = i2g::split_records(recs, o);
  auto names = [](const std::vector<i2g::GeoRecord>& v) {
    std::set<std::string> s;
    for (const auto& r : v) s.insert(r.image_file);
    return s;
  };
  EXPECT_EQ(names(a.test), names(b.test));
  EXPECT_EQ(names(a.val), names(b.val));
  EXPECT_EQ(names(a.train), names(b.train));
}

TEST(Split, PatternKeepsCropsOfOnePhotoTogether) {
  const auto recs = crop_records();
  i2g::SplitOptions o;
  o.mode = i2g::SplitMode::Pattern;
  for (uint64_t seed : {1u, 2u, 3u}) {
    o.seed = seed;
    const i2g::SplitIndices s = i2g::split_indices(recs, o);
    const std::vector<int> m = membership(s, recs.size());
    std::map<std::string, std::set<int>> splits_of_photo;  // photo id from the name, by hand
    for (size_t i = 0; i < recs.size(); ++i) splits_of_photo[recs[i].image_file.substr(4, 5)].insert(m[i]);
    ASSERT_EQ(splits_of_photo.size(), 100u);
    for (const auto& [photo, splits] : splits_of_photo) EXPECT_EQ(splits.size(), 1u) << photo;
    EXPECT_EQ(s.train.size(), 400u);  // groups of 5 fit the 80/10/10 targets exactly
    EXPECT_EQ(s.val.size(), 50u);
    EXPECT_EQ(s.test.size(), 50u);
  }
}

TEST(Split, PatternOnRealCropsMetadata) {
  I2G_REQUIRE_PENN();
  const auto recs = i2g::read_metadata_csv(penn_dir() + "/crops224/metadata.csv");
  i2g::SplitOptions o;
  o.mode = i2g::SplitMode::Pattern;
  o.seed = 5;
  const std::vector<int> m = membership(i2g::split_indices(recs, o), recs.size());
  std::map<std::string, std::set<int>> by_photo;
  for (size_t i = 0; i < recs.size(); ++i) by_photo[recs[i].image_file.substr(0, 9)].insert(m[i]);
  for (const auto& [photo, splits] : by_photo) EXPECT_EQ(splits.size(), 1u) << photo;
}

TEST(Split, GridKeepsNearbyPhotosTogether) {
  // 40 spots 100 m apart on a line; 1-6 photos per spot within a few centimetres of it.
  std::mt19937 rng(3);
  std::vector<i2g::GeoRecord> recs;
  std::vector<int> spot_of;
  for (int s = 0; s < 40; ++s) {
    const int n = 1 + static_cast<int>(rng() % 6);
    // Spots at cell centres: 25 m cells, spot s at (s * 4 + 0.5) cells north of the equator.
    const double lat = (s * 100.0 + 12.5) / 6371008.8 * 180 / M_PI;
    for (int k = 0; k < n; ++k) {
      recs.push_back({"p" + std::to_string(recs.size()) + ".jpg", lat + k * 1e-8, 1e-4 + k * 1e-8});
      spot_of.push_back(s);
    }
  }
  i2g::SplitOptions o;
  o.mode = i2g::SplitMode::Grid;
  o.grid_meters = 25;
  size_t max_group = 6;
  for (uint64_t seed : {11u, 12u}) {
    o.seed = seed;
    const i2g::SplitIndices s = i2g::split_indices(recs, o);
    const std::vector<int> m = membership(s, recs.size());
    std::map<int, std::set<int>> splits_of_spot;
    for (size_t i = 0; i < recs.size(); ++i) splits_of_spot[spot_of[i]].insert(m[i]);
    for (const auto& [spot, splits] : splits_of_spot) EXPECT_EQ(splits.size(), 1u) << "spot " << spot;
    const double n = static_cast<double>(recs.size());
    EXPECT_NEAR(static_cast<double>(s.val.size()), 0.1 * n, static_cast<double>(max_group));
    EXPECT_NEAR(static_cast<double>(s.test.size()), 0.1 * n, static_cast<double>(max_group));
    EXPECT_FALSE(s.val.empty());
    EXPECT_FALSE(s.test.empty());
  }
  // Every spot is its own cell: 40 distinct keys.
  const auto keys = i2g::split_group_keys(recs, o);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 40u);
}

TEST(Split, FractionsConfigurableIncludingZero) {
  const auto recs = random_records(50, 4);
  i2g::SplitOptions o;
  o.train = 0.7;
  o.val = 0.3;
  o.test = 0.0;
  const i2g::SplitIndices s = i2g::split_indices(recs, o);
  EXPECT_EQ(s.train.size(), 35u);
  EXPECT_EQ(s.val.size(), 15u);
  EXPECT_TRUE(s.test.empty());
}

TEST(Split, InvalidOptionsThrow) {
  const auto recs = crop_records();
  i2g::SplitOptions o;
  o.train = 0.8;
  o.val = 0.3;
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);  // sums to 1.2
  o.val = 0.3;
  o.train = -0.1;
  o.test = 0.8;
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);
  o = {};
  o.mode = i2g::SplitMode::Grid;
  o.grid_meters = 0;
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);
  o = {};
  o.mode = i2g::SplitMode::Pattern;
  o.pattern = R"(img_\d+_\d+\.jpg)";  // no capture group
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);
  o.pattern = R"(photo_(\d+))";  // matches nothing
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);
  o.pattern = "img_((";  // not a regex
  EXPECT_THROW(i2g::split_indices(recs, o), engine::Error);

  EXPECT_EQ(i2g::parse_split_mode("GRID"), i2g::SplitMode::Grid);
  EXPECT_EQ(i2g::parse_split_mode("pattern"), i2g::SplitMode::Pattern);
  EXPECT_STREQ(i2g::to_string(i2g::SplitMode::Random), "random");
  EXPECT_THROW(i2g::parse_split_mode("cluster"), engine::Error);
  // No records: an empty split, not an error.
  const i2g::SplitIndices none = i2g::split_indices({}, i2g::SplitOptions{});
  EXPECT_TRUE(none.train.empty() && none.val.empty() && none.test.empty());
}

}  // namespace
