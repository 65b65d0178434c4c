"""tools/bench_report_gpu.py — the GPU half of tools/bench_report.py: reads the folder that
tools/gpu_bench.sh writes (env.json, steps.json and one JSON per step in the schema of
bench/gpu/e2e_common.h: {"context": {...}, "results": [{...}, ...]}) and turns it into

  - the Markdown sections of docs/BENCHMARKS.md for the GPU (sections(run, slower)), and
  - the plain-text table tools/gpu_bench.sh prints last (text_table(run)).

GPU ratios are of THROUGHPUT, as the targets are stated: img/s (or queries/s) ours ÷ theirs, above
1.00 ours is faster; memory ratios are ours ÷ theirs of peak MiB, below 1.00 ours uses less.
Records are matched by (bench, model, precision) and, per side, by variant:
  ours      "vendor" (cuBLAS/cuDNN for GEMM, conv, BatchNorm, pooling; our kernels elsewhere),
            "ours" (our kernels for every op family), "default" (the engine's defaults), each
            possibly with per-family exceptions ("default+BATCHNORM=ours")
  pytorch   "eager_channels_last", "eager_contiguous", "compile_<mode>"
  libtorch  "eager_channels_last", "eager_contiguous"
The PyTorch/LibTorch cell is the faster layout (named); our headline is the faster of our kernel
choices (named). Only the standard library is used.
"""
import glob
import json
import os

import profile_families

# The targets: (model, precision, peer, goal as speed ours ÷ peer, 2026-11-26 reference
# img/s of the peer on the H100, shared/baselines/).
TARGETS = [
    ("convnext_tiny", "tf32", "eager", 2.0, 904.4),
    ("convnext_tiny", "fp32", "eager", 2.0, 611.6),
    ("resnet50", "tf32", "eager", 1.0, 1665.5),
    ("resnet50", "tf32", "compile", 1.0, 2160.9),
]
# Starts the targets paragraph: its presence in docs/BENCHMARKS.md means a GPU run was reported.
TARGETS_MARK = "Targets (issue 7)"
MODELS = [("resnet18", "ResNet-18"), ("resnet50", "ResNet-50"), ("convnext_tiny", "ConvNeXt-Tiny")]
LABEL = dict(MODELS)
PRECISIONS = [("fp32", "fp32"), ("tf32", "TF32")]
OURS_KERNELS = {"vendor": "cuBLAS/cuDNN", "ours": "own kernels", "default": "engine defaults"}


class GpuRun:
    """Everything in one gpu_bench.sh output folder."""

    def __init__(self, folder):
        self.folder = folder
        self.env = self._read(os.path.join(folder, "env.json")) or {}
        self.steps = (self._read(os.path.join(folder, "steps.json")) or {}).get("steps", [])
        self.records, self.contexts = [], {}
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            if os.path.basename(path) in ("env.json", "steps.json"):
                continue
            doc = self._read(path)
            if not isinstance(doc, dict) or "results" not in doc:
                continue
            ctx = doc.get("context", {})
            merged = self.contexts.setdefault(ctx.get("side", "?"), {})
            for k, v in ctx.items():  # every file of a side adds what the others lack
                merged.setdefault(k, v)
            for r in doc["results"]:
                self.records.append(dict(r, _ctx=ctx, _file=os.path.basename(path)))

    @staticmethod
    def _read(path):
        try:
            return json.load(open(path))
        except (OSError, ValueError):
            return None

    def empty(self):
        return not self.records

    def dry_run(self):
        return self.env.get("device_kind") == "cpu" or any(
            c.get("device_kind") == "cpu" for c in self.contexts.values())

    def find(self, **kw):
        """Records with status ok whose fields equal kw; a value ending in '*' is a prefix."""
        out = []
        for r in self.records:
            if r.get("status") != "ok":
                continue
            if all((str(r.get(k, "")).startswith(v[:-1]) if isinstance(v, str) and v.endswith("*")
                    else r.get(k) == v) for k, v in kw.items()):
                out.append(r)
        return out

    def best(self, **kw):
        """The fastest matching record (highest img_s / queries_s), or None."""
        rs = self.find(**kw)
        key = "queries_s" if kw.get("bench") == "knn" else "img_s"
        return max(rs, key=lambda r: r.get(key) or 0) if rs else None

    # The cells of one (bench, model, precision): each a record or None.
    def row(self, bench, model, precision):
        q = dict(bench=bench, model=model, precision=precision)
        return {
            "ours": self.best(side="ours", **q),
            "ours_vendor": self.best(side="ours", variant="vendor", **q),
            "ours_own": self.best(side="ours", variant="ours", **q),
            "eager": self.best(side="pytorch", variant="eager_*", **q),
            "compile": self.best(side="pytorch", variant="compile_*", **q),
            "libtorch": self.best(side="libtorch", variant="eager_*", **q),
        }


# ---- formatting ------------------------------------------------------------------------------------

def num(x, digits=0):
    return "—" if x is None else ("{:,.%df}" % digits).format(x)


def ms(x):
    if x is None:
        return "—"
    return "%.0f" % x if x >= 100 else ("%.1f" % x if x >= 10 else "%.2f" % x)


def speed(a, b):
    """Throughput ratio a ÷ b (None when either is missing)."""
    return a / b if a and b else None


def xf(x):
    return "—" if x is None else "%.2f×" % x


def layout(r):
    v = (r or {}).get("variant", "")
    return v.replace("eager_", "") if v.startswith("eager_") else v


def ours_kind(r):
    """Our kernel choice in words: "cuBLAS/cuDNN", ..., or with gpu_e2e_bench's per-family
    exceptions, "engine defaults, BATCHNORM ours" for "default+BATCHNORM=ours"."""
    variant = (r or {}).get("variant", "?")
    base, *exceptions = variant.split("+")
    if base not in OURS_KERNELS:
        return variant
    return ", ".join([OURS_KERNELS[base]] + [e.replace("=", " ") for e in exceptions])


def img_cell(r, extra=""):
    if r is None:
        return "—"
    return "%s (%s ms%s)" % (num(r.get("img_s")), ms(r.get("ms_median")), extra)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def steps_note(r):
    """'20 steps' or '7 steps (capped)' of a record."""
    if r is None:
        return ""
    return "%d%s" % (r.get("steps", 0), " capped" if r.get("capped") else "")


def step_counts(records):
    """'5 warm-up + 20 timed steps; 3-12 timed where a benchmark's time cap ran out' over records."""
    if not records:
        return "no steps"
    def span(vals):
        lo, hi = min(vals), max(vals)
        return "%d" % lo if lo == hi else "%d-%d" % (lo, hi)
    full = [r for r in records if not r.get("capped")]
    capped = [r for r in records if r.get("capped")]
    text = "%s warm-up + %s timed steps" % (span([r.get("warmup", 0) for r in records]),
                                           span([r.get("steps", 0) for r in (full or records)]))
    if capped:
        text += "; %s timed in %d benchmark(s) whose time cap ran out" % (
            span([r.get("steps", 0) for r in capped]), len(capped))
    return text


# ---- Markdown sections ------------------------------------------------------------------------------

def machine_and_targets(run, date):
    e, pt, ours, lt = run.env, run.contexts.get("pytorch", {}), run.contexts.get("ours", {}), \
        run.contexts.get("libtorch", {})
    secs = sum(s.get("seconds", 0) for s in run.steps)
    lines = []
    if run.dry_run():
        lines += ["**DRY RUN ON THE CPU** (GPU_BENCH_DEVICE=cpu): these numbers test the pipeline and mean "
                  "nothing.", ""]
    lines += [
        "| | |", "|---|---|",
        "| date | %s (run %s) |" % (date, e.get("date", ours.get("date", "?"))),
        "| card | %s, driver %s, %s |" % (ours.get("device") or e.get("gpu", "?"), e.get("driver", "?"),
                                         e.get("gpu_memory", "?")),
        "| host | %s, %s logical CPUs, %s |" % (e.get("cpu", "?"), e.get("logical_cpus", "?"), e.get("os", "?")),
        "| ours | commit %s%s; CUDA runtime %s, cuBLAS %s, cuDNN %s (algorithms %s%s); nvcc %s |" % (
            e.get("git", "?"), " + uncommitted changes" if e.get("git_dirty") else "",
            ours.get("cuda_runtime", "?"), ours.get("cublas", "?"), ours.get("cudnn", "?"),
            {True: "timed per shape, as cudnn.benchmark", False: "by cuDNN's heuristics"}.get(
                ours.get("cudnn_benchmark"), "chosen as the run did not record"),
            {True: "; backward passes: deterministic algorithms only",
             False: "; backward passes: any algorithm, as PyTorch's default"}.get(
                ours.get("cudnn_deterministic"), ""),
            e.get("nvcc", "?")),
        "| PyTorch | torch %s, torchvision %s, CUDA %s, cuDNN %s, Python %s |" % (
            pt.get("torch", e.get("torch", "?")), pt.get("torchvision", e.get("torchvision", "?")),
            pt.get("cuda_runtime", e.get("torch_cuda", "?")), pt.get("cudnn", e.get("torch_cudnn", "?")),
            pt.get("python", e.get("python", "?"))),
        "| LibTorch | %s |" % ("%s (the torch package's, C++ API)" % lt["libtorch"] if lt.get("libtorch")
                                 else "not run (see the steps below)"),
        "| run | %d s of a %s s budget (`tools/gpu_bench.sh`) |" % (secs, e.get("budget_s", "?")),
    ]
    not_ok = ["%s %s (%s)" % (s["name"], s["status"], s.get("summary", "")) for s in run.steps
              if s.get("status") != "PASS"]
    if not_ok:
        lines += ["", "Steps that did not pass in this run: " + "; ".join(not_ok) + "."]
    rows = []
    for model, prec, peer, goal, ref in TARGETS:
        row = run.row("train", model, prec)
        o, p = row["ours"], row[peer]
        s = speed(o and o["img_s"], p and p["img_s"])
        peer_name = "PyTorch eager" if peer == "eager" else "torch.compile"
        status = "not measured" if s is None else ("**met**" if s >= goal else "not met (%.2f× short)" % (goal / s))
        rows.append(["%s training, %s: ≥ %.1f× %s's img/s" % (LABEL[model], dict(PRECISIONS)[prec], goal, peer_name),
                     "%s vs %s img/s%s" % (num(o and o["img_s"]), num(p and p["img_s"]),
                                           " (%s)" % ours_kind(o) if o else ""),
                     xf(s), status, num(ref)])
    lines += ["", TARGETS_MARK + ", judged on this run's numbers, ours' faster kernel choice named; the last "
              "column is the peer's 2026-11-26 H100 number (`../shared/baselines/`), for scale only:", "",
              table(["target", "ours vs peer (same run)", "speed ours÷peer", "status", "peer 2026-11-26"], rows)]
    return "\n".join(lines)


def model_section(run, bench, slower):
    train = bench == "train"
    rows, phase_rows, batch = [], [], None
    for model, label in MODELS:
        for prec, plabel in PRECISIONS:
            c = run.row(bench, model, prec)
            if not any(c.values()):
                continue
            o, e = c["ours"], c["eager"]
            batch = batch or (o or e or {}).get("batch")
            s_e = speed(o and o["img_s"], e and e["img_s"])
            s_c = speed(o and o["img_s"], c["compile"] and c["compile"]["img_s"])
            mem = speed(o and o.get("peak_mib"), e and e.get("peak_mib"))
            compile_cell = "—" if c["compile"] is None else "%s (%s; compile %.0f s)" % (
                num(c["compile"]["img_s"]), c["compile"]["variant"], c["compile"].get("compile_s") or 0)
            row = [label, plabel, img_cell(c["ours_vendor"]), img_cell(c["ours_own"]),
                   "%s, %s" % (img_cell(e), layout(e)) if e else "—",
                   "%s, %s" % (img_cell(c["libtorch"]), layout(c["libtorch"])) if c["libtorch"] else "—"]
            if train:
                row.append(compile_cell)
            # The choice named; with its img/s when no column above shows it (the engine's
            # defaults, or a choice with per-family exceptions).
            shown = o and o.get("variant") in ("vendor", "ours")
            row += ["**%s**%s" % (xf(s_e), (" (%s)" % ours_kind(o) if shown else
                                            " (%s: %s img/s)" % (ours_kind(o), num(o["img_s"])))
                                  if o and s_e else "")]
            if train:
                row.append(xf(s_c))
            row += [num(o and o.get("peak_mib")), num(e and e.get("peak_mib")), xf(mem)]
            rows.append(row)
            if s_e is not None and s_e < 1 / 1.05:
                slower.append("GPU %s %s %s: ours %s of PyTorch eager's time (%s vs %s img/s)" % (
                    label, "training step" if train else "inference", plabel, xf(1 / s_e),
                    num(o["img_s"]), num(e["img_s"])))
            for side, r in (("ours (%s)" % ours_kind(o), o), ("PyTorch eager (%s)" % layout(e), e)):
                if r is not None and r.get("gpu_ms_median") is not None:
                    phase = [ms(r.get(k)) for k in (("fwd_ms", "bwd_ms", "opt_ms") if train else ())]
                    phase_rows.append([label, plabel, side] + phase + [ms(r.get("gpu_ms_median")),
                                                                       ms(r.get("ms_median"))])
    if not rows:
        return None
    what = ("one training step: zero_grad (gradients set to None), forward, MSE loss on the 2-output head, "
            "backward, AdamW (lr 1e-4, weight decay 0.01); training mode (BatchNorm batch statistics, "
            "ConvNeXt stochastic depth 0.1)" if train else "forward only, eval mode, no autograd")
    header = ["Model", "precision", "ours img/s (ms), cuBLAS/cuDNN", "ours img/s (ms), own kernels",
              "PyTorch eager img/s (ms), layout", "LibTorch img/s (ms), layout"]
    if train:
        header.append("torch.compile img/s")
    header.append("speed ours÷eager")
    if train:
        header.append("speed ours÷compile")
    header += ["ours peak MiB", "PyTorch peak MiB", "memory ours÷PyTorch"]
    text = [
        "Batch %s, 224×224, %s; the same input values on every side (`bench/gpu/e2e_common.h`). "
        "fp32 = TF32 off everywhere; TF32 = cuBLAS and cuDNN may use TF32 tensor cores (ours: "
        "`engine::cuda::set_tf32`; PyTorch/LibTorch: `allow_tf32` for matmul and cuDNN). PyTorch runs "
        "torchvision's models (head replaced by `Linear(…, 2)`) with `cudnn.benchmark = True`; its cell is the "
        "faster of channels_last and contiguous (named). LibTorch runs the same networks in C++ "
        "(`bench/e2e/torch_models.h`). torch.compile: mode and compile time named, contiguous input, "
        "training only." % (batch or "?", what),
        "",
        "Time per step: synchronise, step, synchronise, wall clock; the median over the timed steps after "
        "the warm-up (%s). **speed** = img/s ours ÷ "
        "theirs (above 1.00 ours is faster), ours being the faster of our two kernel choices (named). "
        "Peak MiB = the most memory held by live tensors during the steps, counted from before the model "
        "was built (each side's caching allocator: weights, inputs, gradients, optimizer state, "
        "activations, cuBLAS/cuDNN workspaces; both count blocks at their size rounded up to 512 B)."
        % step_counts(run.find(bench=bench)),
        "",
        table(header, rows)]
    if phase_rows:
        text += ["", "Where the time goes on the GPU (CUDA events between the calls, median ms; \"GPU\" = first "
                 "to last event, \"wall\" = the step's wall time%s):" % (
                     "; forward includes zero_grad and the loss" if train else ""), "",
                 table(["Model", "precision", "side"] + (["forward", "backward", "AdamW"] if train else []) +
                       ["GPU", "wall"], phase_rows)]
    return "\n".join(text)


def knn_section(run, slower):
    cases = sorted({(r.get("queries"), r.get("bank")) for r in run.find(bench="knn")},
                   key=lambda qn: (qn[1] or 0, qn[0] or 0))
    rows = []
    for q, n in cases:
        o = run.best(bench="knn", side="ours", queries=q, bank=n)
        cd = run.best(bench="knn", side="pytorch", variant="cdist_topk", queries=q, bank=n)
        mm = run.best(bench="knn", side="pytorch", variant="mm_topk", queries=q, bank=n)
        s = speed(o and o.get("queries_s"), cd and cd.get("queries_s"))
        agree = (cd or {}).get("agree_ours")
        cpu = (o or {}).get("agree_cpu")
        rows.append(["{:,} × {:,}".format(q, n), ms(o and o["ms_median"]), ms(cd and cd["ms_median"]),
                     ms(mm and mm["ms_median"]), "**%s**" % xf(s),
                     num(o and o.get("gflop_s") and o["gflop_s"] / 1e3, 1),
                     num(o and o.get("bank_gb_s")), num(o and o.get("extra_peak_mib")),
                     num(cd and cd.get("extra_peak_mib")),
                     "—" if agree is None else "%.2f%%" % (100 * agree),
                     "—" if cpu is None else "%.1f%% of %d" % (100 * cpu, o.get("cpu_check_queries", 0))])
        if s is not None and s < 1 / 1.05:
            slower.append("GPU k-NN %s × %s: ours %s of cdist + topk's time" % (
                "{:,}".format(q), "{:,}".format(n), xf(1 / s)))
    if not rows:
        return None
    return "\n".join([
        "Q queries against a bank of N vectors of dim 768 (the shared uniform inputs), k = 15 nearest by "
        "L2, float32 with TF32 off. Ours: `engine::knn_search` (fused: distance tiles never leave shared "
        "memory; one query streams the bank with warp dot products). PyTorch: `torch.cdist` + "
        "`topk(15, largest=False)` (what one writes; it materialises the [Q, N] matrix) and the expanded "
        "‖q‖² − 2q·b + ‖b‖² with one matmul + topk. Median ms of up to 10 searches after 2 warm-ups. "
        "TFLOP/s counts 2·Q·N·768; GB/s counts reading the bank once (the floor for small Q: ~2.6 TB/s). "
        "Extra MiB = peak memory above the queries and bank. \"same neighbours\" = share of our 15 that "
        "cdist also lists; \"CPU check\" = share that our CPU search (OpenBLAS) also lists, for the first "
        "queries.",
        "",
        table(["Q × N", "ours ms", "cdist+topk ms", "mm+topk ms", "speed ours÷cdist", "ours TFLOP/s",
               "ours bank GB/s", "ours extra MiB", "cdist extra MiB", "same neighbours", "CPU check"], rows)])


def host_note(cols, launches=None):
    """' (the host's time queuing our ops per step: ...)' from the traces' host process, or '';
    launches: {label: the record} whose launches_per_step / library_calls_per_step are named."""
    parts = []
    for label, kind, path, steps in cols:
        if kind != "ours" or not path or not os.path.exists(path):
            continue
        try:
            gpu = sum(profile_families.ours_ms_per_family(path, steps).values())
            host = sum(profile_families.ours_ms_per_family(path, steps, pid=1).values())
        except (OSError, ValueError):
            continue
        if host > 0:
            part = "%s %.1f ms for %.1f ms of GPU time" % (label, host, gpu)
            r = (launches or {}).get(label) or {}
            if r.get("launches_per_step") is not None:
                part += ", %.0f kernel launches and %.0f cuBLAS/cuDNN calls" % (
                    r["launches_per_step"], r.get("library_calls_per_step") or 0)
            parts.append(part)
    return " (host time queuing our ops, per step: %s)" % "; ".join(parts) if parts else ""


def profile_section(run, slower=None):
    """Where a GPU training step's time goes, by op family: ours (cuBLAS/cuDNN kernels and our own)
    next to PyTorch eager channels_last, from the per-op profiles gpu_bench.sh asks both benchmarks
    for (gpu_e2e_bench --profile, torch_e2e.py --profile); None when the run has none."""
    def local(path):  # the records name files on the GPU machine: look beside the run's JSON
        return os.path.join(run.folder, "profile", os.path.basename(path)) if path else None

    models = []
    for model, title in MODELS:
        for precision, plabel in reversed(PRECISIONS):  # TF32 first: the targets' setting
            q = dict(bench="train", model=model, precision=precision)
            cols, records = [], {}
            for variant, label in (("vendor", "ours cuDNN"), ("ours", "ours own")):
                r = next((x for x in run.find(side="ours", variant=variant, **q) if x.get("profile_trace")), None)
                if r:
                    cols.append((label, "ours", local(r["profile_trace"]), r.get("profile_steps", 1)))
                    records[label] = r
            t = next((x for x in run.find(side="pytorch", variant="eager_channels_last", **q)
                      if x.get("profile_ops")), None)
            if cols and t:
                cols.append(("PyTorch", "torch", local(t["profile_ops"]), 1))
                models.append(("%s, training step, %s%s" % (title, plabel, host_note(cols, records)),
                               cols))
    intro = ("Each training benchmark above runs a few more steps under a profiler after its timed steps: ours "
             "with `engine::profiler` (two CUDA events per op on the compute stream: the GPU's time from the op's "
             "first kernel to its last, each op once, its backward under its autograd node's name), PyTorch eager "
             "channels_last with `torch.profiler` (the self device time of every aten op: the kernels it launched "
             "itself). Summed by op family (`tools/profile_families.py`); ms per step. \"ours cuDNN\" runs "
             "cuBLAS/cuDNN for GEMM, convolution, BatchNorm and pooling, \"ours own\" our kernels everywhere. "
             "Each title also gives the host's time queuing our ops (the host clock read around each op): "
             "where it comes close to the GPU time, the GPU waits for the host and a family's GPU time "
             "includes those waits; and the kernels and cuBLAS/cuDNN calls one timed step queued (past the "
             "driver's ~1,000 pending launches the host waits at a launch, so its queuing time tracks the "
             "GPU's).")
    return profile_families.section(models, intro, slower, scope="GPU ", min_ms=0.2)


def sections(run, slower):
    """[(heading, generated body or None = keep the old one, default prose)] of the GPU tables;
    rows where ours is slower than PyTorch eager (or cdist) are appended to `slower`."""
    return [
        ("End-to-end training step vs PyTorch (GPU)", model_section(run, "train", slower), None),
        ("Where the training step's time goes (GPU, by op family)", profile_section(run, slower), None),
        ("Inference vs PyTorch (GPU)", model_section(run, "infer", slower), None),
        ("k-NN retrieval vs PyTorch (GPU)", knn_section(run, slower), None),
    ]


# ---- the terminal table -------------------------------------------------------------------------------

def text_table(run):
    if run.empty():
        return "gpu_bench: no results (no GPU, or every step was skipped)"
    out = []
    if run.dry_run():
        out.append("DRY RUN ON THE CPU: the numbers test the pipeline and mean nothing")
    for bench in ("train", "infer"):
        if not run.find(bench=bench):
            continue
        out.append("%s, img/s (speed = ours ÷ theirs, above 1.00 ours is faster)" % (
            "training step" if bench == "train" else "inference"))
        out.append("%-14s %-5s %10s %9s %13s %13s %9s %10s %10s" % (
            "model", "prec", "ours:cuDNN", "ours:own", "torch eager", "libtorch", "compile", "ours/eager",
            "ours/comp"))
        for model, label in MODELS:
            for prec, plabel in PRECISIONS:
                c = run.row(bench, model, prec)
                if not any(c.values()):
                    continue
                g = lambda r: r and r.get("img_s")
                short = {"channels_last": "cl", "contiguous": "nchw"}
                lay = lambda r: "%s %s" % (num(g(r)), short.get(layout(r), layout(r))) if r else "—"
                out.append("%-14s %-5s %10s %9s %13s %13s %9s %10s %10s" % (
                    label, plabel, num(g(c["ours_vendor"])), num(g(c["ours_own"])), lay(c["eager"]),
                    lay(c["libtorch"]), num(g(c["compile"])), xf(speed(g(c["ours"]), g(c["eager"]))),
                    xf(speed(g(c["ours"]), g(c["compile"])))))
        out.append("")
    cases = sorted({(r.get("queries"), r.get("bank")) for r in run.find(bench="knn")},
                   key=lambda qn: (qn[1] or 0, qn[0] or 0))
    if cases:
        out.append("k-NN, ms (k = 15, d = 768)")
        out.append("%-18s %9s %12s %9s %11s %9s %9s" % ("Q x N", "ours", "cdist+topk", "mm+topk", "ours/cdist",
                                                        "same nb", "CPU chk"))
        for q, n in cases:
            o = run.best(bench="knn", side="ours", queries=q, bank=n)
            cd = run.best(bench="knn", side="pytorch", variant="cdist_topk", queries=q, bank=n)
            mm = run.best(bench="knn", side="pytorch", variant="mm_topk", queries=q, bank=n)
            a, cpu = (cd or {}).get("agree_ours"), (o or {}).get("agree_cpu")
            out.append("%-18s %9s %12s %9s %11s %9s %9s" % (
                "%dx%d" % (q, n), ms(o and o["ms_median"]), ms(cd and cd["ms_median"]), ms(mm and mm["ms_median"]),
                xf(speed(o and o.get("queries_s"), cd and cd.get("queries_s"))),
                "—" if a is None else "%.1f%%" % (100 * a), "—" if cpu is None else "%.1f%%" % (100 * cpu)))
        out.append("")
    out.append("targets (training, same run)")
    for model, prec, peer, goal, _ in TARGETS:
        c = run.row("train", model, prec)
        s = speed(c["ours"] and c["ours"]["img_s"], c[peer] and c[peer]["img_s"])
        out.append("  %-13s %-4s >= %.1fx %-7s: %s" % (
            LABEL[model], dict(PRECISIONS)[prec], goal, peer,
            "not measured" if s is None else "%.2fx  %s" % (s, "MET" if s >= goal else "not met")))
    fell_back = [r for r in run.records if r.get("conv_vendor_fallbacks")]
    if fell_back:  # a "vendor" row where some convolutions ran on our kernels
        out.append("")
        out.append("cuDNN could not take every convolution (ours ran them): " + "; ".join(
            "%s %s %s %s: %d" % (r.get("bench"), r.get("model"), r.get("precision", ""),
                                 r.get("variant", ""), r["conv_vendor_fallbacks"]) for r in fell_back))
    bad = [r for r in run.records if r.get("status") not in ("ok", None)]
    if bad:
        out.append("")
        out.append("not ok: " + "; ".join("%s %s %s %s %s: %s" % (
            r.get("side"), r.get("bench"), r.get("model", "%sx%s" % (r.get("queries"), r.get("bank"))),
            r.get("precision", ""), r.get("variant", ""), r.get("status") + (
                " (%s)" % (r.get("error") or r.get("note") or "")[:120])) for r in bad))
    return "\n".join(out)
