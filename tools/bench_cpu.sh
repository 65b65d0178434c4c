#!/usr/bin/env bash
# tools/bench_cpu.sh [OUT_DIR] — the CPU benchmark suite in one command: builds cpu_bench (per
# kernel) and e2e_bench (training steps, inference, k-NN, data loader), runs both next to
# LibTorch, times torchvision's transforms as the loader's reference, and writes
# docs/BENCHMARKS.md with tools/bench_report.py. About 5-8 minutes on a 2-core machine.
#
#   OUT_DIR        where the JSON and logs go (default out/bench-cpu):
#                    env.json                 machine, versions, load average before/after
#                    cpu_bench.json           Google Benchmark JSON of the per-kernel suite
#                    conv2d_winograd.json     the CPU 3x3 convolution's algorithms per layer
#                    e2e/<benchmark>.json     one e2e benchmark each, each run in a fresh
#                                             process (so its peak-memory reading is its own)
#                    e2e/loader_torchvision.json  the torchvision reference (same JSON shape)
#                    profile/                 one training step of ours (engine::profiler) and of
#                                             PyTorch (torch.profiler) op by op, per model
#                    logs/*.log               every command's full output
#   BUILD_DIR      build folder (default build/bench-cpu)
#   E2E_FILTER     extended regex: run only the e2e benchmarks whose name matches
#   SKIP_KERNELS=1 skip cpu_bench (the report keeps the old per-kernel table)
#   BENCH_QUICK=1  smoke test: no warm-up, one timed step per benchmark (numbers meaningless)
#   REPORT         the Markdown file to write (default docs/BENCHMARKS.md; "-" = don't)
#   BENCH_DATE     the date the report states (default: today)
# Both sides use 2 threads (BENCH_THREADS overrides, see bench/e2e/bench_util.h).
# The training, inference and per-kernel benchmarks run both sides with glibc told to keep
# freed memory (BENCH_GLIBC_TUNABLES, default below; "-" = glibc's defaults): otherwise glibc
# unmaps large freed blocks and trims its heap, and in the paired runs, where our engine and
# LibTorch share a process, a step then pays page faults for the memory the other side's step
# freed (measured 2026-11-26: 40-90k faults and up to 0.5 s of system time per ResNet-50
# step, landing on whichever side keeps less of its own memory). With it neither side faults
# after the warm-up, alone or paired, and LibTorch alone is ~7% faster too. Our engine keeps
# its large blocks itself (engine/host_cache.h). k-NN and the loader run with glibc's
# defaults: their one-off setup buffers would stay resident and inflate both sides' peaks.
set -euo pipefail
cd "$(dirname "$0")/.."

tunables=${BENCH_GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184}
[ "$tunables" = - ] && tunables=
# with_tunables CMD...: CMD with GLIBC_TUNABLES set (when there are any).
with_tunables() { if [ -n "$tunables" ]; then GLIBC_TUNABLES=$tunables "$@"; else "$@"; fi; }

out=${1:-out/bench-cpu}
build=${BUILD_DIR:-build/bench-cpu}
report=${REPORT:-docs/BENCHMARKS.md}
mkdir -p "$out/e2e" "$out/logs" "$out/profile"
rm -f "$out"/e2e/*.json "$out/cpu_bench.json" "$out/conv2d_winograd.json" "$out"/profile/*
out=$(cd "$out" && pwd)
say() { printf '[bench_cpu %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

say "configure + build in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DENGINE_BENCH=ON -DENGINE_CUDA=OFF \
  ${CMAKE_ARGS:-} >"$out/logs/configure.log" 2>&1 || { cat "$out/logs/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target cpu_bench e2e_bench >"$out/logs/build.log" 2>&1 \
  || { tail -50 "$out/logs/build.log"; exit 1; }

BENCH_GLIBC_TUNABLES_USED=$tunables \
  python3 tools/bench_report.py env "$out/env.json" --build-dir "$build" --phase start

# ---- per-kernel suite: one process, its own repetitions and statistics ----------------------------
if [ "${SKIP_KERNELS:-0}" != 1 ]; then
  say "cpu_bench (per kernel)"
  # The Winograd algorithm table (ours only) runs in a process of its own: its large
  # per-repetition buffers left the heap slower for the small-op benchmarks that followed it
  # (op_overhead_nograd 5.4 -> 6.5 ms in one run, 2026-11-26).
  with_tunables "$build/bench/cpu_bench" --benchmark_filter=-conv2d_winograd \
    --benchmark_out="$out/cpu_bench.json" --benchmark_out_format=json \
    >"$out/logs/cpu_bench.log" 2>&1 || { tail -30 "$out/logs/cpu_bench.log"; exit 1; }
  say "cpu_bench conv2d_winograd (im2col / F(2x2) / F(4x4) per ResNet layer)"
  with_tunables "$build/bench/cpu_bench" --benchmark_filter=conv2d_winograd \
    --benchmark_out="$out/conv2d_winograd.json" --benchmark_out_format=json \
    >"$out/logs/conv2d_winograd.log" 2>&1 || { tail -30 "$out/logs/conv2d_winograd.log"; exit 1; }
fi

# ---- end-to-end suite: one fresh process per benchmark ----------------------------------------
mapfile -t names < <("$build/bench/e2e_bench" --benchmark_list_tests=true)
for name in "${names[@]}"; do
  if [ -n "${E2E_FILTER:-}" ] && ! [[ $name =~ $E2E_FILTER ]]; then continue; fi
  # Listed names carry Google Benchmark's suffixes (/iterations:3/real_time): not in file names.
  file=$(printf '%s' "${name%%/iterations:*}" | tr '/' '.')
  say "$name"
  # Anchored filter on the listed name: it holds no regex characters but '/', '_' and ':'.
  env_cmd=(env timeout 900)
  [[ $name =~ ^BM_e2e_(train|infer)_ ]] && [ -n "$tunables" ] && env_cmd=(env "GLIBC_TUNABLES=$tunables" timeout 900)
  # Our training steps alone also leave a per-op profile of one more step (model_bench.cpp).
  [[ $name =~ ^BM_e2e_train_.*/ours ]] && env_cmd=("${env_cmd[0]}" "E2E_PROFILE_DIR=$out/profile" "${env_cmd[@]:1}")
  if ! "${env_cmd[@]}" "$build/bench/e2e_bench" --benchmark_filter="^${name}\$" \
      --benchmark_out="$out/e2e/$file.json" --benchmark_out_format=json \
      >"$out/logs/$file.log" 2>&1; then
    say "FAILED: $name (see $out/logs/$file.log)"; tail -5 "$out/logs/$file.log"
  fi
done

# ---- the loader's reference: torchvision's transforms on PIL images, one core -------------------
# Debian's python3-torchvision (only /usr/bin/python3 has torch). Same files, same ops as our
# geo-safe preset (RandomResizedCrop 0.8-1, ratio 0.9-1.1; ColorJitter 0.2/0.2/0.15/0.04;
# GaussianBlur(3) with p 0.1) and the 'none' preset (resize), to a normalised float tensor.
data=${BENCH_DATA_DIR:-../shared/data/penn-campus/crops224}
ref_name=BM_e2e_loader_geo_safe/torchvision
if [[ -z ${E2E_FILTER:-} || $ref_name =~ ${E2E_FILTER} ]] && [ -f "$data/metadata.csv" ] &&
   /usr/bin/python3 -c 'import torchvision' 2>/dev/null; then
  say "torchvision loader reference"
  BENCH_QUICK=${BENCH_QUICK:-0} /usr/bin/python3 - "$data" "$out/e2e/loader_torchvision.json" \
      >"$out/logs/loader_torchvision.log" 2>&1 <<'EOF' || say "FAILED: torchvision reference"
import csv, json, os, statistics, sys, time
import torch, torchvision
from PIL import Image
import torchvision.transforms as T
data, dest = sys.argv[1], sys.argv[2]
torch.set_num_threads(1); torch.manual_seed(0)
files = [os.path.join(data, r["image_file"]) for r in csv.DictReader(open(os.path.join(data, "metadata.csv")))]
norm = [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
presets = {
    "geo_safe": T.Compose([T.RandomResizedCrop(224, scale=(0.8, 1.0), ratio=(0.9, 1.1)),
                           T.ColorJitter(0.2, 0.2, 0.15, 0.04),
                           T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.1)] + norm),
    "none": T.Compose([T.Resize((224, 224))] + norm),
}
quick = os.environ.get("BENCH_QUICK") == "1"
rows = []
for name, tf in presets.items():
    def epoch():
        t = time.perf_counter()
        for f in files:
            with Image.open(f) as im:
                x = tf(im.convert("RGB"))
        return time.perf_counter() - t
    if not quick: epoch()  # warm-up: file cache, lazy imports
    ms = [epoch() * 1e3 for _ in range(1 if quick else 3)]
    med = statistics.median(ms)
    rows.append({"name": f"BM_e2e_loader_{name}/torchvision", "run_type": "iteration",
                 "iterations": len(ms), "real_time": med, "time_unit": "ms",
                 "ms_median": med, "ms_min": min(ms), "ms_max": max(ms),
                 "items_per_s": len(files) / (med * 1e-3), "steps": len(ms),
                 "workers": 1, "images_per_epoch": len(files)})
    print(rows[-1], flush=True)
json.dump({"context": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                       "executable": sys.executable},
           "benchmarks": rows}, open(dest, "w"), indent=1)
EOF
fi

# ---- PyTorch's side of the per-op profiles: the same training step under torch.profiler ----------
# (Debian's torch 1.13, the library LibTorch is; 2 threads as the benchmarks; one warm-up step.)
if [[ -z ${E2E_FILTER:-} || BM_e2e_train_/profile =~ ${E2E_FILTER} ]] &&
   /usr/bin/python3 -c 'import torchvision' 2>/dev/null; then
  say "PyTorch per-op profile of the training steps"
  OMP_NUM_THREADS=${BENCH_THREADS:-2} timeout 900 /usr/bin/python3 bench/gpu/torch_e2e.py --device cpu \
    --bench train --arch resnet18,resnet50,convnext_tiny --precision fp32 --layouts channels_last \
    --batch 8 --warmup 1 --steps 1 --profile "$out/profile" --profile-steps 1 \
    --json "$out/profile/torch_steps.json" >"$out/logs/torch_profile.log" 2>&1 ||
    say "FAILED: PyTorch profile (see $out/logs/torch_profile.log)"
fi

python3 tools/bench_report.py env "$out/env.json" --build-dir "$build" --phase end
if [ "$report" != "-" ]; then
  python3 tools/bench_report.py report "$out" --out "$report" ${BENCH_DATE:+--date "$BENCH_DATE"}
  say "wrote $report"
fi
say "results in $out"
