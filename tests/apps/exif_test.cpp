// tests/apps/exif_test.cpp — GPS/orientation from EXIF: the real phone photos, hand-built EXIF
// blocks with each kind of bad GPS, and garbage that must not crash the parser.
#include "apps/image2gps/exif.h"

#include <libexif/exif-data.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>

#include "apps/image2gps/metadata.h"
#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

// Builds a minimal JPEG (SOI, APP1 Exif, EOI) whose EXIF holds the given GPS tags, using
// libexif itself as the writer (an independent path from our reader's validation code).
class ExifBuilder {
 public:
  ExifBuilder() : d_(exif_data_new()) {
    exif_data_unset_option(d_, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_set_byte_order(d_, EXIF_BYTE_ORDER_INTEL);
  }
  ~ExifBuilder() { exif_data_unref(d_); }

  void rationals(ExifIfd ifd, unsigned tag, std::vector<std::pair<uint32_t, uint32_t>> v) {
    ExifEntry* e = add(ifd, tag, EXIF_FORMAT_RATIONAL, v.size());
    for (size_t i = 0; i < v.size(); ++i)
      exif_set_rational(e->data + 8 * i, EXIF_BYTE_ORDER_INTEL, {v[i].first, v[i].second});
  }
  void ascii(ExifIfd ifd, unsigned tag, const std::string& s) {
    ExifEntry* e = add(ifd, tag, EXIF_FORMAT_ASCII, s.size() + 1);
    std::memcpy(e->data, s.c_str(), s.size() + 1);
  }
  void short_value(ExifIfd ifd, unsigned tag, uint16_t v) {
    ExifEntry* e = add(ifd, tag, EXIF_FORMAT_SHORT, 1);
    exif_set_short(e->data, EXIF_BYTE_ORDER_INTEL, v);
  }
  // A full GPS block: lat (deg, min, sec) ref, lon (deg, min, sec) ref, as n/1000 rationals.
  void gps(double lat_d, double lat_m, double lat_s, const std::string& lat_ref, double lon_d,
           double lon_m, double lon_s, const std::string& lon_ref) {
    auto r = [](double x) { return std::pair<uint32_t, uint32_t>(std::lround(x * 1000), 1000); };
    rationals(EXIF_IFD_GPS, 2, {r(lat_d), r(lat_m), r(lat_s)});
    ascii(EXIF_IFD_GPS, 1, lat_ref);
    rationals(EXIF_IFD_GPS, 4, {r(lon_d), r(lon_m), r(lon_s)});
    ascii(EXIF_IFD_GPS, 3, lon_ref);
  }
  std::vector<uint8_t> jpeg() const {
    unsigned char* buf = nullptr;
    unsigned int size = 0;
    exif_data_save_data(d_, &buf, &size);
    std::vector<uint8_t> out(size + 8);
    const uint8_t head[6] = {0xFF, 0xD8, 0xFF, 0xE1, static_cast<uint8_t>((size + 2) >> 8),
                             static_cast<uint8_t>(size + 2)};
    std::memcpy(out.data(), head, 6);
    std::memcpy(out.data() + 6, buf, size);
    std::free(buf);
    out[size + 6] = 0xFF;  // EOI
    out[size + 7] = 0xD9;
    return out;
  }
  i2g::ExifInfo parse() const {
    const std::vector<uint8_t> j = jpeg();
    return i2g::read_exif_from_memory(j.data(), j.size());
  }

 private:
  ExifEntry* add(ExifIfd ifd, unsigned tag, ExifFormat fmt, size_t components) {
    // Replace an existing tag (libexif refuses duplicates).
    if (ExifEntry* old = exif_content_get_entry(d_->ifd[ifd], static_cast<ExifTag>(tag)))
      exif_content_remove_entry(d_->ifd[ifd], old);
    ExifEntry* e = exif_entry_new();
    e->tag = static_cast<ExifTag>(tag);
    e->format = fmt;
    e->components = components;
    e->size = exif_format_get_size(fmt) * components;
    e->data = static_cast<unsigned char*>(std::calloc(1, e->size));
    exif_content_add_entry(d_->ifd[ifd], e);
    exif_entry_unref(e);  // the IFD holds the reference now
    return e;
  }
  ExifData* d_;
};

TEST(Exif, RealPhotosGiveCampusPositionsAndOrientation6) {
  I2G_REQUIRE_PENN();
  // Independent labels: crops224/metadata.csv holds each photo's position, written by Python.
  std::map<std::string, i2g::GeoRecord> labels;
  for (const auto& r : i2g::read_metadata_csv(penn_dir() + "/crops224/metadata.csv"))
    labels[r.image_file.substr(0, 9)] = r;  // "img_00000"
  int n = 0;
  for (const auto& e : fs::directory_iterator(photos_dir())) {
    const i2g::ExifInfo info = i2g::read_exif(e.path().string());
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(info.has_gps) << name << ": " << info.gps_problem;
    EXPECT_TRUE(info.gps_problem.empty());
    EXPECT_GE(info.lat, 39.9504) << name;
    EXPECT_LE(info.lat, 39.9527) << name;
    EXPECT_GE(info.lon, -75.1926) << name;
    EXPECT_LE(info.lon, -75.1901) << name;
    EXPECT_EQ(info.orientation, 6) << name;
    EXPECT_FALSE(info.make.empty()) << name;
    EXPECT_FALSE(info.model.empty()) << name;
    EXPECT_NE(info.make.back(), ' ') << "trailing padding kept in '" << info.make << "'";
    EXPECT_EQ(info.datetime.substr(0, 10), "2024:09:23") << name;
    const auto it = labels.find(name.substr(0, 9));
    ASSERT_NE(it, labels.end()) << name;
    EXPECT_NEAR(info.lat, it->second.lat, 1e-9) << name;
    EXPECT_NEAR(info.lon, it->second.lon, 1e-9) << name;
    ++n;
  }
  EXPECT_EQ(n, 81);
}

TEST(Exif, SignsFollowReferenceLetters) {
  struct Refs {
    const char *lat_ref, *lon_ref;
    int sl, so;
  };
  for (const auto [lat_ref, lon_ref, sl, so] :
       {Refs{"N", "E", 1, 1}, Refs{"S", "E", -1, 1}, Refs{"N", "W", 1, -1}, Refs{"S", "W", -1, -1}}) {
    ExifBuilder b;
    b.gps(33, 51, 54.5, lat_ref, 151, 12, 36.25, lon_ref);
    const i2g::ExifInfo info = b.parse();
    ASSERT_TRUE(info.has_gps) << info.gps_problem;
    EXPECT_NEAR(info.lat, sl * (33 + 51 / 60.0 + 54.5 / 3600.0), 1e-12);
    EXPECT_NEAR(info.lon, so * (151 + 12 / 60.0 + 36.25 / 3600.0), 1e-12);
    EXPECT_EQ(info.orientation, 1);  // no Orientation tag
  }
}

TEST(Exif, OrientationTagIsRead) {
  for (uint16_t o : {1, 3, 5, 8}) {
    ExifBuilder b;
    b.short_value(EXIF_IFD_0, EXIF_TAG_ORIENTATION, o);
    const i2g::ExifInfo info = b.parse();
    EXPECT_EQ(info.orientation, o);
    EXPECT_FALSE(info.has_gps);
    EXPECT_EQ(info.gps_problem, "no GPS data in EXIF");
  }
  ExifBuilder bad;
  bad.short_value(EXIF_IFD_0, EXIF_TAG_ORIENTATION, 9);
  EXPECT_EQ(bad.parse().orientation, 1);
}

TEST(Exif, UnusableGpsSaysWhy) {
  struct Case {
    const char* expect;  // substring of gps_problem
    std::function<void(ExifBuilder&)> build;
  };
  const std::vector<Case> cases = {
      {"no GPSLatitude tag",
       [](ExifBuilder& b) {
         b.ascii(EXIF_IFD_GPS, 1, "N");
         b.rationals(EXIF_IFD_GPS, 4, {{75, 1}, {11, 1}, {30, 1}});
         b.ascii(EXIF_IFD_GPS, 3, "W");
       }},
      {"no GPSLongitudeRef",
       [](ExifBuilder& b) {
         b.rationals(EXIF_IFD_GPS, 2, {{39, 1}, {57, 1}, {5, 1}});
         b.ascii(EXIF_IFD_GPS, 1, "N");
         b.rationals(EXIF_IFD_GPS, 4, {{75, 1}, {11, 1}, {30, 1}});
       }},
      {"zero denominator",
       [](ExifBuilder& b) {
         b.gps(39, 57, 5, "N", 75, 11, 30, "W");
         b.rationals(EXIF_IFD_GPS, 2, {{39, 1}, {57, 0}, {5, 1}});
       }},
      {"GPSLatitudeRef is 'X'", [](ExifBuilder& b) { b.gps(39, 57, 5, "X", 75, 11, 30, "W"); }},
      {"GPSLongitudeRef is 'N'", [](ExifBuilder& b) { b.gps(39, 57, 5, "N", 75, 11, 30, "N"); }},
      {"beyond 90", [](ExifBuilder& b) { b.gps(95, 0, 0, "N", 75, 11, 30, "W"); }},
      {"beyond 180", [](ExifBuilder& b) { b.gps(39, 57, 5, "N", 181, 0, 0, "W"); }},
      {">= 60", [](ExifBuilder& b) { b.gps(39, 61, 5, "N", 75, 11, 30, "W"); }},
      {"(0,0)", [](ExifBuilder& b) { b.gps(0, 0, 0, "N", 0, 0, 0, "E"); }},
      {"void", [](ExifBuilder& b) {
         b.gps(39, 57, 5, "N", 75, 11, 30, "W");
         b.ascii(EXIF_IFD_GPS, 9, "V");
       }},
  };
  for (const Case& c : cases) {
    ExifBuilder b;
    c.build(b);
    const i2g::ExifInfo info = b.parse();
    EXPECT_FALSE(info.has_gps) << c.expect;
    EXPECT_NE(info.gps_problem.find(c.expect), std::string::npos)
        << "expected '" << c.expect << "' in '" << info.gps_problem << "'";
  }
}

TEST(Exif, GarbageNeverCrashes) {
  TempDir tmp;
  write_bytes(tmp.file("empty.jpg"), {});
  i2g::ExifInfo info = i2g::read_exif(tmp.file("empty.jpg"));
  EXPECT_FALSE(info.has_gps);
  EXPECT_EQ(info.gps_problem, "no EXIF data");
  EXPECT_EQ(info.orientation, 1);

  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::vector<uint8_t> junk = random_bytes(1 + seed * 97, seed);
    if (seed % 2) {  // half of them look like a JPEG with an EXIF segment full of noise
      const uint8_t head[] = {0xFF, 0xD8, 0xFF, 0xE1, 0x10, 0x00, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0};
      junk.insert(junk.begin(), head, head + sizeof(head));
    }
    info = i2g::read_exif_from_memory(junk.data(), junk.size());
    EXPECT_FALSE(info.has_gps);
    EXPECT_FALSE(info.gps_problem.empty());
  }
  EXPECT_THROW(i2g::read_exif(tmp.file("missing.jpg")), engine::Error);
}

TEST(Exif, TruncatedAndBitFlippedRealPhotos) {
  I2G_REQUIRE_PENN();
  const std::vector<uint8_t> full = read_bytes(photos_dir() + "/img_00000.jpg");
  ASSERT_GT(full.size(), 65536u);
  // Cut inside and after the EXIF segment: before its end there is no usable GPS, never a crash.
  int with_gps = 0;
  for (size_t n : {2u, 10u, 100u, 500u, 1500u, 5000u, 20000u, 60000u}) {
    const i2g::ExifInfo info = i2g::read_exif_from_memory(full.data(), n);
    with_gps += info.has_gps;
    if (info.has_gps) {
      EXPECT_NEAR(info.lat, 39.9516483, 1e-6);
    } else {
      EXPECT_FALSE(info.gps_problem.empty());
    }
  }
  EXPECT_GE(with_gps, 1);  // a prefix that holds the whole EXIF segment still has the GPS
  EXPECT_FALSE(i2g::read_exif_from_memory(full.data(), 100).has_gps);
  // Random byte flips in the first 4 KB (the TIFF header and IFDs): any result but a crash.
  std::mt19937 rng(7);
  for (int t = 0; t < 300; ++t) {
    std::vector<uint8_t> bad(full.begin(), full.begin() + 65536);
    for (int k = 0; k < 8; ++k) bad[12 + rng() % 4084] = static_cast<uint8_t>(rng());
    const i2g::ExifInfo info = i2g::read_exif_from_memory(bad.data(), bad.size());
    if (info.has_gps) {
      EXPECT_LE(std::fabs(info.lat), 90.0);
      EXPECT_LE(std::fabs(info.lon), 180.0);
    }
    EXPECT_GE(info.orientation, 1);
    EXPECT_LE(info.orientation, 8);
  }
}

}  // namespace
