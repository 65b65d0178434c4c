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
  EventClock() = default;
  EventClock(const EventClock&) = delete;
  EventClock& operator=(const EventClock&) = delete;
  ~EventClock() override {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);  // no check: a destructor must not throw
  }

  int64_t mark() override {
    cudaEvent_t e = nullptr;
    KCUDA_CHECK(cudaEventCreate(&e));  // with timing: the default flags
    events_.push_back(e);
    KCUDA_CHECK(cudaEventRecord(e, kernels::cuda::stream()));
    return static_cast<int64_t>(events_.size()) - 1;
  }

  std::vector<double> read_us() override {
    std::vector<double> us;
    if (events_.empty()) return us;
    cuda::wait_for_event(events_.back());  // events complete in stream order: all are done
    us.reserve(events_.size());
    for (cudaEvent_t e : events_) {
      float ms = 0;
      KCUDA_CHECK(cudaEventElapsedTime(&ms, events_.front(), e));
      us.push_back(1000.0 * ms);
    }
    return us;
  }

 private:
  std::vector<cudaEvent_t> events_;
};

}  // namespace

std::unique_ptr<Clock> make_event_clock() { return std::make_unique<EventClock>(); }

}  // namespace engine::profiler
