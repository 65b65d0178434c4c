// tools/cuda_emu/include/cuda_emu/errors.h — CUDA error codes and how the emulator reports a
// problem: as the error code the runtime would return (so the labs' own checks, which throw
// std::runtime_error with the op's name, see it), with a message that says what went wrong and
// where, printed to stderr as well (so it is seen even by code that ignores return values).
//
// An error is "pending" until one call hands it out: cudaGetLastError, or a synchronising call
// (cudaDeviceSynchronize, cudaMemcpy), whichever comes first. The GPU
// keeps an error inside a kernel "sticky" for the rest of the process; the emulator does not,
// so that one failed test does not fail every later one in the same process.
#pragma once

#include <cstdio>
#include <string>

// The codes the emulator can return; the numbers are CUDA's.
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorCudartUnloading = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNotReady = 600,  // cudaEventQuery's "not yet": never returned here (events are complete)
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
};

namespace emu {

struct ErrorState {
  cudaError_t pending = cudaSuccess;
  cudaError_t last_code = cudaSuccess;  // the code `message` belongs to
  std::string message;
};
inline ErrorState& errors() {
  static ErrorState state;
  return state;
}

// Record an error (the first one wins until it is handed out) and print it.
inline cudaError_t report(cudaError_t code, const std::string& message) {
  ErrorState& e = errors();
  std::fprintf(stderr, "cuda_emu: error: %s\n", message.c_str());
  if (e.pending == cudaSuccess) {
    e.pending = code;
    e.last_code = code;
    e.message = "cuda_emu: " + message;
  }
  return code;
}

// Printed once per program, at its first CUDA call, so that nobody mistakes the output of an
// emulated run for a run on a GPU.
inline void announce() {
  static const bool printed = [] {
    std::fprintf(stderr,
                 "[ EMULATED ] CUDA runs on the CPU emulator tools/cuda_emu (one fiber per CUDA "
                 "thread), not on a GPU: this checks index math and synchronisation, not speed "
                 "or GPU memory behaviour\n");
    return true;
  }();
  (void)printed;
}

// Hand out the pending error (and forget it).
inline cudaError_t take_pending() {
  cudaError_t e = errors().pending;
  errors().pending = cudaSuccess;
  return e;
}

}  // namespace emu
