#!/usr/bin/env bash
# tools/gpu_session.sh OUT_DIR [STAGE_DIR] — the one command a GPU session runs on the GPU
# machine: the correctness checks (tools/gpu_check.sh: CUDA tests, the app on CUDA, model
# parity, the kernel labs, compute-sanitizer), then the end-to-end benchmarks against PyTorch
# and LibTorch (tools/gpu_bench.sh), within one time budget. Device time is scarce (about 15
# minutes a session, machine start-up included), so the budget is shared: the checks get
# GPU_SESSION_CHECK_SHARE percent of it (what they leave unused goes to the benchmarks).
#
# The two scripts write dozens of logs and JSON files in nested folders, but the device tool
# brings back only a few files, at most two folders below its $OUT. So they write into a work
# folder outside OUT_DIR, and OUT_DIR receives three files: check.tar.gz and bench.tar.gz (each
# packed as soon as its phase ends, and again on exit, so a run cut short by a signal keeps
# what it measured) and summary.txt (this script's own output).
#
# On the build machine, before the session (no GPU needed):
#   cmake --preset cuda-release && cmake --build --preset cuda-release
#   tools/gpu_stage.sh build/cuda-release build/gpu-stage        # -> build/gpu-stage.tar.xz
# Then, with the device tool: carry ["build/gpu-stage.tar.xz"] (~17 MiB), command
#   GPU_SESSION_BUDGET=560 tools/gpu_session.sh $OUT/session build/gpu-stage
# with timeout_s 600 (the tool's limit for one command). On 2026-11-27 (an H200) the machine
# started in ~40 s, the checks wanted ~330 s with every step and the end-to-end suite ~300 s
# without torch.compile: more than one call's 600 s. With the session's 900 s of device time,
# two calls on the same warm machine fit both (the second sent within the 30 s the machine
# stays warm, so it starts nothing):
#   GPU_SESSION_SKIP=bench GPU_SESSION_BUDGET=360 tools/gpu_session.sh $OUT/session build/gpu-stage
#   GPU_SESSION_SKIP=check GPU_SESSION_BUDGET=400 tools/gpu_session.sh $OUT/session build/gpu-stage
# with timeout_s 390 and 430; each call's $OUT comes back on its own. The device time counts
# the start and the transfers too: if the first reply's lease.budget_left_s is under 490, give
# the second call GPU_SESSION_BUDGET = budget_left_s - 60 and timeout_s = budget_left_s - 30.
# Afterwards, here (<files> = the reply's files_at):
#   mkdir -p out/session && for p in check bench; do tar -xzf <files>/session/$p.tar.gz -C out/session; done
#   python3 tools/bench_report.py report out/bench-cpu --gpu out/session/bench --out docs/BENCHMARKS.md
#   python3 tools/labs_report.py out/session/check/bench      # -> kernels/README.md
#
#   GPU_SESSION_BUDGET       seconds for everything (default 560)
#   GPU_SESSION_CHECK_SHARE  percent of it for the checks (default 55; 100 with SKIP=bench)
#   GPU_SESSION_SKIP         "check" or "bench": run only the other one (a rerun)
#   GPU_SESSION_WORK         the work folder (default: a new one under /tmp)
# Other variables reach the two scripts (GPU_CHECK_ONLY, GTEST_FILTER, GPU_BENCH_ARCHS, ...).
# Exit status: 1 when either script failed, else 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:?usage: tools/gpu_session.sh OUT_DIR [STAGE_DIR]}
stage=${2:-build/gpu-stage}
budget=${GPU_SESSION_BUDGET:-560}
share=${GPU_SESSION_CHECK_SHARE:-55}
skip=${GPU_SESSION_SKIP:-}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
work=${GPU_SESSION_WORK:-$(mktemp -d /tmp/gpu-session.XXXXXX)}
mkdir -p "$work" || exit 2
start=$(date +%s)
# Everything this script prints goes to summary.txt as well.
exec > >(tee -a "$out/summary.txt") 2>&1
# pack PHASE: work/PHASE -> OUT_DIR/PHASE.tar.gz (written beside, then renamed into place),
# once: a phase is packed when it ends, and the exit and signal traps pack only what was not.
# The device tool brings back no file over 16 MiB, and the first GPU session's check.tar.gz was
# 24 MB (the app smoke test's checkpoints and images): only the run's text is packed (files over
# GPU_SESSION_PACK_MAX_KB, default 2048, are left out: a .log or .txt among them goes in as its
# first and last 512 KiB instead), and PHASE/LEFT_OUT.txt lists what was left out or cut.
pack_max_kb=${GPU_SESSION_PACK_MAX_KB:-2048}
packed=" "
pack() {
  [ -d "$work/$1" ] && [[ $packed != *" $1 "* ]] || return 0
  local list="$work/$1/LEFT_OUT.txt" f
  : >"$list"
  while IFS= read -r f; do
    case $f in
      *.log | *.txt)
        { head -c 524288 "$f"; printf '\n[... cut by gpu_session.sh: %s bytes in all ...]\n' "$(stat -c %s "$f")"
          tail -c 524288 "$f"; } >"$f.cut" && mv -f "$f.cut" "$f"
        echo "cut to its first and last 512 KiB: ${f#"$work"/}" >>"$list" ;;
      *) echo "left out ($(stat -c %s "$f") bytes): ${f#"$work"/}" >>"$list" ;;
    esac
  done < <(find "$work/$1" -type f -size +"${pack_max_kb}"k ! -name LEFT_OUT.txt)
  tar -czf "$out/.$1.tar.gz.tmp" -C "$work" --exclude-from=<(sed -n 's|^left out ([0-9]* bytes): ||p' "$list") "$1" &&
    mv -f "$out/.$1.tar.gz.tmp" "$out/$1.tar.gz" && packed="$packed$1 "
}
# On a signal, pack first: the tee behind stdout may have been stopped by the same signal, and
# writing to it would end this script before the packing.
trap 'pack check; pack bench' EXIT
trap 'trap "" PIPE; pack check; pack bench; echo "gpu_session: stopped by a signal"; exit 143' TERM INT
# unxz FILE: its decompressed bytes on stdout, by xz or, where xz is missing (or
# GPU_SESSION_UNXZ=python), by Python's lzma module.
unxz() {
  if [ "${GPU_SESSION_UNXZ:-xz}" = xz ] && command -v xz >/dev/null; then
    xz -dc "$1"
  else
    python3 -c 'import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}
if [ ! -d "$stage" ]; then
  if [ -f "$stage.tar.xz" ]; then
    unxz "$stage.tar.xz" | tar -xf - -C "$(dirname "$stage")" ||
      { echo "gpu_session: cannot unpack $stage.tar.xz" >&2; exit 2; }
  elif [ -f "$stage.tar.gz" ]; then  # a stage packed before 2026-11-27's xz
    tar -xzf "$stage.tar.gz" -C "$(dirname "$stage")" ||
      { echo "gpu_session: cannot unpack $stage.tar.gz" >&2; exit 2; }
  fi
fi
[ -d "$stage" ] || { echo "gpu_session: no $stage (nor $stage.tar.xz): run tools/gpu_stage.sh first" >&2; exit 2; }
[ -f "$stage/STAGED" ] && echo "gpu_session: $(cat "$stage/STAGED")"

check_rc=0 bench_rc=0
# The checks' share of the budget; all of it when the benchmarks are skipped (a session's first
# call: GPU_SESSION_SKIP=bench).
[ "$skip" = bench ] && share=100
if [ "$skip" != check ]; then
  GPU_CHECK_BUDGET=$((budget * share / 100)) tools/gpu_check.sh "$work/check" "$stage"
  check_rc=$?
  pack check
fi
if [ "$skip" != bench ]; then
  left=$((budget - ($(date +%s) - start)))
  if [ "$left" -lt 30 ]; then
    echo "gpu_session: ${left}s left, end-to-end benchmarks skipped"
  else
    GPU_BENCH_BUDGET=$left tools/gpu_bench.sh "$work/bench" "$stage"
    bench_rc=$?
    pack bench
  fi
fi
echo "gpu_session: $(($(date +%s) - start)) s; gpu_check exit $check_rc, gpu_bench exit $bench_rc"
echo "gpu_session: results in $out: $(cd "$out" && ls | tr '\n' ' ')(work folder $work)"
[ $check_rc -eq 0 ] && [ $bench_rc -eq 0 ]
