// apps/image2gps/file_io.cpp — see file_io.h.
#include "apps/image2gps/file_io.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include <unistd.h>

#include "engine/error.h"

namespace i2g {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) engine::fail(path, ": is a directory, not a file");
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) engine::fail("cannot open ", path, ": ", errno_text());
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  for (;;) {
    size_t n = std::fread(chunk, 1, sizeof(chunk), f.get());
    bytes.insert(bytes.end(), chunk, chunk + n);
    if (n < sizeof(chunk)) break;
  }
  if (std::ferror(f.get())) engine::fail("cannot read ", path, ": ", errno_text());
  return bytes;
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  // pid + a process-wide counter keeps concurrent writers (threads or processes) apart.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      engine::cat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1, std::memory_order_relaxed));
  bool ok = false;
  std::string why;
  {
    FilePtr f(std::fopen(tmp.c_str(), "wb"));
    if (!f) engine::fail("cannot write ", path, ": cannot create ", tmp, ": ", errno_text());
    if (size > 0 && std::fwrite(data, 1, size, f.get()) != size) {
      why = errno_text();
    } else if (std::fflush(f.get()) != 0 || ::fsync(::fileno(f.get())) != 0) {
      why = errno_text();
    } else {
      ok = true;
    }
    if (std::fclose(f.release()) != 0 && ok) {
      ok = false;
      why = errno_text();
    }
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    why = engine::cat("rename failed: ", errno_text());
  }
  if (!ok) {
    std::remove(tmp.c_str());
    engine::fail("cannot write ", path, ": ", why);
  }
}

}  // namespace i2g
