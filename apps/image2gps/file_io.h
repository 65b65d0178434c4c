// apps/image2gps/file_io.h — whole-file reads and atomic writes shared by the data layer.
//
// Every file the app writes (metadata.csv, PNGs, SVG plots) goes through write_file_atomic, so
// an interrupted run never leaves a half-written file under the final name: the bytes go to a
// temporary file in the same directory, which is then renamed over the target (rename is atomic
// within one filesystem on POSIX).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace i2g {

// Reads the whole file; throws engine::Error naming the file when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Writes `size` bytes to `path` through a temporary file + rename. Creates no directories;
// throws engine::Error naming the file on any failure (the temporary file is removed).
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, std::string_view text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace i2g
