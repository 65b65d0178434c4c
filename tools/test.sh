#!/usr/bin/env bash
# tools/test.sh — the README's test command: installs what is missing, configures, builds and
# runs every test with CTest. On a machine without a GPU the CUDA code is still compiled (when
# nvcc exists) and the CUDA tests skip with a message.
#   BUILD_DIR=...   build folder (default build/test)
#   CTEST_ARGS=...  extra ctest arguments, e.g. "-L parity" or "-LE slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh bench
build=${BUILD_DIR:-build/test}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
# OpenMP threads per test process: the tests run two at a time on a 2-core machine.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Idle OpenMP threads sleep instead of spinning (see apps/image2gps/main.cpp for why).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 1200 ${CTEST_ARGS:-}
