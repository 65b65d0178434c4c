// engine/cuda/event_clock.cpp — the profiler's GPU clock (engine/profiler_clock.h): each mark
// is a CUDA event queued on the compute stream, so it records when the GPU got there, not when
// the host queued it. Marking never waits; read_us() waits once, for the last event, and then
// asks the driver for each event's time after the first (about half a microsecond resolution).
#include <cuda_runtime_api.h>

#include "engine/cuda/host_wait.h"
#include "engine/profiler_clock.h"
#include "kernels/cuda/runtime.h"

namespace engine::profiler {

namespace {

class EventClock final : public Clock {
 public:
  // Creating an event costs the host a few microseconds: done ahead, kBatch at a time, so that
  // marking an op costs only the record (the session's constructor creates the first batch
  // before its first mark).
  static constexpr size_t kBatch = 4096;

  EventClock() {
    try {
      create_more();
    } catch (...) {
      destroy_all();  // no destructor runs for an object whose constructor threw
      throw;
    }
  }
  EventClock(const EventClock&) = delete;
  EventClock& operator=(const EventClock&) = delete;
  ~EventClock() override { destroy_all(); }

  int64_t mark() override {
    if (used_ == pool_.size()) create_more();
    KCUDA_CHECK(cudaEventRecord(pool_[used_], kernels::cuda::stream()));
    return static_cast<int64_t>(used_++);
  }

  std::vector<double> read_us() override {
    std::vector<double> us;
    if (used_ == 0) return us;
    cuda::wait_for_event(pool_[used_ - 1]);  // events complete in stream order: all are done
    us.reserve(used_);
    for (size_t i = 0; i < used_; ++i) {
      float ms = 0;
      KCUDA_CHECK(cudaEventElapsedTime(&ms, pool_[0], pool_[i]));
      us.push_back(1000.0 * ms);
    }
    return us;
  }

 private:
  void create_more() {
    pool_.reserve(pool_.size() + kBatch);
    for (size_t i = 0; i < kBatch; ++i) {
      cudaEvent_t e = nullptr;
      KCUDA_CHECK(cudaEventCreate(&e));  // with timing: the default flags
      pool_.push_back(e);
    }
  }

  void destroy_all() {
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);  // no check: this runs where throwing can't
    pool_.clear();
  }

  std::vector<cudaEvent_t> pool_;  // created so far; the first used_ are marks 0, 1, ...
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<Clock> make_event_clock() { return std::make_unique<EventClock>(); }

}  // namespace engine::profiler
