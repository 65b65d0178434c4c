// tests/apps/data_test_util.h — helpers shared by the data-layer tests: the real-data path, a
// self-deleting temp folder, a tiny PNG encoder (so decoder tests need no external tool), and
// a runner for tests/apps/pil_reference.py (Pillow/torchvision references; exit 77 = skip).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace i2g_test {

namespace fs = std::filesystem;

// The real campus photos: $I2G_PENN_DIR if set (a clone outside the workspace, e.g. CI's),
// else ../shared/data/penn-campus next to the source tree. Tests that need them skip, saying
// where they looked, when the folder is missing.
inline std::string penn_dir() {
  if (const char* dir = std::getenv("I2G_PENN_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::string(ENGINE_SOURCE_DIR) + "/../shared/data/penn-campus";
}
inline std::string photos_dir() { return penn_dir() + "/photos"; }

#define I2G_REQUIRE_PENN()                                                            \
  do {                                                                                \
    if (!std::filesystem::is_directory(i2g_test::photos_dir()))                       \
      GTEST_SKIP() << "real data not found at " << i2g_test::photos_dir();            \
  } while (0)

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "i2g-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// ---- minimal PNG encoder: filter 0 rows in stored (uncompressed) deflate blocks ----
inline uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

inline void png_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  out.insert(out.end(), td.begin(), td.end());
  put32(out, crc32(td.data(), td.size()));
}

// `samples`: rows top to bottom, big-endian for 16-bit, channels per colour type
// (0 gray, 2 RGB, 4 gray+alpha, 6 RGBA).
inline std::vector<uint8_t> encode_png(int w, int h, int bit_depth, int color_type,
                                       const std::vector<uint8_t>& samples) {
  const int channels = color_type == 0 ? 1 : color_type == 2 ? 3 : color_type == 4 ? 2 : 4;
  const size_t row = static_cast<size_t>(w) * channels * (bit_depth / 8);
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter type None
    raw.insert(raw.end(), samples.begin() + y * row, samples.begin() + (y + 1) * row);
  }
  std::vector<uint8_t> z = {0x78, 0x01};
  for (size_t pos = 0; pos < raw.size() || pos == 0;) {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(static_cast<uint8_t>(n));
    z.push_back(static_cast<uint8_t>(n >> 8));
    z.push_back(static_cast<uint8_t>(~n));
    z.push_back(static_cast<uint8_t>(~n >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + n);
    pos += n;
    if (last) break;
  }
  uint32_t a = 1, b = 0;  // adler32
  for (uint8_t c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put32(z, (b << 16) | a);
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.push_back(static_cast<uint8_t>(bit_depth));
  ihdr.push_back(static_cast<uint8_t>(color_type));
  ihdr.push_back(0);
  ihdr.push_back(0);
  ihdr.push_back(0);
  png_chunk(png, "IHDR", ihdr);
  png_chunk(png, "IDAT", z);
  png_chunk(png, "IEND", {});
  return png;
}

// Runs tests/apps/pil_reference.py with `args`; returns its exit status (77: Pillow or
// torchvision missing, 127: no /usr/bin/python3).
inline int run_pil_reference(const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " + std::string(ENGINE_SOURCE_DIR) +
                          "/tests/apps/pil_reference.py " + args;
  const int st = std::system(cmd.c_str());
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

#define I2G_RUN_PIL_OR_SKIP(args)                                                     \
  do {                                                                                \
    const int rc_ = i2g_test::run_pil_reference(args);                                \
    if (rc_ == 77 || rc_ == 127)                                                      \
      GTEST_SKIP() << "Pillow/torchvision reference unavailable (/usr/bin/python3 with " \
                      "python3-pil and python3-torchvision needed)";                   \
    ASSERT_EQ(rc_, 0) << "pil_reference.py failed: " << (args);                        \
  } while (0)

}  // namespace i2g_test
