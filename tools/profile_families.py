"""tools/profile_families.py — per-op profiles of a training step, summed by op family, ours next
to PyTorch's (used by tools/bench_report.py and tools/bench_report_gpu.py).

Ours: the Chrome trace engine::profiler writes (bench/gpu/gpu_e2e_bench.cpp --profile,
bench/e2e/model_bench.cpp with E2E_PROFILE_DIR): one complete event per op, outermost ranges
only, so the durations add up without double counting; on a GPU each is the stream time between
two CUDA events around the op.
PyTorch: the JSON bench/gpu/torch_e2e.py --profile writes from torch.profiler: every (aten op,
input shapes) with its self time (on a GPU: the device time of the kernels the op itself
launched), which also adds up without double counting.
Both are divided by the number of profiled steps: milliseconds per step.
"""
import json
import os

# Families, in the order the tables list them.
FAMILIES = [
    "conv2d", "depthwise conv", "BatchNorm", "LayerNorm + GEMM + GELU", "pooling",
    "elementwise + copies", "loss", "optimizer", "other",
]

_LN_GEMM = "LayerNorm + GEMM + GELU"

_OURS = {
    "conv2d": "conv2d",
    "depthwise_conv2d": "depthwise conv",
    "batch_norm": "BatchNorm",
    # ConvNeXt's LayerNorm and MLP (LayerNorm, Linear, GELU, Linear) are one op of ours
    # (layer_norm_mlp), fused on the GPU: LayerNorms, GEMMs and GELUs are one family, on both
    # sides.
    "layer_norm": _LN_GEMM, "layer_norm_mlp": _LN_GEMM, "mlp": _LN_GEMM, "linear": _LN_GEMM,
    "matmul": _LN_GEMM, "gelu": _LN_GEMM, "bias_gelu": _LN_GEMM,
    "max_pool2d": "pooling", "adaptive_avg_pool2d": "pooling", "global_avg_pool": "pooling",
    "mse_loss": "loss", "huber_loss": "loss",
    "adamw_step": "optimizer", "adam_step": "optimizer", "sgd_step": "optimizer",
}
# Elementwise ops, reductions over them, copies, and views' backward nodes (engine/ops/
# elementwise.cpp, reduce.cpp, dropout.cpp, indexing.cpp, tensor.cpp, view.cpp).
_OURS_ELEMENTWISE = {
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "relu", "sigmoid",
    "tanh", "clamp", "maximum", "minimum", "add_relu", "add_", "scaled_residual", "drop_path",
    "drop_path_scale", "dropout", "accumulate_grad", "fill", "clone", "to_device", "to_host",
    "to_dtype", "sum", "mean", "max", "var", "sum_to", "cat", "index_select", "gather", "view",
    "permute", "slice", "expand",
}


def ours_family(name):
    if name in _OURS:
        return _OURS[name]
    return "elementwise + copies" if name in _OURS_ELEMENTWISE else "other"


def _is_depthwise_weight(shape):
    """A depthwise convolution's weight in PyTorch's layout: [C, 1, k, k] with k > 1."""
    return len(shape) == 4 and shape[1] == 1 and shape[2] == shape[3] and shape[2] > 1


def torch_family(name, input_shapes=(), in_optimizer=False):
    n = name.lower()
    if in_optimizer:
        return "optimizer"
    if "conv" in n:
        return "depthwise conv" if any(_is_depthwise_weight(s) for s in input_shapes) else "conv2d"
    if "batch_norm" in n:
        return "BatchNorm"
    if "layer_norm" in n or "gelu" in n or n in ("aten::mm", "aten::addmm", "aten::bmm",
                                                  "aten::matmul", "aten::linear"):
        return _LN_GEMM
    if "pool" in n:
        return "pooling"
    if "mse_loss" in n or "huber_loss" in n:
        return "loss"
    if "_foreach_" in n or "optimizer." in n or "adam" in n:
        return "optimizer"
    if n.startswith("aten::"):
        return "elementwise + copies"
    return "other"


def ours_ms(trace_path, steps, key, pid=0):
    """{key(event): ms per step} from our Chrome trace, summing its op events ("X") by key.
    Process 0 holds the session's clock (the GPU's in a CUDA session), process 1 the host's
    time queuing each op (CUDA sessions only)."""
    with open(trace_path) as f:
        doc = json.load(f)
    out = {}
    for e in doc.get("traceEvents", []):
        if e.get("ph") != "X" or e.get("pid", 0) != pid:
            continue
        k = key(e)
        out[k] = out.get(k, 0.0) + float(e.get("dur", 0)) / 1000.0 / steps
    return out


def ours_ms_per_family(trace_path, steps, pid=0):
    """{family: ms per step} from our Chrome trace (ours_ms by ours_family)."""
    return ours_ms(trace_path, steps, lambda e: ours_family(e.get("name", "")), pid)


def torch_ms_per_family(json_path):
    """{family: ms per step} from torch_e2e.py's profile JSON."""
    with open(json_path) as f:
        doc = json.load(f)
    steps = max(1, int(doc.get("steps", 1)))
    out = {}
    for op in doc.get("ops", []):
        fam = torch_family(op.get("name", ""), op.get("input_shapes") or (), op.get("in_optimizer", False))
        out[fam] = out.get(fam, 0.0) + float(op.get("self_us", 0)) / 1000.0 / steps
    return out


def table(columns):
    """Markdown table of ms per step by family. columns: [(label, {family: ms})], ours first (one or
    more), the reference (PyTorch) last; each of ours also gets a column "÷ reference" (time ratio)
    and the first one its share of its total. Every family present anywhere, in FAMILIES order,
    then the totals."""
    ref_label, ref = columns[-1]
    ours = columns[:-1]
    head = ["op family"] + ["%s ms" % lbl for lbl, _ in columns]
    head += ["%s ÷ %s" % (lbl, ref_label) for lbl, _ in ours] + ["share of %s" % ours[0][0]]
    total0 = sum(ours[0][1].values())
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name, values, share):
        ms = ["%.1f" % v if v is not None else "–" for v in values]
        b = values[-1]
        # A ratio of two hundredths of a millisecond says nothing: shown from 0.05 ms up.
        ratios = ["%.2f" % (a / b) if a is not None and b and b >= 0.05 else "–" for a in values[:-1]]
        return "| " + " | ".join([name] + ms + ratios + [share]) + " |"

    for fam in FAMILIES:
        values = [c.get(fam) for _, c in columns]
        if all(v is None for v in values):
            continue
        a = values[0]
        lines.append(row(fam, values, "%.0f%%" % (100 * a / total0) if a is not None and total0 else "–"))
    lines.append(row("**total in ops**", [sum(c.values()) for _, c in columns], "100%"))
    return "\n".join(lines)


def slower_families(columns, min_ms):
    """[(family, label, ours ms, reference ms)] where one of ours takes over 1.05x the reference's
    time and the reference spends at least min_ms there (below that a ratio is noise)."""
    ref_label, ref = columns[-1]
    out = []
    for fam in FAMILIES:
        b = ref.get(fam, 0.0)
        if b < min_ms:
            continue
        for label, c in columns[:-1]:
            a = c.get(fam)
            if a is not None and a > 1.05 * b:
                out.append((fam, label, a, b))
    return out


def section(models, intro, slower=None, scope="", min_ms=1.0):
    """models: [(title, [(label, kind, path, steps)])] with kind "ours" (our Chrome trace; steps:
    how many steps it holds) or "torch" (torch_e2e.py's profile JSON; steps: ignored), the
    reference last; a column whose file is missing is left out. The Markdown of every model with
    at least one of ours and the reference, or None when none has them. Families where ours is
    slower (slower_families) are appended to `slower` as lines naming `scope` and the model."""
    parts = []
    for title, cols in models:
        columns = []
        for label, kind, path, steps in cols:
            if not path or not os.path.exists(path):
                continue
            try:
                ms = ours_ms_per_family(path, steps) if kind == "ours" else torch_ms_per_family(path)
            except (OSError, ValueError):
                continue
            columns.append((label, ms, kind))
        if len(columns) < 2 or columns[-1][2] != "torch" or columns[0][2] != "ours":
            continue
        cols = [(lbl, ms) for lbl, ms, _ in columns]
        parts.append("**%s**\n\n%s" % (title, table(cols)))
        if slower is not None:
            for fam, label, a, b in slower_families(cols, min_ms):
                slower.append("%s%s, op family %s (per-op profile): %s %.1f ms vs %s %.1f ms per step "
                              "(%.2f×)" % (scope, title.split(" (")[0], fam, label, a, cols[-1][0], b, a / b))
    return intro + "\n\n" + "\n\n".join(parts) if parts else None
