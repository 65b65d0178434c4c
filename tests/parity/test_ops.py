"""PyTorch parity for every engine op, forward and backward.

For each case the inputs are drawn here (awkward sizes), written to a safetensors file, run
through our `oprun` tool, and the same op is computed with torch (float64, CPU). Our image
layout is NHWC with conv weights [K, R, S, C/groups]; torch's is NCHW / OIHW, so the torch side
permutes in and out. The output and the gradient of every input (for a random grad_out) must
agree within the case's tolerance.

    /usr/bin/python3 tests/parity/test_ops.py --build-dir build/test [-k conv]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import parity_util as pu  # noqa: E402

pu.require_torch()
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

rng = np.random.default_rng(20261126)


def rand(*shape, low=-1.0, high=1.0, dtype=np.float64):
    return rng.uniform(low, high, size=shape).astype(dtype)


def nchw(t):
    return t.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


CASES = []


def case(name, op, inputs, torch_fn, attrs=None, grad=None, rtol=1e-9, atol=1e-10,
         extra=None):
    """torch_fn(**torch tensors) -> output tensor (or (output, {extra name: tensor}))."""
    CASES.append(dict(name=name, op=op, inputs=inputs, torch_fn=torch_fn, attrs=attrs or {},
                      grad=grad if grad is not None else
                      [k for k, v in inputs.items() if v.dtype != np.int64],
                      rtol=rtol, atol=atol))


# ---- elementwise with broadcasting ---------------------------------------------------------
for opname, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul),
                   ("div", torch.div), ("maximum", torch.maximum), ("minimum", torch.minimum)]:
    b_low = 0.5 if opname == "div" else -1.0
    case(f"{opname}_broadcast", opname, {"a": rand(2, 1, 5, 3), "b": rand(4, 1, 3, low=b_low)},
         lambda a, b, fn=fn: fn(a, b))
    case(f"{opname}_nhwc_bias", opname, {"a": rand(3, 5, 7, 9), "b": rand(9, low=b_low)},
         lambda a, b, fn=fn: fn(a, b))
case("pow_tensor", "pow", {"a": rand(3, 4, low=0.5, high=2.0), "b": rand(4)},
     lambda a, b: torch.pow(a, b))
case("pow_scalar", "pow_scalar", {"x": rand(5, 6, low=0.2, high=2.0)},
     lambda x: torch.pow(x, 2.5), attrs={"exponent": 2.5})
for opname, fn, low in [("neg", torch.neg, -1), ("exp", torch.exp, -1), ("log", torch.log, 0.1),
                        ("sqrt", torch.sqrt, 0.1), ("abs", torch.abs, -1),
                        ("relu", torch.relu, -1), ("sigmoid", torch.sigmoid, -3),
                        ("tanh", torch.tanh, -3), ("gelu", F.gelu, -4)]:
    case(opname, opname, {"x": rand(7, 13, low=low, high=3)}, lambda x, fn=fn: fn(x))
case("clamp", "clamp", {"x": rand(6, 11, low=-2, high=2)}, lambda x: torch.clamp(x, -0.7, 0.9),
     attrs={"low": -0.7, "high": 0.9})
case("bias_gelu", "bias_gelu", {"x": rand(2, 5, 5, 7, low=-3, high=3), "b": rand(7)},
     lambda x, b: F.gelu(x + b))

# ---- reductions ---------------------------------------------------------------------------
x4 = rand(3, 4, 5, 6)
for opname in ["sum", "mean", "max", "var"]:
    for dims, keep in [([1], False), ([0, 2], True), ([0, 1, 2], False), ([], False), ([-1], True)]:
        def fn(x, opname=opname, dims=dims, keep=keep):
            d = dims if dims else list(range(x.dim()))
            if opname == "max":
                if len(d) == 1:
                    return torch.max(x, dim=d[0], keepdim=keep).values
                return torch.amax(x, dim=d, keepdim=keep)
            if opname == "var":
                return torch.var(x, dim=d, keepdim=keep, unbiased=True)
            return getattr(torch, opname)(x, dim=d, keepdim=keep)
        case(f"{opname}_{dims}_{keep}", opname, {"x": x4.copy()}, fn,
             attrs={"dims": dims, "keepdim": keep})

# ---- matmul / linear ----------------------------------------------------------------------
case("matmul_2d", "matmul", {"a": rand(7, 5), "b": rand(5, 3)}, lambda a, b: a @ b)
case("matmul_batched_broadcast", "matmul", {"a": rand(2, 1, 4, 5), "b": rand(3, 5, 6)},
     lambda a, b: a @ b)
case("linear", "linear", {"x": rand(2, 3, 9), "w": rand(4, 9), "b": rand(4)},
     lambda x, w, b: F.linear(x, w, b))
case("linear_nobias", "linear", {"x": rand(5, 9), "w": rand(4, 9)}, lambda x, w: F.linear(x, w))

# ---- convolution (NHWC, weights [K,R,S,C/g]) ----------------------------------------------
def conv_case(name, n, h, w, c, k, r, s, stride=1, pad=0, dil=1, groups=1, bias=True):
    ins = {"x": rand(n, h, w, c), "w": rand(k, r, s, c // groups)}
    if bias:
        ins["b"] = rand(k)

    def fn(x, w, b=None):
        y = F.conv2d(nchw(x), w.permute(0, 3, 1, 2), b, stride=stride, padding=pad,
                     dilation=dil, groups=groups)
        return nhwc(y)
    case(name, "conv2d", ins, fn,
         attrs=dict(stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, dilation_h=dil,
                    dilation_w=dil, groups=groups))


conv_case("conv3x3", 2, 9, 7, 5, 6, 3, 3, pad=1)
conv_case("conv3x3_stride2_odd", 1, 11, 9, 3, 4, 3, 3, stride=2, pad=1)
conv_case("conv1x1", 3, 5, 6, 8, 7, 1, 1, bias=False)
conv_case("conv_stem7x7", 1, 17, 15, 3, 8, 7, 7, stride=2, pad=3)
conv_case("conv_dilated", 1, 10, 10, 4, 3, 3, 3, pad=2, dil=2)
conv_case("conv_grouped", 2, 8, 8, 6, 9, 3, 3, pad=1, groups=3)
conv_case("depthwise7x7", 2, 9, 8, 5, 5, 7, 7, pad=3, groups=5)
conv_case("depthwise3x3", 1, 6, 11, 7, 7, 3, 3, pad=1, groups=7)

# ---- pooling ------------------------------------------------------------------------------
case("max_pool2d_resnet", "max_pool2d", {"x": rand(2, 9, 11, 3)},
     lambda x: nhwc(F.max_pool2d(nchw(x), 3, 2, 1)), attrs={"kernel": 3, "stride": 2, "padding": 1})
case("adaptive_avg_pool2d", "adaptive_avg_pool2d", {"x": rand(2, 7, 10, 3)},
     lambda x: nhwc(F.adaptive_avg_pool2d(nchw(x), (3, 4))), attrs={"out_h": 3, "out_w": 4})
case("global_avg_pool", "global_avg_pool", {"x": rand(3, 5, 6, 4)}, lambda x: x.mean(dim=(1, 2)))

# ---- normalisation ------------------------------------------------------------------------
def bn_fn(training):
    def fn(x, w, b, rm, rv):
        rm, rv = rm.detach().clone(), rv.detach().clone()
        y = nhwc(F.batch_norm(nchw(x), rm, rv, w, b, training=training, momentum=0.1, eps=1e-5))
        return y, {"running_mean": rm, "running_var": rv}
    return fn


for training in [True, False]:
    case(f"batch_norm_train{training}", "batch_norm",
         {"x": rand(3, 5, 4, 6), "w": rand(6), "b": rand(6), "rm": rand(6),
          "rv": rand(6, low=0.5, high=1.5)},
         bn_fn(training), attrs={"training": training}, grad=["x", "w", "b"])
case("layer_norm_c7", "layer_norm", {"x": rand(2, 3, 4, 7), "w": rand(7), "b": rand(7)},
     lambda x, w, b: F.layer_norm(x, (7,), w, b, 1e-6), attrs={"eps": 1e-6})
# ConvNeXt's MLP (Linear, GELU, Linear without its bias) and the block's LayerNorm in front.
case("mlp", "mlp", {"x": rand(2, 3, 5, 6), "w1": rand(24, 6), "b1": rand(24), "w2": rand(6, 24)},
     lambda x, w1, b1, w2: F.linear(F.gelu(F.linear(x, w1, b1)), w2))
case("layer_norm_mlp", "layer_norm_mlp",
     {"x": rand(2, 3, 5, 6, low=-2, high=4), "lw": rand(6), "lb": rand(6), "w1": rand(24, 6),
      "b1": rand(24), "w2": rand(5, 24)},
     lambda x, lw, lb, w1, b1, w2: F.linear(F.gelu(F.linear(F.layer_norm(x, (6,), lw, lb, 1e-6),
                                                           w1, b1)), w2),
     attrs={"eps": 1e-6})

# ---- softmax, losses, indexing, k-NN ------------------------------------------------------
case("softmax_dim1", "softmax", {"x": rand(3, 7, 2, low=-5, high=5)},
     lambda x: torch.softmax(x, 1), attrs={"dim": 1})
case("log_softmax_last", "log_softmax", {"x": rand(4, 9, low=-5, high=5)},
     lambda x: torch.log_softmax(x, -1), attrs={"dim": -1})
case("mse_loss", "mse_loss", {"p": rand(8, 2), "t": rand(8, 2)},
     lambda p, t: F.mse_loss(p, t), grad=["p"])
case("huber_loss", "huber_loss", {"p": rand(16, 2, low=-3, high=3), "t": rand(16, 2)},
     lambda p, t: F.huber_loss(p, t, delta=0.7), attrs={"delta": 0.7}, grad=["p"])
case("cat", "cat", {"a": rand(2, 3, 4), "b": rand(2, 5, 4)},
     lambda a, b: torch.cat([a, b], 1), attrs={"dim": 1})
case("stack", "stack", {"a": rand(3, 4), "b": rand(3, 4)},
     lambda a, b: torch.stack([a, b], 1), attrs={"dim": 1})
case("index_select_repeats", "index_select",
     {"x": rand(6, 5), "i": np.array([4, 0, 4, 2], dtype=np.int64)},
     lambda x, i: torch.index_select(x, 0, i), attrs={"dim": 0})
case("gather", "gather", {"x": rand(4, 6), "i": rng.integers(0, 6, size=(4, 3)).astype(np.int64)},
     lambda x, i: torch.gather(x, 1, i), attrs={"dim": 1})
case("pairwise_sq_l2", "pairwise_sq_l2", {"a": rand(5, 7), "b": rand(9, 7)},
     lambda a, b: torch.cdist(a, b) ** 2, rtol=1e-8, atol=1e-9)


def topk_fn(k, largest):
    def fn(x):
        r = torch.topk(x, k, dim=-1, largest=largest, sorted=True)
        return r.values, {"out.indices": r.indices}
    return fn


case("topk_smallest", "topk", {"x": rand(4, 50)}, topk_fn(7, False), attrs={"k": 7})
case("topk_largest", "topk", {"x": rand(3, 20)}, topk_fn(5, True),
     attrs={"k": 5, "largest": True})


def knn_fn(k, metric):
    def fn(q, bank):
        if metric == "l2":
            d = torch.cdist(q, bank) ** 2
            r = torch.topk(d, k, dim=-1, largest=False)
        else:
            s = F.normalize(q, dim=1) @ F.normalize(bank, dim=1).T
            r = torch.topk(s, k, dim=-1, largest=True)
        return r.values, {"out.indices": r.indices}
    return fn


case("knn_l2", "knn_search", {"q": rand(6, 16), "bank": rand(300, 16)}, knn_fn(15, "l2"),
     attrs={"k": 15}, grad=[], rtol=1e-8, atol=1e-9)
case("knn_cosine", "knn_search", {"q": rand(5, 8), "bank": rand(200, 8)}, knn_fn(20, "cosine"),
     attrs={"k": 20, "metric": "cosine"}, grad=[], rtol=1e-8, atol=1e-9)


# ---- float32 spot checks (what models train in) -------------------------------------------
case("f32_conv3x3", "conv2d", {"x": rand(2, 8, 8, 16, dtype=np.float32),
                               "w": rand(8, 3, 3, 16, dtype=np.float32)},
     lambda x, w: nhwc(F.conv2d(nchw(x), w.permute(0, 3, 1, 2), padding=1)),
     attrs={"pad_h": 1, "pad_w": 1}, rtol=1e-4, atol=1e-5)
case("f32_layer_norm_c96", "layer_norm",
     {"x": rand(2, 5, 5, 96, dtype=np.float32), "w": rand(96, dtype=np.float32),
      "b": rand(96, dtype=np.float32)},
     lambda x, w, b: F.layer_norm(x, (96,), w, b, 1e-6), rtol=1e-4, atol=1e-5)


def run_case(c, build_dir, work, report):
    names = list(c["inputs"].keys())
    tin = {k: torch.tensor(v, requires_grad=(k in c["grad"])) for k, v in c["inputs"].items()}
    res = c["torch_fn"](**tin)
    out, extra = (res if isinstance(res, tuple) else (res, {}))
    arrays = dict(c["inputs"])
    if c["grad"]:
        g = rand(*out.shape, dtype=c["inputs"][c["grad"][0]].dtype) if out.dim() else \
            np.array(rand(1)[0], dtype=c["inputs"][c["grad"][0]].dtype)
        arrays["grad_out"] = g
        out.backward(torch.tensor(g))
    spec = {"op": c["op"], "inputs": names, "attrs": c["attrs"], "grad": c["grad"]}
    base = os.path.join(work, c["name"])
    with open(base + ".json", "w") as f:
        json.dump(spec, f)
    pu.write_safetensors(base + ".in", arrays)
    r = pu.run_tool(build_dir, "tests/parity/oprun", [base + ".json", base + ".in", base + ".out"])
    if r.returncode != 0:
        report.check(c["name"], False, r.stderr.strip())
        return
    ours = pu.read_safetensors(base + ".out")
    expect = {"out": out.detach().numpy()}
    expect.update({k: v.detach().numpy() for k, v in extra.items()})
    for k in c["grad"]:
        expect["grad." + k] = tin[k].grad.numpy()
    for key, ref in expect.items():
        got = ours.get(key)
        if got is None:
            report.check(f"{c['name']}:{key}", False, "missing from our output")
            continue
        ref = np.asarray(ref)
        if got.shape != ref.shape:
            report.check(f"{c['name']}:{key}", False, f"shape {got.shape} vs torch {ref.shape}")
            continue
        if ref.dtype == np.int64:
            ok = np.array_equal(got, ref)
            report.check(f"{c['name']}:{key}", ok, "indices differ")
            continue
        err = np.abs(got.astype(np.float64) - ref)
        tol = c["atol"] + c["rtol"] * np.abs(ref)
        ok = bool(np.all(err <= tol))
        worst = float(np.max(err - tol)) if err.size else 0.0
        report.check(f"{c['name']}:{key}", ok, f"max excess over tolerance {worst:.3g}")


def main():
    args = pu.parse_args()
    torch.set_default_dtype(torch.float64)
    report = pu.Report()
    with pu.tmpdir() as work:
        for c in CASES:
            if args.k in c["name"]:
                run_case(c, args.build_dir, work, report)
    report.exit()


if __name__ == "__main__":
    main()
