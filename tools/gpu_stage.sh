#!/usr/bin/env bash
# tools/gpu_stage.sh [BUILD_DIR] [STAGE_DIR] — gathers what a GPU session runs into one small
# folder, and packs it as STAGE_DIR.tar.xz for the device tool to carry (it carries at most
# 64 MiB; a CUDA build folder is hundreds of MB of objects and static libraries, and each
# binary links its own copy of every kernel's device code, so even the 14 stripped binaries
# are ~210 MiB). gzip compresses each binary on its own (a 32 KB window) and came to 88 MiB on
# 2026-11-27; xz with a dictionary larger than the whole folder finds each binary's kernels
# again in the one before it: 13 MiB. tools/gpu_session.sh unpacks it on the GPU machine.
#
#   BUILD_DIR  a CUDA build made here (default build/cuda-release: cmake --preset cuda-release,
#              then cmake --build --preset cuda-release)
#   STAGE_DIR  default build/gpu-stage (ignored by git, like every build/ folder)
#
# Copies, stripped and in the build folder's own layout (so tools/gpu_check.sh and
# tools/gpu_bench.sh take STAGE_DIR as their BUILD_DIR): tests/cuda_tests,
# tests/cuda_labs_tests, every bench/*_bench except the CPU-only ones (they link Debian's
# LibTorch and Google Benchmark, absent on the GPU machine), apps/image2gps and
# tests/parity/modelrun. Fails when something is missing or the folder exceeds the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/cuda-release}
stage=${2:-build/gpu-stage}
limit_mb=${GPU_STAGE_LIMIT_MB:-60}

[ -f "$build/CMakeCache.txt" ] || { echo "gpu_stage: $build is not a build folder" >&2; exit 2; }
grep -q '^ENGINE_CUDA:STRING=ON' "$build/CMakeCache.txt" ||
  { echo "gpu_stage: $build is not a CUDA build (configure with --preset cuda-release)" >&2; exit 2; }
rm -rf "$stage"
mkdir -p "$stage"

want=(tests/cuda_tests tests/cuda_labs_tests apps/image2gps tests/parity/modelrun)
for b in "$build"/bench/*_bench; do
  name=$(basename "$b")
  case $name in cpu_bench | e2e_bench) continue ;; esac  # CPU suite: Debian LibTorch inside
  want+=("bench/$name")
done
missing=0
for rel in "${want[@]}"; do
  if [ ! -x "$build/$rel" ]; then
    echo "gpu_stage: missing $build/$rel (build it first)" >&2
    missing=1
    continue
  fi
  mkdir -p "$stage/$(dirname "$rel")"
  strip -o "$stage/$rel" "$build/$rel"
done
[ $missing -eq 0 ] || exit 1
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), staged $(date -u +%FT%TZ) from $build" \
  >"$stage/STAGED"
rm -f "$stage.tar.gz"  # an older stage's format: gpu_session.sh prefers .tar.xz anyway
# (about 2 minutes on the 2-core build machine; written beside, then renamed into place)
tar -cf - -C "$(dirname "$stage")" "$(basename "$stage")" |
  xz --lzma2=preset=6,dict=256MiB -c >"$stage.tar.xz.tmp"
mv -f "$stage.tar.xz.tmp" "$stage.tar.xz"
size_mb=$(du -sm "$stage" | cut -f1)
packed_mb=$(du -sm "$stage.tar.xz" | cut -f1)
du -sh "$stage"/*/* | sort -h | tail -n 20
echo "gpu_stage: $stage holds ${#want[@]} binaries, ${size_mb} MiB; carry $stage.tar.xz (${packed_mb} MiB)"
if [ "$packed_mb" -gt "$limit_mb" ]; then
  echo "gpu_stage: ${packed_mb} MiB is over the ${limit_mb} MiB the device tool can carry" >&2
  exit 1
fi
