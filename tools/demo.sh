#!/usr/bin/env bash
# tools/demo.sh — the README's run command: installs what is missing, builds image2gps, and
# runs `image2gps demo` (a synthetic geotagged campus: render, split, train, evaluate in
# meters, plot). Extra arguments go to the demo, e.g. `bash tools/demo.sh --images 8000`.
#   BUILD_DIR=...  build folder (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh build
build=${BUILD_DIR:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DENGINE_BENCH=OFF ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" --target image2gps
"$build/apps/image2gps" demo --out demo-out "$@"
echo "plots: demo-out/labels.svg demo-out/test_regression.svg demo-out/test_knn.svg demo-out/run/loss.svg"
