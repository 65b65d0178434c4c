// tools/cuda_emu/include/cuda_emu/vendor.h — cuBLAS and cuDNN are not emulated: the emulator
// runs our kernels, and the vendors' libraries are closed GPU code. Their headers (cublas_v2.h,
// cudnn.h next to this one) declare the names the engine's vendor paths use, so those paths
// compile unchanged, and every call fails with "not supported" and a message saying why. The
// emulated engine starts every family on our kernels (kernels/cuda/runtime.cu,
// ENGINE_CUDA_EMULATED); a test that compares our kernel with the vendor's skips there
// (tests/cuda/cuda_util.h).
#pragma once

#include <string>

#include "cuda_emu/errors.h"

namespace emu {

// The message every stub leaves, printed once per library.
inline void vendor_call(const char* library, const char* function) {
  static std::string said;
  if (said.find(library) != std::string::npos) return;
  said += library;
  std::fprintf(stderr, "cuda_emu: %s (%s) is not emulated; choose our kernels instead\n", library,
               function);
}

}  // namespace emu

// EMU_VENDOR_STUB(status type, failure value, library, name): `name(any arguments...)` returns
// the failure. Only the names listed in the two headers exist, so a vendor call the engine has
// not used before fails to compile here instead of linking against nothing.
#define EMU_VENDOR_STUB(Status, failure, library, name) \
  template <class... A>                                  \
  inline Status name(A...) {                             \
    ::emu::vendor_call(library, #name);                  \
    return failure;                                      \
  }
