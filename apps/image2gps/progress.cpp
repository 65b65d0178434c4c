#include "apps/image2gps/progress.h"

#include <unistd.h>

#include <cstdio>

namespace i2g {

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)),
      total_(total),
      tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void Progress::update(size_t done, size_t images, double loss) {
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (done < total_ && since_print < (tty_ ? 0.2 : 10.0)) return;
  last_print_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double ips = elapsed > 0 ? images / elapsed : 0;
  double eta = done > 0 ? elapsed * (total_ - done) / done : 0;
  if (tty_) {
    const int width = 24;
    int filled = total_ ? static_cast<int>(width * done / total_) : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %zu/%zu loss %.4f  %.1f img/s  ETA %.0fs   ", label_.c_str(),
                 bar.c_str(), done, total_, loss, ips, eta);
  } else {
    std::fprintf(stderr, "%s %zu/%zu loss %.4f %.1f img/s ETA %.0fs\n", label_.c_str(), done,
                 total_, loss, ips, eta);
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& summary) {
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s %s\n", label_.c_str(), summary.c_str());
  std::fflush(stderr);
}

}  // namespace i2g
