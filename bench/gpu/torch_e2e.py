#!/usr/bin/env python3
"""bench/gpu/torch_e2e.py — PyTorch's side of the GPU end-to-end suite: the same training step,
inference pass and k-NN search as bench/gpu/gpu_e2e_bench.cpp (ours), with torchvision's models,
in the same JSON schema. tools/gpu_bench.sh runs it with the GPU machine's python3 (torch 2.11).

  python3 bench/gpu/torch_e2e.py --json out/torch_eager.json                  # eager, fp32 + TF32
  python3 bench/gpu/torch_e2e.py --modes compile --arch convnext_tiny --precision tf32 --json c.json
  /usr/bin/python3 bench/gpu/torch_e2e.py --device cpu --batch 2 --steps 2 --quick   # smoke test

train: optimizer.zero_grad(set_to_none=True), forward, F.mse_loss against a [B, 2] target,
  backward, AdamW(lr=1e-4, weight_decay=0.01) with PyTorch's default implementation for the
  parameters (on CUDA in torch 2.x: foreach; the record names what torch resolved). torchvision's
  resnet18 / resnet50 / convnext_tiny (its default stochastic depth 0.1 for ConvNeXt), head replaced
  by nn.Linear(embedding, 2) as our models::create(arch, 2, Head::Linear) builds it; training mode.
infer: model.eval(), torch.no_grad(), forward only.
Modes (the record's "variant"):
  eager_channels_last  model and input in torch.channels_last (NHWC, the layout ours uses)
  eager_contiguous     default NCHW tensors
  compile_default      torch.compile(model) with mode "default" (Inductor), contiguous input
                       (Inductor picks its own layouts); the first step (the compilation) is timed
                       on its own as compile_s. Absent before torch 2.0: recorded as skipped.
Precision: fp32 = TF32 off for cuBLAS matmuls and cuDNN convolutions (the legacy allow_tf32 flags,
  the API the 2026-11-26 baselines used); tf32 = both on. torch.backends.cudnn.benchmark = True.
knn: torch.cdist(q, bank).topk(15, largest=False) ("cdist_topk", what one writes) and the
  expanded ||q||^2 - 2 q.b + ||b||^2 with one matmul ("mm_topk"), float32 with TF32 off.
  --ours-knn-dir: compare the neighbour sets with ours (knn_ours_QxN.i64 written by our bench).
--profile DIR: after each eager channels_last training benchmark, --profile-steps more steps under
  torch.profiler: DIR/profile_<bench>_<arch>_<precision>_<variant>_torch.txt (ops by self device
  time) and .json (every op and input shapes with its self time, for tools/bench_report_gpu.py).

Inputs: the formula of bench/gpu/e2e_common.h (a 32-bit integer hash, uniform on [-1, 1)), so both
sides see identical images, targets, queries and bank. Timing as e2e_common.h: synchronize, step,
synchronize; ms = wall time; median over the timed steps after the warm-up; a per-benchmark time cap.
gpu_ms and fwd/bwd/opt split from CUDA events. Memory: torch.cuda.max_memory_allocated() during the
steps minus memory_allocated() before the model was built (weights, inputs, grads, AdamW state,
activations, cuBLAS/cuDNN workspaces the caching allocator hands out); reserved = memory_reserved().
Exit status: 0, 1 when a benchmark failed (its record says why), 77 when --device cuda finds no GPU.
"""
import argparse
import array
import datetime
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

M32 = 0xFFFFFFFF
SEED_IMAGES, SEED_TARGETS, SEED_QUERIES, SEED_BANK = 1, 2, 3, 4
OUTPUTS, LR, WEIGHT_DECAY, MIB = 2, 1e-4, 1e-2, 2.0 ** 20
MIN_STEPS = 3


# ---- inputs: the formula of e2e_common.h, in int64 tensor ops --------------------------------------

def _mul32(x, c):
    """(x * c) mod 2^32 for 0 <= x, c < 2^32 without overflowing int64: split c in 16-bit halves."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & M32


def hash_uniform(n, seed, device, first=0):
    """float32 [n]: element i = ((lowbias32((first + i + seed * 0x9E3779B9) mod 2^32) >> 8) * 2^-23 - 1."""
    x = (torch.arange(first, first + n, dtype=torch.int64, device=device) + seed * 0x9E3779B9) & M32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    x = x ^ (x >> 16)
    return (x >> 8).to(torch.float32) * (2.0 ** -23) - 1.0


def uniform(shape, seed, device, chunk=1 << 26):
    n = 1
    for s in shape:
        n *= s
    out = torch.empty(n, dtype=torch.float32, device=device)
    for first in range(0, n, chunk):  # bounded int64 temporaries (the 1M x 768 bank)
        m = min(chunk, n - first)
        out[first:first + m] = hash_uniform(m, seed, device, first)
    return out.view(*shape)


# ---- device helpers ---------------------------------------------------------------------------------

class Device:
    def __init__(self, name):
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def event(self):
        return torch.cuda.Event(enable_timing=True) if self.cuda else None


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def median(v):
    return statistics.median(v) if v else None


def run_steps(plan, step, dev):
    """Warm-up (stops after a third of the cap), then timed steps (stop when the cap is spent, at
    least MIN_STEPS). step(timed) -> events or None. Returns (times dict, [events per timed step])."""
    begin = time.perf_counter()
    out = {"warmup": 0, "capped": False, "first_step_ms": None}
    dev.sync()
    for i in range(plan["warmup"]):
        t0 = time.perf_counter()
        step(False)
        dev.sync()
        if i == 0:
            out["first_step_ms"] = (time.perf_counter() - t0) * 1e3
        out["warmup"] += 1
        if time.perf_counter() - begin > plan["max_seconds"] / 3:
            break
    ms, evs = [], []
    for i in range(plan["steps"]):
        t0 = time.perf_counter()
        ev = step(True)
        dev.sync()
        ms.append((time.perf_counter() - t0) * 1e3)
        evs.append(ev)
        if i + 1 >= MIN_STEPS and i + 1 < plan["steps"] and time.perf_counter() - begin > plan["max_seconds"]:
            out["capped"] = True
            break
    out.update(ms_median=median(ms), ms_min=min(ms), ms_max=max(ms), steps=len(ms))
    return out, evs


def phase_times(evs, names):
    """gpu_ms_median (first to last event) and <name>_ms medians from per-step event lists."""
    evs = [e for e in evs if e]
    if not evs:
        return {}
    r = {"gpu_ms_median": median([e[0].elapsed_time(e[-1]) for e in evs])}
    if len(names) > 1:
        for i, n in enumerate(names):
            r[n + "_ms"] = median([e[i].elapsed_time(e[i + 1]) for e in evs])
    return r


class Memory:
    """Peak bytes of live tensors over the steps, above what was allocated before the setup."""

    def __init__(self, dev):
        self.dev = dev
        if dev.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            self.base = torch.cuda.memory_allocated()

    def begin_steps(self):
        if self.dev.cuda:
            torch.cuda.synchronize()
            self.setup = torch.cuda.memory_allocated() - self.base
            torch.cuda.reset_peak_memory_stats()

    def put(self, r, peak_key="peak_mib"):
        if self.dev.cuda:
            r[peak_key] = (torch.cuda.max_memory_allocated() - self.base) / MIB
            r["setup_mib"] = self.setup / MIB
            r["reserved_mib"] = (torch.cuda.memory_reserved() - self.base) / MIB


# ---- models -----------------------------------------------------------------------------------------

def build_model(arch):
    m = getattr(torchvision.models, arch)()  # weights=None is the default in every version used
    if arch.startswith("resnet"):
        m.fc = torch.nn.Linear(m.fc.in_features, OUTPUTS)
    else:  # ConvNeXt: classifier = [LayerNorm2d, Flatten, Linear]
        m.classifier[2] = torch.nn.Linear(m.classifier[2].in_features, OUTPUTS)
    return m


def adamw_impl(opt, params):
    """What torch.optim.AdamW runs for these parameters: fused, foreach or for-loop."""
    d = opt.defaults
    if d.get("fused"):
        return "fused"
    if d.get("foreach"):
        return "foreach"
    params = list(params)
    try:  # what AdamW.step resolves foreach=None, fused=None to (a private helper of torch 2.x)
        from torch.optim.optimizer import _default_to_fused_or_foreach
        fused, foreach = _default_to_fused_or_foreach(params, False, False)
        return "fused" if fused else ("foreach" if foreach else "for-loop")
    except Exception:
        if int(torch.__version__.split(".")[0]) >= 2 and params and params[0].is_cuda:
            return "foreach (torch 2's default for CUDA tensors; not confirmed by torch)"
        return "for-loop (torch 1.x default)"


def model_bench(args, dev, arch, train, precision, mode, layout):
    variant = "%s_%s" % (mode, layout) if mode == "eager" else "compile_%s" % args.compile_mode
    r = {"bench": "train" if train else "infer", "model": arch, "side": "pytorch", "precision": precision,
         "variant": variant, "layout": layout, "batch": args.batch, "res": args.res}
    set_tf32(precision == "tf32")
    torch.backends.cudnn.benchmark = True
    mem = Memory(dev)
    torch.manual_seed(0)
    model = build_model(arch).to(dev.name)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    model.train(train)
    # Our NHWC values viewed as NCHW (channels_last strides), then the layout asked for.
    images = uniform((args.batch, args.res, args.res, 3), SEED_IMAGES, dev.name).permute(0, 3, 1, 2)
    images = images.contiguous(memory_format=fmt)
    targets = uniform((args.batch, OUTPUTS), SEED_TARGETS, dev.name)
    net = model
    if mode == "compile":
        net = torch.compile(model, mode=args.compile_mode)
    opt = None
    if train:
        opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        r["optimizer"] = "torch.optim.AdamW(lr=1e-4, weight_decay=0.01), %s" % adamw_impl(opt, model.parameters())
    names = ["fwd", "bwd", "opt"] if train else ["fwd"]
    kept = {}

    def step(timed):
        ev = [dev.event() for _ in range(len(names) + 1)] if (dev.cuda and timed) else None
        mark = (lambda i: ev[i].record()) if ev else (lambda i: None)
        mark(0)
        if train:
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(net(images), targets)
            mark(1)
            loss.backward()
            mark(2)
            opt.step()
            mark(3)
            out = loss.detach()
        else:
            with torch.no_grad():
                out = net(images)
            mark(1)
        kept.setdefault("first", out)
        kept["last"] = out
        return ev

    mem.begin_steps()
    if mode == "compile":  # the first call compiles: time it apart from the warm-up
        t0 = time.perf_counter()
        step(False)
        dev.sync()
        r["compile_s"] = time.perf_counter() - t0
    times, evs = run_steps(args.plan_train if train else args.plan_infer, step, dev)
    r.update(times)
    r["img_s"] = args.batch / (times["ms_median"] * 1e-3)
    r.update(phase_times(evs, names))
    mem.put(r)
    s_first, s_last = float(kept["first"].float().sum()), float(kept["last"].float().sum())
    r["loss_first" if train else "out_sum_first"] = s_first
    r["loss_last" if train else "out_sum_last"] = s_last
    r["status"] = "ok" if all(map(lambda v: v == v and abs(v) != float("inf"), (s_first, s_last))) else "nonfinite"
    if args.profile and train and mode == "eager" and layout == "channels_last":
        try:  # a failure here costs the profile, not the timings above
            r.update(profile_steps(args, dev, step, "profile_%s_%s_%s_%s" % (r["bench"], arch, precision, variant)))
        except Exception as e:  # noqa: BLE001 (any profiler failure)
            r["profile_error"] = "%s: %s" % (type(e).__name__, e)
    return r


def _self_device_us(e):
    """A profiler event's own device time (torch 2.x names it self_device_time_total)."""
    for attr in ("self_device_time_total", "self_cuda_time_total"):
        v = getattr(e, attr, None)
        if v is not None:
            return v
    return 0


def profile_steps(args, dev, step, name):
    """A few more steps under torch.profiler, after the timing: the table of ops by their own device
    time (self CUDA time: the kernels each aten op launched itself) and, for the report's per-family
    comparison with our engine's profile, every (op, input shapes) total as JSON."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    dev.sync()
    with profile(activities=acts, record_shapes=True) as prof:
        for _ in range(args.profile_steps):
            step(False)
        dev.sync()
    os.makedirs(args.profile, exist_ok=True)
    base = os.path.join(args.profile, name + "_torch")
    # The sort key's name changed in torch 2.x (self_device_...); the table is for reading only.
    for key in (["self_device_time_total", "self_cuda_time_total"] if dev.cuda else ["self_cpu_time_total"]):
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=40)
            break
        except Exception as e:  # noqa: BLE001 (an unknown sort key)
            table = "key_averages().table(sort_by=%s): %s" % (key, e)
    with open(base + ".txt", "w") as f:
        f.write(table)
    # Every op's self time, summed per (op, input shapes, inside Optimizer.step or not): the
    # optimizer's elementwise ops (torch 1.x's for-loop AdamW) are told apart from the model's.
    # Only host-side events count: a kernel's own event carries the same device time as the op
    # that launched it. Time that lands on a runtime call (cudaLaunchKernel, ...) goes to the
    # aten op around it, whose name says the family.
    totals = {}
    for e in prof.events():
        if getattr(e, "device_type", torch.autograd.DeviceType.CPU) != torch.autograd.DeviceType.CPU:
            continue
        us = _self_device_us(e) if dev.cuda else e.self_cpu_time_total
        if us <= 0:
            continue
        owner = e
        while owner is not None and not owner.name.startswith("aten::"):
            owner = owner.cpu_parent
        owner = owner or e
        parent, in_opt = e.cpu_parent, False
        while parent is not None and not in_opt:
            in_opt = parent.name.startswith("Optimizer.step")
            parent = parent.cpu_parent
        shapes = tuple(tuple(sh) for sh in (owner.input_shapes or []) if isinstance(sh, list))
        key = (owner.name, shapes, in_opt)
        t = totals.setdefault(key, [0, 0.0])
        t[0] += 1
        t[1] += us
    rows = [{"name": n, "input_shapes": [list(sh) for sh in shapes], "in_optimizer": opt, "calls": c,
             "self_us": us} for (n, shapes, opt), (c, us) in sorted(totals.items(), key=lambda kv: -kv[1][1])]
    with open(base + ".json", "w") as f:
        json.dump({"steps": args.profile_steps, "clock": "gpu" if dev.cuda else "host", "ops": rows}, f)
    return {"profile_ops": base + ".json", "profile_steps": args.profile_steps}


# ---- k-NN ---------------------------------------------------------------------------------------------

def read_ours(path, q, k):
    a = array.array("q")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return list(a) if len(a) == q * k else None


def agreement(ours, theirs, k):
    same = 0
    for i in range(len(ours) // k):
        s = set(theirs[i * k:(i + 1) * k])
        same += sum(1 for j in ours[i * k:(i + 1) * k] if j in s)
    return same / len(ours)


def knn_benches(args, dev, log):
    cases = [tuple(int(v) for v in c.split("x")) for c in args.knn.split(",") if c]
    if not cases:
        return
    set_tf32(False)
    qmax, nmax = max(q for q, _ in cases), max(n for _, n in cases)
    with torch.no_grad():
        try:
            q_all = uniform((qmax, args.knn_dim), SEED_QUERIES, dev.name)
            bank_all = uniform((nmax, args.knn_dim), SEED_BANK, dev.name)
        except Exception as e:  # e.g. out of memory
            log.add({"bench": "knn", "side": "pytorch", "status": "error", "error": "building the bank: %s" % e})
            return
        for q, n in cases:
            queries, bank = q_all[:q], bank_all[:n]
            for variant in args.knn_variants.split(","):
                if log.out_of_budget():
                    log.add({"bench": "knn", "side": "pytorch", "variant": variant, "queries": q, "bank": n,
                             "status": "skipped", "note": "time budget spent"})
                    continue
                r = {"bench": "knn", "side": "pytorch", "variant": variant, "precision": "fp32", "queries": q,
                     "bank": n, "dim": args.knn_dim, "k": args.knn_k}
                try:
                    mem = Memory(dev)
                    res = {}

                    def step(timed):
                        if variant == "cdist_topk":
                            d = torch.cdist(queries, bank)
                        else:
                            d = (queries * queries).sum(1, keepdim=True) - 2 * queries @ bank.T + \
                                (bank * bank).sum(1)[None]
                        res["idx"] = d.topk(args.knn_k, dim=1, largest=False).indices
                        return None
                    mem.begin_steps()
                    times, _ = run_steps(args.plan_knn, step, dev)
                    r.update(times)
                    ms = times["ms_median"]
                    r["queries_s"] = q / (ms * 1e-3)
                    r["gflop_s"] = 2.0 * q * n * args.knn_dim / (ms * 1e-3) * 1e-9
                    r["bank_gb_s"] = 4.0 * n * args.knn_dim / (ms * 1e-3) * 1e-9
                    mem.put(r, "extra_peak_mib")
                    path = os.path.join(args.ours_knn_dir or "", "knn_ours_%dx%d.i64" % (q, n))
                    if args.ours_knn_dir and os.path.exists(path):
                        ours = read_ours(path, q, args.knn_k)
                        if ours is not None:
                            r["agree_ours"] = agreement(ours, res["idx"].cpu().flatten().tolist(), args.knn_k)
                    r["status"] = "ok"
                except Exception as e:
                    r.update(status="error", error="%s: %s" % (type(e).__name__, e))
                    log.failures += 1
                log.add(r)


# ---- the run ------------------------------------------------------------------------------------------

class Log:
    def __init__(self, path, context, budget):
        self.path, self.context, self.results, self.failures = path, context, [], 0
        self.start, self.budget = time.perf_counter(), budget
        self.flush()

    def out_of_budget(self):
        return self.budget > 0 and time.perf_counter() - self.start > self.budget

    def add(self, r):
        self.results.append(r)
        print(json.dumps(r), flush=True)
        self.flush()

    def flush(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"context": self.context, "results": self.results}, f, indent=1)
        os.replace(tmp, self.path)


def context(args, dev):
    c = {"side": "pytorch", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "device_kind": dev.name, "batch": args.batch, "res": args.res, "torch": torch.__version__,
         "torchvision": torchvision.__version__, "python": sys.version.split()[0], "executable": sys.executable,
         "cudnn_benchmark": True,
         "timing": "wall ms of synchronize-step-synchronize, median of timed steps; gpu_ms from CUDA events",
         "tf32_api": "torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32"}
    if dev.cuda:
        p = torch.cuda.get_device_properties(0)
        c.update(device="%s (sm_%d%d, %d SMs, %.1f GiB)" % (p.name, p.major, p.minor, p.multi_processor_count,
                                                              p.total_memory / 2 ** 30),
                 cuda_runtime=torch.version.cuda)
        v = torch.backends.cudnn.version() or 0  # 91900 -> "9.19.0"
        c["cudnn"] = "%d.%d.%d" % (v // 10000, v % 10000 // 100, v % 100)
    else:
        c["threads"] = torch.get_num_threads()
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test)")
    ap.add_argument("--bench", default="train,infer,knn")
    ap.add_argument("--arch", default="resnet18,resnet50,convnext_tiny")
    ap.add_argument("--precision", default="fp32,tf32")
    ap.add_argument("--modes", default="eager", help="eager and/or compile (comma-separated)")
    ap.add_argument("--layouts", default="channels_last,contiguous", help="eager layouts")
    ap.add_argument("--compile-layout", default="contiguous")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode")
    ap.add_argument("--compile-infer", action="store_true", help="also compile for inference (recompiles)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=20, help="time cap per model benchmark")
    ap.add_argument("--knn", default="1024x100000,1024x1000000,1x1000000", help="QUERIESxBANK cases")
    ap.add_argument("--knn-variants", default="cdist_topk,mm_topk")
    ap.add_argument("--knn-dim", type=int, default=768)
    ap.add_argument("--knn-k", type=int, default=15)
    ap.add_argument("--knn-warmup", type=int, default=2)
    ap.add_argument("--knn-steps", type=int, default=10)
    ap.add_argument("--knn-max-seconds", type=float, default=15)
    ap.add_argument("--ours-knn-dir", default="", help="folder of our knn_ours_QxN.i64 (agreement check)")
    ap.add_argument("--budget", type=float, default=0, help="seconds; no new benchmark starts after (0: none)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 warm-up, small k-NN cases")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", default="", help="folder: profile eager channels_last training steps op by op there")
    ap.add_argument("--profile-steps", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        args.warmup = min(args.warmup, 1)
        if args.knn == ap.get_default("knn"):
            args.knn = "16x5000,1x20000"
        args.knn_warmup, args.knn_steps = 1, min(args.knn_steps, 3)
    args.plan_train = args.plan_infer = dict(warmup=args.warmup, steps=args.steps, max_seconds=args.max_seconds)
    args.plan_knn = dict(warmup=args.knn_warmup, steps=args.knn_steps, max_seconds=args.knn_max_seconds)
    dev = Device(args.device)
    if dev.cuda and not torch.cuda.is_available():
        print("torch_e2e: torch %s sees no CUDA device, skipped" % torch.__version__)
        return 77
    benches = args.bench.split(",")
    log = Log(args.json, context(args, dev), args.budget)
    for arch in args.arch.split(","):
        for precision in args.precision.split(","):
            runs = []
            for mode in args.modes.split(","):
                if mode == "eager":
                    runs += [("eager", lay) for lay in args.layouts.split(",")]
                elif mode == "compile":
                    runs.append(("compile", args.compile_layout))
            for mode, layout in runs:
                for train in (True, False):
                    if ("train" if train else "infer") not in benches:
                        continue
                    base = {"bench": "train" if train else "infer", "model": arch, "side": "pytorch",
                            "precision": precision, "batch": args.batch,
                            "variant": "%s_%s" % (mode, layout) if mode == "eager" else "compile_" + args.compile_mode}
                    if mode == "compile" and not hasattr(torch, "compile"):
                        log.add(dict(base, status="skipped", note="torch %s has no torch.compile" % torch.__version__))
                        continue
                    if mode == "compile" and not train and not args.compile_infer:
                        continue
                    if log.out_of_budget():
                        log.add(dict(base, status="skipped", note="time budget spent"))
                        continue
                    try:
                        r = model_bench(args, dev, arch, train, precision, mode, layout)
                    except Exception as e:
                        r = dict(base, status="error", error="%s: %s" % (type(e).__name__, e))
                        log.failures += 1
                    log.add(r)
                    if dev.cuda:
                        torch.cuda.empty_cache()
    if "knn" in benches:
        knn_benches(args, dev, log)
    return 1 if log.failures else 0


if __name__ == "__main__":
    sys.exit(main())
