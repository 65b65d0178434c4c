// tools/cuda_emu/include/cuda_runtime_api.h — stands in for the CUDA toolkit's header when a CUDA
// source is built for the CPU emulator (tools/cuda_emu/README.md): the emulator's include folder
// comes first on the include path, so `#include <cuda_runtime_api.h>` lands here.
#pragma once

#include "cuda_emu/emu.h"
