// tools/cuda_emu/include/cuda_emu/emu.h — the CUDA emulator, all of it (see ../../README.md).
//
// Kernels compiled with this header instead of the CUDA toolkit run on the CPU: every CUDA
// thread is a fiber, blocks run one after another, __syncthreads and the warp intrinsics are
// cooperative barriers that check that every thread meets every other at the same place.
// It proves index math, bounds, fallbacks and synchronisation logic; it says nothing about
// speed, coalescing, bank conflicts, the GPU's memory model or its float rounding.
//
// Reading order: fiber.h (switching stacks), device.h (threads, warps, blocks, barriers,
// shared memory), launch.h (<<<...>>>), ptx.h (inline PTX), runtime.h (cudaMalloc & co.);
// types.h, errors.h, memory.h and faults.h are the small pieces they share.
#pragma once

#include "cuda_emu/device.h"
#include "cuda_emu/errors.h"
#include "cuda_emu/launch.h"
#include "cuda_emu/ptx.h"
#include "cuda_emu/runtime.h"
#include "cuda_emu/types.h"
