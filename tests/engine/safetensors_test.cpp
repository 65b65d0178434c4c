// tests/engine/safetensors_test.cpp — engine::io::load_safetensors / save_safetensors.
//
// Round trips check bytes exactly (the format is a byte copy, there is no tolerance to allow).
// Every malformed-file case builds the file by hand, byte by byte, and asserts that the error
// names both the file and the offending tensor, since that is what a user needs to fix it.
// The last test reads a checkpoint written by PyTorch and converted by weights/convert.py.
#include "engine/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "engine/error.h"

namespace {

namespace fs = std::filesystem;
using engine::DType;
using engine::Shape;
using engine::Tensor;
using engine::io::load_safetensors;
using engine::io::save_safetensors;

// A fresh directory per test, removed afterwards (RAII).
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and a data buffer, built without the code under test.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
std::vector<T> values_of(const Tensor& t) {
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_TRUE(t.is_contiguous());
  const T* p = t.numel() ? t.data<T>() : nullptr;
  return std::vector<T>(p, p + t.numel());
}

// Loads `path` expecting an engine::Error whose message contains every one of `parts`.
::testing::AssertionResult load_fails_with(const std::string& path,
                                           const std::vector<std::string>& parts) {
  try {
    load_safetensors(path);
  } catch (const engine::Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << p << "\"";
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-engine exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "loading " << path << " did not throw";
}

// ---- round trips ------------------------------------------------------------------------------

TEST(Safetensors, RoundTripKeepsDtypesShapesBytesAndMetadata) {
  TempDir dir;
  std::vector<float> f(3 * 5 * 7);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(std::sin(0.37 * i) * 3.0 + 1e-3 * i);
  f[4] = -0.0f;
  f[9] = std::numeric_limits<float>::denorm_min();
  f[11] = std::numeric_limits<float>::quiet_NaN();
  f[12] = -std::numeric_limits<float>::infinity();
  std::vector<double> d(2 * 9);
  for (size_t i = 0; i < d.size(); ++i) d[i] = std::exp(0.1 * i) - 1.0 / 3.0;
  std::vector<int64_t> l = {std::numeric_limits<int64_t>::min(), -1, 0, 7,
                            std::numeric_limits<int64_t>::max()};

  std::map<std::string, Tensor> in = {
      {"layer1.0.conv1.weight", Tensor::from_vector(f, {3, 5, 7})},
      {"a.float64", Tensor::from_vector(d, {2, 9})},
      {"bn.num_batches_tracked", Tensor::from_vector(l, {5})},
      {"scalar", Tensor::from_vector(std::vector<float>{2.5f}, {})},
      {"empty.f32", Tensor::empty({0, 3}, DType::Float32)},
      {"empty.i64", Tensor::empty({4, 0}, DType::Int64)},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcödé ok"}};
  const std::string path = dir.file("rt.safetensors");
  save_safetensors(path, in, meta);

  auto out = load_safetensors(path);
  EXPECT_EQ(out.metadata, meta);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(out.tensors.count(name));
    const Tensor& got = out.tensors.at(name);
    EXPECT_EQ(got.dtype(), t.dtype());
    EXPECT_EQ(got.shape(), t.shape());
    ASSERT_EQ(got.numel(), t.numel());
    if (t.numel() > 0) {
      EXPECT_EQ(std::memcmp(got.raw_data(), t.raw_data(), t.numel() * engine::dtype_size(t.dtype())), 0);
    }
  }
  EXPECT_EQ(out.tensors.at("scalar").dim(), 0);

  // The layout is the reference one: header padded with spaces to 8 bytes, keys sorted, data
  // packed back to back with nothing after it.
  std::string raw = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header = raw.substr(8, n);
  size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}') << header;
  EXPECT_LT(header.size() - last - 1, 8u) << "pads with fewer than 8 spaces";
  EXPECT_LT(header.find("__metadata__"), header.find("a.float64"));
  EXPECT_LT(header.find("a.float64"), header.find("bn.num_batches_tracked"));
  EXPECT_LT(header.find("empty.i64"), header.find("layer1.0.conv1.weight"));
  EXPECT_EQ(raw.size(), 8 + n + f.size() * 4 + d.size() * 8 + l.size() * 8 + 4);
  EXPECT_NE(header.find("\"dtype\":\"F64\""), std::string::npos) << header;
}

TEST(Safetensors, SavesViewsAsTheirLogicalValues) {
  TempDir dir;
  std::vector<double> v(4 * 6);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * static_cast<double>(i) - 3.25;
  Tensor base = Tensor::from_vector(v, {4, 6});
  Tensor t = base.transpose(0, 1);             // [6,4], strides [1,6]
  Tensor s = base.slice(1, 1, 6, 2);           // [4,3], columns 1,3,5
  ASSERT_FALSE(t.is_contiguous());
  const std::string path = dir.file("views.safetensors");
  save_safetensors(path, {{"t", t}, {"s", s}});
  auto out = load_safetensors(path).tensors;
  ASSERT_EQ(out.at("t").shape(), (Shape{6, 4}));
  ASSERT_EQ(out.at("s").shape(), (Shape{4, 3}));
  auto tv = values_of<double>(out.at("t"));
  auto sv = values_of<double>(out.at("s"));
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(tv[i * 4 + j], v[j * 6 + i]) << i << "," << j;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(sv[i * 3 + j], v[i * 6 + 1 + 2 * j]) << i << "," << j;
  EXPECT_TRUE(load_safetensors(path).metadata.empty());
}

TEST(Safetensors, OverwritesAtomicallyAndLeavesNoTemporaryFiles) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  save_safetensors(path, {{"x", Tensor::from_vector(std::vector<float>{1, 2, 3}, {3})}});
  save_safetensors(path, {{"y", Tensor::from_vector(std::vector<int64_t>{9, 8}, {2})}});
  auto out = load_safetensors(path).tensors;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(values_of<int64_t>(out.at("y")), (std::vector<int64_t>{9, 8}));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, SaveRejectsBadNamesAndPathsWithoutTouchingTheTarget) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  Tensor x = Tensor::from_vector(std::vector<float>{1}, {1});
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", x}}), engine::Error);
  EXPECT_THROW(save_safetensors(path, {{"", x}}), engine::Error);
  EXPECT_THROW(save_safetensors(path, {{"undefined", Tensor()}}), engine::Error);
  EXPECT_FALSE(fs::exists(path));
  const std::string nowhere = dir.file("no/such/dir/x.safetensors");
  try {
    save_safetensors(nowhere, {{"x", x}});
    ADD_FAILURE() << "saving into a missing directory did not throw";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find(nowhere), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// ---- dtypes the engine does not hold are widened on load ----------------------------------------

TEST(Safetensors, WidensHalfBfloatAndSmallIntegersExactly) {
  TempDir dir;
  // float16 bit patterns with their exact values, including the edge cases of the conversion.
  std::vector<uint16_t> h = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400,
                             0x8000, 0x7C00, 0xFC00, 0x3555, 0x8001};
  std::vector<float> h_ref = {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24),
                              std::ldexp(1023.0f, -24), std::ldexp(1.0f, -14), -0.0f,
                              INFINITY, -INFINITY, 0.333251953125f, -std::ldexp(1.0f, -24)};
  std::vector<uint16_t> bf = {0x3F80, 0xC0A0, 0x7F80, 0x0001, 0x4049, 0xFFC1};
  std::vector<uint8_t> u8 = {0, 1, 200, 255};
  std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -5, 0,
                              std::numeric_limits<int32_t>::max()};
  std::vector<int8_t> i8 = {-128, -1, 127};
  std::vector<uint8_t> boolean = {1, 0, 0, 1};
  std::vector<uint16_t> nan16 = {0x7E00};

  std::string data = bytes_of(h) + bytes_of(bf) + bytes_of(u8) + bytes_of(i32) + bytes_of(i8) +
                     bytes_of(boolean) + bytes_of(nan16);
  std::string header =
      R"({"h":{"dtype":"F16","shape":[11],"data_offsets":[0,22]},)"
      R"("bf":{"dtype":"BF16","shape":[2,3],"data_offsets":[22,34]},)"
      R"("u8":{"dtype":"U8","shape":[4],"data_offsets":[34,38]},)"
      R"("i32":{"dtype":"I32","shape":[2,2],"data_offsets":[38,54]},)"
      R"("i8":{"dtype":"I8","shape":[3],"data_offsets":[54,57]},)"
      R"("flag":{"dtype":"BOOL","shape":[4],"data_offsets":[57,61]},)"
      R"("nan":{"dtype":"F16","shape":[],"data_offsets":[61,63]}})";
  const std::string path = dir.file("wide.safetensors");
  write_bytes(path, make_file(header, data));
  auto t = load_safetensors(path).tensors;

  ASSERT_EQ(t.at("h").dtype(), DType::Float32);
  auto hv = values_of<float>(t.at("h"));
  for (size_t i = 0; i < h.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint32_t>(hv[i]), std::bit_cast<uint32_t>(h_ref[i]))
        << "f16 0x" << std::hex << h[i] << " gave " << hv[i];
  EXPECT_TRUE(std::isnan(values_of<float>(t.at("nan"))[0]));

  ASSERT_EQ(t.at("bf").dtype(), DType::Float32);
  EXPECT_EQ(t.at("bf").shape(), (Shape{2, 3}));
  auto bv = values_of<float>(t.at("bf"));
  EXPECT_EQ(bv[0], 1.0f);
  EXPECT_EQ(bv[1], -5.0f);
  EXPECT_EQ(bv[2], INFINITY);
  EXPECT_EQ(bv[3], std::bit_cast<float>(uint32_t{0x00010000}));  // subnormal survives
  EXPECT_EQ(bv[4], 3.140625f);
  EXPECT_TRUE(std::isnan(bv[5]));

  EXPECT_EQ(t.at("u8").dtype(), DType::Int64);
  EXPECT_EQ(values_of<int64_t>(t.at("u8")), (std::vector<int64_t>{0, 1, 200, 255}));
  EXPECT_EQ(values_of<int64_t>(t.at("i32")),
            (std::vector<int64_t>{std::numeric_limits<int32_t>::min(), -5, 0,
                                  std::numeric_limits<int32_t>::max()}));
  EXPECT_EQ(values_of<int64_t>(t.at("i8")), (std::vector<int64_t>{-128, -1, 127}));
  EXPECT_EQ(values_of<int64_t>(t.at("flag")), (std::vector<int64_t>{1, 0, 0, 1}));
}

TEST(Safetensors, RejectsU64ValuesThatDoNotFitInt64) {
  TempDir dir;
  std::vector<uint64_t> ok = {0, 5, uint64_t{1} << 62};
  std::vector<uint64_t> big = {3, uint64_t{1} << 63};
  const std::string good = dir.file("u64.safetensors");
  write_bytes(good, make_file(R"({"n":{"dtype":"U64","shape":[3],"data_offsets":[0,24]}})", bytes_of(ok)));
  EXPECT_EQ(values_of<int64_t>(load_safetensors(good).tensors.at("n")),
            (std::vector<int64_t>{0, 5, int64_t{1} << 62}));
  const std::string bad = dir.file("u64big.safetensors");
  write_bytes(bad, make_file(R"({"ids":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}})", bytes_of(big)));
  EXPECT_TRUE(load_fails_with(bad, {bad, "'ids'", "9223372036854775808", "element 1"}));
}

// ---- malformed files ----------------------------------------------------------------------------

TEST(Safetensors, RejectsMissingAndTooShortFiles) {
  TempDir dir;
  const std::string missing = dir.file("missing.safetensors");
  EXPECT_TRUE(load_fails_with(missing, {missing, "cannot open"}));
  EXPECT_TRUE(load_fails_with(dir.path().string(), {dir.path().string(), "not a regular file"}));
  const std::string empty = dir.file("empty.safetensors");
  write_bytes(empty, "");
  EXPECT_TRUE(load_fails_with(empty, {empty, "0 bytes", "too short"}));
  const std::string five = dir.file("five.safetensors");
  write_bytes(five, std::string("\x10\0\0\0\0", 5));
  EXPECT_TRUE(load_fails_with(five, {five, "5 bytes"}));
}

TEST(Safetensors, RejectsHeaderLengthPastTheEndOrOverTheLimit) {
  TempDir dir;
  const std::string past = dir.file("past.safetensors");
  write_bytes(past, le64(64) + std::string(R"({"a":1})"));
  EXPECT_TRUE(load_fails_with(past, {past, "header length 64", "7 bytes"}));
  const std::string huge = dir.file("huge.safetensors");
  write_bytes(huge, le64(uint64_t{1} << 40) + "{}");
  EXPECT_TRUE(load_fails_with(huge, {huge, "100 MiB"}));
  const std::string maxed = dir.file("maxed.safetensors");
  write_bytes(maxed, le64(~uint64_t{0}) + "{}");
  EXPECT_TRUE(load_fails_with(maxed, {maxed, "header length"}));
}

TEST(Safetensors, RejectsInvalidJsonAndNonObjectHeaders) {
  TempDir dir;
  const std::string bad = dir.file("json.safetensors");
  write_bytes(bad, make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", "abcd"));
  EXPECT_TRUE(load_fails_with(bad, {bad, "not valid JSON"}));
  const std::string arr = dir.file("array.safetensors");
  write_bytes(arr, make_file("[1,2]", ""));
  EXPECT_TRUE(load_fails_with(arr, {arr, "JSON object", "array"}));
  const std::string dup = dir.file("dup.safetensors");
  write_bytes(dup, make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             std::string(8, '\0')));
  EXPECT_TRUE(load_fails_with(dup, {dup, "'w' twice"}));
  const std::string meta = dir.file("meta.safetensors");
  write_bytes(meta, make_file(R"({"__metadata__":{"epoch":3}})", ""));
  EXPECT_TRUE(load_fails_with(meta, {meta, "'epoch'", "string"}));
}

TEST(Safetensors, RejectsBadEntriesNamingTheTensor) {
  TempDir dir;
  struct Case {
    const char* entry;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {R"(42)", {"object"}},
      {R"({"shape":[1],"data_offsets":[0,4]})", {"no \"dtype\""}},
      {R"({"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]})", {"unsupported dtype 'Q4_K'"}},
      {R"({"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]})", {"unsupported dtype 'F8_E4M3'"}},
      {R"({"dtype":"F32","shape":[2,-2],"data_offsets":[0,4]})", {"negative size -2"}},
      {R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", {"not a size", "1.5"}},
      {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", {"not a list"}},
      {R"({"dtype":"F32","data_offsets":[0,4]})", {"no \"shape\""}},
      {R"({"dtype":"F32","shape":[1]})", {"no \"data_offsets\""}},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", {"[begin,end]"}},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", {"[begin,end]"}},
      {R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})", {"begin > end"}},
      {R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})", {"[0,12]", "past the end", "8 bytes"}},
      {R"({"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]})", {"overflows"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].entry);
    const std::string path = dir.file("case" + std::to_string(i) + ".safetensors");
    write_bytes(path, make_file(std::string(R"({"ok":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)") +
                                    R"("layer1.0.conv1.weight":)" + cases[i].entry + "}",
                                std::string(8, '\x01')));
    std::vector<std::string> parts = {path, "tensor 'layer1.0.conv1.weight'"};
    parts.insert(parts.end(), cases[i].expect.begin(), cases[i].expect.end());
    EXPECT_TRUE(load_fails_with(path, parts));
  }
}

TEST(Safetensors, RejectsByteLengthThatDoesNotMatchDtypeAndShape) {
  TempDir dir;
  const std::string path = dir.file("weights.safetensors");
  write_bytes(path, make_file(R"({"layer1.0.conv1.weight":{"dtype":"F32","shape":[64,3,7,7],)"
                              R"("data_offsets":[0,100]}})",
                              std::string(100, '\0')));
  EXPECT_TRUE(load_fails_with(
      path, {path + ": tensor 'layer1.0.conv1.weight' has data_offsets [0,100] but dtype F32 "
                    "and shape [64,3,7,7] need 37632 bytes"}));
}

TEST(Safetensors, RejectsOverlappingTensorsNamingBoth) {
  TempDir dir;
  const std::string path = dir.file("overlap.safetensors");
  // 'b' is inside the span of 'a' although it starts after a short, disjoint 'c'.
  write_bytes(path, make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,24]},)"
                              R"("c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("z":{"dtype":"F32","shape":[0],"data_offsets":[12,12]},)"
                              R"("b":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}})",
                              std::string(24, '\0')));
  EXPECT_TRUE(load_fails_with(path, {path, "'a'", "'b'", "overlap"}));
  // Touching ranges and empty tensors sitting at a boundary are fine.
  const std::string ok = dir.file("touching.safetensors");
  write_bytes(ok, make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("e":{"dtype":"F64","shape":[0,5],"data_offsets":[8,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                            std::string(16, '\0')));
  EXPECT_EQ(load_safetensors(ok).tensors.size(), 3u);
}

TEST(Safetensors, RejectsEveryTruncationOfAValidFile) {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  std::vector<float> w(5 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i) - 1.0f;
  save_safetensors(good, {{"conv.weight", Tensor::from_vector(w, {5, 3})},
                          {"conv.bias", Tensor::from_vector(std::vector<double>{1, 2, 3}, {3})}});
  const std::string raw = read_bytes(good);
  ASSERT_NO_THROW(load_safetensors(good));
  // Every proper prefix of the file must fail cleanly (never read out of bounds, never crash).
  const std::string cut = dir.file("cut.safetensors");
  for (size_t len = 0; len < raw.size(); ++len) {
    write_bytes(cut, raw.substr(0, len));
    EXPECT_TRUE(load_fails_with(cut, {cut})) << "prefix of " << len << " bytes";
  }
  // Cutting only into the data names the tensor whose bytes went missing.
  write_bytes(cut, raw.substr(0, raw.size() - 4));
  EXPECT_TRUE(load_fails_with(cut, {cut, "tensor 'conv.weight'", "past the end"}));
}

// ---- a file written by PyTorch ------------------------------------------------------------------

bool python_has_torch() {
  return std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

// Values are written by torch as hex floats (exact), independently of the safetensors path.
const char* kMakeCheckpoint = R"PY(
import sys, torch
out_pth, out_txt = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(1234)
sd = {
    "conv1.weight": torch.randn(4, 3, 3, 5, generator=g),            # OIHW, kept as is
    "fc.weight": torch.randn(5, 7, generator=g).t(),                  # non-contiguous view
    "fc.bias": torch.randn(7, generator=g, dtype=torch.float64),
    "bn1.num_batches_tracked": torch.tensor(12345),
    "half": torch.tensor([1.0, -0.0, 65504.0, 6e-8, float("inf"), 0.1], dtype=torch.float16),
    "bf": (torch.randn(3, 2, generator=g) * 100).to(torch.bfloat16),
    "i32": torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32),
    "mask": torch.tensor([True, False, True]),
    "empty": torch.zeros(0, 4),
}
torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, out_pth)
with open(out_txt, "w") as f:
    for k, v in sd.items():
        vals = v.double().flatten().tolist()
        f.write(" ".join([k, str(v.dim())] + [str(s) for s in v.shape] + [float.hex(x) for x in vals]) + "\n")
)PY";

TEST(Safetensors, ReadsACheckpointWrittenByTorchAndConvertedByConvertPy) {
  if (!python_has_torch()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (install python3-torch)";
  TempDir dir;
  const std::string script = dir.file("make.py"), pth = dir.file("ckpt.pth");
  const std::string txt = dir.file("expected.txt"), st = dir.file("ckpt.safetensors");
  write_bytes(script, kMakeCheckpoint);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + script + " " + pth + " " + txt).c_str()), 0);
  const std::string convert = std::string(ENGINE_SOURCE_DIR) + "/weights/convert.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + convert + " " + pth + " " + st + " >/dev/null").c_str()), 0);

  auto file = load_safetensors(st);
  EXPECT_EQ(file.metadata.at("format"), "pt");
  std::ifstream in(txt);
  std::string line;
  size_t seen = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    int64_t dim = 0;
    ls >> name >> dim;
    Shape shape(dim);
    for (auto& s : shape) ls >> s;
    std::vector<double> ref;
    for (std::string tok; ls >> tok;) ref.push_back(std::strtod(tok.c_str(), nullptr));
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.tensors.count(name)) << "convert.py should strip 'module.'";
    const Tensor& t = file.tensors.at(name);
    EXPECT_EQ(t.shape(), shape);
    ASSERT_EQ(static_cast<size_t>(t.numel()), ref.size());
    std::vector<double> got;
    if (t.dtype() == DType::Float32) for (float v : values_of<float>(t)) got.push_back(v);
    if (t.dtype() == DType::Float64) got = values_of<double>(t);
    if (t.dtype() == DType::Int64) for (int64_t v : values_of<int64_t>(t)) got.push_back(static_cast<double>(v));
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(std::bit_cast<uint64_t>(got[i]), std::bit_cast<uint64_t>(ref[i]))
          << "element " << i << ": " << got[i] << " vs " << ref[i];
    }
    ++seen;
  }
  EXPECT_EQ(seen, 9u);
  EXPECT_EQ(file.tensors.size(), 9u);  // "epoch" is not a tensor and is skipped
  EXPECT_EQ(file.tensors.at("fc.bias").dtype(), DType::Float64);
  EXPECT_EQ(file.tensors.at("half").dtype(), DType::Float32);
  EXPECT_EQ(file.tensors.at("mask").dtype(), DType::Int64);
  EXPECT_EQ(file.tensors.at("bn1.num_batches_tracked").dim(), 0);
}

}  // namespace
