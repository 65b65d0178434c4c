#!/usr/bin/env python3
"""bench/gpu/torch_kernels.py — PyTorch on the kernel labs' shapes, on the same card in the same
session, so kernels/README.md's ratios are measured side by side rather than quoted from
shared/baselines/ (which were measured on another day and possibly another card).

  python3 bench/gpu/torch_kernels.py --json out/torch_kernels.json          # on the GPU machine
  /usr/bin/python3 bench/gpu/torch_kernels.py --device cpu --batch 1 --quick  # smoke test here

Each row names the lab (family), the op and the shape exactly as bench/cuda/<family>_bench.cu
names them, so tools/labs_report.py --torch FILE can put the two side by side:
  depthwise_conv2d  forward, backward_data, backward_weight, fwd+bwd; 7x7 pad 3, NHWC
                    (channels_last), at ConvNeXt-T's stage 1 / 3 / 4 shapes
  layernorm         forward, backward (dx, dgamma, dbeta), fwd+bwd; over C of [N, H, W, C]
  gelu              gelu_forward, gelu_backward, gelu_fwd+bwd (erf form); bias_gelu_forward
                    (gelu(x + b): what eager PyTorch runs), bias_gelu_backward (gelu'(x + b) * dy,
                    x + b saved as autograd saves it), bias_gelu_bwd+dbias (that and the sum of dx)
  knn               knn_l2 (cdist + topk smallest), knn_cosine (normalised matmul + topk largest)
  conv2d            forward, backward_data, backward_weight (aten.convolution_backward with one
                    output asked), fp32 and TF32, channels_last, cudnn.benchmark on
  adamw             adamw_step (torch.optim.AdamW, foreach: PyTorch's default on CUDA) and
                    adamw_step_fused (fused=True) over torchvision's resnet50 / convnext_tiny
                    parameters (2-output heads), one step each, as bench/cuda/adamw_bench.cu
  batchnorm         forward (training: batch statistics, running-stat update, y), backward (dx,
                    dweight, dbias), fwd+bwd; BatchNorm2d on channels_last [N, C, H, W] at
                    ResNet-50's shapes (PyTorch picks its own channels-last kernels or cuDNN);
                    and the same with an in-place ReLU after it (forward+relu, backward+relu,
                    fwd+bwd+relu), as torchvision's ResNet runs most of its BatchNorms
and one "copy" row: a 1 GiB device-to-device copy, the card's memory ceiling (bytes read +
written per second), which the labs measure the same way.

Timing as the labs (bench/cuda/bench_common.cuh): two warm-up calls, then for each of --reps runs
a 128 MB write that evicts the L2, CUDA events around the call alone, the median. Inputs uniform
in [-1, 1), float32, TF32 off unless the row says tf32. Standard library + torch only.

"fwd+bwd" rows are, as in the labs, the sum of the separately timed forward and backward rows
(with_sums below): what the kernels cost inside a training step. The same step through
autograd (`y = op(x); y.backward(dy)` on a leaf x) is kept beside it as "fwd+bwd_autograd": it
also pays autograd's bookkeeping and, from the second call on, an accumulation into x.grad that
a network's intermediate tensors never see (the first H200 run compared against that and
overstated GELU's ratios 1.6-4.7x: docs/gpu_runs/2026-11-27-h200.md).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def timer(device, reps):
    """time(fn) -> (median ms, min ms) of fn over reps runs, the L2 flushed before each."""
    flush = torch.empty(128 << 20, dtype=torch.uint8, device=device)

    def time_cuda(fn):
        fn()
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ms = []
        for _ in range(reps):
            flush.zero_()
            start.record()
            fn()
            end.record()
            end.synchronize()
            ms.append(start.elapsed_time(end))
        ms.sort()
        return ms[len(ms) // 2], ms[0]

    def time_cpu(fn):
        fn()
        ms = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ms.append(1e3 * (time.perf_counter() - t0))
        ms.sort()
        return ms[len(ms) // 2], ms[0]

    return time_cuda if device == "cuda" else time_cpu


def uniform(shape, device, channels_last=False, requires_grad=False):
    t = torch.rand(shape, device=device) * 2 - 1
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(requires_grad)


def depthwise_rows(batch, device, time_fn):
    rows = []
    for c, hw in [(96, 56), (384, 14), (768, 7)]:
        shape = "%dx%dx%dx%d" % (batch, hw, hw, c)
        x = uniform((batch, c, hw, hw), device, channels_last=True, requires_grad=True)
        conv = torch.nn.Conv2d(c, c, 7, padding=3, groups=c).to(device)
        conv = conv.to(memory_format=torch.channels_last)
        dy = uniform((batch, c, hw, hw), device, channels_last=True)
        w, b = conv.weight.detach(), conv.bias.detach()
        xd = x.detach()

        def backward(mask):
            return lambda: torch.ops.aten.convolution_backward(
                dy, xd, w, [c], [1, 1], [3, 3], [1, 1], False, [0, 0], c, mask)

        def fwd_bwd():
            conv(x).backward(dy)

        with torch.no_grad():
            rows.append(("forward", shape, time_fn(lambda: conv(xd))))
        rows.append(("backward_data", shape, time_fn(backward([True, False, False]))))
        rows.append(("backward_weight", shape, time_fn(backward([False, True, True]))))
        rows.append(("fwd+bwd_autograd", shape, time_fn(fwd_bwd)))
    return [dict(family="depthwise_conv2d", op=o, shape=s, ms=t[0], min_ms=t[1])
            for o, s, t in rows]


def norm_rows(module, x, dy, shape, time_fn):
    """forward, backward (dx, dweight, dbias from one saved graph) and fwd+bwd of a norm layer
    (in training mode: a BatchNorm's forward updates its running statistics)."""
    y = module(x)
    params = [x, module.weight, module.bias]

    def fwd_bwd():
        module(x).backward(dy)

    with torch.no_grad():
        forward = time_fn(lambda: module(x))
    backward = time_fn(lambda: torch.autograd.grad(y, params, dy, retain_graph=True))
    return [("forward", shape, forward), ("backward", shape, backward),
            ("fwd+bwd_autograd", shape, time_fn(fwd_bwd))]


def layernorm_rows(batch, device, time_fn):
    rows = []
    for c, hw in [(96, 56), (192, 28), (384, 14), (768, 7)]:
        shape = "%dx%dx%dx%d" % (batch, hw, hw, c)
        x = uniform((batch, hw, hw, c), device, requires_grad=True)
        rows += norm_rows(torch.nn.LayerNorm(c).to(device), x, uniform(x.shape, device), shape,
                          time_fn)
    return [dict(family="layernorm", op=o, shape=s, ms=t[0], min_ms=t[1]) for o, s, t in rows]


def gelu_rows(batch, device, time_fn):
    rows = []
    for c, hw in [(96, 56), (384, 14), (768, 7), (384, 56)]:
        shape = "%dx%dx%dx%d" % (batch, hw, hw, c)
        x = uniform((batch, hw, hw, c), device, requires_grad=True)
        b = uniform((c,), device)
        dy = uniform((batch, hw, hw, c), device)
        xd = x.detach()
        xb = xd + b  # what autograd saves for gelu(x + b)

        def fwd_bwd():
            F.gelu(x).backward(dy)

        def bwd_dbias():
            dx = torch.ops.aten.gelu_backward(dy, xb)
            return dx, dx.sum(dim=(0, 1, 2))

        with torch.no_grad():
            rows.append(("gelu_forward", shape, time_fn(lambda: F.gelu(xd))))
            rows.append(("gelu_backward", shape,
                         time_fn(lambda: torch.ops.aten.gelu_backward(dy, xd))))
            rows.append(("bias_gelu_forward", shape, time_fn(lambda: F.gelu(xd + b))))
            rows.append(("bias_gelu_backward", shape,
                         time_fn(lambda: torch.ops.aten.gelu_backward(dy, xb))))
            rows.append(("bias_gelu_bwd+dbias", shape, time_fn(bwd_dbias)))
        rows.append(("gelu_fwd+bwd_autograd", shape, time_fn(fwd_bwd)))
    return [dict(family="gelu", op=o, shape=s, ms=t[0], min_ms=t[1]) for o, s, t in rows]


def knn_rows(device, time_fn, quick):
    rows = []
    cases = [(16, 5000, 64)] if quick else [(1024, 100000, 768), (1, 1000000, 768)]
    k = 15
    for q, n, d in cases:
        shape = "Q%d N%d D%d k%d" % (q, n, d, k)
        qs, bank = uniform((q, d), device), uniform((n, d), device)

        def l2():
            return torch.cdist(qs, bank).topk(k, largest=False)

        def cosine():
            return (F.normalize(qs, dim=1) @ F.normalize(bank, dim=1).T).topk(k)

        rows.append(("knn_l2", shape, time_fn(l2)))
        rows.append(("knn_cosine", shape, time_fn(cosine)))
    return [dict(family="knn", op=o, shape=s, ms=t[0], min_ms=t[1]) for o, s, t in rows]


def conv2d_rows(batch, device, time_fn):
    # The layers of bench/cuda/conv2d_bench.cu: name, C, K, H=W, R=S, stride, padding.
    layers = [("res2_3x3", 64, 64, 56, 3, 1, 1), ("res2_1x1", 256, 64, 56, 1, 1, 0),
              ("res4_3x3", 256, 256, 14, 3, 1, 1), ("stem", 3, 64, 224, 7, 2, 3),
              ("res3_3x3s2", 128, 128, 56, 3, 2, 1)]
    rows = []
    for name, c, k, hw, r, stride, pad in layers:
        x = uniform((batch, c, hw, hw), device, channels_last=True)
        w = uniform((k, c, r, r), device, channels_last=True)
        p = (hw + 2 * pad - r) // stride + 1
        dy = uniform((batch, k, p, p), device, channels_last=True)
        for math in ("fp32", "tf32"):
            torch.backends.cudnn.allow_tf32 = math == "tf32"

            def backward(mask):
                return lambda: torch.ops.aten.convolution_backward(
                    dy, x, w, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1, mask)

            with torch.no_grad():
                rows.append(("forward", name, math,
                             time_fn(lambda: F.conv2d(x, w, stride=stride, padding=pad))))
            rows.append(("backward_data", name, math, time_fn(backward([True, False, False]))))
            rows.append(("backward_weight", name, math, time_fn(backward([False, True, False]))))
    torch.backends.cudnn.allow_tf32 = False
    return [dict(family="conv2d", op=o, shape=s, math=m, ms=t[0], min_ms=t[1])
            for o, s, m, t in rows]


class BnRelu(torch.nn.Module):
    """BatchNorm2d, then an in-place ReLU: torchvision's ResNet runs bn1 and bn2 of every block
    (and the stem's) this way. weight and bias are the BatchNorm's, for norm_rows."""

    def __init__(self, bn):
        super().__init__()
        self.bn = bn
        self.weight, self.bias = bn.weight, bn.bias

    def forward(self, x):
        return torch.relu_(self.bn(x))


def batchnorm_rows(batch, device, time_fn):
    # The shapes of bench/cuda/batchnorm_bench.cu: H=W, C; its rows with and without the ReLU
    # (ops forward / backward and forward+relu / backward+relu).
    rows = []
    for hw, c in [(112, 64), (56, 64), (56, 256), (28, 512), (14, 1024), (7, 2048)]:
        shape = "%dx%dx%dx%d" % (batch, hw, hw, c)
        x = uniform((batch, c, hw, hw), device, channels_last=True, requires_grad=True)
        dy = uniform(x.shape, device, channels_last=True)
        bn = torch.nn.BatchNorm2d(c).to(device).to(memory_format=torch.channels_last)
        rows += norm_rows(bn, x, dy, shape, time_fn)
        rows += [(op + "+relu", s, t) for op, s, t in norm_rows(BnRelu(bn), x, dy, shape, time_fn)]
    return [dict(family="batchnorm", op=o, shape=s, ms=t[0], min_ms=t[1]) for o, s, t in rows]


def adamw_rows(device, time_fn):
    import torchvision
    rows = []
    for arch in ("resnet50", "convnext_tiny"):
        model = getattr(torchvision.models, arch)(num_classes=2).to(device)
        params = list(model.parameters())
        for p in params:
            p.grad = torch.rand_like(p) * 2 - 1
        shape = "%s P=%d T=%d" % (arch, sum(p.numel() for p in params), len(params))
        for op, fused in (("adamw_step", False), ("adamw_step_fused", True)):
            if fused and device != "cuda":
                continue
            kwargs = {"fused": True} if fused else {}
            opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **kwargs)
            with torch.no_grad():
                rows.append((op, shape, time_fn(opt.step)))
    return [dict(family="adamw", op=o, shape=s, ms=t[0], min_ms=t[1]) for o, s, t in rows]


# family: [(a summed op, the ops it sums), ...], as each lab defines its fwd+bwd rows.
SUMS = {"depthwise_conv2d": [("fwd+bwd", ("forward", "backward_data", "backward_weight"))],
        "layernorm": [("fwd+bwd", ("forward", "backward"))],
        "batchnorm": [("fwd+bwd", ("forward", "backward")),
                      ("fwd+bwd+relu", ("forward+relu", "backward+relu"))],
        "gelu": [("gelu_fwd+bwd", ("gelu_forward", "gelu_backward"))]}


def with_sums(rows):
    """rows plus, per family and shape in SUMS, each summed row from its parts (median and
    min); an existing row of that name (an older file's autograd timing) is replaced."""
    summed = {(family, op) for family, sums in SUMS.items() for op, _ in sums}
    out = [r for r in rows if (r["family"], r["op"]) not in summed]
    parts = {(r["family"], r["op"], r["shape"]): r for r in rows}
    for shape in sorted({r["shape"] for r in rows}):
        for family, sums in SUMS.items():
            for op, ops in sums:
                got = [parts.get((family, o, shape)) for o in ops]
                if all(got):
                    out.append(dict(family=family, op=op, shape=shape,
                                    ms=sum(r["ms"] for r in got),
                                    min_ms=sum(r["min_ms"] for r in got), summed_from=list(ops)))
    return out


def copy_row(device, time_fn, quick):
    n = (1 << 20) if quick else (1 << 28)  # floats: 1 GiB on the GPU
    a = torch.empty(n, device=device).fill_(0.5)
    b = torch.empty_like(a)
    ms, best = time_fn(lambda: b.copy_(a))
    return dict(family="copy", op="d2d_copy", shape="%d bytes" % (4 * n), ms=ms, min_ms=best,
                gbps=2 * 4 * n / (ms * 1e-3) / 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--families",
                    default="copy,depthwise_conv2d,layernorm,gelu,knn,conv2d,batchnorm,adamw")
    ap.add_argument("--quick", action="store_true", help="small k-NN and copy (smoke test)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_kernels: no CUDA device visible, skipped")
        return 77
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    time_fn = timer(args.device, args.reps)
    wanted = args.families.split(",")
    rows = []
    makers = [("copy", lambda: [copy_row(args.device, time_fn, args.quick)]),
              ("depthwise_conv2d", lambda: depthwise_rows(args.batch, args.device, time_fn)),
              ("layernorm", lambda: layernorm_rows(args.batch, args.device, time_fn)),
              ("gelu", lambda: gelu_rows(args.batch, args.device, time_fn)),
              ("knn", lambda: knn_rows(args.device, time_fn, args.quick)),
              ("conv2d", lambda: conv2d_rows(args.batch, args.device, time_fn)),
              ("batchnorm", lambda: batchnorm_rows(args.batch, args.device, time_fn)),
              ("adamw", lambda: adamw_rows(args.device, time_fn))]
    for family, make in makers:
        if family not in wanted:
            continue
        t0 = time.time()
        got = with_sums(make())
        rows.extend(got)
        for r in got:
            print("%-18s %-18s %-24s %-5s %9.4f ms" % (r["family"], r["op"], r["shape"],
                                                      r.get("math", ""), r["ms"]))
        print("torch_kernels: %s in %.1f s" % (family, time.time() - t0), flush=True)
    doc = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
           "torch": torch.__version__,
           "cudnn": torch.backends.cudnn.version() if args.device == "cuda" else None,
           "date": time.strftime("%Y-%m-%d", time.gmtime()), "batch": args.batch, "rows": rows}
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
