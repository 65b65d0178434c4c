"""Shared helpers for the PyTorch parity tests (run with Debian's /usr/bin/python3).

Each test script takes --build-dir BUILD, exits 77 (CTest: skipped) with the reason printed
when torch is missing, non-zero on a mismatch, and 0 when everything agreed.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77


def require_torch():
    try:
        import torch  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"SKIPPED: PyTorch parity needs python3-torch and python3-numpy ({e}); "
              "install them with tools/install_deps.sh test")
        sys.exit(SKIP)


def parse_args(add_arguments=None):
    """--build-dir and -k for every script; add_arguments(parser) adds a script's own."""
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("-k", default="", help="only cases whose name contains this")
    if add_arguments:
        add_arguments(p)
    return p.parse_args()


_DTYPES = {"float32": "F32", "float64": "F64", "int64": "I64"}
_NP = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def write_safetensors(path, arrays):
    """arrays: name -> numpy array (float32/float64/int64)."""
    import numpy as np
    header, blobs, offset = {}, [], 0
    for name in sorted(arrays):
        a = np.array(arrays[name], order="C")  # (ascontiguousarray turns 0-d into 1-d)
        code = _DTYPES[str(a.dtype)]
        raw = a.astype(_NP[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        a = np.frombuffer(data[8 + n + b:8 + n + end], dtype=_NP[e["dtype"]])
        out[name] = a.reshape(e["shape"]).copy()
    return out


def run_tool(build_dir, tool, args, **kw):
    exe = os.path.join(build_dir, tool)
    if not os.path.exists(exe):
        raise FileNotFoundError(f"{exe} is not built")
    return subprocess.run([exe] + args, capture_output=True, text=True, **kw)


class Report:
    """Counts cases and prints one line each; exit() ends the script with the right code."""

    def __init__(self):
        self.passed, self.failed = 0, []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed.append(name)
            print(f"  FAIL  {name}: {detail}")

    def exit(self):
        print(f"{self.passed} passed, {len(self.failed)} failed")
        sys.exit(1 if self.failed else 0)


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="parity-")
