// image2gps — learn where a photo was taken from geotagged photos.
//
// Every failure the user can cause (a corrupt image, a bad CSV row, a truncated checkpoint,
// a wrong shape) arrives here as an engine::Error and is printed on one line with exit
// status 1; nothing is left half-written because every output file is written atomically.
#include <cstdio>
#include <exception>

#include "apps/image2gps/cli.h"
#include "engine/error.h"

int main(int argc, char** argv) {
  CLI::App app{"image2gps: learn where a photo was taken (latitude, longitude) from geotagged "
               "photos, on a from-scratch tensor engine"};
  app.require_subcommand(1);
  i2g::add_dataset_commands(app);
  i2g::add_train_commands(app);
  i2g::add_eval_commands(app);
  i2g::add_forward_command(app);
  i2g::add_demo_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const engine::Error& e) {
    std::fprintf(stderr, "image2gps: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image2gps: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
