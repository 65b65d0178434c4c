// engine/cuda/host_wait.h — the only ways the engine makes the host wait for the GPU.
//
// Every wait goes through one of these, so engine::cuda::host_syncs() (runtime.h) counts them
// and a test can prove that queuing a training step makes the host wait nowhere. A wait is
// counted whether or not the GPU had finished already: the count depends on the program, not
// on timing, so it is the same on a GPU and on the emulator.
#pragma once

#include <cuda_runtime_api.h>

namespace engine::cuda {

// Waits for everything queued on the compute stream; throws engine::Error if any of it failed.
void wait_for_stream();
// The same without throwing, for destructors and release paths: returns the status.
cudaError_t wait_for_stream_nothrow();
// Waits until `event` has completed; throws engine::Error on a failure. `counted` false: a
// further wait of an operation already counted (the later chunks of one copy).
void wait_for_event(cudaEvent_t event, bool counted = true);

}  // namespace engine::cuda
