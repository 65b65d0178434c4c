// tests/apps/dataset_test.cpp — building a split dataset from the real geotagged photos, and
// skipping (with reasons) photos that are empty, garbage, truncated or without GPS.
#include "apps/image2gps/dataset.h"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "apps/image2gps/metadata.h"
#include "data_test_util.h"
#include "engine/error.h"
#include "svg_test_util.h"

namespace {

using namespace i2g_test;

// Position of each source photo (img_XXXXX) from the crops' label file, written by Python
// from the same EXIF: an independent check of the coordinates we recover.
std::map<std::string, i2g::GeoRecord> python_labels() {
  std::map<std::string, i2g::GeoRecord> m;
  for (const auto& r : i2g::read_metadata_csv(penn_dir() + "/crops224/metadata.csv"))
    m[r.image_file.substr(0, 9) + ".jpg"] = r;
  return m;
}

TEST(Dataset, BuildsSplitsFromRealPhotos) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  const std::string out = tmp.file("ds");
  i2g::DatasetOptions o;
  o.split.seed = 3;
  const i2g::DatasetReport rep = i2g::build_dataset(photos_dir(), out, o);
  EXPECT_EQ(rep.scanned, 81u);
  EXPECT_EQ(rep.usable, 81u);
  EXPECT_TRUE(rep.skipped.empty()) << i2g::describe(rep);
  EXPECT_EQ(rep.train + rep.val + rep.test, 81u);
  EXPECT_EQ(rep.val, 8u);  // round(0.1 * 81)
  EXPECT_EQ(rep.test, 8u);

  const auto labels = python_labels();
  std::set<std::string> seen;
  size_t rows = 0;
  for (const char* split : {"train", "val", "test"}) {
    const auto recs = i2g::read_metadata_csv(out + "/" + split + "/metadata.csv");
    rows += recs.size();
    for (const auto& r : recs) {
      EXPECT_TRUE(seen.insert(r.image_file).second) << r.image_file << " in two splits";
      const auto it = labels.find(r.image_file);
      ASSERT_NE(it, labels.end()) << r.image_file;
      EXPECT_NEAR(r.lat, it->second.lat, 1e-9) << r.image_file;
      EXPECT_NEAR(r.lon, it->second.lon, 1e-9) << r.image_file;
      const std::string copy = out + "/" + split + "/" + r.image_file;
      EXPECT_EQ(read_bytes(copy), read_bytes(photos_dir() + "/" + r.image_file)) << copy;
    }
  }
  EXPECT_EQ(rows, 81u);
  const auto all = i2g::read_metadata_csv(out + "/metadata.csv");
  ASSERT_EQ(all.size(), 81u);
  for (const auto& r : all) EXPECT_TRUE(fs::exists(out + "/" + r.image_file)) << r.image_file;

  // An existing dataset is not overwritten by accident.
  EXPECT_THROW(i2g::build_dataset(photos_dir(), out, o), engine::Error);
  o.overwrite = true;
  o.verify_decode = false;  // already checked above; keeps the test fast
  o.split.seed = 4;
  const i2g::DatasetReport again = i2g::build_dataset(photos_dir(), out, o);
  EXPECT_EQ(again.usable, 81u);
  size_t files = 0;
  for (const char* split : {"train", "val", "test"})
    for (const auto& e : fs::directory_iterator(out + "/" + split)) files += e.path().extension() == ".jpg";
  EXPECT_EQ(files, 81u);  // stale copies from the first split are gone

  // The plot has one dot per photo, in three series.
  i2g::plot_dataset(out, tmp.file("ds.svg"));
  std::stringstream svg;
  svg << std::ifstream(tmp.file("ds.svg")).rdbuf();
  EXPECT_EQ(svg_balance_problem(svg.str()), "");
  EXPECT_EQ(count_of(svg.str(), "<circle class=\"pt\""), 81);
  EXPECT_NE(svg.str().find("test (8)"), std::string::npos);
}

TEST(Dataset, GridSplitKeepsSameSpotTogether) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  i2g::DatasetOptions o;
  o.split.mode = i2g::SplitMode::Grid;
  o.split.grid_meters = 30;
  o.split.seed = 1;
  o.verify_decode = false;
  const i2g::DatasetReport rep = i2g::build_dataset(photos_dir(), tmp.file("g"), o);
  EXPECT_EQ(rep.usable, 81u);
  // Photos at exactly the same coordinates (same spot, seconds apart) share one split.
  std::map<std::pair<double, double>, std::set<std::string>> splits_at;
  for (const char* split : {"train", "val", "test"})
    for (const auto& r : i2g::read_metadata_csv(tmp.file("g") + "/" + split + "/metadata.csv"))
      splits_at[{r.lat, r.lon}].insert(split);
  EXPECT_LT(splits_at.size(), 81u);  // there are repeated spots to test with
  for (const auto& [pos, splits] : splits_at) EXPECT_EQ(splits.size(), 1u);
}

TEST(Dataset, SkipsBadPhotosWithReasons) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  const fs::path in = tmp.path() / "photos";
  fs::create_directories(in);
  const std::vector<uint8_t> good = read_bytes(photos_dir() + "/img_00005.jpg");
  write_bytes((in / "good.JPG").string(), good);  // extension case does not matter
  write_bytes((in / "zero.jpg").string(), {});
  write_bytes((in / "random.jpeg").string(), random_bytes(4096, 9));
  write_bytes((in / "cut.jpg").string(), std::vector<uint8_t>(good.begin(), good.begin() + good.size() * 2 / 3));
  write_bytes((in / "nogps.png").string(), encode_png(4, 3, 8, 2, random_bytes(36, 1)));
  write_bytes((in / "notes.txt").string(), {'h', 'i'});  // not a photo: ignored
  // A relative symlink to a photo outside the folder: must be copied, not hard-linked as a link.
  fs::create_directories(tmp.path() / "elsewhere");
  write_bytes(tmp.file("elsewhere/photo.bin"), good);
  fs::create_symlink("../elsewhere/photo.bin", in / "link.jpg");
  const i2g::DatasetReport rep = i2g::build_dataset(in.string(), tmp.file("out"), {});
  EXPECT_EQ(rep.scanned, 6u);
  EXPECT_EQ(rep.usable, 2u);
  EXPECT_EQ(rep.train, 2u);
  std::map<std::string, std::string> why;
  for (const auto& s : rep.skipped) why[s.file] = s.reason;
  ASSERT_EQ(why.size(), 4u) << i2g::describe(rep);
  EXPECT_EQ(why["zero.jpg"], "empty file");
  EXPECT_EQ(why["random.jpeg"], "no EXIF data");
  EXPECT_NE(why["cut.jpg"].find("truncated"), std::string::npos) << why["cut.jpg"];
  EXPECT_EQ(why["nogps.png"], "no EXIF data");
  const std::string text = i2g::describe(rep);
  EXPECT_NE(text.find("4 skipped"), std::string::npos) << text;
  EXPECT_NE(text.find("cut.jpg"), std::string::npos) << text;
  const auto train = i2g::read_metadata_csv(tmp.file("out") + "/train/metadata.csv");
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0].image_file, "good.JPG");
  EXPECT_EQ(train[1].image_file, "link.jpg");
  EXPECT_EQ(read_bytes(tmp.file("out") + "/train/link.jpg"), good);
  EXPECT_TRUE(i2g::read_metadata_csv(tmp.file("out") + "/test/metadata.csv").empty());
}

TEST(Dataset, ClearErrors) {
  TempDir tmp;
  EXPECT_THROW(i2g::build_dataset(tmp.file("missing"), tmp.file("out"), {}), engine::Error);
  fs::create_directories(tmp.path() / "empty");
  try {
    i2g::build_dataset(tmp.file("empty"), tmp.file("out"), {});
    ADD_FAILURE() << "no error for a folder without photos";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable photo"), std::string::npos) << e.what();
  }
  EXPECT_THROW(i2g::plot_dataset(tmp.file("empty"), tmp.file("x.svg")), engine::Error);
  if (fs::is_directory(photos_dir())) {
    EXPECT_THROW(i2g::build_dataset(photos_dir(), photos_dir(), {}), engine::Error);
    i2g::DatasetOptions bad;
    bad.split.val = 0.5;  // fractions sum to 1.4: rejected before anything is written
    EXPECT_THROW(i2g::build_dataset(photos_dir(), tmp.file("never"), bad), engine::Error);
    EXPECT_FALSE(fs::exists(tmp.file("never")));
  }
}

}  // namespace
