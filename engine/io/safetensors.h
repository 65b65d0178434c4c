// engine/io/safetensors.h — read and write the safetensors checkpoint format.
//
// A .safetensors file is three parts, nothing else:
//   [8 bytes]  N, the header length, little-endian uint64
//   [N bytes]  a JSON object {name: {"dtype": "F32", "shape": [64,3,7,7],
//                                    "data_offsets": [begin, end]}, ...,
//                             "__metadata__": {"key": "value", ...}}   (metadata optional)
//   [rest]     the byte buffer; a tensor's bytes are buffer[begin, end), row-major,
//              little-endian.
// Converted PyTorch checkpoints (weights/convert.py) keep PyTorch's names and layouts, so a conv
// weight is OIHW on disk; models change layouts at load time, not this file.
//
//   auto f = engine::io::load_safetensors("resnet18.safetensors");
//   Tensor w = f.tensors.at("conv1.weight");        // float32, [64,3,7,7], on the CPU
//   engine::io::save_safetensors("out.safetensors", {{"w", w}}, {{"format", "pt"}});
#pragma once

#include <map>
#include <string>

#include "engine/tensor.h"

namespace engine::io {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;          // by name, all on the CPU, contiguous
  std::map<std::string, std::string> metadata;    // the "__metadata__" object (may be empty)
};

// Reads a whole file into CPU tensors. The file's dtypes map onto the engine's like this:
//   F32 -> Float32, F64 -> Float64, I64 -> Int64             (bytes copied as they are)
//   F16, BF16 -> Float32                                     (widened exactly)
//   I8, I16, I32, U8, U16, U32, BOOL -> Int64                (widened exactly)
//   U64 -> Int64 when every value fits, else an error naming the tensor
//   F8_E4M3, F8_E5M2 and anything else -> an error naming the tensor and dtype.
// Every structural problem (truncated file, header length past the end, bad JSON, a bad entry,
// offsets outside the buffer, a byte length that does not match dtype and shape, overlapping
// tensors) throws engine::Error naming the file and, where there is one, the tensor.
SafetensorsFile load_safetensors(const std::string& path);

// Writes `tensors` in sorted key order with the header padded by spaces to a multiple of 8
// bytes (as the reference implementation does). Each tensor is copied to a contiguous CPU
// tensor first, so views and GPU tensors are fine. The file appears atomically: it is written
// to `path` + ".tmp-<pid>", fsync'ed and renamed over `path`, so a crash never leaves half a
// checkpoint behind. Names must be non-empty and not "__metadata__".
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace engine::io
