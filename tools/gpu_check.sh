#!/usr/bin/env bash
# tools/gpu_check.sh OUT_DIR [BUILD_DIR] — every correctness check a session on the GPU machine is
# for, in one run of at most GPU_CHECK_BUDGET seconds (default 480: 8 of the session's ~15
# minutes, the rest being machine start-up and a rerun). Steps, in the order of what a finding
# is worth per second (each has a time cap; later steps get what is left, and are skipped when
# too little is). Times in brackets: measured on an H200 (16 cores) on 2026-11-27 where given
# as one number, else estimated:
#   0. deps          which library a binary cannot find, before anything runs           [0 s]
#   1. tests         every CUDA test: ctest -L cuda (tests/cuda and the kernel labs'
#                    tests/cuda_labs), or, when the build folder was moved (CTest's recorded
#                    paths are stale), both binaries directly                       [11 s]
#   2. app_smoke     tools/app_cuda_smoke.sh: every image2gps subcommand on CUDA, each result
#                    that depends on the device held against the CPU's (eval --knn meters,
#                    predict, forward), BatchNorm's batch counter in the checkpoints  [17 s]
#   3. model_parity  tests/parity/test_models.py --device cuda: resnet18/50 and convnext_tiny
#                    on CUDA (float32 on cuDNN/cuBLAS and on our kernels, float64) against
#                    torchvision's float64 CPU reference: eval outputs, train-mode outputs,
#                    every gradient, five AdamW steps; skipped when no python3 has torch and
#                    torchvision                                                       [96 s]
#   4. <lab>_bench   every kernel lab (bench/cuda/<family>_bench.cu: validates each version
#                    against the CPU, then times it), each writing JSON         [4-30 s each]
#      torch_kernels bench/gpu/torch_kernels.py: PyTorch on the labs' shapes    [~20-40 s]
#   5. memcheck over cuda_labs_tests (the hand-written kernels, quick) and cuda_tests at once,
#      with ENGINE_CUDA_NO_CACHE=1 (exact-size allocations freed at once, so every overrun and
#      use-after-free is seen) [4 + 18 s]; then racecheck one test suite per step (at most 60 s
#      each, GPU_CHECK_RACECHECK_JOBS of them at once; all of cuda_labs_tests in one run ran
#      past 80 s). In the background, from the end of step 1: beside steps 2 and 3, paused
#      while step 4 times kernels (what is in flight finishes first), then on to the end.
# Why this order: 1-3 decide whether what users run is right on the GPU (3 is the slowest of
# them, its PyTorch references being CPU work, which leaves the GPU to the sanitizers). The
# benchmarks' numbers exist nowhere else and each lab is also a correctness check of every
# kernel version; the sanitizers slow kernels 10-100x, re-run tests that already passed in 1,
# and are what a tight budget cuts: a sanitizer run that is cut with no error found is PART
# (not a failure), one that finds an error is FAIL. Their rows come last in the table. The
# end-to-end GPU benchmarks against PyTorch are tools/gpu_bench.sh's (its own budget), not
# this script's.
# Writes OUT_DIR/<step>.log (full output), OUT_DIR/bench/<name>.json, OUT_DIR/app_smoke/,
# OUT_DIR/results.json (every step's status, time and summary, the benchmark JSON inlined) and
# prints a short table last. Exit status: 0 when nothing failed (SKIP and PART are fine), 1
# otherwise. Without a GPU every GPU step is SKIP and the run takes seconds.
#
#   BUILD_DIR         the CUDA build (default build/cuda-release: cmake --preset cuda-release)
#                     with the targets cuda_tests, cuda_labs_tests, image2gps, modelrun and the
#                     labs' <family>_bench
#   GPU_CHECK_BUDGET  seconds for the whole run (default 480); later steps get what is left
#   GPU_CHECK_ONLY    comma-separated steps to run (tests,app_smoke,model_parity,bench,
#                     torch_kernels,memcheck,racecheck), e.g. for a rerun on a warm machine;
#                     the rest are SKIP ("bench" includes torch_kernels)
#   GPU_CHECK_BENCHES space-separated lab names to run (e.g. "conv2d_bench knn_bench"; default all)
#   GTEST_FILTER      narrows the tests and the sanitizer runs (gtest's own variable)
#   GPU_CHECK_MEMCHECK_FILTER  a gtest filter for the memcheck runs alone
#   GPU_CHECK_RACECHECK_SUITES the test suites racecheck runs, one step each, in order
#                     (default: the shared-memory and warp-level kernels' suites)
#   GPU_CHECK_RACECHECK_JOBS   how many of them run at once (default 3; 1 = one after another)
#   PARITY_PYTHON     the python with torch and torchvision (default: python3 if it imports
#                     both, else /usr/bin/python3)
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
cd "$(dirname "$0")/.." || exit 2

out=${1:?usage: tools/gpu_check.sh OUT_DIR [BUILD_DIR]}
build=${2:-${BUILD_DIR:-build/cuda-release}}
budget=${GPU_CHECK_BUDGET:-480}
only=${GPU_CHECK_ONLY:-}
mkdir -p "$out/bench"
out=$(cd "$out" && pwd)
build=$(cd "$build" 2>/dev/null && pwd) || { echo "gpu_check: no build folder ${2:-${BUILD_DIR:-build/cuda-release}}" >&2; exit 2; }
tests_bin=$build/tests/cuda_tests
labs_bin=$build/tests/cuda_labs_tests
test_bins=("$tests_bin" "$labs_bin")
[ -d /usr/local/cuda/lib64 ] && export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin
# cuDNN 9 says why a call failed (which descriptor field, which constraint) in its error log;
# into every step's log, as the vendor paths run here for the first time. The engine's own
# messages add cudnnGetLastErrorString too.
export CUDNN_LOGERR_DBG=${CUDNN_LOGERR_DBG:-1} CUDNN_LOGDEST_DBG=${CUDNN_LOGDEST_DBG:-stderr}
start=$(date +%s)

# ---- bookkeeping: one record per step --------------------------------------------------------
names=() statuses=() seconds=() summaries=() logs=()
record() {  # name status seconds summary log
  names+=("$1") statuses+=("$2") seconds+=("$3") summaries+=("$4") logs+=("$5")
}
left() { echo $((budget - ($(date +%s) - start))); }
cap() { local l=$(left); echo $((l < $1 ? l : $1)); }  # cap MAX: min(MAX, seconds left)
# wanted STEP: in GPU_CHECK_ONLY (whose "bench" includes torch_kernels)
wanted() {
  [ -z "$only" ] || [[ ",$only," == *",$1,"* ]] ||
    { [ "$1" = torch_kernels ] && [[ ",$only," == *",bench,"* ]]; }
}
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
  # (time limits: a wedged driver must not eat the budget before the first step)
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "nvidia-smi: not available"
  command -v nvcc >/dev/null && timeout 30 nvcc --version | tail -n 2
  command -v compute-sanitizer >/dev/null && timeout 30 compute-sanitizer --version | head -n 2
} >"$out/env.log" 2>&1
device=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
device=${device:-no GPU visible}

# The kernel labs: one binary per bench/cuda/<family>_bench.cu. (cpu_bench and e2e_bench are the
# CPU suites, gpu_e2e_bench is tools/gpu_bench.sh's.)
bench_bins=()
for src in bench/cuda/*_bench.cu; do
  name=$(basename "$src" .cu)
  [ -n "${GPU_CHECK_BENCHES:-}" ] && [[ " $GPU_CHECK_BENCHES " != *" $name "* ]] && continue
  b=$build/bench/$name
  [ -x "$b" ] && [ -f "$b" ] && bench_bins+=("$b")
done
smoke_exe=$build/apps/image2gps
modelrun=$build/tests/parity/modelrun
missing=""
for b in "${test_bins[@]}" "$smoke_exe" "$modelrun" "${bench_bins[@]}"; do
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

# count WORD LOG: the N of gtest's "[  PASSED  ] N tests." (FAILED, SKIPPED) lines.
count() {
  grep -E "^\[  $1 *\] [0-9]+ tests?[,.]" "$2" | grep -oE '\] [0-9]+' | grep -oE '[0-9]+' |
    awk '{s += $1} END {print s + 0}'
}
gtest_summary() { echo "$(count PASSED "$1") passed, $(count FAILED "$1") failed, $(count SKIPPED "$1") skipped"; }
# Without a GPU the CUDA tests skip; a step is then SKIP, not PASS.
have_gpu=0
timeout 30 nvidia-smi -L >/dev/null 2>&1 && have_gpu=1
verdict() {  # rc: PASS, FAIL or SKIP
  if [ "$1" -ne 0 ]; then echo FAIL; elif [ $have_gpu -eq 0 ]; then echo SKIP; else echo PASS; fi
}
timed_out() { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; }
# gate STEP LOG [MIN_SECONDS]: false (and the step recorded SKIP) when it is not wanted or the
# budget has less than MIN_SECONDS (default 20) left.
gate() {
  if ! wanted "$1"; then
    record "$1" SKIP 0 "not in GPU_CHECK_ONLY=$only" "$2"
    return 1
  fi
  if [ "$(left)" -lt "${3:-20}" ]; then
    record "$1" SKIP 0 "time budget spent" "$2"
    return 1
  fi
}

# ---- 1. CUDA tests (tests/cuda and tests/cuda_labs) --------------------------------------------
missing_tests=""
for b in "${test_bins[@]}"; do
  [ -x "$b" ] || missing_tests+="$(basename "$b") "
done
if [ -n "$missing_tests" ]; then
  record tests FAIL 0 "not built: $missing_tests(build those targets)" tests.log
elif gate tests tests.log; then
  limit=$(cap 200)
  cached=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null)
  if command -v ctest >/dev/null && [ "$cached" = "$build" ]; then
    run "$out/tests.log" "$limit" ctest --test-dir "$build" -L cuda --output-on-failure -j4 \
      --timeout 120 --output-junit "$out/tests_junit.xml"
    summary="ctest -L cuda: $(grep -oE '[0-9]+ tests failed out of [0-9]+' "$out/tests.log" |
      tail -n 1), $(grep -c '(Skipped)' "$out/tests.log") skipped"
    timed_out && summary="timed out after ${limit}s; $summary"
    record tests "$(verdict $rc)" "$secs" "$summary" tests.log
  else
    # CTest's files hold the build folder's old absolute path: run the binaries themselves,
    # each its own step (the labs' tests are quick, so they go first).
    for b in "$labs_bin" "$tests_bin"; do
      name=$(basename "$b")
      gate tests "$name.log" || break
      if [ "$b" = "$labs_bin" ]; then limit=$(cap 60); else limit=$(cap 200); fi
      run "$out/$name.log" "$limit" "$b" --gtest_output=json:"$out/$name.json"
      summary="$name (build folder moved, so not through CTest): $(gtest_summary "$out/$name.log")"
      timed_out && summary="timed out after ${limit}s; $summary"
      record "tests:$name" "$(verdict $rc)" "$secs" "$summary" "$name.log"
    done
  fi
fi

# ---- 5. compute-sanitizer, in the background from here on --------------------------------------
# The sanitizers run beside steps 2 and 3 (their GPU work is small and nobody reads their
# times; model parity is mostly PyTorch's CPU references), are paused while steps 4 and 4b time
# kernels (the runs in flight finish first: a timing shares the GPU with nothing of ours), and
# go on after them. They used to start after the benchmarks and were what a tight budget cut.
# API errors are not reported: the engine checks every call itself, and the tests provoke some
# on purpose (the out-of-memory test asks for 1 PiB).
sanitizer=$(command -v compute-sanitizer)
# sanitize_start TOOL STEP LOG MAX_SECONDS BINARY [GTEST_FILTER]: starts one compute-sanitizer
# run in the background (its exit status and seconds go to LOG.rc), or records why it cannot
# run; returns 1 then. sanitize_finish STEP LOG waits for it and records its verdict.
sanitize_start() {
  local tool=$1 step=$2 log=$3 max=$4 b=$5 filter=()
  [ -n "${6:-}" ] && filter=(--gtest_filter="$6")
  if ! wanted "$tool"; then
    record "$step" SKIP 0 "not in GPU_CHECK_ONLY=$only" "$log"
  elif [ $have_gpu -eq 0 ]; then
    record "$step" SKIP 0 "no GPU visible" "$log"
  elif [ -z "$sanitizer" ] || [ ! -x "$b" ]; then
    record "$step" SKIP 0 "compute-sanitizer or $(basename "$b") missing" "$log"
  elif [ "$(left)" -lt 20 ]; then
    record "$step" SKIP 0 "time budget spent" "$log"
  else
    local limit
    limit=$(cap "$max")
    rm -f "$out/$log.rc"
    (
      run "$out/$log" "$limit" env ENGINE_CUDA_NO_CACHE=1 "$sanitizer" --tool "$tool" \
        --report-api-errors no --error-exitcode 99 "$b" --gtest_brief=1 "${filter[@]}"
      echo "$rc $secs $limit" >"$out/$log.rc"
    ) &
    pids[$step]=$!
    return 0
  fi
  return 1
}
sanitize_finish() {
  local step=$1 log=$2 limit errors summary status found
  wait "${pids[$step]}"
  read -r rc secs limit <"$out/$log.rc" 2>/dev/null || { rc=1 secs=0 limit=0; }
  rm -f "$out/$log.rc"
  errors=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$out/$log" | tail -n 1 | grep -oE '[0-9]+$')
  # Each finding as it happens: memcheck's "========= Invalid __global__ read ...",
  # racecheck's "========= Warning: Race reported between ..." or "========= Error: Race ...".
  found=$(grep -cE '^========= (Invalid|Race|Error|Uninitialized|Program hit|Warning: Race)' "$out/$log")
  summary="${errors:-?} errors ($found reports); tests: $(gtest_summary "$out/$log")"
  status=$(verdict $rc)
  [ "$found" -gt 0 ] && status=FAIL
  if timed_out; then  # cut by its time slice: what it reported so far decides
    summary="cut after ${limit}s; $found reports in the part that ran; tests: $(gtest_summary "$out/$log")"
    if [ "$found" -gt 0 ]; then status=FAIL; else status=PART; fi
  fi
  record "$step" "$status" "$secs" "$summary" "$log"
}

# sanitizer_worker: memcheck, then racecheck, each record appended to $records (one line, its
# fields separated by the ASCII unit separator, which no field holds and which, unlike a tab,
# read does not merge when a field is empty; the main script adds them to the table at the
# end). Between runs it
# honours $pause: it finishes what is running, says so in $idle, and waits until $pause is gone.
records=$out/.sanitizer_records pause=$out/.sanitizer_pause idle=$out/.sanitizer_idle
rm -f "$records" "$pause" "$idle"
sanitizer_worker() {
  record() {
    local summary=${4//$'\x1f'/ }
    printf '%s\x1f%s\x1f%s\x1f%s\x1f%s\n' "$1" "$2" "$3" "${summary//$'\n'/ }" "$5" >>"$records"
  }
  declare -A pids=()
  local running=() started=() name b max suite
  finish_running() {
    for suite in "${running[@]}"; do
      sanitize_finish "racecheck:$suite" "racecheck_$suite.log"
    done
    running=()
  }
  honour_pause() {
    [ -e "$pause" ] || return 0
    finish_running
    touch "$idle"
    while [ -e "$pause" ]; do sleep 1; done
    rm -f "$idle"
  }
  # memcheck: each binary whole, both at once (4 and 19 s on an H200, one after the other).
  honour_pause
  for b in "$labs_bin" "$tests_bin"; do
    name=$(basename "$b")
    if [ "$b" = "$labs_bin" ]; then max=90; else max=170; fi
    sanitize_start memcheck "memcheck:$name" "memcheck_$name.log" "$max" "$b" \
      "${GPU_CHECK_MEMCHECK_FILTER:-}" && started+=("$name")
  done
  for name in "${started[@]}"; do sanitize_finish "memcheck:$name" "memcheck_$name.log"; done
  # racecheck: one test suite per step (racecheck over all of cuda_labs_tests ran past 80 s on
  # an H200 without finishing one), the kernels with shared memory and warp-level code first,
  # so a cut budget still leaves each finished suite's verdict. GPU_CHECK_RACECHECK_JOBS
  # suites run at once (default 3): most of a sanitizer's time is its own host work around
  # small test kernels, which separate processes overlap. Recorded in the list's order.
  for suite in $racecheck_suites; do
    # A free slot is the oldest one's; when the budget is spent, all of them are awaited
    # first (so the SKIP records come after them).
    while [ ${#running[@]} -gt 0 ] &&
      { [ ${#running[@]} -ge "$racecheck_jobs" ] || [ "$(left)" -lt 20 ]; }; do
      sanitize_finish "racecheck:${running[0]}" "racecheck_${running[0]}.log"
      running=("${running[@]:1}")
    done
    honour_pause  # (after the wait for a slot, which a pause may have begun during)
    case $suite in CudaLabs* | Conv2d*) b=$labs_bin ;; *) b=$tests_bin ;; esac
    sanitize_start racecheck "racecheck:$suite" "racecheck_$suite.log" 60 "$b" "$suite.*" &&
      running+=("$suite")
  done
  finish_running
}
racecheck_suites=${GPU_CHECK_RACECHECK_SUITES:-CudaLabsKnn CudaLabsLayernorm CudaLabsGelu CudaLabsDepthwise CudaMatmul CudaLayerNormMlp CudaMlp CudaBatchNorm CudaReduce CudaSoftmax CudaScaledResidual CudaPool CudaKnn Conv2dMma Conv2dLab}
racecheck_jobs=${GPU_CHECK_RACECHECK_JOBS:-3}
sanitizer_worker &
worker_pid=$!
# pause_sanitizers: ask the worker to stop starting runs, and wait until those in flight ended.
pause_sanitizers() {
  touch "$pause"
  while kill -0 "$worker_pid" 2>/dev/null && [ ! -e "$idle" ]; do sleep 1; done
}

# ---- 2. image2gps end to end on CUDA ---------------------------------------------------------
# (A step left out by GPU_CHECK_ONLY is SKIP before anything else: a rerun of one step on a
# stage without the other binaries must not fail for them.)
if ! wanted app_smoke; then
  record app_smoke SKIP 0 "not in GPU_CHECK_ONLY=$only" app_smoke.log
elif [ ! -x "$smoke_exe" ]; then
  record app_smoke FAIL 0 "no $smoke_exe: build the image2gps target" app_smoke.log
elif [ $have_gpu -eq 0 ]; then
  record app_smoke SKIP 0 "no GPU visible (tools/app_cuda_smoke.sh BUILD OUT cpu checks the script)" app_smoke.log
elif gate app_smoke app_smoke.log 30; then
  limit=$(cap 90)
  run "$out/app_smoke.log" "$limit" bash tools/app_cuda_smoke.sh "$build" "$out/app_smoke" cuda
  if [ $rc -eq 0 ]; then
    summary=$(grep -E '^app_smoke: PASS' "$out/app_smoke.log" | tail -n 1)
  elif timed_out; then
    summary="timed out after ${limit}s; last: $(grep '^app_smoke: ' "$out/app_smoke.log" | tail -n 1)"
  else
    summary=$(grep -E '^app_smoke: FAIL' "$out/app_smoke.log" | tail -n 1)
    summary=${summary:-exit $rc (see app_smoke.log)}
  fi
  record app_smoke "$(verdict $rc)" "$secs" "${summary#app_smoke: }" app_smoke.log
fi

# ---- 3. whole models on CUDA against torchvision ------------------------------------------------
parity_py=${PARITY_PYTHON:-}
if [ -z "$parity_py" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import torch, torchvision, numpy' >/dev/null 2>&1; then
      parity_py=$p
      break
    fi
  done
fi
if ! wanted model_parity; then
  record model_parity SKIP 0 "not in GPU_CHECK_ONLY=$only" model_parity.log
elif [ ! -x "$modelrun" ]; then
  record model_parity FAIL 0 "no $modelrun: build the modelrun target" model_parity.log
elif [ -z "$parity_py" ]; then
  record model_parity SKIP 0 "no python3 here imports torch, torchvision and numpy (set PARITY_PYTHON)" model_parity.log
elif [ $have_gpu -eq 0 ]; then
  record model_parity SKIP 0 "no GPU visible" model_parity.log
elif gate model_parity model_parity.log 60; then
  limit=$(cap 180)
  run "$out/model_parity.log" "$limit" "$parity_py" tests/parity/test_models.py \
    --build-dir "$build" --device cuda
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/model_parity.log" | tail -n 1)"
  case $rc in
    0) status=PASS ;;
    77) status=SKIP summary=$(grep -m1 '^SKIPPED' "$out/model_parity.log") ;;
    *) status=FAIL ;;
  esac
  timed_out && summary="timed out after ${limit}s; $summary"
  [ $status = FAIL ] && summary="${summary:-exit $rc}; first: $(grep -m1 -E '^ *FAIL' "$out/model_parity.log")"
  record model_parity "$status" "$secs" "$summary" model_parity.log
fi

# The GPU for the timings alone: the sanitizers finish what is in flight and wait.
wanted bench || wanted torch_kernels && pause_sanitizers
# ---- 4. kernel-lab benchmarks ------------------------------------------------------------------
# Exit codes of the labs: 0 valid, 1 a version disagrees with the CPU, 77 no GPU.
for b in "${bench_bins[@]}"; do
  name=$(basename "$b")
  if ! wanted bench; then
    record "$name" SKIP 0 "not in GPU_CHECK_ONLY=$only" "bench_$name.log"
    continue
  fi
  if [ "$(left)" -lt 20 ]; then
    record "$name" SKIP 0 "time budget spent" "bench_$name.log"
    continue
  fi
  run "$out/bench_$name.log" "$(cap 90)" "$b" --json "$out/bench/$name.json"
  case $rc in
    0) status=PASS summary="valid; $(grep -c '"op"' "$out/bench/$name.json" 2>/dev/null || echo 0) timings" ;;
    77) status=SKIP summary="no GPU" ;;
    124 | 137) status=FAIL summary="timed out" ;;
    *) status=FAIL summary="exit $rc (see log: INVALID rows or an error)" ;;
  esac
  record "$name" "$status" "$secs" "$summary" "bench_$name.log"
done
[ ${#bench_bins[@]} -eq 0 ] && record benchmarks SKIP 0 "no kernel lab (bench/cuda/*_bench.cu) built in $build/bench" ""

# ---- 4b. PyTorch on the labs' shapes, same card, same session ---------------------------------
# bench/gpu/torch_kernels.py -> OUT_DIR/torch_kernels.json, which tools/labs_report.py puts
# beside each lab's rows (its "vs PyTorch (same session)" column). Part of the "bench" step.
if ! wanted bench && ! wanted torch_kernels; then
  record torch_kernels SKIP 0 "not in GPU_CHECK_ONLY=$only" torch_kernels.log
elif [ -z "$parity_py" ]; then
  record torch_kernels SKIP 0 "no python3 here imports torch" torch_kernels.log
elif [ $have_gpu -eq 0 ]; then
  record torch_kernels SKIP 0 "no GPU visible" torch_kernels.log
elif gate torch_kernels torch_kernels.log 30; then
  limit=$(cap 90)
  run "$out/torch_kernels.log" "$limit" "$parity_py" bench/gpu/torch_kernels.py \
    --json "$out/torch_kernels.json"
  case $rc in
    0) status=PASS summary="$(grep -c '"ms"' "$out/torch_kernels.json" 2>/dev/null || echo 0) PyTorch timings" ;;
    77) status=SKIP summary="no GPU (torch)" ;;
    124 | 137) status=FAIL summary="timed out after ${limit}s" ;;
    *) status=FAIL summary="exit $rc (see torch_kernels.log)" ;;
  esac
  record torch_kernels "$status" "$secs" "$summary" torch_kernels.log
fi

rm -f "$pause"  # the sanitizers go on

# ---- 5 (end). the sanitizers' records --------------------------------------------------------
wait "$worker_pid"
if [ -s "$records" ]; then
  while IFS=$'\x1f' read -r n st sec sm lg; do
    record "$n" "$st" "$sec" "$sm" "$lg"
  done <"$records"
fi
rm -f "$records" "$idle"

# ---- results.json and the table ----------------------------------------------------------------
{
  printf '{\n  "date": %s,\n  "device": %s,\n  "build_dir": %s,\n' \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$device")" "$(json_str "$build")"
  printf '  "budget": %d,\n  "seconds": %d,\n  "steps": [\n' "$budget" $(($(date +%s) - start))
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
