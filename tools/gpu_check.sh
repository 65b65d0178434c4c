#!/usr/bin/env bash
# tools/gpu_check.sh OUT_DIR [BUILD_DIR] — everything a session on the GPU machine is for, in
# one run of a few minutes (about 8 at most on an H100):
#   1. every CUDA test: ctest -L cuda (or the cuda_tests binary itself when the build folder
#      was moved, so CTest's recorded paths are stale);
#   2. compute-sanitizer memcheck, then racecheck, over cuda_tests with ENGINE_CUDA_NO_CACHE=1
#      (exact-size allocations freed at once, so every overrun and use-after-free is seen);
#   3. every GPU benchmark in BUILD_DIR/bench (the kernel labs, bench/cuda/<family>_bench.cu:
#      each validates its kernels against the CPU and times them), each writing JSON.
# Writes OUT_DIR/<step>.log (full output), OUT_DIR/bench/<name>.json, OUT_DIR/results.json
# (every step's status, time and summary, the benchmark JSON inlined) and prints a short
# pass/fail table last. Exit status: 0 when nothing failed (skipped is fine), 1 otherwise.
#
#   BUILD_DIR         the CUDA build (default build/cuda-release: cmake --preset cuda-release)
#   GPU_CHECK_BUDGET  seconds for the whole run (default 470); later steps get what is left
#   GTEST_FILTER      narrows the tests and the sanitizer runs (gtest's own variable)
#
# Build on the build machine (no GPU needed), run here. What the binaries need at run time:
# the NVIDIA driver, libcudart/libcublas (CUDA 13, /usr/local/cuda/lib64, added to
# LD_LIBRARY_PATH below), libcudnn.so.9 (system path), libopenblas.so.0 and libgomp.so.1 —
# all on the GPU machine. GoogleTest is linked statically; the image2gps libraries (libexif,
# GeographicLib) are linked statically by apps/CMakeLists.txt; the kernel labs do not use
# Google Benchmark (Debian's libbenchmark.so.1debian is absent there, so a GPU benchmark that
# links it must carry a copy beside itself with an $ORIGIN rpath). The "deps" step below
# lists any library a binary cannot find, before anything runs.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: tools/gpu_check.sh OUT_DIR [BUILD_DIR]}
build=${2:-${BUILD_DIR:-build/cuda-release}}
budget=${GPU_CHECK_BUDGET:-470}
mkdir -p "$out/bench"
out=$(cd "$out" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "gpu_check: no build folder ${2:-${BUILD_DIR:-build/cuda-release}}" >&2; exit 2; }
tests_bin=$build/tests/cuda_tests
[ -d /usr/local/cuda/lib64 ] && export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin
start=$(date +%s)

# ---- bookkeeping: one record per step --------------------------------------------------------
names=() statuses=() seconds=() summaries=() logs=()
record() {  # name status seconds summary log
  names+=("$1") statuses+=("$2") seconds+=("$3") summaries+=("$4") logs+=("$5")
}
left() { echo $((budget - ($(date +%s) - start))); }
json_str() {  # a JSON string literal
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/ }
  s=${s//$'\n'/ }
  printf '"%s"' "$s"
}
# run LOG TIMEOUT CMD...: runs with a time limit, full output to LOG; sets rc and secs.
run() {
  local log=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  echo "\$ $*" >"$log"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - t0))
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "gpu_check: timed out after ${limit}s" >>"$log"
  return 0
}

# ---- 0. the machine, and what the binaries link against -----------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "build: $build"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "nvidia-smi: not available"
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version | head -n 2
} >"$out/env.log" 2>&1
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
device=${device:-no GPU visible}

bench_bins=()
if [ -d "$build/bench" ]; then
  for b in "$build"/bench/*_bench; do
    [ -x "$b" ] && [ -f "$b" ] && [ "$(basename "$b")" != cpu_bench ] && bench_bins+=("$b")
  done
fi
missing=""
for b in "$tests_bin" "${bench_bins[@]}"; do
  [ -x "$b" ] || continue
  m=$(ldd "$b" 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  [ -n "$m" ] && missing+="$(basename "$b"): $m; "
  { echo "== $b"; ldd "$b"; } >>"$out/deps.log" 2>&1
done
if [ -n "$missing" ]; then
  record deps FAIL 0 "missing libraries: $missing" deps.log
else
  record deps PASS 0 "every binary finds its libraries" deps.log
fi

# ---- 1. CUDA tests ---------------------------------------------------------------------------
# count WORD LOG: the N of gtest's "[  PASSED  ] N tests." (FAILED, SKIPPED) lines.
count() {
  grep -E "^\[  $1 *\] [0-9]+ tests?[,.]" "$2" | grep -oE '\] [0-9]+' | grep -oE '[0-9]+' |
    awk '{s += $1} END {print s + 0}'
}
gtest_summary() { echo "$(count PASSED "$1") passed, $(count FAILED "$1") failed, $(count SKIPPED "$1") skipped"; }
# Without a GPU the CUDA tests skip; a step is then SKIP, not PASS.
have_gpu=0
nvidia-smi -L >/dev/null 2>&1 && have_gpu=1
verdict() {  # rc: PASS, FAIL or SKIP
  if [ "$1" -ne 0 ]; then echo FAIL; elif [ $have_gpu -eq 0 ]; then echo SKIP; else echo PASS; fi
}
if [ ! -x "$tests_bin" ]; then
  record tests FAIL 0 "no $tests_bin: build the cuda_tests target" tests.log
else
  limit=$(($(left) > 200 ? 200 : $(left)))
  cached=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null)
  if command -v ctest >/dev/null && [ "$cached" = "$build" ]; then
    run "$out/tests.log" "$limit" ctest --test-dir "$build" -L cuda --output-on-failure -j4 \
      --timeout 120 --output-junit "$out/tests_junit.xml"
    summary="ctest -L cuda: $(grep -oE '[0-9]+ tests failed out of [0-9]+' "$out/tests.log" |
      tail -n 1), $(grep -c '(Skipped)' "$out/tests.log") skipped"
  else
    # CTest's files hold the build folder's old absolute path: run the binary itself.
    run "$out/tests.log" "$limit" "$tests_bin" --gtest_output=json:"$out/tests.json"
    summary="cuda_tests (build folder moved, so not through CTest): $(gtest_summary "$out/tests.log")"
  fi
  record tests "$(verdict $rc)" "$secs" "$summary" tests.log
fi

# ---- 2. compute-sanitizer ------------------------------------------------------------------
# API errors are not reported: the engine checks every call itself, and the tests provoke some
# on purpose (the out-of-memory test asks for 1 PiB).
sanitizer=$(command -v compute-sanitizer)
for tool in memcheck racecheck; do
  if [ $have_gpu -eq 0 ]; then
    record "$tool" SKIP 0 "no GPU visible" "$tool.log"
    continue
  fi
  if [ -z "$sanitizer" ] || [ ! -x "$tests_bin" ]; then
    record "$tool" SKIP 0 "compute-sanitizer or cuda_tests missing" "$tool.log"
    continue
  fi
  if [ "$(left)" -lt 30 ]; then
    record "$tool" SKIP 0 "time budget spent" "$tool.log"
    continue
  fi
  limit=$(($(left) > 170 ? 170 : $(left)))
  ENGINE_CUDA_NO_CACHE=1 run "$out/$tool.log" "$limit" "$sanitizer" --tool "$tool" \
    --report-api-errors no --error-exitcode 99 "$tests_bin" --gtest_brief=1
  errors=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$out/$tool.log" | tail -n 1 | grep -oE '[0-9]+$')
  summary="${errors:-?} errors; tests: $(gtest_summary "$out/$tool.log")"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && summary="timed out after ${limit}s; $summary"
  record "$tool" "$(verdict $rc)" "$secs" "$summary" "$tool.log"
done

# ---- 3. GPU benchmarks -------------------------------------------------------------------------
# Exit codes of the labs: 0 valid, 1 a version disagrees with the CPU, 77 no GPU.
for b in "${bench_bins[@]}"; do
  name=$(basename "$b")
  if [ "$(left)" -lt 20 ]; then
    record "$name" SKIP 0 "time budget spent" "bench_$name.log"
    continue
  fi
  run "$out/bench_$name.log" "$(($(left) > 90 ? 90 : $(left)))" "$b" --json "$out/bench/$name.json"
  case $rc in
    0) status=PASS summary="valid; $(grep -c '"op"' "$out/bench/$name.json" 2>/dev/null || echo 0) timings" ;;
    77) status=SKIP summary="no GPU" ;;
    124 | 137) status=FAIL summary="timed out" ;;
    *) status=FAIL summary="exit $rc (see log: INVALID rows or an error)" ;;
  esac
  record "$name" "$status" "$secs" "$summary" "bench_$name.log"
done
[ ${#bench_bins[@]} -eq 0 ] && record benchmarks SKIP 0 "no GPU benchmark built in $build/bench" ""

# ---- results.json and the table ----------------------------------------------------------------
{
  printf '{\n  "date": %s,\n  "device": %s,\n  "build_dir": %s,\n  "seconds": %d,\n  "steps": [\n' \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$device")" "$(json_str "$build")" \
    $(($(date +%s) - start))
  for i in "${!names[@]}"; do
    printf '    {"name": %s, "status": %s, "seconds": %d, "summary": %s, "log": %s}%s\n' \
      "$(json_str "${names[$i]}")" "$(json_str "${statuses[$i]}")" "${seconds[$i]}" \
      "$(json_str "${summaries[$i]}")" "$(json_str "${logs[$i]}")" \
      "$([ "$i" -lt $((${#names[@]} - 1)) ] && echo ,)"
  done
  printf '  ],\n  "benchmarks": {'
  sep=""
  for j in "$out"/bench/*.json; do
    [ -s "$j" ] || continue
    printf '%s\n    %s: ' "$sep" "$(json_str "$(basename "$j" .json)")"
    cat "$j"
    sep=","
  done
  printf '\n  }\n}\n'
} >"$out/results.json"

fails=0
echo
echo "gpu_check on $device ($(($(date +%s) - start)) s; logs and results.json in $out)"
printf '%-26s %-5s %6s  %s\n' step status secs summary
for i in "${!names[@]}"; do
  printf '%-26s %-5s %6s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${summaries[$i]}"
  [ "${statuses[$i]}" = FAIL ] && fails=$((fails + 1))
done
[ $fails -eq 0 ]
