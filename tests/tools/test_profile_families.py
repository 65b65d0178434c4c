#!/usr/bin/env python3
"""tools/profile_families.py on profiles shaped as the benchmarks write them (engine::profiler's
Chrome trace, torch_e2e.py's profile JSON): ops mapped to families on both sides (depthwise told
from dense convolutions by PyTorch's weight shape, PyTorch's optimizer ops by their parent),
milliseconds per step, and the Markdown table with its ratios and totals; and the GPU report's
section reading such files from a gpu_bench.sh folder."""
import json
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_report_gpu  # noqa: E402
import profile_families as pf  # noqa: E402


def ours_trace(events, host_us=None):
    """A trace as Profile::chrome_trace writes it: track names, then one X event per op on the
    session's clock (pid 0) and, for a CUDA session (host_us given), again on the host's (pid 1)."""
    meta = [{"ph": "M", "name": "thread_name", "pid": 0, "tid": t, "args": {"name": n}}
            for t, n in enumerate(("forward", "backward", "optimizer"))]
    ops = [{"ph": "X", "name": n, "cat": "forward", "pid": 0, "tid": 0, "ts": i * 10.0, "dur": us}
           for i, (n, us) in enumerate(events)]
    if host_us is not None:
        ops += [{"ph": "X", "name": n, "cat": "forward", "pid": 1, "tid": 0, "ts": i * 10.0, "dur": h}
                for i, ((n, _), h) in enumerate(zip(events, host_us))]
    return {"displayTimeUnit": "ms", "traceEvents": meta + ops}


def torch_profile(ops, steps):
    return {"steps": steps, "clock": "gpu", "ops": [
        {"name": n, "input_shapes": shapes, "in_optimizer": opt, "calls": 1, "self_us": us}
        for n, shapes, opt, us in ops]}


def dump(doc, path):
    with open(path, "w") as f:
        json.dump(doc, f)


class Families(unittest.TestCase):
    def test_ours(self):
        self.assertEqual(pf.ours_family("depthwise_conv2d"), "depthwise conv")
        self.assertEqual(pf.ours_family("conv2d"), "conv2d")
        self.assertEqual(pf.ours_family("mlp"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.ours_family("layer_norm_mlp"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.ours_family("layer_norm"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.ours_family("adamw_step"), "optimizer")
        self.assertEqual(pf.ours_family("accumulate_grad"), "elementwise + copies")
        self.assertEqual(pf.ours_family("something_new"), "other")

    def test_torch_depthwise_by_weight_shape(self):
        dw = [[64, 96, 56, 56], [96, 1, 7, 7], [96]]
        dense = [[64, 96, 56, 56], [192, 96, 2, 2], [192]]
        stem = [[64, 3, 224, 224], [96, 3, 4, 4], [96]]
        self.assertEqual(pf.torch_family("aten::cudnn_convolution", dw), "depthwise conv")
        self.assertEqual(pf.torch_family("aten::convolution_backward", [[64, 96, 56, 56]] + dw), "depthwise conv")
        self.assertEqual(pf.torch_family("aten::cudnn_convolution", dense), "conv2d")
        self.assertEqual(pf.torch_family("aten::cudnn_convolution", stem), "conv2d")

    def test_torch_others(self):
        self.assertEqual(pf.torch_family("aten::native_layer_norm_backward"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.torch_family("aten::cudnn_batch_norm"), "BatchNorm")
        self.assertEqual(pf.torch_family("aten::addmm"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.torch_family("aten::gelu_backward"), "LayerNorm + GEMM + GELU")
        self.assertEqual(pf.torch_family("aten::_foreach_mul_"), "optimizer")
        self.assertEqual(pf.torch_family("aten::mul_", in_optimizer=True), "optimizer")
        self.assertEqual(pf.torch_family("aten::mul_"), "elementwise + copies")
        self.assertEqual(pf.torch_family("cudaLaunchKernel"), "other")


class Totals(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def write(self, name, doc):
        path = os.path.join(self.dir, name)
        dump(doc, path)
        return path

    def test_ms_per_step_and_table(self):
        ours = self.write("o.json", ours_trace([("depthwise_conv2d", 3000), ("depthwise_conv2d", 1000),
                                                 ("mlp", 2000), ("adamw_step", 1000)]))
        theirs = self.write("t.json", torch_profile([
            ("aten::convolution_backward", [[8, 96, 56, 56], [8, 96, 56, 56], [96, 1, 7, 7]], False, 16000),
            ("aten::mm", [[8, 96], [96, 384]], False, 4000),
            ("aten::_foreach_add_", [], False, 2000)], steps=2))
        o, t = pf.ours_ms_per_family(ours, 2), pf.torch_ms_per_family(theirs)
        self.assertEqual(o, {"depthwise conv": 2.0, "LayerNorm + GEMM + GELU": 1.0, "optimizer": 0.5})
        self.assertEqual(t, {"depthwise conv": 8.0, "LayerNorm + GEMM + GELU": 2.0, "optimizer": 1.0})
        md = pf.table([("ours", o), ("PyTorch", t)])
        lines = md.splitlines()
        self.assertEqual(lines[0], "| op family | ours ms | PyTorch ms | ours ÷ PyTorch | share of ours |")
        self.assertIn("| depthwise conv | 2.0 | 8.0 | 0.25 | 57% |", lines)
        self.assertIn("| **total in ops** | 3.5 | 11.0 | 0.32 | 100% |", lines)
        # Families in FAMILIES order, whatever order the profiles list them.
        order = [ln.split(" | ")[0][2:] for ln in lines[2:-1]]
        self.assertEqual(order, ["depthwise conv", "LayerNorm + GEMM + GELU", "optimizer"])

    def test_a_family_on_one_side_only(self):
        md = pf.table([("ours", {"conv2d": 1.0}), ("PyTorch", {"conv2d": 2.0, "other": 0.5})])
        self.assertIn("| other | – | 0.5 | – | – |", md.splitlines())

    def test_slower_families_above_the_noise_floor(self):
        ours = {"pooling": 4.1, "conv2d": 900.0, "loss": 0.05}
        theirs = {"pooling": 3.2, "conv2d": 1000.0, "loss": 0.01}
        self.assertEqual(pf.slower_families([("ours", ours), ("PyTorch", theirs)], min_ms=1.0),
                         [("pooling", "ours", 4.1, 3.2)])  # loss: 5x, but 0.01 ms
        slower = []
        a = self.write("o.json", ours_trace([("max_pool2d", 4100), ("conv2d", 900000)]))
        b = self.write("t.json", torch_profile([("aten::max_pool2d_with_indices", [], False, 3200),
                                                ("aten::mkldnn_convolution", [], False, 1000000)], 1))
        pf.section([("ResNet-50", [("ours", "ours", a, 1), ("PyTorch", "torch", b, 1)])], "intro",
                   slower, scope="CPU training step, ")
        self.assertEqual(slower, ["CPU training step, ResNet-50, op family pooling (per-op profile): "
                                  "ours 4.1 ms vs PyTorch 3.2 ms per step (1.28×)"])

    def test_section_needs_ours_and_the_reference(self):
        ours = self.write("o.json", ours_trace([("conv2d", 1000)]))
        theirs = self.write("t.json", torch_profile([("aten::cudnn_convolution", [], False, 1000)], 1))
        self.assertIsNone(pf.section([("m", [("ours", "ours", ours, 1)])], "intro"))
        self.assertIsNone(pf.section([("m", [("ours", "ours", "/nonexistent", 1),
                                             ("PyTorch", "torch", theirs, 1)])], "intro"))
        md = pf.section([("m", [("ours", "ours", ours, 1), ("PyTorch", "torch", theirs, 1)])], "intro")
        self.assertTrue(md.startswith("intro\n\n**m**\n\n| op family |"))


class CpuReport(unittest.TestCase):
    def test_section_from_a_bench_cpu_folder(self):
        import bench_report  # noqa: E402 (tools/, on the path above)
        d = tempfile.mkdtemp()
        os.makedirs(os.path.join(d, "profile"))
        dump(ours_trace([("max_pool2d", 4100), ("conv2d", 900000)]),
             os.path.join(d, "profile", "profile_train_resnet50_cpu.trace.json"))
        dump(torch_profile([("aten::max_pool2d_with_indices", [], False, 3200),
                            ("aten::mkldnn_convolution", [], False, 1000000)], 1),
             os.path.join(d, "profile", "profile_train_resnet50_fp32_eager_channels_last_torch.json"))
        slower = []
        md = bench_report.profile_section(d, "LibTorch 1.13 (Debian)", slower)
        self.assertIn("PyTorch 1.13 from Debian's python3-torch", md)
        self.assertIn("**ResNet-50**", md)
        self.assertNotIn("ResNet-18", md)  # no files for it: left out, not an empty table
        self.assertIn("| conv2d | 900.0 | 1000.0 | 0.90 | 100% |", md.splitlines())
        self.assertEqual(len(slower), 1)
        self.assertIn("ResNet-50, op family pooling", slower[0])
        self.assertIsNone(bench_report.profile_section(tempfile.mkdtemp(), "LibTorch 1.13 (Debian)"))


class GpuReport(unittest.TestCase):
    def test_our_kernel_choices_in_words(self):
        kind = bench_report_gpu.ours_kind
        self.assertEqual(kind({"variant": "vendor"}), "cuBLAS/cuDNN")
        self.assertEqual(kind({"variant": "default+BATCHNORM=ours"}),
                         "engine defaults, BATCHNORM ours")
        self.assertEqual(kind({"variant": "vendor+BATCHNORM=ours+POOL=ours"}),
                         "cuBLAS/cuDNN, BATCHNORM ours, POOL ours")
        self.assertEqual(kind({"variant": "something_else"}), "something_else")

    def test_section_from_a_gpu_bench_folder(self):
        d = tempfile.mkdtemp()
        os.makedirs(os.path.join(d, "profile"))
        dump(ours_trace([("depthwise_conv2d", 500)], host_us=[200]),
             os.path.join(d, "profile", "profile_train_convnext_tiny_tf32_vendor.trace.json"))
        dump(torch_profile([("aten::convolution_backward", [[1, 1, 7, 7]], False, 3000)], 1),
             os.path.join(d, "profile", "p_torch.json"))
        base = {"bench": "train", "model": "convnext_tiny", "precision": "tf32", "status": "ok"}
        # Paths as the GPU machine wrote them: only their file names are used here.
        dump({"context": {"side": "ours"}, "results": [dict(
            base, side="ours", variant="vendor", img_s=100.0,
            profile_trace="/tmp/gpu-session.x/bench/profile/profile_train_convnext_tiny_tf32_vendor.trace.json",
            profile_steps=1)]}, os.path.join(d, "ours.json"))
        dump({"context": {"side": "pytorch"}, "results": [dict(
            base, side="pytorch", variant="eager_channels_last", img_s=50.0,
            profile_ops="/elsewhere/profile/p_torch.json")]}, os.path.join(d, "torch.json"))
        md = bench_report_gpu.profile_section(bench_report_gpu.GpuRun(d))
        self.assertIsNotNone(md)
        # The GPU's times in the table; the host's, from the trace's second process, in the title.
        self.assertIn("**ConvNeXt-Tiny, training step, TF32 (host time queuing our ops, per step: "
                      "ours cuDNN 0.2 ms for 0.5 ms of GPU time)**", md)
        self.assertIn("| depthwise conv | 0.5 | 3.0 | 0.17 | 100% |", md.splitlines())


if __name__ == "__main__":
    unittest.main()
