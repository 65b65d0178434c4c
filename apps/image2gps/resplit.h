// apps/image2gps/resplit.h — split a folder that already has labels (metadata.csv) into
// train/val/test, like `dataset build` does for photos with EXIF GPS. Used for labelled crops
// (the course's crops224) where several files come from one photo and must stay together.
#pragma once

#include <string>

#include "apps/image2gps/dataset.h"

namespace i2g {

// Reads IN/metadata.csv, splits its rows with `options.split`, and writes OUT/metadata.csv plus
// OUT/{train,val,test}/ (images hard-linked or copied, each with its metadata.csv).
DatasetReport split_labelled_folder(const std::string& in_dir, const std::string& out_dir,
                                    const DatasetOptions& options);

}  // namespace i2g
