// engine/io/safetensors.cpp — safetensors reader and writer (format in safetensors.h).
//
// The reader trusts nothing in the file: every length and offset is checked against the file's
// real size before a byte is read, so a truncated or hostile file gives an engine::Error that
// names the file and the tensor instead of a crash or an out-of-bounds read. Files are read
// with pread() straight into each tensor's storage, so a 100 MB checkpoint is not held twice.
#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

namespace engine::io {

// Tensor bytes are copied as they are, so the host must share the format's byte order.
static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; this reader assumes a little-endian host");

namespace {

using nlohmann::json;

// Largest header accepted. Real headers are a few hundred bytes per tensor (a ConvNeXt-Base
// header is ~40 KB); the cap stops a corrupt length from allocating gigabytes.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

// ---- file dtypes ----------------------------------------------------------------------------

enum class FileDType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

struct FileDTypeInfo {
  FileDType id;
  const char* name;  // as written in the header
  size_t size;       // bytes per element
  DType engine;      // what the loaded tensor holds
};

constexpr FileDTypeInfo kFileDTypes[] = {
    {FileDType::F64, "F64", 8, DType::Float64},  {FileDType::F32, "F32", 4, DType::Float32},
    {FileDType::F16, "F16", 2, DType::Float32},  {FileDType::BF16, "BF16", 2, DType::Float32},
    {FileDType::I64, "I64", 8, DType::Int64},    {FileDType::I32, "I32", 4, DType::Int64},
    {FileDType::I16, "I16", 2, DType::Int64},    {FileDType::I8, "I8", 1, DType::Int64},
    {FileDType::U64, "U64", 8, DType::Int64},    {FileDType::U32, "U32", 4, DType::Int64},
    {FileDType::U16, "U16", 2, DType::Int64},    {FileDType::U8, "U8", 1, DType::Int64},
    {FileDType::BOOL, "BOOL", 1, DType::Int64},
};

const FileDTypeInfo* find_file_dtype(const std::string& name) {
  for (const auto& d : kFileDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const char* file_dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
  }
  return "?";
}

// IEEE binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads).
float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (man << 13));
  // Zero or subnormal: the value is man * 2^-24, which float32 holds exactly.
  float mag = std::ldexp(static_cast<float>(man), -24);
  return sign ? -mag : mag;
}

// bfloat16 is the top half of a float32, so widening is a shift.
float bf16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t{h} << 16); }

template <class T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the host is little-endian (static_assert above)
  return v;
}

// ---- POSIX file handles (RAII) ---------------------------------------------------------------

std::string errno_text() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports failure (a failed close can mean lost written data).
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// Reads exactly n bytes at `offset`; the caller has already checked offset + n <= file size,
// so a short read here means the file shrank while we read it.
void pread_exact(int fd, const std::string& path, uint64_t offset, void* dst, uint64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(path, ": read failed at byte ", offset, ": ", errno_text());
    if (got == 0)
      fail(path, ": file ended at byte ", offset, " while reading (was it truncated while being read?)");
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const std::string& path, const void* src, size_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  while (n > 0) {
    size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    ssize_t put = ::write(fd, in, chunk);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail(path, ": write failed: ", errno_text());
    in += put;
    n -= static_cast<size_t>(put);
  }
}

// ---- header parsing --------------------------------------------------------------------------

struct Entry {
  std::string name;
  const FileDTypeInfo* dtype = nullptr;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data buffer
};

std::string tensor_prefix(const std::string& path, const std::string& name) {
  return cat(path, ": tensor '", name, "'");
}

// Reads a JSON value that must be a non-negative integer that fits in int64.
bool as_index(const json& v, uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

Entry parse_entry(const std::string& path, const std::string& name, const json& j,
                  uint64_t buffer_bytes) {
  const std::string who = tensor_prefix(path, name);
  check(j.is_object(), who, " should map to an object {dtype, shape, data_offsets}, got ",
        j.dump());
  Entry e;
  e.name = name;

  auto dt = j.find("dtype");
  check(dt != j.end(), who, " has no \"dtype\"");
  check(dt->is_string(), who, " has a dtype that is not a string: ", dt->dump());
  e.dtype = find_file_dtype(dt->get<std::string>());
  check(e.dtype != nullptr, who, " has unsupported dtype '", dt->get<std::string>(),
        "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)");

  auto sh = j.find("shape");
  check(sh != j.end(), who, " has no \"shape\"");
  check(sh->is_array(), who, " has a shape that is not a list: ", sh->dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *sh) {
    if (d.is_number_integer() && !d.is_number_unsigned())
      fail(who, " has a negative size ", d.dump(), " in shape ", sh->dump());
    uint64_t size = 0;
    check(as_index(d, size), who, " has a shape entry that is not a size: ", d.dump(),
          " in shape ", sh->dump());
    e.shape.push_back(static_cast<int64_t>(size));
    overflow = overflow || __builtin_mul_overflow(numel, size, &numel);
  }
  uint64_t need = 0;
  overflow = overflow || __builtin_mul_overflow(numel, e.dtype->size, &need);
  check(!overflow, who, " has shape ", sh->dump(), " whose byte size overflows 64 bits");

  auto off = j.find("data_offsets");
  check(off != j.end(), who, " has no \"data_offsets\"");
  check(off->is_array() && off->size() == 2 && as_index((*off)[0], e.begin) &&
            as_index((*off)[1], e.end),
        who, " has data_offsets ", off->dump(), " but needs two non-negative integers [begin,end]");
  check(e.begin <= e.end, who, " has data_offsets [", e.begin, ",", e.end, "] with begin > end");
  check(e.end <= buffer_bytes, who, " has data_offsets [", e.begin, ",", e.end,
        "] past the end of the data buffer (", buffer_bytes, " bytes; is the file truncated?)");
  check(e.end - e.begin == need, who, " has data_offsets [", e.begin, ",", e.end, "] but dtype ",
        e.dtype->name, " and shape ", sh->dump(), " need ", need, " bytes");
  return e;
}

// Two tensors may not share bytes: a writer bug or a crafted file could otherwise alias them.
void check_no_overlap(const std::string& path, std::vector<const Entry*> entries) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const Entry* reach = nullptr;  // the earlier non-empty tensor that ends furthest right
  for (const Entry* e : entries) {
    if (e->begin == e->end) continue;  // empty tensors own no bytes
    if (reach && e->begin < reach->end)
      fail(path, ": tensors '", reach->name, "' (bytes [", reach->begin, ",", reach->end,
           "]) and '", e->name, "' (bytes [", e->begin, ",", e->end, "]) overlap");
    if (!reach || e->end > reach->end) reach = e;
  }
}

// Parses the header text, rejecting duplicate top-level names (JSON allows them; the last one
// would silently win otherwise).
json parse_header(const std::string& path, const std::string& text) {
  std::vector<std::string> seen;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      seen.push_back(parsed.get<std::string>());
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, cb);
  } catch (const json::exception& ex) {
    fail(path, ": header is not valid JSON (", ex.what(), ")");
  }
  check(header.is_object(), path, ": header should be a JSON object, got ", header.type_name());
  std::sort(seen.begin(), seen.end());
  auto dup = std::adjacent_find(seen.begin(), seen.end());
  if (dup != seen.end()) fail(path, ": header names '", *dup, "' twice");
  return header;
}

// Copies raw file bytes of one entry into `t`, widening when the file dtype is narrower.
void decode_into(const std::string& path, const Entry& e, const uint8_t* src, Tensor& t) {
  const int64_t n = engine::numel(e.shape);
  auto widen_int = [&](auto zero) {
    using S = decltype(zero);
    int64_t* dst = t.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int64_t>(load_le<S>(src + i * sizeof(S)));
  };
  switch (e.dtype->id) {
    case FileDType::F64:
    case FileDType::F32:
    case FileDType::I64:
      std::memcpy(t.raw_data(), src, static_cast<size_t>(e.end - e.begin));
      break;
    case FileDType::F16: {
      float* dst = t.data<float>();
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_le<uint16_t>(src + 2 * i));
      break;
    }
    case FileDType::BF16: {
      float* dst = t.data<float>();
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_le<uint16_t>(src + 2 * i));
      break;
    }
    case FileDType::I32: widen_int(int32_t{}); break;
    case FileDType::I16: widen_int(int16_t{}); break;
    case FileDType::I8: widen_int(int8_t{}); break;
    case FileDType::U32: widen_int(uint32_t{}); break;
    case FileDType::U16: widen_int(uint16_t{}); break;
    case FileDType::U8: widen_int(uint8_t{}); break;
    case FileDType::BOOL: {
      int64_t* dst = t.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] != 0;
      break;
    }
    case FileDType::U64: {
      int64_t* dst = t.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = load_le<uint64_t>(src + 8 * i);
        check(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
              tensor_prefix(path, e.name), " (U64) holds ", v, " at element ", i,
              ", which does not fit the engine's int64");
        dst[i] = static_cast<int64_t>(v);
      }
      break;
    }
  }
}

}  // namespace

// ---- load ------------------------------------------------------------------------------------

SafetensorsFile load_safetensors(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  check(fd.get() >= 0, path, ": cannot open: ", errno_text());
  struct stat st {};
  check(::fstat(fd.get(), &st) == 0, path, ": cannot stat: ", errno_text());
  check(S_ISREG(st.st_mode), path, ": not a regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);

  check(file_bytes >= 8, path, ": file is ", file_bytes,
        " bytes, too short to be safetensors (it starts with an 8-byte header length)");
  uint8_t len_bytes[8];
  pread_exact(fd.get(), path, 0, len_bytes, 8);
  const uint64_t header_bytes = load_le<uint64_t>(len_bytes);
  check(header_bytes <= kMaxHeaderBytes, path, ": header length ", header_bytes,
        " is over the 100 MiB limit (not a safetensors file, or a corrupt one)");
  check(header_bytes <= file_bytes - 8, path, ": header length ", header_bytes,
        " is larger than the ", file_bytes - 8, " bytes that follow it (file truncated?)");

  std::string text(static_cast<size_t>(header_bytes), '\0');
  pread_exact(fd.get(), path, 8, text.data(), header_bytes);
  json header = parse_header(path, text);

  const uint64_t data_start = 8 + header_bytes;
  const uint64_t buffer_bytes = file_bytes - data_start;
  SafetensorsFile out;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      check(value.is_object(), path, ": \"__metadata__\" should be an object of strings, got ",
            value.dump());
      for (const auto& [k, v] : value.items()) {
        check(v.is_string(), path, ": \"__metadata__\" key '", k,
              "' should hold a string, got ", v.dump());
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, name, value, buffer_bytes));
  }
  std::vector<const Entry*> ptrs;
  for (const Entry& e : entries) ptrs.push_back(&e);
  check_no_overlap(path, ptrs);

  // Everything is validated; now read. Same-dtype tensors are read straight into their storage.
  std::vector<uint8_t> staging;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->engine, Device::cpu());
    const uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0) {
      bool direct = e.dtype->engine == DType::Float32 ? e.dtype->id == FileDType::F32
                    : e.dtype->engine == DType::Float64 ? e.dtype->id == FileDType::F64
                                                         : e.dtype->id == FileDType::I64;
      if (direct) {
        pread_exact(fd.get(), path, data_start + e.begin, t.raw_data(), nbytes);
      } else {
        staging.resize(static_cast<size_t>(nbytes));
        pread_exact(fd.get(), path, data_start + e.begin, staging.data(), nbytes);
        decode_into(path, e, staging.data(), t);
      }
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

// ---- save ------------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Gather contiguous host copies first, so a bad tensor fails before any file is touched.
  std::vector<std::pair<const std::string*, Tensor>> host;
  host.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    check(!name.empty(), path, ": cannot save a tensor with an empty name");
    check(name != "__metadata__", path,
          ": cannot save a tensor named '__metadata__' (the name is reserved for metadata)");
    check(t.defined(), tensor_prefix(path, name), " is an undefined Tensor");
    host.emplace_back(&name, t.detach().to(Device::cpu()).contiguous());
  }

  // ordered_json keeps the reference layout: metadata first, then tensors in sorted order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) header["__metadata__"][k] = v;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : host) {
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[*name] = {{"dtype", file_dtype_name(t.dtype())},
                     {"shape", t.shape()},
                     {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& ex) {
    fail(path, ": cannot write the header (names and metadata must be valid UTF-8): ", ex.what());
  }
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_bytes[8];
  uint64_t len = text.size();
  std::memcpy(len_bytes, &len, 8);

  // Write to a temporary name and rename, so readers only ever see a complete file.
  const std::string tmp = cat(path, ".tmp-", ::getpid());
  struct Unlinker {  // removes the temporary file unless the rename happened
    const std::string& name;
    bool armed = true;
    ~Unlinker() {
      if (armed) ::unlink(name.c_str());
    }
  };
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  check(fd.get() >= 0, path, ": cannot create temporary file '", tmp, "': ", errno_text());
  Unlinker cleanup{tmp};
  write_all(fd.get(), tmp, len_bytes, 8);
  write_all(fd.get(), tmp, text.data(), text.size());
  for (const auto& [name, t] : host) {
    size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    if (nbytes > 0) write_all(fd.get(), tmp, t.raw_data(), nbytes);
  }
  check(::fsync(fd.get()) == 0, tmp, ": fsync failed: ", errno_text());
  check(fd.close(), tmp, ": close failed: ", errno_text());
  check(::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename '", tmp,
        "' into place: ", errno_text());
  cleanup.armed = false;

  // Make the rename itself durable; a failure here loses nothing already written, so it is
  // best effort.
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos
                                       ? 0
                                       : path.find_last_of('/') + 1);
  if (dir.empty()) dir = ".";
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

}  // namespace engine::io
