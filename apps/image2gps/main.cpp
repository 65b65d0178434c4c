// image2gps — learn where a photo was taken from geotagged photos.
//
// Every failure the user can cause (a corrupt image, a bad CSV row, a truncated checkpoint,
// a wrong shape) arrives here as an engine::Error and is printed on one line with exit
// status 1; nothing is left half-written because every output file is written atomically.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "apps/image2gps/cli.h"
#include "engine/error.h"

namespace {

// OpenMP threads that finish a parallel region early spin while they wait for the rest. With
// loader threads decoding beside the compute threads (and on a busy machine) the spinning steals
// the cores the work needs: a training step on 2 cores ran 7x slower. libgomp reads
// OMP_WAIT_POLICY once, when the program loads, so unless the user chose a policy we restart
// the program once with threads that sleep while they wait.
void prefer_passive_openmp_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp_waits(argv);
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
