// bench/cpu/conv2d_bench.cpp — a ResNet stage-1 conv: 3x3, 64 -> 64 channels, pad 1, on a
// [8,56,56,64] NHWC float32 batch; ours (Winograd F(4x4,3x3) + OpenBLAS GEMMs,
// kernels/cpu/conv2d_winograd.cpp) next to LibTorch in one process. What is timed and the
// counters: conv_bench.h.
//
//   cmake -S . -B build -DENGINE_BENCH=ON && cmake --build build --target cpu_bench
//   build/bench/cpu_bench --benchmark_filter=conv2d_3x3
//   BENCH_THREADS=1 build/bench/cpu_bench --benchmark_filter=conv2d_3x3   # one thread each
#include "bench/cpu/conv_bench.h"

namespace {

const bool registered = conv_bench::register_case({.name = "conv2d_3x3",
                                                   .n = 8, .h = 56, .w = 56, .c = 64, .k = 64,
                                                   .r = 3, .groups = 1,
                                                   .fwd_iterations = 20,
                                                   .fwd_bwd_iterations = 10});

}  // namespace
