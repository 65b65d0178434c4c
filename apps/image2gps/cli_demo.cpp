// `image2gps demo` — the README's run command (see demo.h).
#include "apps/image2gps/cli.h"
#include "apps/image2gps/demo.h"

namespace i2g {

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* d = app.add_subcommand("demo", "Render a synthetic geotagged campus, train, evaluate "
                                       "in meters and plot; needs no photos and no network");
  d->add_option("--out", o->out, "Output folder (images, run, plots)")->capture_default_str();
  d->add_option("--images", o->images, "Number of rendered views")->capture_default_str();
  d->add_option("--image-size", o->image_size, "View resolution")->capture_default_str();
  d->add_option("--epochs", o->epochs, "Training epochs")->capture_default_str();
  d->add_option("--batch-size", o->batch_size, "Batch size")->capture_default_str();
  d->add_option("--lr", o->lr, "AdamW learning rate")->capture_default_str();
  d->add_option("--seed", o->seed, "Seed of the world, the views and the training")
      ->capture_default_str();
  d->add_option("--lat", o->origin_lat, "Origin latitude")->capture_default_str();
  d->add_option("--lon", o->origin_lon, "Origin longitude")->capture_default_str();
  d->add_option("--arch", o->arch, "Model architecture")->capture_default_str();
  add_device_options(d, o->device);
  d->add_option("--workers", o->workers, "Image decoding threads")->capture_default_str();
  d->add_option("--hfov", o->hfov_deg, "Horizontal field of view of the views (degrees)")
      ->capture_default_str();
  d->add_option("--augment", o->augment, "none | geo-safe")->capture_default_str();
  d->callback([o] { run_demo(*o); });
}

}  // namespace i2g
