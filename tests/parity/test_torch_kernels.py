#!/usr/bin/env python3
"""bench/gpu/torch_kernels.py, PyTorch's side of the kernel labs' comparison: its fwd+bwd rows
are the sums of the forward and backward rows timed alone (as the labs sum theirs), not the
autograd call on a leaf tensor (which also accumulates into .grad: the first H200 report's
GELU ratios were 1.6-4.7x too kind to us for it), and the row names match the labs'. Needs
PyTorch (Debian's python3-torch): without it, exits 77 (CTest: skipped) saying so.

  /usr/bin/python3 tests/parity/test_torch_kernels.py [--build-dir DIR (unused)]"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "gpu"))
try:
    import torch_kernels  # noqa: E402 (imports torch)
except ImportError as e:  # no PyTorch in this python
    print("SKIPPED: PyTorch is not importable by %s (%s); tools/install_deps.sh test installs "
          "python3-torch" % (sys.executable, e))
    sys.exit(77)


def row(family, op, shape, ms):
    return {"family": family, "op": op, "shape": shape, "ms": ms, "min_ms": ms * 0.9}


class TorchKernels(unittest.TestCase):
    def test_fwd_bwd_is_the_sum_of_its_parts(self):
        rows = [row("layernorm", "forward", "s", 0.3), row("layernorm", "backward", "s", 0.25),
                row("layernorm", "fwd+bwd", "s", 9.0),  # an old autograd timing: replaced
                row("depthwise_conv2d", "forward", "s", 1.0),
                row("depthwise_conv2d", "backward_data", "s", 2.0),  # no weight gradient row:
                row("gelu", "gelu_forward", "t", 0.04), row("gelu", "gelu_backward", "t", 0.06),
                row("batchnorm", "forward", "u", 0.2), row("batchnorm", "backward", "u", 0.3),
                row("batchnorm", "forward+relu", "u", 0.25),
                row("batchnorm", "backward+relu", "u", 0.4)]
        got = {(r["family"], r["op"], r["shape"]): r for r in torch_kernels.with_sums(rows)}
        self.assertAlmostEqual(got[("layernorm", "fwd+bwd", "s")]["ms"], 0.55)
        self.assertAlmostEqual(got[("layernorm", "fwd+bwd", "s")]["min_ms"], 0.495)
        self.assertAlmostEqual(got[("gelu", "gelu_fwd+bwd", "t")]["ms"], 0.10)
        self.assertNotIn(("depthwise_conv2d", "fwd+bwd", "s"), got)  # never a partial sum
        self.assertEqual(len([k for k in got if k[1] == "fwd+bwd" and k[0] == "layernorm"]), 1)
        # a family with two sums (BatchNorm alone, and followed by a ReLU): each of its parts
        self.assertAlmostEqual(got[("batchnorm", "fwd+bwd", "u")]["ms"], 0.5)
        self.assertAlmostEqual(got[("batchnorm", "fwd+bwd+relu", "u")]["ms"], 0.65)

    def test_cpu_smoke_run_names_rows_as_the_labs(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "tk.json")
            r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu", "torch_kernels.py"),
                                "--device", "cpu", "--batch", "1", "--reps", "1", "--quick",
                                "--families", "layernorm,gelu,batchnorm", "--json", out],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            with open(out) as f:
                rows = {(x["family"], x["op"], x["shape"]): x for x in json.load(f)["rows"]}
        ln = [rows[("layernorm", op, "1x56x56x96")] for op in ("forward", "backward", "fwd+bwd")]
        self.assertAlmostEqual(ln[2]["ms"], ln[0]["ms"] + ln[1]["ms"])
        self.assertIn(("layernorm", "fwd+bwd_autograd", "1x56x56x96"), rows)
        self.assertIn(("gelu", "gelu_fwd+bwd", "1x14x14x384"), rows)
        self.assertIn(("gelu", "bias_gelu_bwd+dbias", "1x7x7x768"), rows)
        bn = [rows[("batchnorm", op, "1x7x7x2048")]
              for op in ("forward+relu", "backward+relu", "fwd+bwd+relu")]
        self.assertAlmostEqual(bn[2]["ms"], bn[0]["ms"] + bn[1]["ms"])
        self.assertIn(("batchnorm", "fwd+bwd_autograd+relu", "1x7x7x2048"), rows)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]])  # --build-dir (from tests/parity/CMakeLists.txt) unused
