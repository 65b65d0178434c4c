// apps/image2gps/split.h — seeded train/val/test split that keeps related photos together.
//
// Records are first put into groups, and whole groups are dealt to the splits, so near-copies
// never straddle train and test (which would measure memory, not generalisation):
//   random  — every image_file is its own group;
//   grid    — records in the same square cell of `grid_meters` on the ground form a group
//             (photos shot seconds apart at one spot share a cell);
//   pattern — the first capture group of a regex on the file name names the group, e.g.
//             `img_(\d+)_\d+\.jpg` keeps the 5 crops of one photo together.
// Group keys are sorted before a seeded shuffle, so the result depends on the records and the
// seed only, not on the order the records arrived in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/image2gps/metadata.h"

namespace i2g {

enum class SplitMode { Random, Grid, Pattern };

// "random" | "grid" | "pattern" (case-insensitive); throws engine::Error listing the choices.
SplitMode parse_split_mode(const std::string& name);
const char* to_string(SplitMode mode);

struct SplitOptions {
  SplitMode mode = SplitMode::Random;
  uint64_t seed = 0;
  double train = 0.8, val = 0.1, test = 0.1;  // each in [0,1], summing to 1
  double grid_meters = 25.0;                  // cell side for SplitMode::Grid
  std::string pattern = R"(img_(\d+)_\d+\.jpg)";  // for SplitMode::Pattern (ECMAScript regex)
};

// Indices into the input, each list ascending.
struct SplitIndices {
  std::vector<size_t> train, val, test;
};

// The group key of every record under `options` (exposed for tests and reports).
// Pattern mode throws engine::Error when a file name does not match or the regex has no group.
std::vector<std::string> split_group_keys(const std::vector<GeoRecord>& records,
                                          const SplitOptions& options);

// Deals whole groups to train/val/test so that the record counts come as close as the groups
// allow to the fractions. Throws engine::Error on invalid fractions or grid size.
SplitIndices split_indices(const std::vector<GeoRecord>& records, const SplitOptions& options);

struct SplitRecords {
  std::vector<GeoRecord> train, val, test;
};
SplitRecords split_records(const std::vector<GeoRecord>& records, const SplitOptions& options);

}  // namespace i2g
