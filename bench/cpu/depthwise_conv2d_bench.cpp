// bench/cpu/depthwise_conv2d_bench.cpp — ConvNeXt-T stage-1 depthwise conv: 7x7, 96 channels,
// groups 96, pad 3, on a [8,56,56,96] NHWC float32 batch; ours (direct NHWC loops,
// kernels/cpu/depthwise_conv2d.cpp) next to LibTorch in one process. What is timed and the
// counters: conv_bench.h.
//
//   cmake -S . -B build -DENGINE_BENCH=ON && cmake --build build --target cpu_bench
//   build/bench/cpu_bench --benchmark_filter=depthwise
//   BENCH_THREADS=1 build/bench/cpu_bench --benchmark_filter=depthwise   # one thread each
#include "bench/cpu/conv_bench.h"

namespace {

const bool registered = conv_bench::register_case({.name = "depthwise_7x7",
                                                   .n = 8, .h = 56, .w = 56, .c = 96, .k = 96,
                                                   .r = 7, .groups = 96,
                                                   .fwd_iterations = 100,
                                                   .fwd_bwd_iterations = 20});

}  // namespace
