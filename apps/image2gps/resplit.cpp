#include "apps/image2gps/resplit.h"

#include <filesystem>

#include "apps/image2gps/metadata.h"
#include "engine/error.h"

namespace i2g {

namespace fs = std::filesystem;

namespace {

void place(const fs::path& src, const fs::path& dst, bool hard_link) {
  std::error_code ec;
  if (hard_link) {
    fs::create_hard_link(src, dst, ec);
    if (!ec) return;
  }
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
  engine::check(!ec, "cannot copy ", src.string(), " to ", dst.string(), ": ", ec.message());
}

void write_split(const fs::path& in, const fs::path& dir, const std::vector<GeoRecord>& rows,
                 bool hard_link) {
  fs::create_directories(dir);
  for (const GeoRecord& r : rows) {
    fs::path src = in / r.image_file;
    engine::check(fs::exists(src), (in / "metadata.csv").string(), ": '", r.image_file,
                  "' does not exist");
    place(src, dir / fs::path(r.image_file).filename(), hard_link);
  }
  std::vector<GeoRecord> local = rows;
  for (GeoRecord& r : local) r.image_file = fs::path(r.image_file).filename().string();
  write_metadata_csv((dir / "metadata.csv").string(), local);
}

}  // namespace

DatasetReport split_labelled_folder(const std::string& in_dir, const std::string& out_dir,
                                    const DatasetOptions& options) {
  const fs::path in = in_dir, out = out_dir;
  std::vector<GeoRecord> rows = read_metadata_csv((in / "metadata.csv").string());
  engine::check(!rows.empty(), (in / "metadata.csv").string(), ": no rows");
  for (const char* s : {"train", "val", "test"})
    engine::check(options.overwrite || !fs::exists(out / s), out_dir, " already has ", s,
                  "/ (use --overwrite to replace it)");
  for (const char* s : {"train", "val", "test"}) fs::remove_all(out / s);
  SplitRecords sr = split_records(rows, options.split);
  write_split(in, out / "train", sr.train, options.hard_link);
  write_split(in, out / "val", sr.val, options.hard_link);
  write_split(in, out / "test", sr.test, options.hard_link);
  write_metadata_csv((out / "metadata.csv").string(), rows);
  DatasetReport r;
  r.scanned = r.usable = rows.size();
  r.train = sr.train.size(), r.val = sr.val.size(), r.test = sr.test.size();
  return r;
}

}  // namespace i2g
