// engine/profiler_clock.h — the clocks behind engine/profiler.h (internal to the engine).
//
// A clock marks points in time while the profiled program runs and reads them all once at
// the end, so that marking never waits: the CPU clock reads steady_clock at once, the CUDA
// clock queues an event on the compute stream and reads the events when the session stops.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace engine::profiler {

class Clock {
 public:
  virtual ~Clock() = default;
  // Marks now; returns the mark's index (0, 1, 2, ...).
  virtual int64_t mark() = 0;
  // The time of every mark so far, in microseconds after mark 0 (waits for them on CUDA).
  virtual std::vector<double> read_us() = 0;
};

// Host wall-clock time.
std::unique_ptr<Clock> make_host_clock();
// CUDA events on the compute stream (engine/cuda/event_clock.cpp; fails in a build without CUDA).
std::unique_ptr<Clock> make_event_clock();

}  // namespace engine::profiler
