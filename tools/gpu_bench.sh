#!/usr/bin/env bash
# tools/gpu_bench.sh OUT_DIR [BUILD_DIR] — the end-to-end GPU benchmark suite in one run of at
# most GPU_BENCH_BUDGET seconds (default 420, about 7 minutes on an H100): our engine next to
# PyTorch eager, torch.compile and LibTorch, doing the identical training step, inference pass
# and k-NN search (bench/gpu/). Steps, in priority order (each gets a time cap; later steps get
# what is left and are skipped when too little is):
#   0. env: the card, driver, versions, commit; which libraries our binary cannot find
#   -  LibTorch side: configured and compiled in the background from the start (CPU only, one
#      translation unit, ~1 minute), against the LibTorch inside the torch package
#   1. ours_<arch>_vendor   bench/gpu/gpu_e2e_bench.cpp, one process per model: training step
#                           and inference, fp32 and TF32, cuBLAS/cuDNN for GEMM/conv/BN/pool
#   1b. ours_<arch>_ours    ours again with every op family on our own kernels (~10-20 s each)
#   1c. ours_<arch>_default the engine's per-family defaults, for GPU_BENCH_DEFAULT_ARCHS
#                           (default convnext_tiny: the model whose defaults differ from 1's)
#   1d. ours_<arch>_default+BATCHNORM=ours  the defaults with our BatchNorm, for
#                           GPU_BENCH_OURS_BN_ARCHS (default resnet50): cuDNN's convolutions
#                           with our BatchNorm, the choice the BATCHNORM default hangs on
#   1e. ours_<arch>_default+CONV=ours  the defaults with our convolutions, for
#                           GPU_BENCH_OURS_CONV_ARCHS (default convnext_tiny): cuBLAS's GEMMs
#                           with our patchify convolutions (the lab's v3 beat cuDNN's heuristic
#                           fp32 choice on every ResNet layer; strided data gradients by phase)
#   2. torch_eager          bench/gpu/torch_e2e.py: the same, eager, channels_last and contiguous
#                           (116 s for the three models on an H200)
#   3. ours_knn, torch_knn  k-NN: 1024 x 100k, 1024 x 1M, 1 x 1M, d 768, k 15 (ours fused vs
#                           cdist + topk); PyTorch compares its neighbours with ours
#   4. torch_compile_<arch> torch.compile (mode default), training step, TF32: ConvNeXt-T, then
#                           ResNet-50 (the issue's targets), one process each (~45-70 s each)
#   5. libtorch             the LibTorch binary (when its build finished): the same steps in C++
#   7. torch_compile_resnet18, if time is left
# Writes OUT_DIR/*.json (one file per step, schema of bench/gpu/e2e_common.h), OUT_DIR/env.json,
# OUT_DIR/steps.json (status, seconds and summary per step), OUT_DIR/logs/*.log, OUT_DIR/knn/
# (our neighbour indices), OUT_DIR/profile/ (a few more training steps of ours and of PyTorch
# eager channels_last, op by op, after the timed ones: the report's per-family table), and prints the comparison table last (tools/bench_report.py
# gpu-table). docs/BENCHMARKS.md is then regenerated with
#   python3 tools/bench_report.py report out/bench-cpu --gpu OUT_DIR --out docs/BENCHMARKS.md
# Exit status 0 when nothing failed (skipped is fine), 1 otherwise. Without a GPU every step
# reports SKIP within seconds.
#
#   BUILD_DIR               the CUDA build holding bench/gpu_e2e_bench (default build/cuda-release)
#   GPU_BENCH_BUDGET        seconds for the whole run (default 420)
#   GPU_BENCH_COMPILE=0     skip torch.compile;  GPU_BENCH_LIBTORCH=0  skip the LibTorch side
#   GPU_BENCH_OURS_IMPL=0   skip step 1b (our own kernels for every family)
#   GPU_BENCH_ARCHS         models, in the order they run (default "convnext_tiny resnet50
#                           resnet18": the targets' models first, in case the budget runs out)
#   GPU_BENCH_DEVICE=cpu    a dry run of the whole pipeline on the CPU (batch 2, 2 steps, small
#                           k-NN): tests this script and the report; the numbers mean nothing
#   PYTHON                  the python with torch (default: python3 if it imports torch, else
#                           /usr/bin/python3)
#   LIBTORCH_PREFIX         CMake prefix of LibTorch (default: torch.utils.cmake_prefix_path)
#   LIBTORCH_BUILD_DIR      where to build it (default /tmp/gpu_bench_libtorch; kept, so a second
#                           run on a warm machine does not compile again)
# Build on the build machine: cmake --preset cuda-release -DENGINE_BENCH=ON && cmake --build
# build/cuda-release --target gpu_e2e_bench. At run time gpu_e2e_bench needs libcudart,
# libcublas(Lt), libcudnn, libopenblas, libgomp: all on the GPU machine (see ../shared/GPU.md).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)

out=${1:?usage: tools/gpu_bench.sh OUT_DIR [BUILD_DIR]}
build=${2:-${BUILD_DIR:-build/cuda-release}}
budget=${GPU_BENCH_BUDGET:-420}
device=${GPU_BENCH_DEVICE:-cuda}
archs=${GPU_BENCH_ARCHS:-convnext_tiny resnet50 resnet18}  # the targets' models first
mkdir -p "$out/logs" "$out/knn" "$out/profile"
out=$(cd "$out" && pwd)
rm -f "$out"/*.json "$out"/knn/*.i64 "$out"/profile/*
build=$(cd "$build" 2>/dev/null && pwd) || build=""
ours_bin=${build:+$build/bench/gpu_e2e_bench}
lt_build=${LIBTORCH_BUILD_DIR:-/tmp/gpu_bench_libtorch}
export PATH=$PATH:/usr/local/cuda/bin
# Our binary finds the toolkit's CUDA 13 libraries here (as tools/gpu_check.sh does). Only our
# binary: PyTorch and LibTorch load the CUDA libraries their wheel ships, and LD_LIBRARY_PATH
# would override those.
ours_env=(env)
[ -d /usr/local/cuda/lib64 ] && ours_env=(env "LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
start=$(date +%s)
say() { printf '[gpu_bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  python3 -c 'import torch' 2>/dev/null || PYTHON=/usr/bin/python3
fi

# ---- bookkeeping (as tools/gpu_check.sh) ------------------------------------------------------
names=() statuses=() seconds=() summaries=()
record() { names+=("$1") statuses+=("$2") seconds+=("$3") summaries+=("$4"); }
left() { echo $((budget - ($(date +%s) - start))); }
cap() { local l; l=$(left); echo $((l < $1 ? l : $1)); }  # cap MAX: min(MAX, seconds left)
# inner MAX: the budget a multi-benchmark process gets so it stops starting new benchmarks about
# 15 s before its hard limit (cap MAX) and writes what it has.
inner() { local c; c=$(cap "$1"); echo $((c > 30 ? c - 15 : 15)); }
json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/ }
  s=${s//$'\n'/ }
  printf '"%s"' "$s"
}
# run NAME LIMIT CMD...: full output to logs/NAME.log; sets rc and secs.
run() {
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  echo "\$ $*" >"$out/logs/$name.log"
  timeout --kill-after=10 "$limit" "$@" >>"$out/logs/$name.log" 2>&1
  rc=$?
  secs=$(($(date +%s) - t0))
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "gpu_bench: timed out after ${limit}s" >>"$out/logs/$name.log"; fi
  return 0
}
# count_ok FILE: "N ok, M failed, K skipped" from a result JSON (benchmarks, not steps).
count_ok() {
  local ok bad skipped
  ok=$(grep -o '"status": "ok"' "$1" 2>/dev/null | wc -l)
  bad=$(grep -oE '"status": "(error|nonfinite)"' "$1" 2>/dev/null | wc -l)
  skipped=$(grep -o '"status": "skipped"' "$1" 2>/dev/null | wc -l)
  echo "$ok ok, $bad failed, $skipped skipped"
}
# finish NAME JSON MIN_LEFT_NOTE: records a step from rc (0 ok, 1 some benchmark failed, 77 no
# GPU, 124/137 time limit).
finish() {
  local name=$1 json=$2 status summary
  case $rc in
    0) status=PASS summary="$(count_ok "$json")" ;;
    77) status=SKIP summary="no GPU visible" ;;
    124 | 137) status=FAIL summary="timed out after ${secs}s; kept: $(count_ok "$json")" ;;
    *) status=FAIL summary="exit $rc: $(count_ok "$json") (see logs/$name.log)" ;;
  esac
  record "$name" "$status" "$secs" "$summary"
  say "$name: $status, $summary (${secs}s)"
}
# step NAME MAX MIN JSON CMD...: runs CMD with min(MAX, left) seconds unless fewer than MIN are left.
step() {
  local name=$1 max=$2 min=$3 json=$4
  shift 4
  if [ "$(left)" -lt "$min" ]; then
    record "$name" SKIP 0 "time budget spent ($(left)s left, needs ${min}s)"
    say "$name: SKIP (budget)"
    return
  fi
  say "$name (up to $(cap "$max")s)"
  run "$name" "$(cap "$max")" "$@"
  finish "$name" "$json"
}

# ---- sizes: the real suite, or a dry run on the CPU ---------------------------------------------
have_gpu=0
nvidia-smi -L >/dev/null 2>&1 && have_gpu=1
if [ "$device" = cpu ]; then
  model_args=(--device cpu --batch 2 --warmup 1 --steps 2 --max-seconds 20 --precision fp32)
  knn_cases=16x5000,1x20000
  ours_knn_args=(--device cpu --knn "$knn_cases" --knn-warmup 1 --knn-steps 2)
  torch_knn_args=(--device cpu --knn "$knn_cases" --knn-warmup 1 --knn-steps 2)
  lt_args=(--device cpu --batch 2 --warmup 1 --steps 2 --layouts channels_last --precision fp32)
else
  # 5 warm-up + 20 timed steps, or fewer when a benchmark's cap (seconds) runs out.
  model_args=(--warmup 5 --steps 20 --max-seconds 12)
  ours_knn_args=(--knn-warmup 2 --knn-steps 10 --knn-max-seconds 12)
  torch_knn_args=(--knn-warmup 2 --knn-steps 10 --knn-max-seconds 12)
  lt_args=(--warmup 3 --steps 10 --max-seconds 5)
fi

# ---- 0. environment ------------------------------------------------------------------------------
smi() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2>/dev/null | head -n 1; }
gpu_name=$(smi name)
gpu_name=${gpu_name:-no GPU visible}
torch_info=$("$PYTHON" -c 'import torch, torchvision, sys; print(torch.__version__, torchvision.__version__, torch.version.cuda, torch.backends.cudnn.version(), sys.version.split()[0])' 2>/dev/null)
read -r t_ver tv_ver t_cuda t_cudnn py_ver <<<"${torch_info:-? ? ? ? ?}"
missing=""
if [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then
  "${ours_env[@]}" ldd "$ours_bin" >"$out/logs/deps.log" 2>&1
  missing=$(awk '/not found/ {print $1}' "$out/logs/deps.log" | sort -u | tr '\n' ' ')
fi
{
  printf '{\n'
  printf '  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  printf '  "device_kind": %s,\n' "$(json_str "$device")"
  printf '  "gpu": %s,\n' "$(json_str "$(smi name)")"
  printf '  "driver": %s,\n' "$(json_str "$(smi driver_version)")"
  printf '  "gpu_memory": %s,\n' "$(json_str "$(smi memory.total)")"
  printf '  "sm_clock_max": %s,\n' "$(json_str "$(smi clocks.max.sm)")"
  printf '  "nvcc": %s,\n' "$(json_str "$(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | head -n 1)")"
  printf '  "cpu": %s,\n' "$(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')")"
  printf '  "logical_cpus": %s,\n' "$(nproc)"
  printf '  "os": %s,\n' "$(json_str "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")")"
  printf '  "python": %s,\n  "python_exe": %s,\n' "$(json_str "$py_ver")" "$(json_str "$PYTHON")"
  printf '  "torch": %s,\n  "torchvision": %s,\n' "$(json_str "$t_ver")" "$(json_str "$tv_ver")"
  printf '  "torch_cuda": %s,\n  "torch_cudnn": %s,\n' "$(json_str "$t_cuda")" "$(json_str "$t_cudnn")"
  printf '  "git": %s,\n' "$(json_str "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")"
  printf '  "git_dirty": %s,\n' "$([ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)"
  printf '  "build_dir": %s,\n' "$(json_str "$build")"
  printf '  "budget_s": %s\n}\n' "$budget"
} >"$out/env.json"
if [ -z "$ours_bin" ] || [ ! -x "$ours_bin" ]; then
  record deps FAIL 0 "no ${ours_bin:-BUILD_DIR/bench/gpu_e2e_bench}: build the gpu_e2e_bench target (ENGINE_BENCH=ON, CUDA)"
elif [ -n "$missing" ]; then
  record deps FAIL 0 "gpu_e2e_bench cannot find: $missing"
else
  record deps PASS 0 "gpu_e2e_bench finds its libraries; torch $t_ver; $gpu_name"
fi
say "device $device: $gpu_name; torch $t_ver via $PYTHON; budget ${budget}s"

# ---- LibTorch build, in the background from the start -----------------------------------------------
lt_pid=""
lt_bin=$lt_build/libtorch_e2e
if [ "${GPU_BENCH_LIBTORCH:-1}" = 0 ]; then
  lt_note="GPU_BENCH_LIBTORCH=0"
elif [ "$device" = cuda ] && [ $have_gpu = 0 ]; then
  lt_note="no GPU visible"
else
  prefix=${LIBTORCH_PREFIX:-$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)}
  if [ ! -f "$prefix/Torch/TorchConfig.cmake" ] && [ ! -f "$prefix/TorchConfig.cmake" ] &&
     [ -f /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ] && [ "$device" = cpu ]; then
    prefix=/usr/lib/x86_64-linux-gnu/cmake/Torch  # Debian's LibTorch (the CPU dry run)
  fi
  lt_note="build did not finish"
  (
    t0=$(date +%s)
    # TorchConfig.cmake of a CUDA wheel enables CUDA and finds the toolkit: point it at nvcc and
    # sm_90, so nothing probes the GPU at configure time.
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
    cuda_args=()
    if [ "$device" = cuda ] && [ -x /usr/local/cuda/bin/nvcc ]; then
      export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
      cuda_args=(-DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CUDA_ARCHITECTURES=90)
    fi
    echo "LibTorch from $prefix"
    timeout 120 nice -n 10 cmake -S "$root/bench/gpu/libtorch" -B "$lt_build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
      "${cuda_args[@]}" && timeout 300 nice -n 10 cmake --build "$lt_build"
    rc=$?
    echo "libtorch build: exit $rc after $(($(date +%s) - t0))s"
    exit $rc
  ) >"$out/logs/libtorch_build.log" 2>&1 &
  lt_pid=$!
fi

# ---- 1. ours, cuBLAS/cuDNN for the vendor families ---------------------------------------------------
ours_model() {  # IMPL MAX_PER_MODEL [EXTRA ARGS]: one process per model (of $model_archs)
  local impl=$1 max=$2 arch
  shift 2
  for arch in ${model_archs:-$archs}; do
    step "ours_${arch}_$impl" "$max" 20 "$out/ours_${arch}_$impl.json" \
      "${ours_env[@]}" "$ours_bin" --bench train,infer --arch "$arch" --impl "$impl" "${model_args[@]}" "$@" \
      --profile "$out/profile" --json "$out/ours_${arch}_$impl.json"
  done
}
if [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then
  ours_model vendor 70
else
  record ours SKIP 0 "gpu_e2e_bench not built"
fi

# ---- 1b. ours with our own kernels in every family (the project's point: before PyTorch's
# long eager step, which a tight budget would otherwise leave it behind, as on 2026-11-27) ---------------------------------------------------
if [ "${GPU_BENCH_OURS_IMPL:-1}" != 0 ] && [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then
  # Our kernels may be far slower than cuDNN's: 8 s per benchmark (at least 3 timed steps).
  if [ "$device" = cpu ]; then ours_model ours 50; else ours_model ours 50 --max-seconds 8; fi
fi

# ---- 1c. the engine's defaults (what image2gps runs), for the models where they differ from
# step 1's: DEPTHWISE defaults to our kernel, so ConvNeXt ----------------------------------------------
model_archs=""
for arch in ${GPU_BENCH_DEFAULT_ARCHS-convnext_tiny}; do
  [[ " $archs " == *" $arch "* ]] && model_archs+="$arch "
done
if [ -n "$model_archs" ] && [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then ours_model default 70; fi
model_archs=""

# defaults_with IMPL ARCHS: the engine's defaults with one family's exception ("default+X=ours")
# for those of ARCHS this run benchmarks (8 s each at most on a GPU).
defaults_with() {
  local impl=$1 arch
  model_archs=""
  for arch in $2; do
    [[ " $archs " == *" $arch "* ]] && model_archs+="$arch "
  done
  if [ -n "$model_archs" ] && [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then
    if [ "$device" = cpu ]; then ours_model "$impl" 50; else ours_model "$impl" 50 --max-seconds 8; fi
  fi
  model_archs=""
}

# ---- 1d. the defaults with our BatchNorm (ResNet: cuDNN's convolutions, our BatchNorm and its
# fused ReLU / residual endings), for the models in GPU_BENCH_OURS_BN_ARCHS -----------------------
defaults_with "default+BATCHNORM=ours" "${GPU_BENCH_OURS_BN_ARCHS-resnet50}"

# ---- 1e. the defaults with our convolutions (ConvNeXt-T: cuBLAS's GEMMs, our stem and
# downsampling convolutions and depthwise), for the models in GPU_BENCH_OURS_CONV_ARCHS --------
defaults_with "default+CONV=ours" "${GPU_BENCH_OURS_CONV_ARCHS-convnext_tiny}"

# ---- 2. PyTorch eager --------------------------------------------------------------------------------
torch_py=("$PYTHON" "$root/bench/gpu/torch_e2e.py")
step torch_eager 130 30 "$out/torch_eager.json" "${torch_py[@]}" --bench train,infer \
  --arch "${archs// /,}" --modes eager "${model_args[@]}" --budget "$(inner 130)" \
  --profile "$out/profile" --json "$out/torch_eager.json"

# ---- 3. k-NN, ours then PyTorch (which checks its neighbours against ours) --------------------------
if [ -n "$ours_bin" ] && [ -x "$ours_bin" ]; then
  step ours_knn 60 15 "$out/ours_knn.json" "${ours_env[@]}" "$ours_bin" --bench knn "${ours_knn_args[@]}" \
    --knn-indices-dir "$out/knn" --json "$out/ours_knn.json"
fi
step torch_knn 60 15 "$out/torch_knn.json" "${torch_py[@]}" --bench knn "${torch_knn_args[@]}" \
  --ours-knn-dir "$out/knn" --json "$out/torch_knn.json"

# ---- 4. torch.compile: the targets' models first --------------------------------------------------
compile_one() {  # ARCH MIN
  local arch=$1 min=$2
  if [ "${GPU_BENCH_COMPILE:-1}" = 0 ]; then
    record "torch_compile_$arch" SKIP 0 "GPU_BENCH_COMPILE=0"
    return
  fi
  step "torch_compile_$arch" 150 "$min" "$out/torch_compile_$arch.json" "${torch_py[@]}" \
    --bench train --arch "$arch" --modes compile --precision "${GPU_BENCH_COMPILE_PRECISION:-tf32}" \
    "${model_args[@]}" --json "$out/torch_compile_$arch.json"
}
for arch in convnext_tiny resnet50; do
  [[ " $archs " == *" $arch "* ]] && compile_one "$arch" 75
done

# ---- 5. LibTorch ----------------------------------------------------------------------------------
if [ -n "$lt_pid" ]; then
  if kill -0 "$lt_pid" 2>/dev/null; then
    say "waiting for the LibTorch build (up to $(cap 60)s)"
    waited=0
    while kill -0 "$lt_pid" 2>/dev/null && [ $waited -lt "$(cap 60)" ]; do sleep 2; waited=$((waited + 2)); done
  fi
  if kill -0 "$lt_pid" 2>/dev/null; then
    kill "$lt_pid" 2>/dev/null
    record libtorch SKIP 0 "its build did not finish in time (logs/libtorch_build.log)"
  else
    wait "$lt_pid"
    if [ $? -ne 0 ] || [ ! -x "$lt_bin" ]; then
      record libtorch FAIL 0 "build failed: $(tail -n 3 "$out/logs/libtorch_build.log" | tr '\n' ' ' | cut -c1-200)"
    else
      step libtorch 80 20 "$out/libtorch.json" "$lt_bin" --bench train,infer --arch "${archs// /,}" \
        "${lt_args[@]}" --budget "$(inner 80)" --json "$out/libtorch.json"
    fi
  fi
else
  record libtorch SKIP 0 "$lt_note"
fi

# ---- 7. whatever time is left --------------------------------------------------------------------
[[ " $archs " == *" resnet18 "* ]] && compile_one resnet18 60

# ---- steps.json and the table -----------------------------------------------------------------------
{
  printf '{\n  "date": %s,\n  "seconds": %d,\n  "budget_s": %d,\n  "steps": [\n' \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" $(($(date +%s) - start)) "$budget"
  for i in "${!names[@]}"; do
    printf '    {"name": %s, "status": %s, "seconds": %d, "summary": %s}%s\n' \
      "$(json_str "${names[$i]}")" "$(json_str "${statuses[$i]}")" "${seconds[$i]}" \
      "$(json_str "${summaries[$i]}")" "$([ "$i" -lt $((${#names[@]} - 1)) ] && echo ,)"
  done
  printf '  ]\n}\n'
} >"$out/steps.json"

fails=0
echo
echo "gpu_bench on $gpu_name [$device] ($(($(date +%s) - start)) s of ${budget}; JSON and logs in $out)"
printf '%-26s %-5s %6s  %s\n' step status secs summary
for i in "${!names[@]}"; do
  printf '%-26s %-5s %6s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${summaries[$i]}"
  [ "${statuses[$i]}" = FAIL ] && fails=$((fails + 1))
done
echo
"$PYTHON" "$root/tools/bench_report.py" gpu-table "$out" 2>&1 || python3 "$root/tools/bench_report.py" gpu-table "$out"
[ $fails -eq 0 ]
