#!/usr/bin/env python3
"""tools/labs_report.py on lab JSON shaped as bench/cuda writes it (bench_common.cuh's
write_json and conv2d_bench.cu's own): tables per op and shape, the same-run reference, and
the fastest *valid* version of ours picked (a faster invalid one never is)."""
import json
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import labs_report  # noqa: E402


def common_row(op, shape, version, ms, valid=True, pytorch_ms=0.0):
    return {"op": op, "shape": shape, "version": version, "median_ms": ms, "min_ms": ms * 0.95,
            "bytes": 1.5e8, "flops": 0, "gbps": 1.5e8 / (ms * 1e-3) / 1e9, "tflops": 0,
            "floor_ms": 0.0593, "pct_floor": 100 * 0.0593 / ms, "pytorch_ms": pytorch_ms,
            "valid": valid}


def conv_row(label, version, math, ms, cudnn_ms, valid=True):
    return {"op": "forward", "shape": "res2_3x3", "label": label, "version": version,
            "math": math, "median_ms": ms, "min_ms": ms, "flops": 1.48e10, "bytes": 1e8,
            "tflops": 1.48e10 / (ms * 1e-3) / 1e12, "floor_ms": 0.22, "pct_floor": 22 / ms,
            "cudnn_ms": cudnn_ms, "vs_cudnn": cudnn_ms / ms if cudnn_ms else 0, "valid": valid}


def write(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)


class LabsReport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        card, date = "NVIDIA H100 80GB HBM3", "2026-11-27"
        dw = "64x56x56x96"
        write(os.path.join(d, "depthwise_conv2d.json"), {
            "family": "depthwise_conv2d", "device": card, "date": date, "rows": [
                common_row("forward", dw, 1, 0.90, pytorch_ms=0.46),
                common_row("forward", dw, 2, 0.20, valid=False, pytorch_ms=0.46),
                common_row("forward", dw, 3, 0.23, pytorch_ms=0.46)]})
        write(os.path.join(d, "conv2d.json"), {
            "family": "conv2d", "device": card, "date": date, "rows": [
                conv_row("cuDNN fp32", -1, "fp32", 0.40, 0),
                conv_row("v3", 3, "fp32", 0.80, 0.40),
                conv_row("cuDNN tf32", -1, "tf32", 0.20, 0),
                conv_row("v4", 4, "tf32", 0.25, 0.20)]})
        with open(os.path.join(d, "broken.json"), "w") as f:
            f.write("{not json")  # skipped with a message, not a crash

    def tearDown(self):
        self.tmp.cleanup()

    def test_tables_and_picks(self):
        text = labs_report.report(self.tmp.name)
        self.assertIn("### depthwise_conv2d — NVIDIA H100 80GB HBM3, 2026-11-27", text)
        # v2 is the fastest but failed validation: marked, and v3 is the pick.
        self.assertIn("| v2 | 0.2000 |", text)
        self.assertIn("| **no** |", text)
        self.assertIn("- forward, 64x56x56x96: **v3** 0.2300 ms (2.00× PyTorch baseline)", text)
        # conv2d: fp32 and tf32 are separate tables, each against cuDNN in the same math.
        self.assertIn("**forward, res2_3x3**", text)
        self.assertIn("**forward, res2_3x3, tf32**", text)
        self.assertIn("- forward, res2_3x3: **v3** 0.8000 ms (0.50× cuDNN)", text)
        self.assertIn("- forward, res2_3x3 (tf32): **v4** 0.2500 ms (0.80× cuDNN)", text)

    def test_same_session_pytorch_column(self):
        # bench/gpu/torch_kernels.py's rows, matched by family, op, shape and math; the lab's
        # measured copy rate named beside the card.
        d = self.tmp.name
        torch_json = os.path.join(d, "torch.json")
        write(torch_json, {"device": "NVIDIA H200", "rows": [
            {"family": "depthwise_conv2d", "op": "forward", "shape": "64x56x56x96", "ms": 0.69},
            {"family": "conv2d", "op": "forward", "shape": "res2_3x3", "math": "tf32",
             "ms": 0.50},
            {"family": "layernorm", "op": "forward", "shape": "64x56x56x96", "ms": 9.0}]})
        doc = json.load(open(os.path.join(d, "depthwise_conv2d.json")))
        doc["copy_gbps"] = 4300.0
        write(os.path.join(d, "depthwise_conv2d.json"), doc)
        text = labs_report.report(d, torch_json)
        self.assertIn("measured copy rate, 4300 GB/s", text)
        self.assertIn("- forward, 64x56x56x96: **v3** 0.2300 ms (2.00× PyTorch baseline) "
                      "(3.00× PyTorch, same session)", text)
        self.assertIn("- forward, res2_3x3 (tf32): **v4** 0.2500 ms (0.80× cuDNN) "
                      "(2.00× PyTorch, same session)", text)
        # fp32 conv has no PyTorch row: no same-session ratio is made up for it.
        self.assertIn("- forward, res2_3x3: **v3** 0.8000 ms (0.50× cuDNN)\n", text)
        # Without the file, no PyTorch column values.
        self.assertNotIn("PyTorch, same session)", labs_report.report(d, os.path.join(d, "absent.json")))

    def test_no_valid_version_is_said(self):
        d = self.tmp.name
        bad = common_row("forward", "x", 1, 1.0, valid=False)
        write(os.path.join(d, "gelu.json"),
              {"family": "gelu", "device": "H100", "date": "2026-11-27", "rows": [bad]})
        self.assertIn("- forward, x: no version of ours passed validation",
                      labs_report.report(d))

    def test_empty_folder(self):
        with tempfile.TemporaryDirectory() as empty:
            self.assertIn("No lab JSON", labs_report.report(empty))


if __name__ == "__main__":
    unittest.main()
