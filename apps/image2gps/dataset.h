// apps/image2gps/dataset.h — turn a folder of geotagged photos into a labelled, split dataset.
//
//   photos/img_00000.jpg ...            out/metadata.csv            (all usable photos, with
//   (labels in each photo's EXIF)  ->                                 paths like train/img_00000.jpg)
//                                       out/{train,val,test}/*.jpg   (hard links or copies)
//                                       out/{train,val,test}/metadata.csv (bare file names)
//
// Photos without usable GPS, with inconsistent GPS, or that do not decode are skipped and listed
// with the reason, so a user sees exactly what went into the dataset.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "apps/image2gps/split.h"

namespace i2g {

struct DatasetOptions {
  SplitOptions split;         // mode, seed, fractions, grid metres, file-name pattern
  bool verify_decode = true;  // decode every photo now, so a corrupt one fails here, not mid-training
  bool overwrite = false;     // replace an existing metadata.csv and train/val/test in out_dir
  bool hard_link = true;      // hard-link photos where the filesystem allows, else copy
};

struct SkippedPhoto {
  std::string file;    // file name inside photos_dir
  std::string reason;  // e.g. "no GPS data in EXIF", "cannot decode image ...: truncated JPEG"
};

struct DatasetReport {
  size_t scanned = 0;  // .jpg/.jpeg/.png files found (case-insensitive extension)
  size_t usable = 0;   // scanned - skipped.size()
  size_t train = 0, val = 0, test = 0;
  std::vector<SkippedPhoto> skipped;
};

// Builds the dataset described above from the files directly inside photos_dir (not recursive).
// Throws engine::Error when photos_dir is not a directory, holds no usable photo, out_dir equals
// photos_dir, out_dir already holds a dataset and !overwrite, the split options are invalid, or a
// file cannot be copied/written.
DatasetReport build_dataset(const std::string& photos_dir, const std::string& out_dir,
                            const DatasetOptions& options);

// A few lines for the terminal: counts per split and each skipped photo with its reason.
std::string describe(const DatasetReport& report);

// Scatter of the labels of dir/{train,val,test}/metadata.csv (those present) in one colour per
// split; falls back to dir/metadata.csv alone. Throws engine::Error when neither exists.
void plot_dataset(const std::string& dir, const std::string& out_svg);

}  // namespace i2g
