#!/usr/bin/env bash
# tools/gpu_session.sh OUT_DIR [STAGE_DIR] — the one command a GPU session runs on the GPU
# machine: the correctness checks (tools/gpu_check.sh: CUDA tests, the app on CUDA, model
# parity, the kernel labs, compute-sanitizer), then the end-to-end benchmarks against PyTorch
# and LibTorch (tools/gpu_bench.sh), within one time budget. Device time is scarce (about 15
# minutes a session, machine start-up included), so the budget is shared: the checks get
# GPU_SESSION_CHECK_SHARE percent of it (what they leave unused goes to the benchmarks).
#
# On the build machine, before the session (no GPU needed):
#   cmake --preset cuda-release && cmake --build --preset cuda-release
#   tools/gpu_stage.sh build/cuda-release build/gpu-stage        # -> build/gpu-stage.tar.gz
# Then, with the device tool: carry ["build/gpu-stage.tar.gz"] (~22 MiB), command
#   GPU_SESSION_BUDGET=480 tools/gpu_session.sh $OUT/session build/gpu-stage
# with a timeout ~60 s above the budget. Afterwards, here:
#   python3 tools/bench_report.py report out/bench-cpu --gpu <files>/session/bench --out docs/BENCHMARKS.md
# and copy the table of <files>/session/check/results.json into kernels/README.md.
#
#   GPU_SESSION_BUDGET       seconds for everything (default 480)
#   GPU_SESSION_CHECK_SHARE  percent of it for the checks (default 55)
#   GPU_SESSION_SKIP         "check" or "bench": run only the other one (a rerun)
# Other variables reach the two scripts (GPU_CHECK_ONLY, GTEST_FILTER, GPU_BENCH_ARCHS, ...).
# Exit status: 1 when either script failed, else 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:?usage: tools/gpu_session.sh OUT_DIR [STAGE_DIR]}
stage=${2:-build/gpu-stage}
budget=${GPU_SESSION_BUDGET:-480}
share=${GPU_SESSION_CHECK_SHARE:-55}
skip=${GPU_SESSION_SKIP:-}
mkdir -p "$out"
start=$(date +%s)
if [ ! -d "$stage" ] && [ -f "$stage.tar.gz" ]; then
  tar -xzf "$stage.tar.gz" -C "$(dirname "$stage")" || { echo "gpu_session: cannot unpack $stage.tar.gz" >&2; exit 2; }
fi
[ -d "$stage" ] || { echo "gpu_session: no $stage (nor $stage.tar.gz): run tools/gpu_stage.sh first" >&2; exit 2; }
[ -f "$stage/STAGED" ] && echo "gpu_session: $(cat "$stage/STAGED")"

check_rc=0 bench_rc=0
if [ "$skip" != check ]; then
  GPU_CHECK_BUDGET=$((budget * share / 100)) tools/gpu_check.sh "$out/check" "$stage"
  check_rc=$?
fi
if [ "$skip" != bench ]; then
  left=$((budget - ($(date +%s) - start)))
  if [ "$left" -lt 30 ]; then
    echo "gpu_session: ${left}s left, end-to-end benchmarks skipped"
  else
    GPU_BENCH_BUDGET=$left tools/gpu_bench.sh "$out/bench" "$stage"
    bench_rc=$?
  fi
fi
echo "gpu_session: $(($(date +%s) - start)) s; gpu_check exit $check_rc, gpu_bench exit $bench_rc"
[ $check_rc -eq 0 ] && [ $bench_rc -eq 0 ]
