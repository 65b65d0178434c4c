#!/usr/bin/env python3
"""weights/convert.py — turn a PyTorch checkpoint (.pth) into a .safetensors file for the engine.

    /usr/bin/python3 weights/convert.py resnet50-11ad3fa6.pth resnet50.safetensors
    /usr/bin/python3 weights/convert.py ckpt.pth --list            # names, dtypes, shapes only
    /usr/bin/python3 weights/convert.py ckpt.pth out.safetensors --dtype float32

What it keeps and what it changes:
  * Names, dtypes and layouts stay PyTorch's (conv weights stay OIHW on disk); the engine's model
    loader changes layouts at load time, so one file serves every consumer.
  * The checkpoint may be a plain state_dict or one wrapped in "state_dict" / "model" /
    "model_state_dict" (as training scripts save them), with or without the "module." prefix
    that nn.DataParallel adds. Entries that are not tensors (epoch, optimizer state, ...) are
    skipped and listed on stderr.
  * --dtype casts floating-point tensors only; integer buffers such as BatchNorm's
    num_batches_tracked keep their dtype.

The safetensors format is written by hand (8-byte little-endian header length, JSON header
padded with spaces to a multiple of 8, then the raw little-endian bytes), so the `safetensors`
package is not needed; Debian's python3-torch (1.13) is enough. torch.load runs with
weights_only=True, so a checkpoint cannot execute code while it is read (--trusted turns that off
for your own training checkpoints, which torch 1.13's safe loader often rejects). The output appears
atomically (written to DST.tmp-<pid>, fsync'ed, renamed).
"""

import argparse
import collections.abc
import json
import os
import sys

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
DP_PREFIX = "module."


class ConvertError(Exception):
    """A problem with the user's input; printed on one line, exit status 1."""


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ConvertError(
            f"cannot import torch ({e}); run this with Debian's /usr/bin/python3 "
            "(apt install python3-torch)")
    return torch


def safetensors_dtypes(torch):
    # torch dtype -> (safetensors name, integer dtype of the same width used to reinterpret bytes)
    return {
        torch.float64: ("F64", torch.int64),
        torch.float32: ("F32", torch.int32),
        torch.float16: ("F16", torch.int16),
        torch.bfloat16: ("BF16", torch.int16),
        torch.int64: ("I64", torch.int64),
        torch.int32: ("I32", torch.int32),
        torch.int16: ("I16", torch.int16),
        torch.int8: ("I8", torch.int8),
        torch.uint8: ("U8", torch.uint8),
        torch.bool: ("BOOL", torch.uint8),
    }


def load_state_dict(torch, path, trusted=False):
    """Returns (dict name -> tensor, list of skipped entry names)."""
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: not a regular file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # torch raises many types here (UnpicklingError, RuntimeError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ""
        if path.endswith(".safetensors"):
            hint = " (it looks like a safetensors file already; the engine reads it directly)"
        if trusted:
            raise ConvertError(f"{path}: not a PyTorch checkpoint torch.load can read: "
                               f"{first}{hint}")
        raise ConvertError(
            f"{path}: not a PyTorch checkpoint that torch.load(weights_only=True) can read: "
            f"{first}{hint}. If the file is a checkpoint you made yourself (torch 1.13's safe "
            f"loader rejects pickled modules, argparse Namespaces and even plain floats such as "
            f"a saved learning rate), rerun with --trusted, or re-save it as "
            f"torch.save(model.state_dict(), path)")

    if isinstance(obj, torch.Tensor) or not isinstance(obj, collections.abc.Mapping):
        raise ConvertError(f"{path}: holds a {type(obj).__name__}, not a state_dict "
                           "(a mapping from parameter names to tensors)")
    # Unwrap {"state_dict": {...}} and friends, possibly nested ({"model": {"state_dict": ...}}).
    for _ in range(4):
        inner = next((obj[k] for k in WRAPPER_KEYS
                      if k in obj and isinstance(obj[k], collections.abc.Mapping)), None)
        if inner is None:
            break
        obj = inner

    tensors, skipped = {}, []
    for name, value in obj.items():
        if not isinstance(name, str):
            skipped.append(repr(name))
            continue
        if not isinstance(value, torch.Tensor):
            skipped.append(name)
            continue
        key = name[len(DP_PREFIX):] if name.startswith(DP_PREFIX) else name
        if key in tensors:
            raise ConvertError(f"{path}: '{name}' and another entry both map to '{key}' "
                               f"after removing the '{DP_PREFIX}' prefix")
        if value.is_quantized or value.layout != torch.strided or value.is_complex():
            raise ConvertError(f"{path}: tensor '{name}' is {value.dtype} with layout "
                               f"{value.layout}; only dense real tensors can be converted")
        tensors[key] = value.detach()
    if not tensors:
        what = ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else "")
        raise ConvertError(f"{path}: found no tensors in the checkpoint"
                           + (f" (entries: {what})" if skipped else " (it is empty)"))
    return tensors, skipped


def cast(torch, tensors, dtype_name):
    if dtype_name == "keep":
        return tensors
    target = getattr(torch, dtype_name)
    return {k: (v.to(target) if v.is_floating_point() else v) for k, v in tensors.items()}


def tensor_bytes(torch, t, table):
    """Raw little-endian bytes of t in row-major order, for any dtype in `table`."""
    t = t.contiguous()
    _, same_width_int = table[t.dtype]
    # Reinterpret (not convert) as an integer type numpy understands: bfloat16 has no numpy type.
    arr = (t.to(torch.uint8) if t.dtype == torch.bool else t.view(same_width_int)).numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def build_header(torch, tensors, table, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in table:
            raise ConvertError(f"tensor '{name}' has dtype {t.dtype}, which safetensors "
                               f"cannot hold (supported: {', '.join(str(d) for d in table)})")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": table[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # Spaces to a multiple of 8 so the data buffer is aligned, as the reference writer does.
    return text + b" " * ((8 - len(text) % 8) % 8)


def write_safetensors(torch, dst, tensors, metadata):
    table = safetensors_dtypes(torch)
    header = build_header(torch, tensors, table, metadata)
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise ConvertError(f"{dst}: directory {parent} does not exist")
    tmp = f"{dst}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for name in sorted(tensors):  # the same order as the offsets in the header
                f.write(tensor_bytes(torch, tensors[name], table))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    # Make the rename durable too (best effort: the data itself is already on disk).
    try:
        fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def print_listing(tensors):
    width = max(len(k) for k in tensors)
    total = 0
    for name in sorted(tensors):
        t = tensors[name]
        total += t.numel()
        dtype = str(t.dtype).replace("torch.", "")
        print(f"{name:<{width}}  {dtype:<8}  [{','.join(str(s) for s in t.shape)}]")
    print(f"{len(tensors)} tensors, {total} elements")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a PyTorch checkpoint (.pth) to .safetensors, keeping PyTorch's "
                    "names, dtypes and layouts.")
    parser.add_argument("src", help="checkpoint written by torch.save (a state_dict, possibly "
                                    "wrapped in state_dict/model/model_state_dict)")
    parser.add_argument("dst", nargs="?", help="output .safetensors path (optional with --list)")
    parser.add_argument("--dtype", default="keep",
                        choices=["keep", "float32", "float64", "float16", "bfloat16"],
                        help="cast floating-point tensors to this dtype (default: keep)")
    parser.add_argument("--list", action="store_true",
                        help="print each tensor's name, dtype and shape")
    parser.add_argument("--trusted", action="store_true",
                        help="load with weights_only=False, which lets the file run arbitrary "
                             "code: only for checkpoints you made yourself")
    args = parser.parse_args(argv)
    if args.dst is None and not args.list:
        parser.error("DST is required unless --list is given")

    try:
        torch = import_torch()
        tensors, skipped = load_state_dict(torch, args.src, trusted=args.trusted)
        tensors = cast(torch, tensors, args.dtype)
        if skipped:
            print(f"convert.py: skipped {len(skipped)} non-tensor entries: "
                  + ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
                  file=sys.stderr)
        if args.list:
            print_listing(tensors)
        if args.dst is not None:
            metadata = {"format": "pt", "source": os.path.basename(args.src)}
            write_safetensors(torch, args.dst, tensors, metadata)
            nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
            print(f"wrote {args.dst}: {len(tensors)} tensors, {nbytes / 2**20:.1f} MiB")
    except ConvertError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
