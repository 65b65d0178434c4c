// apps/image2gps/progress.h — a one-line progress bar on a terminal (batch, loss, img/s, ETA),
// or a plain line every few seconds when stderr is a file or a pipe (logs stay readable).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace i2g {

class Progress {
 public:
  Progress(std::string label, size_t total);
  // Reports that `done` of `total` steps are finished, `images` images processed so far.
  void update(size_t done, size_t images, double loss);
  void finish(const std::string& summary);

 private:
  std::string label_;
  size_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace i2g
