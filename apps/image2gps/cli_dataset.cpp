// `image2gps dataset build PHOTOS_DIR --out DIR` and `image2gps dataset plot DIR`.
#include <cstdio>

#include "apps/image2gps/cli.h"
#include "apps/image2gps/dataset.h"
#include "apps/image2gps/resplit.h"

namespace i2g {

void add_dataset_commands(CLI::App& app) {
  auto* ds = app.add_subcommand("dataset", "Build and inspect geotagged datasets");
  ds->require_subcommand(1);

  struct BuildArgs {
    std::string photos, out, mode = "random", pattern;
    DatasetOptions opt;
  };
  auto a = std::make_shared<BuildArgs>();
  auto* build = ds->add_subcommand(
      "build", "Read GPS from each photo's EXIF and write metadata.csv plus a seeded "
               "train/val/test split (DIR/train, DIR/val, DIR/test)");
  build->add_option("PHOTOS_DIR", a->photos, "Folder of JPEG/PNG photos with EXIF GPS")
      ->required()
      ->check(CLI::ExistingDirectory);
  build->add_option("--out", a->out, "Output dataset folder")->required();
  build->add_option("--seed", a->opt.split.seed, "Split seed")->capture_default_str();
  build->add_option("--split", a->mode, "random | grid | pattern (grouped splits keep "
                                        "near-duplicates on one side)")
      ->capture_default_str();
  build->add_option("--grid-meters", a->opt.split.grid_meters,
                    "Cell size for --split grid")->capture_default_str();
  build->add_option("--pattern", a->opt.split.pattern,
                    "Regex whose first group names the source photo (--split pattern)")
      ->capture_default_str();
  build->add_option("--train", a->opt.split.train, "Training fraction")->capture_default_str();
  build->add_option("--val", a->opt.split.val, "Validation fraction")->capture_default_str();
  build->add_option("--test", a->opt.split.test, "Test fraction")->capture_default_str();
  build->add_flag("--overwrite", a->opt.overwrite, "Replace an existing dataset in --out");
  build->callback([a] {
    a->opt.split.mode = parse_split_mode(a->mode);
    DatasetReport r = build_dataset(a->photos, a->out, a->opt);
    std::printf("%s", describe(r).c_str());
  });

  auto sa = std::make_shared<BuildArgs>();
  auto* split = ds->add_subcommand(
      "split", "Split a folder that already has metadata.csv (e.g. labelled crops) into "
               "train/val/test; grouped modes keep crops of one photo together");
  split->add_option("DIR", sa->photos, "Folder with metadata.csv and its images")
      ->required()
      ->check(CLI::ExistingDirectory);
  split->add_option("--out", sa->out, "Output dataset folder")->required();
  split->add_option("--seed", sa->opt.split.seed, "Split seed")->capture_default_str();
  split->add_option("--split", sa->mode, "random | grid | pattern")->capture_default_str();
  split->add_option("--grid-meters", sa->opt.split.grid_meters, "Cell size for --split grid")
      ->capture_default_str();
  split->add_option("--pattern", sa->opt.split.pattern,
                    "Regex whose first group names the source photo (--split pattern)")
      ->capture_default_str();
  split->add_option("--train", sa->opt.split.train, "Training fraction")->capture_default_str();
  split->add_option("--val", sa->opt.split.val, "Validation fraction")->capture_default_str();
  split->add_option("--test", sa->opt.split.test, "Test fraction")->capture_default_str();
  split->add_flag("--overwrite", sa->opt.overwrite, "Replace existing splits in --out");
  split->callback([sa] {
    sa->opt.split.mode = parse_split_mode(sa->mode);
    DatasetReport r = split_labelled_folder(sa->photos, sa->out, sa->opt);
    std::printf("%zu images: %zu train, %zu val, %zu test (%s split)\n", r.usable, r.train,
                r.val, r.test, to_string(sa->opt.split.mode));
  });

  auto plot_dir = std::make_shared<std::string>();
  auto plot_out = std::make_shared<std::string>();
  auto* plot = ds->add_subcommand("plot", "Latitude/longitude scatter of every split (SVG)");
  plot->add_option("DIR", *plot_dir, "Dataset folder (from dataset build)")
      ->required()
      ->check(CLI::ExistingDirectory);
  plot->add_option("--out", *plot_out, "SVG file (default DIR/labels.svg)");
  plot->callback([plot_dir, plot_out] {
    std::string out = plot_out->empty() ? *plot_dir + "/labels.svg" : *plot_out;
    plot_dataset(*plot_dir, out);
    std::printf("wrote %s\n", out.c_str());
  });
}

}  // namespace i2g
