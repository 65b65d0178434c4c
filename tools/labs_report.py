#!/usr/bin/env python3
"""tools/labs_report.py BENCH_DIR [--out FILE] — the kernel labs' JSON as Markdown tables.

tools/gpu_check.sh runs every lab of bench/cuda/ (<family>_bench --json BENCH_DIR/<family>.json).
This turns those files into what kernels/README.md reports per family: for each operation and
shape, every version's median and best time, GB/s, TFLOP/s, % of the floor (the memory floor at
the copy rate the lab measured on that card) and the ratio against the reference measured in
the same run (cuDNN for conv2d, cuBLAS for matmul, the PyTorch number of shared/baselines/
otherwise), and against PyTorch on the same card in the same session (bench/gpu/
torch_kernels.py's JSON, when there is one), with the card and the date; then, per operation and
shape, the fastest version that passed validation (the one the engine should use). Rows that
failed validation are marked and never picked.

    python3 tools/labs_report.py out/session/check/bench            # print
    python3 tools/labs_report.py out/session/check/bench --out x.md # write
    ... --torch FILE   PyTorch's rows (default: BENCH_DIR/../torch_kernels.json if present)

Standard library only (runs on the GPU machine's Python and here).
"""
import argparse
import glob
import json
import os
import sys


def load_torch(path):
    """{(family, op, shape, math): (ms, device)} from bench/gpu/torch_kernels.py's JSON."""
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("labs_report: skipping %s: %s" % (path, e), file=sys.stderr)
        return {}
    return {(r["family"], r["op"], r["shape"], r.get("math", "fp32")): (r["ms"], doc.get("device"))
            for r in doc.get("rows", []) if r.get("ms")}


def load(bench_dir):
    """[(family, device, date, rows)] for every lab JSON in the folder, by family name."""
    labs = []
    for path in sorted(glob.glob(os.path.join(bench_dir, "*.json"))):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print("labs_report: skipping %s: %s" % (path, e), file=sys.stderr)
            continue
        if not isinstance(doc, dict) or "rows" not in doc or "family" not in doc:
            continue  # not a lab's (torch_kernels.py's rows have no family at the top)
        device = doc.get("device", "?")
        if doc.get("copy_gbps"):
            device += " (floor at its measured copy rate, %.0f GB/s)" % doc["copy_gbps"]
        labs.append((doc.get("family", os.path.basename(path)), device, doc.get("date", "?"),
                     doc["rows"]))
    return labs


def label(row):
    """The version as the table names it: the conv lab's label, else vN (cuDNN/cuBLAS: -1)."""
    if row.get("label"):
        return row["label"]
    v = row.get("version", 0)
    return "vendor" if v < 0 else "v%d" % v


def reference(row):
    """(ms, name) of the same-run or baseline reference for a row, or (0, '')."""
    if row.get("cudnn_ms"):
        return row["cudnn_ms"], "cuDNN"
    if row.get("cublas_ms"):
        return row["cublas_ms"], "cuBLAS"
    if row.get("pytorch_ms"):  # shared/baselines/: an H100, 2026-11-26, L2 not flushed, autograd
        return row["pytorch_ms"], "PyTorch baseline"
    return 0, ""


def fmt(x, digits=3):
    return "—" if x is None else ("%.*f" % (digits, x))


def family_section(family, device, date, rows, torch_rows=None):
    torch_rows = torch_rows or {}
    out = ["### %s — %s, %s" % (family, device, date), ""]
    groups = {}
    for r in rows:
        key = (r.get("op", "?"), r.get("shape", "?"), r.get("math", "fp32"))
        groups.setdefault(key, []).append(r)
    picks = []
    for (op, shape, math), rs in groups.items():
        torch_ms, torch_device = torch_rows.get((family, op, shape, math), (0, None))
        out.append("**%s, %s%s**%s" % (
            op, shape, "" if math == "fp32" else ", " + math,
            " — PyTorch same session: %.4f ms" % torch_ms if torch_ms else ""))
        out.append("")
        out.append("| version | median ms | min ms | GB/s | TFLOP/s | % of floor | vs reference "
                   "| vs PyTorch (same session) | valid |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            ref_ms, ref_name = reference(r)
            ms = r.get("median_ms") or 0
            vs = "%.2f× %s" % (ref_ms / ms, ref_name) if ref_ms and ms else "—"
            gbps = r.get("gbps")
            if gbps is None and r.get("bytes") and ms:  # conv2d_bench writes bytes, not GB/s
                gbps = r["bytes"] / (ms * 1e-3) / 1e9
            vs_torch = "%.2f×" % (torch_ms / ms) if torch_ms and ms else "—"
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label(r), fmt(ms, 4), fmt(r.get("min_ms"), 4), fmt(gbps, 1),
                fmt(r.get("tflops"), 2), fmt(r.get("pct_floor"), 1), vs, vs_torch,
                "yes" if r.get("valid", True) else "**no**"))
        ours = [r for r in rs if r.get("version", 0) >= 0 and r.get("valid", True)
                and r.get("median_ms")]
        if ours:
            best = min(ours, key=lambda r: r["median_ms"])
            ref_ms, ref_name = reference(best)
            picks.append("- %s, %s%s: **%s** %.4f ms%s%s" % (
                op, shape, "" if math == "fp32" else " (" + math + ")", label(best),
                best["median_ms"],
                " (%.2f× %s)" % (ref_ms / best["median_ms"], ref_name) if ref_ms else "",
                " (%.2f× PyTorch, same session)" % (torch_ms / best["median_ms"])
                if torch_ms else ""))
        else:
            picks.append("- %s, %s: no version of ours passed validation" % (op, shape))
        out.append("")
    out.append("Fastest valid version of ours:")
    out.append("")
    out.extend(picks)
    out.append("")
    return out


def report(bench_dir, torch_path=None):
    labs = load(bench_dir)
    if not labs:
        return "No lab JSON in %s (tools/gpu_check.sh writes them to OUT_DIR/bench/).\n" % bench_dir
    if torch_path is None:
        torch_path = os.path.join(os.path.dirname(os.path.abspath(bench_dir)), "torch_kernels.json")
    torch_rows = load_torch(torch_path)
    out = ["## Kernel labs measured (generated by tools/labs_report.py from %s)" % bench_dir, ""]
    if torch_rows:
        device = next(iter(torch_rows.values()))[1]
        out += ["PyTorch columns: bench/gpu/torch_kernels.py on %s in the same session, timed as "
                "the labs (L2 flushed, CUDA events, median)." % device, ""]
    for family, device, date, rows in labs:
        out.extend(family_section(family, device, date, rows, torch_rows))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_dir")
    ap.add_argument("--out")
    ap.add_argument("--torch", help="bench/gpu/torch_kernels.py's JSON")
    a = ap.parse_args()
    text = report(a.bench_dir, a.torch)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
