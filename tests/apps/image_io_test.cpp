// tests/apps/image_io_test.cpp — JPEG/PNG decoding to upright RGB, PNG writing, and clear
// errors on corrupt files.
#include "apps/image2gps/image_io.h"

#include <cmath>

#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

// A small image whose every pixel is distinct, so any misplaced pixel shows.
i2g::Image numbered(int w, int h) {
  i2g::Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 17 + 3);
      p[1] = static_cast<uint8_t>(y * 29 + 5);
      p[2] = static_cast<uint8_t>(x * 7 + y * 11);
    }
  return img;
}

// EXIF's own definition of Orientation (TIFF 6.0): where the stored 0th row and 0th column lie
// in the upright picture. Returns the upright position (vx, vy) of stored pixel (c, r).
void upright_position(int o, int c, int r, int vw, int vh, int* vx, int* vy) {
  switch (o) {
    case 1: *vx = c; *vy = r; break;                     // row0 top,    col0 left
    case 2: *vx = vw - 1 - c; *vy = r; break;            // row0 top,    col0 right
    case 3: *vx = vw - 1 - c; *vy = vh - 1 - r; break;   // row0 bottom, col0 right
    case 4: *vx = c; *vy = vh - 1 - r; break;            // row0 bottom, col0 left
    case 5: *vx = r; *vy = c; break;                     // row0 left,   col0 top
    case 6: *vx = vw - 1 - r; *vy = c; break;            // row0 right,  col0 top
    case 7: *vx = vw - 1 - r; *vy = vh - 1 - c; break;   // row0 right,  col0 bottom
    case 8: *vx = r; *vy = vh - 1 - c; break;            // row0 left,   col0 bottom
  }
}

TEST(ImageIo, ApplyOrientationMatchesExifDefinition) {
  const i2g::Image upright = numbered(5, 3);
  for (int o = 1; o <= 8; ++o) {
    const bool swap = o >= 5;
    i2g::Image stored(swap ? upright.height : upright.width, swap ? upright.width : upright.height);
    for (int r = 0; r < stored.height; ++r)
      for (int c = 0; c < stored.width; ++c) {
        int vx, vy;
        upright_position(o, c, r, upright.width, upright.height, &vx, &vy);
        std::copy(upright.pixel(vx, vy), upright.pixel(vx, vy) + 3, stored.pixel(c, r));
      }
    const i2g::Image got = i2g::apply_orientation(stored, o);
    EXPECT_EQ(got.width, upright.width) << "orientation " << o;
    EXPECT_EQ(got.height, upright.height) << "orientation " << o;
    EXPECT_EQ(got.rgb, upright.rgb) << "orientation " << o;
  }
  // Invalid values leave the pixels alone.
  const i2g::Image img = numbered(4, 2);
  EXPECT_EQ(i2g::apply_orientation(img, 0).rgb, img.rgb);
  EXPECT_EQ(i2g::apply_orientation(img, 9).rgb, img.rgb);
}

TEST(ImageIo, PngColourTypesAndDepths) {
  const int w = 3, h = 2;
  auto decode = [](const std::vector<uint8_t>& png) {
    return i2g::decode_image(png.data(), png.size(), "test.png");
  };
  // 8-bit RGB: exact.
  std::vector<uint8_t> rgb8 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 250, 251, 252, 0, 128, 255};
  i2g::Image img = decode(encode_png(w, h, 8, 2, rgb8));
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  EXPECT_EQ(img.rgb, rgb8);
  // RGBA: alpha dropped, colour kept (not composited onto a background).
  std::vector<uint8_t> rgba;
  for (int i = 0; i < w * h; ++i) {
    rgba.insert(rgba.end(), rgb8.begin() + 3 * i, rgb8.begin() + 3 * i + 3);
    rgba.push_back(static_cast<uint8_t>(i * 40));
  }
  EXPECT_EQ(decode(encode_png(w, h, 8, 6, rgba)).rgb, rgb8);
  // Gray and gray+alpha: replicated to three channels.
  std::vector<uint8_t> gray = {0, 17, 34, 200, 254, 255}, gray_a, gray_rgb;
  for (uint8_t g : gray) {
    gray_a.push_back(g);
    gray_a.push_back(99);
    gray_rgb.insert(gray_rgb.end(), {g, g, g});
  }
  EXPECT_EQ(decode(encode_png(w, h, 8, 0, gray)).rgb, gray_rgb);
  EXPECT_EQ(decode(encode_png(w, h, 8, 4, gray_a)).rgb, gray_rgb);
  // 16-bit: the high byte survives.
  std::vector<uint8_t> rgb16, gray16;
  for (uint8_t v : rgb8) rgb16.insert(rgb16.end(), {v, static_cast<uint8_t>(255 - v)});
  for (uint8_t g : gray) gray16.insert(gray16.end(), {g, 0x7F});
  EXPECT_EQ(decode(encode_png(w, h, 16, 2, rgb16)).rgb, rgb8);
  EXPECT_EQ(decode(encode_png(w, h, 16, 0, gray16)).rgb, gray_rgb);
}

TEST(ImageIo, SavePngRoundTripsAndLeavesNoTempFile) {
  TempDir tmp;
  const i2g::Image img = numbered(13, 7);
  i2g::save_png(tmp.file("a.png"), img);
  i2g::save_png(tmp.file("a.png"), img);  // overwrite in place
  const i2g::Image back = i2g::load_image(tmp.file("a.png"));
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.rgb, img.rgb);
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_THROW(i2g::save_png(tmp.file("no/such/dir/a.png"), img), engine::Error);
  EXPECT_THROW(i2g::save_png(tmp.file("empty.png"), i2g::Image()), engine::Error);
}

void expect_error_naming(const std::string& path, const std::string& reason) {
  try {
    i2g::load_image(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const engine::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << "expected '" << reason << "' in: " << msg;
  }
}

TEST(ImageIo, CorruptFilesThrowNamingFileAndReason) {
  TempDir tmp;
  write_bytes(tmp.file("zero.jpg"), {});
  expect_error_naming(tmp.file("zero.jpg"), "empty");
  write_bytes(tmp.file("random.jpg"), random_bytes(5000, 1));
  expect_error_naming(tmp.file("random.jpg"), "only JPEG and PNG");
  std::vector<uint8_t> png = encode_png(40, 30, 8, 2, random_bytes(40 * 30 * 3, 2));
  png.resize(png.size() / 2);
  write_bytes(tmp.file("cut.png"), png);
  expect_error_naming(tmp.file("cut.png"), "cannot decode");
  expect_error_naming(tmp.file("missing.png"), "cannot open");
}

TEST(ImageIo, RealPhotoIsRotatedUprightAndTruncationDetected) {
  I2G_REQUIRE_PENN();
  const std::string path = photos_dir() + "/img_00000.jpg";
  const i2g::Image stored = i2g::load_image(path, /*upright=*/false);
  const i2g::Image img = i2g::load_image(path);
  EXPECT_EQ(stored.width, 1000);
  EXPECT_EQ(stored.height, 750);
  EXPECT_EQ(img.width, 750);  // Orientation 6: portrait once upright
  EXPECT_EQ(img.height, 1000);
  EXPECT_EQ(img.rgb, i2g::apply_orientation(stored, 6).rgb);

  std::vector<uint8_t> bytes = read_bytes(path);
  EXPECT_TRUE(i2g::jpeg_is_complete(bytes.data(), bytes.size()));
  TempDir tmp;
  for (double keep : {0.2, 0.6, 0.99}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() * keep));
    EXPECT_FALSE(i2g::jpeg_is_complete(cut.data(), cut.size())) << keep;
    write_bytes(tmp.file("cut.jpg"), cut);
    expect_error_naming(tmp.file("cut.jpg"), "truncated");
  }
  // Bytes after the end-of-image marker (as Samsung phones append) are fine.
  std::vector<uint8_t> tail = bytes;
  const std::vector<uint8_t> extra = random_bytes(3000, 3);
  tail.insert(tail.end(), extra.begin(), extra.end());
  EXPECT_EQ(i2g::decode_image(tail.data(), tail.size(), "tail.jpg").rgb, img.rgb);
}

// Pillow decodes with libjpeg, stb_image with its own IDCT and chroma upsampling, so pixels
// differ by a few levels; a wrong rotation or mirror would differ by ~50 levels on average.
double mean_abs_diff(const i2g::Image& a, const i2g::Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return s / a.rgb.size();
}

TEST(ImageIo, MatchesPillowExifTransposeAndProgressive) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  const std::string photo = photos_dir() + "/img_00003.jpg";
  I2G_RUN_PIL_OR_SKIP("decode " + photo + " " + tmp.file("pil.png"));
  const i2g::Image ours = i2g::load_image(photo);
  const i2g::Image pil = i2g::load_image(tmp.file("pil.png"));
  ASSERT_EQ(ours.width, pil.width);
  ASSERT_EQ(ours.height, pil.height);
  const double d = mean_abs_diff(ours, pil);
  EXPECT_LT(d, 2.0);
  const i2g::Image wrong = i2g::apply_orientation(i2g::apply_orientation(ours, 3), 1);  // 180 deg
  EXPECT_GT(mean_abs_diff(wrong, pil), 10 * d + 5);

  // A progressive re-encode of the same picture decodes to (nearly) the same pixels.
  i2g::save_png(tmp.file("upright.png"), ours);
  I2G_RUN_PIL_OR_SKIP("progressive " + tmp.file("upright.png") + " " + tmp.file("prog.jpg"));
  const i2g::Image prog = i2g::load_image(tmp.file("prog.jpg"));
  ASSERT_EQ(prog.width, ours.width);
  ASSERT_EQ(prog.height, ours.height);
  EXPECT_LT(mean_abs_diff(prog, ours), 3.0);
  const std::vector<uint8_t> pb = read_bytes(tmp.file("prog.jpg"));
  EXPECT_TRUE(i2g::jpeg_is_complete(pb.data(), pb.size()));
}

}  // namespace
