#!/usr/bin/env python3
"""tests/parity/test_models.py — whole models against torchvision, on the CPU or on CUDA.

For resnet18, resnet50 and convnext_tiny (full size) a torchvision model is built with
torch.manual_seed(0), and then everything torchvision initialises to a constant is randomised
to O(1) values with a fixed seed: BatchNorm running_mean/var, affine weight/bias and
num_batches_tracked, LayerNorm affine weight/bias, and ConvNeXt's layer_scale (initialised to
1e-6, it would hide every block). The state_dict is saved as .pth and converted with
weights/convert.py, as a user would. Our side is tests/parity/modelrun (modelrun.cpp), run in
float32 (what the app uses) and in float64. Torch's side always runs in float64 on the same
float32 weights and inputs, so the reference has no rounding error of its own. Inputs are
written NCHW (torch's layout); modelrun permutes them to our NHWC.

Checks (batch 2):
  eval_32/64     224x224, eval mode, 1000-class head: the output and the embedding before the
                 head, per tensor max|ours - torch| <= tol * max|torch| (relative to the
                 tensor's scale: elementwise rtol is meaningless on logits near zero);
                 tol 1e-4 in float32, 1e-10 in float64.
  train_grad_64  train mode (BatchNorm batch statistics), head replaced by a seeded
  (and _32 for   2-output Linear, loss = MSE against a fixed target, backward: the output, the
  ConvNeXt)      loss, the gradient of EVERY parameter, and every parameter and buffer afterwards
                 (running stats updated from the batch, num_batches_tracked exact), per tensor
                 ||ours - torch|| / ||torch|| <= 1e-9 in float64, 1e-3 in float32. ResNets at
                 224x224, convnext_tiny at 160x160 (torch's float64 depthwise convolution takes
                 most of the script's time); ConvNeXt's stochastic depth is off (it is random).
  train_fwd_32   the ResNets in float32: the same output, loss and state, not the gradients
                 (ReLU kinks make float32 gradients incomparable, see ARCHS).
  adamw_64       five AdamW steps (lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.05) on
                 the fixed batch in train mode, setup as train_grad, float64: each step's loss
                 and every final parameter and buffer per tensor within 1e-7 relative.
  cli_32         `image2gps forward` (and --features) on a 224x224 PNG written here, resnet18,
                 against torchvision on the same pixels (ToTensor + ImageNet Normalize),
                 tolerance as eval_32. Reported as skipped when apps/image2gps is not built.
The last lines printed are the worst error of each (model, check) next to its tolerance.

--device cuda (or PARITY_DEVICE=cuda) runs our side on the GPU (a CUDA build's modelrun and
image2gps) against the same PyTorch float64 references, computed on the CPU as above, so the
CUDA results are held to the CPU's reference. TF32 is forced off (ENGINE_CUDA_TF32=0). Every
float32 check runs twice, suffixed _vendor (cuBLAS/cuDNN for every family that has them) and
_ours (ENGINE_CUDA_IMPL_<FAMILY>=ours: the engine's own kernels); float64 runs with the
engine's defaults, which are our kernels for every cuDNN family (cuDNN takes float32 only here)
and cuBLAS's DGEMM. The tolerances are the CPU's, for these reasons:
  * float32: the GPU's sums run in another order (tiles, split reductions, FMA contraction)
    than the CPU's, but their rounding error has the same size (~sqrt(terms) * 6e-8 relative),
    which is what the CPU tolerances were set against with a wide margin (measured on the
    CPU: worst eval_32 4e-7 against 1e-4, train_fwd_32 6e-6 and train_grad_32 1.5e-6 against
    1e-3). cuDNN's Winograd and FFT algorithms, which the engine may pick for float32 (FMA
    math, not TF32), add transform rounding that is larger but, by the literature, within
    ~10x of a direct convolution's, still far inside these margins.
  * train_grad_32 / train_fwd_32 / the states are compared by norm relative to the tensor's
    norm, as on the CPU, so a few elements with large relative error (cancellation) do not
    decide; cuDNN's batch-norm statistics are float32 sums (ours are shifted sums in
    double), over at most 2x112x112 values per channel here: ~1e-6 relative, far below 1e-3.
  * float64 (eval, train_grad, adamw): the engine's float64 kernels accumulate in float64 in
    any order; their error (~1e-14) is as far below the tolerances as the CPU's. AdamW runs in
    float64 for the reason the ResNets' gradients do: a float32 gradient component that is
    zero up to rounding becomes a full +-lr step whose sign the rounding picks.
The PyTorch references take most of the time on either device (one thread, see
torch_threads: ~30 s for the three models on an idle core here); our side on an H100 is
CUDA start-up, weight loading and milliseconds of compute per run.

    /usr/bin/python3 tests/parity/test_models.py --build-dir build [-k resnet18]
    /usr/bin/python3 tests/parity/test_models.py --build-dir build-cuda --device cuda
Exit status: 0 pass, 1 fail, 77 skipped (torch/torchvision missing, modelrun not built, or
--device cuda without a CUDA build or a visible GPU).
"""
import copy
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_util as pu  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONVERT = os.path.join(ROOT, "weights", "convert.py")

pu.require_torch()
try:
    import torchvision  # noqa: E402
except ImportError as e:
    print(f"SKIPPED: model parity needs python3-torchvision ({e}); "
          "install it with tools/install_deps.sh test")
    sys.exit(pu.SKIP)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# Tolerances per our dtype (the reference is always torch in float64). float32 is what the
# app trains in; float64 shows the math itself is torchvision's, to rounding.
EVAL_TOL = {"float32": 1e-4, "float64": 1e-10}   # max|ours - torch| / max|torch|, per tensor
GRAD_TOL = {"float32": 1e-3, "float64": 1e-9}    # ||ours - torch|| / ||torch||, per tensor
ADAMW_TOL = 1e-7                                 # same norm, float64; also each step's loss
ADAMW = dict(lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05, steps=5)
BATCH = 2
CUDA_FAMILIES = ("GEMM", "CONV", "DEPTHWISE", "BATCHNORM", "POOL")  # engine/cuda/runtime.h


def tolerance(mode):
    """The tolerance of a check by its mode name (eval_32, train_grad_64_ours, ...)."""
    base = mode.replace("_vendor", "").replace("_ours", "")
    bits = "float64" if base.endswith("_64") else "float32"
    if base.startswith("adamw"):
        return ADAMW_TOL
    if base.startswith("eval") or base.startswith("cli"):
        return EVAL_TOL[bits]
    return GRAD_TOL[bits]

# arch -> (embedding dim, head module path, training-check resolution, float32 train_grad too).
# float32 gradients of a ReLU network are not comparable to float64 ones: a pre-activation
# within ~1e-6 of zero lands on either side of the ReLU (or max-pool) depending on rounding,
# and that one decision moves whole gradient tensors by more than 1e-3 (measured on resnet18 at
# 224x224: torch's own float32 conv1.weight gradient is 5e-3 away from its float64 one). The
# ResNets' training checks therefore run in float64; ConvNeXt has no such kinks (GELU), so its
# float32 gradients are checked as well.
ARCHS = {
    "resnet18": (512, "fc", 224, False),
    "resnet50": (2048, "fc", 224, False),
    "convnext_tiny": (768, "classifier.2", 160, True),  # torch's float64 depthwise conv is slow
}


# ---- torch side ----------------------------------------------------------------------------

def build_torch_model(arch):
    torch.manual_seed(0)
    kw = {"stochastic_depth_prob": 0.0} if arch.startswith("convnext") else {}
    model = getattr(torchvision.models, arch)(weights=None, **kw)
    randomise_constants(model, seed=1234)
    return model


def randomise_constants(model, seed):
    """Gives every parameter/buffer that torchvision initialises to a constant random O(1)
    values, so that a wrong running stat, affine term or layer scale shows in the output."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.5, 0.5)
                uniform(m.running_mean, -0.5, 0.5)
                uniform(m.running_var, 0.5, 2.0)
                m.num_batches_tracked.fill_(int(torch.randint(0, 100, (1,), generator=g)))
            elif isinstance(m, tnn.LayerNorm):  # torchvision's LayerNorm2d is a subclass
                uniform(m.weight, 0.5, 1.5)
                uniform(m.bias, -0.5, 0.5)
            if hasattr(m, "layer_scale"):
                uniform(m.layer_scale, 0.2, 1.0)


def set_head(model, path, num_outputs, embedding_dim, seed):
    torch.manual_seed(seed)
    lin = tnn.Linear(embedding_dim, num_outputs)
    parent = model
    parts = path.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p) if not p.isdigit() else parent[int(p)]
    if parts[-1].isdigit():
        parent[int(parts[-1])] = lin
    else:
        setattr(parent, parts[-1], lin)


def head_module(model, path):
    m = model
    for p in path.split("."):
        m = m[int(p)] if p.isdigit() else getattr(m, p)
    return m


def forward_with_features(model, head_path, x):
    """(output, the head's input) — the head's input is our features()."""
    seen = {}
    h = head_module(model, head_path).register_forward_hook(
        lambda mod, inp, out: seen.__setitem__("f", inp[0]))
    try:
        y = model(x)
    finally:
        h.remove()
    return y, seen["f"]


def save_and_convert(model, work, name):
    pth = os.path.join(work, name + ".pth")
    st = os.path.join(work, name + ".safetensors")
    torch.save(model.state_dict(), pth)
    r = subprocess.run([sys.executable, CONVERT, pth, st], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"weights/convert.py failed on {name}: {r.stderr.strip()}")
    os.remove(pth)
    return st


# ---- comparisons ---------------------------------------------------------------------------

def quiet_report():
    """pu.Report prints one line per case; with ~500 tensors per model only failures and a
    per-(model, mode) summary are worth printing."""
    class QuietReport(pu.Report):
        def check(self, name, ok, detail="", quiet=False):
            if ok:
                self.passed += 1
                if not quiet:
                    print(f"  ok    {name}")
            else:
                self.failed.append(name)
                print(f"  FAIL  {name}: {detail}")
    return QuietReport()


class Tracker:
    """Wraps pu.Report: records the worst error per (arch, mode) for the summary."""

    def __init__(self):
        self.report = quiet_report()
        self.worst = {}

    def compare(self, arch, mode, key, ours, ref, tol, kind):
        name = f"{arch}:{mode}:{key}"
        ref = np.asarray(ref, dtype=np.float64)
        if ours is None:
            self.report.check(name, False, "missing from modelrun's output")
            return
        ours = np.asarray(ours, dtype=np.float64)
        if ours.shape != ref.shape:
            self.report.check(name, False, f"shape {list(ours.shape)} vs torch {list(ref.shape)}")
            return
        if not np.all(np.isfinite(ours)):
            self.report.check(name, False, f"ours has {int(np.sum(~np.isfinite(ours)))} "
                                           "non-finite values")
            return
        if kind == "exact":
            ok = np.array_equal(ours, ref)
            self.report.check(name, ok, f"ours {ours.ravel()[:4]} vs torch {ref.ravel()[:4]}",
                              quiet=True)
            return
        if kind == "max":  # max abs error relative to the reference's scale
            scale = float(np.max(np.abs(ref)))
            err = float(np.max(np.abs(ours - ref))) / scale if scale > 0 else \
                float(np.max(np.abs(ours)))
            what = "max|ours-torch|/max|torch|"
        else:  # "norm": relative error of the whole tensor
            scale = float(np.linalg.norm(ref))
            err = float(np.linalg.norm(ours - ref)) / scale if scale > 0 else \
                float(np.linalg.norm(ours))
            what = "||ours-torch||/||torch||"
        k = (arch, mode)
        if err > self.worst.get(k, (-1.0, ""))[0]:
            self.worst[k] = (err, key)
        self.report.check(name, err <= tol,
                          f"{what} = {err:.3g} > {tol:g} (torch scale {scale:.3g})", quiet=True)

    def skip(self, name, why):
        print(f"  skip  {name}: {why}")


class Ours:
    """How our side runs: the build, a scratch folder, the device and, on CUDA, the
    implementation variants each float32 check runs under."""

    def __init__(self, build_dir, work, device):
        self.build_dir, self.work, self.device = build_dir, work, device
        self.emulated = False  # set by main() from modelrun --probe cuda
        self.env = dict(os.environ)
        # Idle OpenMP threads sleep instead of spinning: on a loaded machine (ctest -j)
        # spinning threads tripled modelrun's CPU time. A user's own setting wins.
        self.env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if device == "cuda":
            self.env["ENGINE_CUDA_TF32"] = "0"  # the tolerances assume FMA float32 math
            for f in CUDA_FAMILIES:  # each variant below says what it wants
                self.env.pop(f"ENGINE_CUDA_IMPL_{f}", None)

    def float32_variants(self):
        """(mode suffix, extra environment) for each float32 run."""
        if self.device == "cpu":
            return [("", {})]
        # tools/cuda_emu's emulated "GPU" has our kernels only (cuBLAS/cuDNN are not emulated).
        impls = ("ours",) if self.emulated else ("vendor", "ours")
        return [("_" + impl, {f"ENGINE_CUDA_IMPL_{f}": impl for f in CUDA_FAMILIES})
                for impl in impls]

    def run(self, tag, spec, weights, inputs, extra_env=None):
        base = os.path.join(self.work, tag)
        with open(base + ".json", "w") as f:
            json.dump(dict(spec, device=self.device), f)
        pu.write_safetensors(base + ".in", inputs)
        t0 = time.time()
        r = pu.run_tool(self.build_dir, "tests/parity/modelrun",
                        [base + ".json", weights, base + ".in", base + ".out"],
                        env=dict(self.env, **(extra_env or {})))
        dt = time.time() - t0
        if r.returncode != 0:
            raise RuntimeError(f"modelrun {tag} on {self.device} failed (exit {r.returncode}): "
                               f"{r.stderr.strip()}")
        return pu.read_safetensors(base + ".out"), dt


# ---- the checks ----------------------------------------------------------------------------

def check_eval(tr, arch, model, weights, ours_side):
    _, head_path, _, _ = ARCHS[arch]
    g = torch.Generator().manual_seed(7)
    x = torch.randn(BATCH, 3, 224, 224, generator=g)
    ref = copy.deepcopy(model).double().eval()
    t0 = time.time()
    with torch.no_grad():
        y, f = forward_with_features(ref, head_path, x.double())
    t_torch = time.time() - t0
    times = []
    runs = [("float32", sfx, env) for sfx, env in ours_side.float32_variants()]
    for dtype, sfx, env in runs + [("float64", "", {})]:
        spec = {"arch": arch, "num_outputs": 1000, "head": "linear", "mode": "eval",
                "dtype": dtype}
        ours, dt = ours_side.run(f"{arch}_eval_{dtype}{sfx}", spec, weights, {"x": x.numpy()},
                                 env)
        mode = f"eval_{dtype[-2:]}{sfx}"
        tr.compare(arch, mode, "out", ours.get("out"), y.numpy(), EVAL_TOL[dtype], "max")
        tr.compare(arch, mode, "features", ours.get("features"), f.flatten(1).numpy(),
                   EVAL_TOL[dtype], "max")
        times.append(f"{dtype}{sfx} {dt:.1f}s")
    print(f"  {arch} eval 224x224 on {ours_side.device}: ours {', '.join(times)}; "
          f"torch float64 {t_torch:.1f}s; output scale {float(y.abs().max()):.3g}")


def train_inputs(arch):
    res = ARCHS[arch][2]
    g = torch.Generator().manual_seed(11)
    x = torch.randn(BATCH, 3, res, res, generator=g)
    target = torch.randn(BATCH, 2, generator=g)
    return x, target


def torch_training(model2, x, target):
    """AdamW steps in float64. The first step's forward/backward is also the train_grad
    reference: its output, loss, every gradient, and the state after it (BatchNorm running
    stats updated once, parameters not yet stepped)."""
    ref = copy.deepcopy(model2).double().train()
    opt = torch.optim.AdamW(ref.parameters(), lr=ADAMW["lr"],
                            betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"])
    losses, first = [], None
    for step in range(ADAMW["steps"]):
        opt.zero_grad()
        y = ref(x.double())
        loss = F.mse_loss(y, target.double())
        loss.backward()
        losses.append(loss.item())
        if step == 0:
            first = {"out": y.detach().numpy().copy(), "loss": np.array([loss.item()]),
                     "grads": {n: p.grad.numpy().copy() for n, p in ref.named_parameters()},
                     "state": {n: t.numpy().copy() for n, t in ref.state_dict().items()}}
        opt.step()
    final = {n: t.numpy().copy() for n, t in ref.state_dict().items()}
    return first, losses, final


def compare_state(tr, arch, mode, ref_state, ours, tol):
    for name, t in ref_state.items():
        key = "state." + name
        if name.endswith("num_batches_tracked"):
            tr.compare(arch, mode, key, ours.get(key), t, 0, "exact")
        else:
            tr.compare(arch, mode, key, ours.get(key), t, tol, "norm")
    extra = sorted(k for k in ours if k.startswith("state.") and k[6:] not in ref_state)
    tr.report.check(f"{arch}:{mode}:no_extra_state", not extra, f"unexpected {extra[:5]}")


def check_train_grad(tr, arch, first, x, target, weights2, ours_side, dtype, grads=True,
                     suffix="", env=None):
    """grads=False checks only the train-mode forward (output, loss, running stats): that much
    of a float32 ReLU network does not depend on which side of zero a tiny pre-activation
    falls."""
    spec = {"arch": arch, "num_outputs": 2, "head": "linear", "mode": "train_grad",
            "drop_path_rate": 0.0, "dtype": dtype}
    ours, dt = ours_side.run(f"{arch}_train_{dtype}{suffix}", spec, weights2,
                             {"x": x.numpy(), "target": target.numpy()}, env)
    mode, tol = f"train_{'grad' if grads else 'fwd'}_{dtype[-2:]}{suffix}", GRAD_TOL[dtype]
    tr.compare(arch, mode, "out", ours.get("out"), first["out"], tol, "norm")
    tr.compare(arch, mode, "loss", ours.get("loss"), first["loss"], tol, "norm")
    if grads:
        for name, g in first["grads"].items():
            tr.compare(arch, mode, "grad." + name, ours.get("grad." + name), g, tol, "norm")
        extra = sorted(k for k in ours if k.startswith("grad.") and k[5:] not in first["grads"])
        tr.report.check(f"{arch}:{mode}:no_extra_grads", not extra, f"unexpected {extra[:5]}")
    compare_state(tr, arch, mode, first["state"], ours, tol)
    what = f"{len(first['grads'])} gradients" if grads else "output, loss and running stats"
    print(f"  {arch} {mode} {x.shape[2]}x{x.shape[3]} on {ours_side.device}: {what}, "
          f"ours {dt:.1f}s")


def check_adamw(tr, arch, losses, final, x, target, weights2, ours_side):
    spec = {"arch": arch, "num_outputs": 2, "head": "linear", "mode": "adamw",
            "drop_path_rate": 0.0, "dtype": "float64", **ADAMW}
    ours, dt = ours_side.run(f"{arch}_adamw", spec, weights2,
                             {"x": x.numpy(), "target": target.numpy()})
    got = ours.get("losses")
    for i, l in enumerate(losses):
        tr.compare(arch, "adamw_64", f"loss[{i}]", None if got is None else got[i:i + 1], [l],
                   ADAMW_TOL, "norm")
    compare_state(tr, arch, "adamw_64", final, ours, ADAMW_TOL)
    print(f"  {arch} adamw float64 on {ours_side.device}: losses "
          f"{' '.join('%.5g' % l for l in losses)}, ours {dt:.1f}s")


def write_png(path):
    """A 224x224 RGB image with structure at every scale (gradients, stripes, noise)."""
    from PIL import Image
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    gch = 255 * (xx + yy) / 446.0
    b = 128 + 60 * np.sign(np.sin(xx / 5.0 + yy / 9.0))
    img = np.stack([r, gch, b], axis=-1) + rng.normal(0, 20, size=(224, 224, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(path)


def check_cli(tr, arch, model, weights, ours_side):
    build_dir, work = ours_side.build_dir, ours_side.work
    exe = os.path.join(build_dir, "apps", "image2gps")
    if not os.path.exists(exe):
        tr.skip(f"{arch}:cli", f"{exe} is not built (cmake --build {build_dir} --target image2gps)")
        return
    from PIL import Image
    import torchvision.transforms as T
    png = os.path.join(work, "probe.png")
    write_png(png)
    x = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(
        Image.open(png).convert("RGB")).unsqueeze(0)
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        y, f = forward_with_features(ref, ARCHS[arch][1], x.double())
    tol = EVAL_TOL["float32"]  # the app runs in float32
    for flag, want in [([], y), (["--features"], f.flatten(1))]:
        key = "features" if flag else "out"
        r = subprocess.run([exe, "forward", "--arch", arch, "--weights", weights,
                            "--device", ours_side.device] + flag + [png],
                           capture_output=True, text=True, env=ours_side.env)
        if r.returncode != 0:
            tr.report.check(f"{arch}:cli:{key}", False,
                            f"image2gps forward exited {r.returncode}: {r.stderr.strip()}")
            continue
        try:
            got = np.array([float(v) for v in r.stdout.split()]).reshape(1, -1)
        except ValueError:
            tr.report.check(f"{arch}:cli:{key}", False, f"unparsable output {r.stdout[:200]!r}")
            continue
        tr.compare(arch, "cli_32", key, got, want.numpy(), tol, "max")


def add_device_argument(p):
    p.add_argument("--device", choices=("cpu", "cuda"),
                   default=os.environ.get("PARITY_DEVICE", "cpu"),
                   help="where our side runs (default: $PARITY_DEVICE or cpu); the PyTorch "
                        "reference is always float64 on the CPU")


def probe_cuda(build_dir):
    """Exits 77 (skipped) unless this build's modelrun can use a GPU; returns its line."""
    r = pu.run_tool(build_dir, "tests/parity/modelrun", ["--probe", "cuda"])
    line = (r.stdout.strip() or r.stderr.strip()).splitlines()
    line = line[0] if line else f"modelrun --probe cuda exited {r.returncode}"
    if r.returncode == pu.SKIP:
        hint = ("configure a CUDA build: cmake -DENGINE_CUDA=ON" if "no CUDA backend" in line
                else "run where a GPU is visible")
        print(f"SKIPPED: --device cuda, but {build_dir}'s modelrun says {line} ({hint})")
        sys.exit(pu.SKIP)
    if r.returncode != 0:
        print(f"FAIL: modelrun --probe cuda exited {r.returncode}: {line}")
        sys.exit(1)
    return line


def torch_threads():
    """One thread, on the CUDA run too: torch's float64 convolutions (the grouped/depthwise
    ones most) run many tiny parallel regions. Measured here (2 cores, busy): ConvNeXt-T's
    five float64 training steps at 160x160 took 15 s on one thread and 288 s wall (136 s CPU)
    on two, the threads spinning at every region's end. PARITY_TORCH_THREADS overrides."""
    return int(os.environ.get("PARITY_TORCH_THREADS", "1"))


def main():
    args = pu.parse_args(add_device_argument)
    if not os.path.exists(os.path.join(args.build_dir, "tests", "parity", "modelrun")):
        print(f"SKIPPED: {args.build_dir}/tests/parity/modelrun is not built "
              f"(cmake --build {args.build_dir} --target modelrun)")
        sys.exit(pu.SKIP)
    probe = probe_cuda(args.build_dir) if args.device == "cuda" else ""
    if probe:
        print(probe)
    torch.set_num_threads(torch_threads())
    print(f"our side on {args.device}; PyTorch {torch.__version__} / torchvision "
          f"{torchvision.__version__} references in float64 on the CPU, "
          f"{torch.get_num_threads()} thread(s)")
    tr = Tracker()
    start = time.time()
    with pu.tmpdir() as work:
        ours_side = Ours(args.build_dir, work, args.device)
        ours_side.emulated = "emulator" in probe  # tests/cuda_emu's modelrun_emu
        for arch, (emb, head_path, _, f32_train) in ARCHS.items():
            if args.k and args.k not in arch:
                continue
            print(f"{arch}:")
            try:
                model = build_torch_model(arch)
                weights = save_and_convert(model, work, arch)
                check_eval(tr, arch, model, weights, ours_side)
                if arch == "resnet18":
                    check_cli(tr, arch, model, weights, ours_side)
                os.remove(weights)
                model2 = copy.deepcopy(model)
                set_head(model2, head_path, 2, emb, seed=3)
                weights2 = save_and_convert(model2, work, arch + "_2out")
                x, target = train_inputs(arch)
                t0 = time.time()
                first, losses, final = torch_training(model2, x, target)
                print(f"  {arch} torch float64 training reference: {time.time() - t0:.1f}s")
                check_train_grad(tr, arch, first, x, target, weights2, ours_side, "float64")
                for sfx, env in ours_side.float32_variants():
                    check_train_grad(tr, arch, first, x, target, weights2, ours_side, "float32",
                                     grads=f32_train, suffix=sfx, env=env)
                check_adamw(tr, arch, losses, final, x, target, weights2, ours_side)
                os.remove(weights2)
            except Exception as e:  # one model's crash must not hide the others' results
                tr.report.check(f"{arch}:run", False, f"{type(e).__name__}: {e}")
    print(f"worst error per model and check, our side on {args.device} (eval/cli: "
          "max|ours-torch|/max|torch|; train, adamw: ||ours-torch||/||torch|| per tensor; "
          "torch in float64):")
    for (arch, mode), (err, key) in sorted(tr.worst.items()):
        print(f"  {arch:14s} {mode:20s} {err:9.3g}  (tolerance {tolerance(mode):g}; worst: {key})")
    print(f"total {time.time() - start:.0f}s")
    tr.report.exit()


if __name__ == "__main__":
    main()
