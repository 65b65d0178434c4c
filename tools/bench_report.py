#!/usr/bin/env python3
"""tools/bench_report.py — turns the CPU suite's JSON into docs/BENCHMARKS.md.

  python3 tools/bench_report.py env OUT/env.json --build-dir B --phase start|end
      records the machine, versions and load average (tools/bench_cpu.sh calls it twice)
  python3 tools/bench_report.py report OUT --out docs/BENCHMARKS.md [--date YYYY-MM-DD]
      reads OUT/env.json, OUT/cpu_bench.json and OUT/e2e/*.json and writes the report
  python3 tools/bench_report.py report [OUT] --gpu GPU_OUT --out docs/BENCHMARKS.md
      adds (or refreshes) the GPU tables from the folder tools/gpu_bench.sh wrote; without OUT
      (or without OUT/env.json) the CPU sections of the existing report are kept as they are
  python3 tools/bench_report.py gpu-table GPU_OUT
      prints the plain-text GPU comparison (tools/gpu_bench.sh calls it last)

Benchmarks are paired by name: "BM_<what>/ours" against "BM_<what>/libtorch" (and, for the end
to end models, "/libtorch_nchw": LibTorch's row is the faster of its two layouts; for the loader,
"/torchvision"). Every ratio is ours / theirs of TIME (or of memory): below 1.00 ours is faster
(or smaller), above 1.00 ours is slower (or bigger).

Merging with an existing report: each generated section holds its generated part between
<!-- bench_report:begin --> and <!-- bench_report:end --> and everything outside those markers
is kept (hand-written analysis, notes). A section with the same heading but no markers (written
by hand, e.g. a table measured another way) is kept whole and this run's block is appended to it;
sections this script does not generate are kept as they are; a section whose data is missing
from this run (e.g. SKIP_KERNELS=1) is kept unchanged.
The GPU tables (tools/bench_report_gpu.py) give THROUGHPUT ratios, as the GPU targets are stated:
img/s ours ÷ theirs, above 1.00 ours is faster.
Only the standard library is used, so any python3 runs it.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

BEGIN, END = "<!-- bench_report:begin -->", "<!-- bench_report:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report_gpu  # noqa: E402  (the GPU half; next to this file)
import profile_families  # noqa: E402  (per-op profiles summed by op family; next to this file)


# ---- env -----------------------------------------------------------------------------------------

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # a missing tool just leaves the field empty
        return ""


def cmake_cache(build_dir, key):
    try:
        for line in open(os.path.join(build_dir, "CMakeCache.txt")):
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


def torch_header_version():
    for path in ["/usr/include/torch/csrc/api/include/torch/version.h",
                 "/usr/local/include/torch/csrc/api/include/torch/version.h"]:
        if os.path.exists(path):
            text = open(path).read()
            parts = [re.search(r"TORCH_VERSION_%s (\d+)" % k, text) for k in ("MAJOR", "MINOR", "PATCH")]
            if all(parts):
                return ".".join(p.group(1) for p in parts)
    return ""


def dpkg(pkg):
    return sh("dpkg-query -W -f='${Version}' %s 2>/dev/null" % pkg)


def collect_env(path, build_dir, phase):
    env = {}
    if phase == "end" and os.path.exists(path):
        env = json.load(open(path))
    load = os.getloadavg()
    if phase == "start":
        lscpu = sh("lscpu")
        field = lambda k: (re.search(r"^%s:\s*(.+)$" % re.escape(k), lscpu, re.M) or [None, ""])[1]
        cxx = cmake_cache(build_dir, "CMAKE_CXX_COMPILER")
        os_name = ""
        if os.path.exists("/etc/os-release"):
            m = re.search(r'^PRETTY_NAME="?([^"\n]+)', open("/etc/os-release").read(), re.M)
            os_name = m.group(1) if m else ""
        mem_kb = re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read())
        env = {
            "cpu_model": field("Model name") or platform.processor(),
            "logical_cpus": os.cpu_count(),
            "threads_per_core": field("Thread(s) per core"),
            "l2": field("L2 cache"), "l3": field("L3 cache"),
            "flags_avx512": "avx512f" in field("Flags"),
            "mem_gib": round(int(mem_kb.group(1)) / 2**20, 1) if mem_kb else None,
            "os": os_name, "kernel": platform.release(),
            "compiler": sh("'%s' --version | head -1" % cxx) if cxx else "",
            "cmake": sh("cmake --version | head -1"),
            "build_type": cmake_cache(build_dir, "CMAKE_BUILD_TYPE"),
            "march": cmake_cache(build_dir, "ENGINE_CPU_ARCH"),
            "libtorch_header": torch_header_version(),
            "libtorch_pkg": dpkg("libtorch-dev"),
            "openblas_pkg": dpkg("libopenblas0-pthread") or dpkg("libopenblas0"),
            "onednn_pkg": dpkg("libdnnl2"),
            "benchmark_pkg": dpkg("libbenchmark-dev"),
            "git": sh("git -C '%s' rev-parse --short HEAD" % ROOT),
            "git_dirty": bool(sh("git -C '%s' status --porcelain --untracked-files=no" % ROOT)),
            "glibc_tunables": os.environ.get("BENCH_GLIBC_TUNABLES_USED", ""),
            "time_start": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_start": [round(x, 2) for x in load],
        }
    else:
        env["time_end"] = datetime.datetime.now().isoformat(timespec="seconds")
        env["load_end"] = [round(x, 2) for x in load]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    json.dump(env, open(path, "w"), indent=1)


# ---- reading Google Benchmark JSON ---------------------------------------------------------------

TIME_SCALE_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


class Result:
    """One benchmark: its time in ms (median when available) and its counters."""

    def __init__(self, name, ms, stat, counters, min_ms=None):
        self.name, self.ms, self.stat, self.counters = name, ms, stat, counters
        self.min_ms = min_ms  # the least disturbed run, when the benchmark reports one

    def c(self, key, default=None):
        return self.counters.get(key, default)


def load_results(paths):
    """name -> Result. Aggregates (repetitions) give the median; repeated iteration rows their
    median; custom ms_median counters (the e2e suite) win over real_time."""
    rows, contexts = {}, []
    for path in paths:
        try:
            doc = json.load(open(path))
        except (OSError, ValueError) as e:
            print("bench_report: skipping %s (%s)" % (path, e), file=sys.stderr)
            continue
        contexts.append(doc.get("context", {}))
        for b in doc.get("benchmarks", []):
            if b.get("error_occurred"):
                continue
            name = base_name(b.get("run_name") or b["name"])
            rows.setdefault(name, []).append(b)
    results = {}
    for name, bs in rows.items():
        meds = [b for b in bs if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
        its = [b for b in bs if b.get("run_type", "iteration") == "iteration"]
        pick = meds[0] if meds else (its[0] if its else bs[0])
        scale = TIME_SCALE_MS.get(pick.get("time_unit", "ns"), 1e-6)
        if "ms_median" in pick:
            ms, stat = pick["ms_median"], "median of %d" % int(pick.get("steps", 1))
        elif meds:
            ms = pick["real_time"] * scale
            stat = "median of %d reps" % int(pick.get("repetitions") or len(its))
        elif len(its) > 1:
            ms, stat = statistics.median(b["real_time"] * scale for b in its), "median of %d runs" % len(its)
        else:
            ms, stat = pick["real_time"] * scale, "mean of %d iters" % int(pick.get("iterations", 1))
        skip = {"name", "run_name", "run_type", "aggregate_name", "real_time", "cpu_time", "time_unit",
                "iterations", "repetitions", "repetition_index", "threads", "family_index",
                "per_family_instance_index", "aggregate_unit"}
        counters = {k: v for k, v in pick.items() if k not in skip and isinstance(v, (int, float))}
        mins = [b for b in bs if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "min"]
        if mins:
            min_ms = mins[0]["real_time"] * TIME_SCALE_MS.get(mins[0].get("time_unit", "ns"), 1e-6)
        else:
            min_ms = pick.get("ms_min", pick.get("min_ms"))
        results[name] = Result(name, ms, stat, counters, min_ms)
    return results, contexts


def base_name(name):
    """The benchmark's own name without Google Benchmark's option suffixes
    (/iterations:5, /min_time:0.200, /repeats:5, /real_time, /manual_time, _median, ...)."""
    name = re.sub(r"_(mean|median|stddev|cv|min|max)$", "", name)
    parts = [p for p in name.split("/")
             if not re.match(r"^(iterations|repeats|min_time|min_warmup_time|threads):", p)
             and p not in ("real_time", "manual_time", "process_time")]
    return "/".join(parts)


def split_name(name):
    base, _, side = name.rpartition("/")
    return base, side


# ---- formatting ------------------------------------------------------------------------------------

def fmt_ms(ms):
    if ms is None:
        return "—"
    return "%.0f" % ms if ms >= 100 else ("%.1f" % ms if ms >= 10 else "%.2f" % ms)


def fmt_ratio(x):
    return "—" if x is None else "%.2f×" % x


def fmt_num(x, digits=0):
    return "—" if x is None else ("{:,.%df}" % digits).format(x)


def peak(r):
    """Peak MiB when the reading is trustworthy (fresh process or working reset), else None."""
    if r is None or r.c("peak_mb") is None:
        return None
    if r.c("first_in_process", 0) >= 1 or r.c("peak_reset_ok", 0) >= 1:
        return r.c("peak_mb")
    return None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---- sections --------------------------------------------------------------------------------------

MODELS = [("resnet18", "ResNet-18"), ("resnet50", "ResNet-50"), ("convnext_tiny", "ConvNeXt-Tiny")]


def best_libtorch(res, base):
    """The faster of LibTorch's channels_last and NCHW rows, and its layout's name."""
    cands = [(res.get(base + "/libtorch"), "channels_last"), (res.get(base + "/libtorch_nchw"), "NCHW")]
    cands = [(r, n) for r, n in cands if r is not None]
    if not cands:
        return None, ""
    return min(cands, key=lambda rn: rn[0].ms)


def fmt_load(*rs):
    loads = [r.c("load_1m") for r in rs if r is not None and r.c("load_1m") is not None]
    return "%.1f" % max(loads) if loads else "—"


def model_section(res, mode, slower):
    rows, phase_rows = [], []
    for arch, label in MODELS:
        base = "BM_e2e_%s_%s" % (mode, arch)
        ours = res.get(base + "/ours")
        theirs, layout = best_libtorch(res, base)
        paired = res.get(base + "/paired")
        if ours is None and theirs is None and paired is None:
            continue
        other = res.get(base + ("/libtorch_nchw" if layout == "channels_last" else "/libtorch"))
        r = ratio(ours and ours.ms, theirs and theirs.ms)
        pr = paired and paired.c("ratio_median")
        pcell = "—"
        if pr is not None:
            pcell = "**%s** (%s–%s, %d rounds, vs %s)" % (
                fmt_ratio(pr), fmt_ratio(paired.c("ratio_min")).rstrip("×"), fmt_ratio(paired.c("ratio_max")),
                int(paired.c("rounds", 0)), "channels_last" if paired.c("best_is_channels_last") else "NCHW")
        rows.append([label,
                     "%s (%s img/s)" % (fmt_ms(ours and ours.ms), fmt_num(ours and ours.c("items_per_s"), 1)),
                     "%s (%s img/s), %s" % (fmt_ms(theirs and theirs.ms),
                                            fmt_num(theirs and theirs.c("items_per_s"), 1), layout or "—"),
                     fmt_ms(other and other.ms),
                     fmt_ratio(r), pcell,
                     fmt_num(peak(ours)), fmt_num(peak(theirs)), fmt_ratio(ratio(peak(ours), peak(theirs))),
                     fmt_load(ours, theirs, other, paired)])
        judged = pr if pr is not None else r
        if judged is not None and judged > 1.05:
            slower.append("%s %s: ours %s of LibTorch's time (%s)" % (
                label, "training step" if mode == "train" else "inference", fmt_ratio(judged),
                "paired median" if pr is not None else "%s ms vs %s ms" % (fmt_ms(ours.ms), fmt_ms(theirs.ms))))
        if mode == "train":
            for side, rr in (("ours", ours), ("LibTorch (%s)" % layout, theirs)):
                if rr is not None and rr.c("fwd_ms") is not None:
                    phase_rows.append([label, side, fmt_ms(rr.c("fwd_ms")), fmt_ms(rr.c("bwd_ms")),
                                       fmt_ms(rr.c("opt_ms")), fmt_ms(rr.ms)])
    if not rows:
        return None
    steps = sorted({"%d warm-up + %d timed" % (int(r.c("warmup", 0)), int(r.c("steps", 0)))
                    for r in res.values() if r.name.startswith("BM_e2e_%s_" % mode) and r.c("steps")})
    what = ("one training step: zero_grad (gradients dropped), forward, MSE loss on the 2-output "
            "head, backward, AdamW update (lr 1e-4, weight decay 0.01), model in training mode"
            if mode == "train" else "forward only, eval mode, no autograd")
    text = ["Batch 8, 224×224, float32, %s. Both sides use the same thread count and the same input images; "
            "LibTorch runs torchvision-equivalent networks written with `torch::nn` "
            "(`bench/e2e/torch_models.h`) in both layouts, and its column is the faster layout (\"other "
            "layout\" is the slower)." % what,
            "",
            "- **alone**: each side in its own fresh process; time = median ms per step (%s), img/s = 8 / median. "
            "Peak MiB = that process's peak resident memory during the steps minus its resident memory before "
            "the model and inputs were built: weights, inputs, gradients, optimizer state, activations, library "
            "workspaces and allocator slack all count; setup temporaries do not (the high-water mark is reset "
            "when the steps begin)." % ", ".join(steps),
            "- **paired**: ours and both LibTorch layouts in one process, one step of each per round in rotating "
            "order, so load from other jobs hits all sides alike; the median over rounds of ours / LibTorch "
            "(range in parentheses). On a shared machine this is the ratio to trust.",
            "- **load**: the highest 1-minute load average seen at the start or end of that model's "
            "benchmarks; the benchmark's own 2 threads account for about 2 of it, so on this 2-CPU machine "
            "anything well above 2 means other jobs were competing for the cores.",
            "",
            table(["Model", "ours ms (img/s), alone", "LibTorch ms (img/s), layout, alone", "LibTorch other layout ms",
                   "time ours/LibTorch, alone", "time ours/LibTorch, paired", "ours peak MiB",
                   "LibTorch peak MiB", "memory ours/LibTorch", "load"], rows)]
    if phase_rows:
        text += ["", "Where a training step's time goes (alone runs, median ms; forward includes zero_grad and "
                 "the loss):", "", table(["Model", "side", "forward", "backward", "AdamW", "step"], phase_rows)]
    return "\n".join(text)


def knn_section(res, slower):
    rows = []
    sizes = sorted({int(m.group(1)) for n in res for m in [re.match(r"BM_e2e_knn_(\d+)/", n)] if m})
    for n in sizes:
        ours, theirs = res.get("BM_e2e_knn_%d/ours" % n), res.get("BM_e2e_knn_%d/libtorch" % n)
        r = ratio(ours and ours.ms, theirs and theirs.ms)
        agree = ours and ours.c("agree")
        rows.append(["{:,}".format(n), fmt_ms(ours and ours.ms), fmt_ms(theirs and theirs.ms),
                     "**%s**" % fmt_ratio(r), fmt_num(ours and ours.c("GFLOP/s"), 1),
                     fmt_num(theirs and theirs.c("GFLOP/s"), 1),
                     "—" if agree is None else "%.2f%%" % (100 * agree),
                     fmt_num(peak(ours)), fmt_num(peak(theirs)), fmt_load(ours, theirs)])
        if r is not None and r > 1.05:
            slower.append("k-NN over %s bank vectors: ours %s of LibTorch's time" % ("{:,}".format(n), fmt_ratio(r)))
    if not rows:
        return None
    return "\n".join([
        "1024 queries against a bank of N vectors of dim 768 (random normal), k = 15 nearest by squared L2. "
        "Ours: `engine::knn_search` (fused: blocked distance GEMM with per-query heaps, no [1024, N] matrix). "
        "LibTorch: `torch::cdist` + `topk(15, largest=false)` (materialises the [1024, N] distance matrix). "
        "GFLOP/s counts the distance GEMM (2·1024·N·768). \"same neighbours\" = share of our 15 neighbours "
        "that LibTorch also lists. The 1,000,000-vector bank (3 GB, plus a 4 GB distance matrix for cdist) "
        "is not run on the 2-core build machine; 250,000 is the largest size here.",
        "",
        table(["bank N", "ours ms", "LibTorch ms", "time ours/LibTorch", "ours GFLOP/s", "LibTorch GFLOP/s",
               "same neighbours", "ours peak MiB", "LibTorch peak MiB", "load"], rows)])


def loader_section(res, slower):
    rows = []
    for preset, label in (("geo_safe", "geo-safe (RandomResizedCrop + ColorJitter + p=0.1 blur)"),
                          ("none", "none (resize only)")):
        ours, ref = res.get("BM_e2e_loader_%s/ours" % preset), res.get("BM_e2e_loader_%s/torchvision" % preset)
        if ours is None and ref is None:
            continue
        o, t = ours and ours.c("items_per_s"), ref and ref.c("items_per_s")
        r = ratio(t, o)  # time per image ours/theirs = their rate / our rate
        rows.append([label, fmt_num(o), fmt_num(ours and ours.c("per_worker_images_per_s")), fmt_num(t),
                     "**%s**" % fmt_ratio(r), fmt_load(ours)])
        if r is not None and r > 1.05:
            slower.append("Loader, %s: ours %s of torchvision's time per image" % (label, fmt_ratio(r)))
    if not rows:
        return None
    two = res.get("BM_e2e_loader_geo_safe_2workers/ours")
    text = ["JPEG decode + augmentation + ImageNet normalisation to float, on the 500 real 224×224 crops "
            "of `penn-campus/crops224` (no image cache: every image decoded every epoch). Ours: `i2g::Loader` "
            "with one worker thread (so images/s of wall time is the per-core rate). Reference: torchvision "
            "0.14's transforms on PIL images in Python (`/usr/bin/python3`, one thread), the same ops. "
            "Time ratio = time per image, ours/torchvision.", "",
            table(["preset", "ours img/s (1 core)", "ours img/s per busy worker", "torchvision img/s (1 core)",
                   "time ours/torchvision", "load"], rows)]
    if two is not None:
        train = [r.c("items_per_s") for n, r in res.items()
                 if n.startswith("BM_e2e_train_") and n.endswith("/ours") and r.c("items_per_s")]
        need = (", far more than the %.1f-%.1f img/s our training steps consume here: the loader is not "
                "the bottleneck on CPU" % (min(train), max(train))) if train else ""
        text += ["", "With 2 worker threads (geo-safe): %s img/s in total%s." % (fmt_num(two.c("items_per_s")), need)]
    return "\n".join(text)


def kernel_descriptions():
    """benchmark base name -> (file, first comment paragraph) from bench/cpu/*_bench.cpp."""
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "cpu", "*_bench.cpp"))):
        text = open(path).read()
        para = []
        for line in text.splitlines():
            if not line.startswith("//"):
                break
            s = line[2:].strip()
            if not s:
                break
            para.append(s)
        desc = " ".join(para)
        desc = re.sub(r"^\S+\.cpp\s+[—-]+\s*", "", desc)
        bases = set(re.findall(r'"(BM_[A-Za-z0-9_]+)/', text))
        # conv_bench.h cases: .name = "conv2d_3x3" registers BM_conv2d_3x3_fwd and _fwd_bwd.
        for case in re.findall(r'\.name = "([A-Za-z0-9_]+)"', text):
            bases.update({"BM_%s_fwd" % case, "BM_%s_fwd_bwd" % case})
        for base in bases:
            out[base] = (os.path.relpath(path, ROOT), desc)
    return out


def kernel_section(res, slower):
    descs = kernel_descriptions()
    bases = sorted({split_name(n)[0] for n in res if split_name(n)[1] in ("ours", "libtorch")})
    rows, notes = [], {}
    for base in bases:
        ours, theirs = res.get(base + "/ours"), res.get(base + "/libtorch")
        if ours is None and theirs is None:
            continue

        def rate(r):
            if r is None:
                return "—"
            for k in ("GFLOPs", "GFLOP/s"):
                if r.c(k) is not None:
                    return "%.1f GFLOP/s" % r.c(k)
            if r.c("bytes_per_second") is not None:
                return "%.1f GB/s" % (r.c("bytes_per_second") / 1e9)
            return "—"
        r = ratio(ours and ours.ms, theirs and theirs.ms)
        rmin = ratio(ours and ours.min_ms, theirs and theirs.min_ms)
        rows.append([base.replace("BM_", "", 1), fmt_ms(ours and ours.ms), fmt_ms(theirs and theirs.ms),
                     "**%s**" % fmt_ratio(r), "%s / %s (%s)" % (fmt_ms(ours and ours.min_ms),
                                                                 fmt_ms(theirs and theirs.min_ms), fmt_ratio(rmin)),
                     rate(ours), rate(theirs), (ours or theirs).stat])
        if r is not None and r > 1.05:
            slower.append("kernel %s: ours %s of LibTorch's time" % (base.replace("BM_", "", 1), fmt_ratio(r)))
        if base in descs:
            notes.setdefault(descs[base], []).append(base.replace("BM_", "", 1))
    if not rows:
        return None
    text = ["This run of `cpu_bench` (`tools/bench_cpu.sh`; machine, date and load under \"Machine and "
            "versions\"): each op on its own, ours next to LibTorch in one process, both on 2 threads. Time in "
            "ms per call, the statistic column says which; \"min\" is the least disturbed call or repetition "
            "(other jobs only add time), rates are computed by each benchmark from its own timing.", "",
            table(["benchmark", "ours ms", "LibTorch ms", "time ours/LibTorch", "min: ours / LibTorch (ratio)",
                   "ours rate", "LibTorch rate", "statistic"], rows), ""]
    for (path, desc), names in notes.items():
        text.append("- `%s` (%s): %s" % (path, ", ".join(sorted(names)), desc))
    return "\n".join(text)


def machine_section(env, contexts, date, results):
    load_s, load_e = env.get("load_start"), env.get("load_end")
    ncpu = env.get("logical_cpus") or 0
    bench_loads = [c.get("load_avg") for c in contexts if c.get("load_avg")]
    bench_loads += [[r.c("load_1m")] for r in results if r.c("load_1m") is not None]
    lines = [
        "| | |", "|---|---|",
        "| date | %s (run %s → %s) |" % (date, env.get("time_start", "?"), env.get("time_end", "?")),
        "| CPU | %s, %s logical CPUs (%s thread(s) per core), L2 %s, L3 %s, AVX-512: %s |" % (
            env.get("cpu_model", "?"), ncpu, env.get("threads_per_core", "?"), env.get("l2", "?"),
            env.get("l3", "?"), "yes" if env.get("flags_avx512") else "no"),
        "| memory | %s GiB |" % env.get("mem_gib", "?"),
        "| OS | %s, Linux %s |" % (env.get("os", "?"), env.get("kernel", "?")),
        "| threads | 2 on both sides (one OpenMP pool for ours, OpenBLAS single-threaded inside it; `torch::set_num_threads(2)` for LibTorch) |",
        "| memory allocator | %s |" % (
            ("training, inference and per-kernel rows: glibc on both sides with `GLIBC_TUNABLES=%s` (freed "
             "memory stays mapped, so no step pays page faults for memory freed by the other side in the "
             "paired runs; see tools/bench_cpu.sh); k-NN and loader rows: glibc's defaults. Ours also keeps "
             "its large blocks (engine/host_cache.h)" % env["glibc_tunables"])
            if env.get("glibc_tunables") else
            "glibc defaults on both sides; ours keeps its large blocks (engine/host_cache.h)"),
        "| compiler | %s, %s, -O3 -march=%s |" % (env.get("compiler", "?"), env.get("build_type", "?"),
                                                 env.get("march", "?")),
        "| LibTorch | %s (torch/version.h), Debian libtorch-dev %s, oneDNN (libdnnl2) %s |" % (
            env.get("libtorch_header", "?"), env.get("libtorch_pkg", "?"), env.get("onednn_pkg", "?")),
        "| our BLAS | OpenBLAS (pthread) %s |" % env.get("openblas_pkg", "?"),
        "| Google Benchmark | %s |" % env.get("benchmark_pkg", "?"),
        "| commit | %s%s |" % (env.get("git", "?"), " + uncommitted changes" if env.get("git_dirty") else ""),
        "| load average (1/5/15 min) | start %s, end %s |" % (load_s, load_e),
    ]
    busy = max([(load_s or [0])[0], (load_e or [0])[0]] + [b[0] for b in bench_loads if b]) if ncpu else 0
    if ncpu and busy > ncpu + 1:
        lines += ["", "**Noise:** this machine was shared with other jobs during the run (1-minute load average "
                  "up to %.1f on %d CPUs, of which the benchmark's own 2 threads are about 2). Absolute times "
                  "are inflated, and LibTorch slows down more than ours when the cores are oversubscribed, so "
                  "even the paired ratios move by tens of percent between runs: rerun on a quiet machine "
                  "before drawing conclusions." % (busy, ncpu)]
    elif ncpu:
        lines += ["", "**Noise:** a shared build machine, quiet during this run: the 1-minute load average was "
                  "at most %.1f on %d CPUs, about 2 of which is the benchmark's own 2 threads, so other jobs "
                  "took at most ~%.1f CPU at times (each table's load column says when). Expect ±10-20%% "
                  "between runs for single rows; the paired ratios are the steadiest numbers."
                  % (busy, ncpu, max(0.0, busy - 2))]
    return "\n".join(lines)


GPU_HOWTO = """The GPU suites run on a GPU machine (an H100 or H200), not here. Build the CUDA
configuration on the build machine (`cmake --preset cuda-release && cmake --build build/cuda-release -j`),
pack its binaries (`tools/gpu_stage.sh build/cuda-release build/gpu-stage`), and on the GPU machine run
`GPU_SESSION_BUDGET=560 tools/gpu_session.sh OUT build/gpu-stage` (about 10 minutes), which runs

- `tools/gpu_check.sh`: every CUDA test, the app and model parity on CUDA, every kernel lab in
  `bench/cuda/` (each validates against the CPU reference, then times our kernels next to cuBLAS /
  cuDNN), PyTorch on the labs' shapes (`bench/gpu/torch_kernels.py`) and compute-sanitizer;
- `tools/gpu_bench.sh`: the end-to-end suite of `bench/gpu/`, our training step, inference and k-NN
  next to PyTorch eager, torch.compile and LibTorch in the same run;

then, back here, `tools/bench_report.py report out/bench-cpu --gpu OUT/bench --out docs/BENCHMARKS.md`
writes the GPU tables below (README.md, "On the GPU", has every step).

Numbers carry the card, date and what they were compared with in the same run (see `../shared/GPU.md`,
"Measuring honestly")."""

SLOWER_PROSE = """(Analysis to be written from the numbers above: for each row that is slower, which part of
the step takes the time and why.)"""


# ---- merging with the existing file ------------------------------------------------------------------

def split_sections(text):
    """(preamble, [(heading, body)]) split at '## ' headings."""
    pre, secs, cur = [], [], None
    for line in text.splitlines():
        if line.startswith("## "):
            cur = (line[3:].strip(), [])
            secs.append(cur)
        elif cur is None:
            pre.append(line)
        else:
            cur[1].append(line)
    return "\n".join(pre), [(h, "\n".join(b)) for h, b in secs]


def merge_body(old, generated, default_prose):
    block = "%s\n%s\n%s" % (BEGIN, generated, END)
    if old is None:
        return "\n" + block + ("\n\n" + default_prose if default_prose else "") + "\n"
    if BEGIN in old and END in old:
        i, j = old.index(BEGIN), old.index(END) + len(END)
        return old[:i] + block + old[j:]
    # Written by hand (no markers): keep all of it, numbers included, and add this run's block.
    return old.rstrip("\n") + "\n\n" + block


def slower_lines(old_body):
    """The "- ..." rows of an old generated "What is still slower" block: (cpu rows, gpu rows)."""
    if not old_body or BEGIN not in old_body or END not in old_body:
        return [], []
    block = old_body[old_body.index(BEGIN):old_body.index(END)]
    rows = [line[2:] for line in block.splitlines() if line.startswith("- ") and line != "- none"]
    return [r for r in rows if not r.startswith("GPU ")], [r for r in rows if r.startswith("GPU ")]


PROFILE_ARCHS = [("ResNet-18", "resnet18"), ("ResNet-50", "resnet50"), ("ConvNeXt-Tiny", "convnext_tiny")]


def profile_section(out_dir, torch_label, slower=None):
    """Where a CPU training step's time goes, by op family, ours next to PyTorch (tools/bench_cpu.sh
    leaves one profiled step of each side in out_dir/profile); None when the run has none."""
    folder = os.path.join(out_dir, "profile")
    models = []
    for title, arch in PROFILE_ARCHS:
        ours = os.path.join(folder, "profile_train_%s_cpu.trace.json" % arch)
        theirs = os.path.join(folder, "profile_train_%s_fp32_eager_channels_last_torch.json" % arch)
        models.append((title, [("ours", "ours", ours, 1), ("PyTorch", "torch", theirs, 1)]))
    intro = ("One training step (batch 8, 224×224, the step of the table above) of each side, profiled op by op after "
             "the timed steps: ours with `engine::profiler` (host clock; each op once, its backward under its "
             "autograd node's name, `bench/e2e/model_bench.cpp`), PyTorch with `torch.profiler` (every aten op's "
             "self time; PyTorch %s from Debian's python3-torch, the library the LibTorch above is, 2 threads, "
             "channels_last; "
             "`bench/gpu/torch_e2e.py --device cpu --profile`). Both are summed by op family "
             "(`tools/profile_families.py`: ConvNeXt's MLP is one op of ours, so its GEMMs and GELU are one "
             "family on both sides; PyTorch's optimizer row is every op run inside `Optimizer.step`). "
             "Profiling adds its own cost to each op (more on the PyTorch side), so compare families, not the "
             "totals with the timed steps above." % torch_label.replace("LibTorch ", "").replace(" (Debian)", ""))
    return profile_families.section(models, intro, slower, scope="CPU training step, ", min_ms=1.0)


def write_report(out_dir, dest, date, gpu_dir=None):
    """Writes dest from the CPU suite's folder (out_dir; None or without env.json: the CPU sections
    of dest are kept) and the GPU suite's folder (gpu_dir; None: the GPU sections are kept)."""
    has_cpu = bool(out_dir) and os.path.exists(os.path.join(out_dir, "env.json"))
    env = json.load(open(os.path.join(out_dir, "env.json"))) if has_cpu else {}
    kernel_res, kctx = load_results([os.path.join(out_dir, "cpu_bench.json")]) \
        if has_cpu and os.path.exists(os.path.join(out_dir, "cpu_bench.json")) else ({}, [])
    e2e_res, ectx = load_results(sorted(glob.glob(os.path.join(out_dir, "e2e", "*.json")))) \
        if has_cpu else ({}, [])
    gpu = bench_report_gpu.GpuRun(gpu_dir) if gpu_dir else None
    has_gpu = gpu is not None and not gpu.empty()
    if gpu_dir and not has_gpu:
        print("bench_report: no GPU results in %s; the GPU sections are kept" % gpu_dir, file=sys.stderr)
    cpu_date = date or datetime.date.today().isoformat()
    gpu_date = date or ((gpu.env.get("date") or "")[:10] if has_gpu else "") or cpu_date
    slower, gpu_slower = [], []
    torch_label = "LibTorch %s (Debian)" % ".".join((env.get("libtorch_header") or "1.13").split(".")[:2])
    sections = [  # (heading, generated body or None = keep the old one, default prose)
        ("Machine and versions (CPU suite)", machine_section(env, kctx + ectx, cpu_date, list(e2e_res.values()))
         if has_cpu else None, None),
        ("End-to-end training step vs LibTorch (CPU)", model_section(e2e_res, "train", slower), None),
        ("Where the training step's time goes (CPU, by op family)",
         profile_section(out_dir, torch_label, slower) if has_cpu else None, None),
        ("Inference vs LibTorch (CPU)", model_section(e2e_res, "infer", slower), None),
        ("k-NN retrieval vs LibTorch (CPU)", knn_section(e2e_res, slower), None),
        ("Data loader vs torchvision (CPU)", loader_section(e2e_res, slower), None),
        ("CPU kernels vs %s" % torch_label, kernel_section(kernel_res, slower), None),
    ]
    gpu_sections = bench_report_gpu.sections(gpu, gpu_slower) if has_gpu else [
        (h, None, prose) for h, prose in (
            ("End-to-end training step vs PyTorch (GPU)", None),
            ("Where the training step's time goes (GPU, by op family)", None),
            ("Inference vs PyTorch (GPU)", None), ("k-NN retrieval vs PyTorch (GPU)", None))]

    old_pre, old_secs = ("", [])
    if os.path.exists(dest):
        old_pre, old_secs = split_sections(open(dest).read())
    old_map = dict(old_secs)
    # The slower list: this run's rows where this run measured, the old report's rows elsewhere.
    old_cpu, old_gpu = slower_lines(old_map.get("What is still slower and why"))
    rows = (slower if has_cpu else old_cpu) + (gpu_slower if has_gpu else old_gpu)
    sections.append(("What is still slower and why",
                     "Rows where ours takes more than 1.05× the peer's time in the same run (CPU: LibTorch; "
                     "GPU: PyTorch eager, the faster layout; k-NN: cdist + topk), and op families where "
                     "the per-op profiles put ours above 1.05× PyTorch's time:\n\n" +
                     ("\n".join("- " + r for r in rows) if rows else "- none"), SLOWER_PROSE))
    howto = GPU_HOWTO
    if has_gpu:
        howto += "\n\n" + bench_report_gpu.machine_and_targets(gpu, gpu_date)
    elif bench_report_gpu.TARGETS_MARK in (old_map.get("GPU suite") or ""):
        howto = None  # keep the last GPU run's machine table and targets
    sections.append(("GPU suite", howto, "**Not yet measured.**"))
    sections += gpu_sections
    sections.append(("How to reproduce",
                     "```\ntools/bench_cpu.sh            # build, run everything (~5-8 min on 2 cores), write this file\n"
                     "E2E_FILTER=knn SKIP_KERNELS=1 tools/bench_cpu.sh   # a subset\n"
                     "build/bench-cpu/bench/e2e_bench --benchmark_filter='BM_e2e_train_resnet18/'   # one by hand\n"
                     "# GPU machine, with build/gpu-stage from tools/gpu_stage.sh (README.md, \"On the GPU\"):\n"
                     "GPU_SESSION_BUDGET=560 tools/gpu_session.sh out/session build/gpu-stage   # ~10 min\n"
                     "tools/gpu_bench.sh out/bench-gpu build/gpu-stage   # the end-to-end part alone\n"
                     "python3 tools/bench_report.py report out/bench-cpu --gpu out/bench-gpu --out docs/BENCHMARKS.md\n```\n"
                     "Raw JSON and logs: `out/bench-cpu/` (`e2e/*.json`, `cpu_bench.json`, `env.json`, `logs/`) and "
                     "`out/bench-gpu/` (one JSON per step, `env.json`, `steps.json`, `logs/`). "
                     "The report is regenerated by `tools/bench_report.py report out/bench-cpu [--gpu out/bench-gpu] "
                     "--out docs/BENCHMARKS.md`; either folder alone refreshes its own sections and keeps the "
                     "others; text outside the `bench_report` markers is kept.", None))

    generated_headings = {h for h, _, _ in sections}
    # The GPU section's heading named the H100 until a run came from another card.
    if "GPU suite (H100)" in old_map:
        old_map.setdefault("GPU suite", old_map["GPU suite (H100)"])
        generated_headings.add("GPU suite (H100)")
    # A kernel table written by hand under a differently versioned heading still counts as it.
    for h in list(old_map):
        if h.startswith("CPU kernels vs") and h not in generated_headings:
            kh = next(x for x, _, _ in sections if x.startswith("CPU kernels vs"))
            old_map.setdefault(kh, old_map[h])
            generated_headings.add(h)

    parts = ["# Benchmarks", "",
             "Our engine against LibTorch and PyTorch on the same machine, in the same run; every number carries "
             "its date, the machine it ran on, and what it was compared with in the same run (see DESIGN.md). "
             "**CPU tables: every ratio is ours / theirs** of time (below 1.00 ours is faster, above 1.00 ours "
             "is slower) or of memory (below 1.00 ours uses less), with the same thread count on both sides. "
             "**GPU tables: speed = img/s ours ÷ theirs** (above 1.00 ours is faster), as the GPU targets are "
             "stated; memory ratios there are ours ÷ theirs too. Per-kernel notes live in `kernels/README.md`. "
             "The generated tables come from `tools/bench_cpu.sh` (CPU) and `tools/gpu_bench.sh` (GPU, on the "
             "GPU machine) through `tools/bench_report.py report out/bench-cpu [--gpu out/bench-gpu] --out "
             "docs/BENCHMARKS.md`; text outside its markers is written by hand and kept.", ""]
    kept = [(h, b) for h, b in old_secs if h not in generated_headings]
    for heading, body, prose in sections:
        if heading == "What is still slower and why":
            for h, b in kept:  # hand-written sections go before the analysis
                parts += ["## " + h, "", b.strip("\n"), ""]
        old = old_map.get(heading)
        if body is None:
            if old is not None:
                parts += ["## " + heading, "", old.strip("\n"), ""]
            else:
                parts += ["## " + heading, "", "Not measured in this run.", ""]
            continue
        merged = merge_body(old, body, prose)
        if heading == "GPU suite" and has_gpu:  # the placeholder no longer holds
            merged = merged.replace("\n**Not yet measured.**\n", "\n")
        parts += ["## " + heading, "", merged.strip("\n"), ""]
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    open(dest, "w").write("\n".join(parts).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env", help="record machine, versions and load average")
    e.add_argument("path")
    e.add_argument("--build-dir", default="build/bench-cpu")
    e.add_argument("--phase", choices=["start", "end"], default="start")
    r = sub.add_parser("report", help="write the Markdown report")
    r.add_argument("out_dir", nargs="?", help="the CPU suite's folder (tools/bench_cpu.sh)")
    r.add_argument("--gpu", help="the GPU suite's folder (tools/gpu_bench.sh)")
    r.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    r.add_argument("--date", help="the date the report states (default: today; GPU: the run's date)")
    g = sub.add_parser("gpu-table", help="print the GPU suite's comparison as plain text")
    g.add_argument("gpu_dir")
    a = ap.parse_args()
    if a.cmd == "env":
        collect_env(a.path, a.build_dir, a.phase)
    elif a.cmd == "gpu-table":
        print(bench_report_gpu.text_table(bench_report_gpu.GpuRun(a.gpu_dir)))
    else:
        if not a.out_dir and not a.gpu:
            ap.error("report: give the CPU folder, --gpu FOLDER, or both")
        write_report(a.out_dir, a.out, a.date, a.gpu)


if __name__ == "__main__":
    main()
