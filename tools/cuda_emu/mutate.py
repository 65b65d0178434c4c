#!/usr/bin/env python3
"""tools/cuda_emu/mutate.py — would the emulated tests catch this bug? Plant it and see.

    mutate.py BUILD_DIR FAMILY SOURCE 'old text' 'new text' [--filter GTEST_FILTER] [--env K=V]

    mutate.py build-emu layernorm kernels/cuda/layernorm.cu \\
        '    __syncthreads();
    for (int j = threadIdx.x; j < C; j += 256) {' \\
        '    for (int j = threadIdx.x; j < C; j += 256) {'

Replaces the first occurrence of `old text` in SOURCE (one of the family's kernels/cuda files),
writes the transformed, mutated copy where the build keeps the transformed sources
(BUILD_DIR/tests/cuda_emu/src/...), rebuilds FAMILY_emu_test, runs it, then puts the unmutated
transformed copy back and rebuilds again. The source tree is never written. Prints CAUGHT (the
tests failed, with the first failure messages) or MISSED, and exits 0 or 1 accordingly.
"""
import argparse
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transform  # noqa: E402


def transformed_path(build, source):
    rel = os.path.relpath(os.path.abspath(source), os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
    out = os.path.join(build, "tests", "cuda_emu", "src", rel)
    return out + ".cpp" if out.endswith(".cu") else out


def build(build_dir, target):
    r = subprocess.run(["cmake", "--build", build_dir, "--target", target],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("mutate.py: build failed:\n" + r.stdout[-3000:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("family")
    ap.add_argument("source")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--filter", default="*")
    ap.add_argument("--env", action="append", default=[], help="K=V for the test run")
    a = ap.parse_args()

    with open(a.source, encoding="utf-8") as f:
        original = f.read()
    if a.old not in original:
        sys.exit("mutate.py: the old text is not in %s" % a.source)
    out = transformed_path(a.build, a.source)
    if not os.path.exists(out):
        sys.exit("mutate.py: %s not found (build %s_emu_test first)" % (out, a.family))
    target = a.family + "_emu_test"
    mutated = original.replace(a.old, a.new, 1)
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(transform.transform(mutated, a.source))
        build(a.build, target)
        env = dict(os.environ, **dict(kv.split("=", 1) for kv in a.env))
        r = subprocess.run([os.path.join(a.build, "tests", "cuda_emu", target),
                            "--gtest_filter=" + a.filter], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=1200)
    finally:  # the build goes back to the unmutated sources
        with open(out, "w", encoding="utf-8") as f:
            f.write(transform.transform(original, a.source))
        build(a.build, target)
    lines = [l for l in r.stdout.splitlines()
             if "Failure" in l or "elements off" in l or "cuda_emu: error" in l
             or "cuda_emu: " in l and "EMULATED" not in l or "runtime error" in l
             or "kernel launch failed" in l]
    if r.returncode != 0:
        print("CAUGHT (exit status %d)" % r.returncode)
        for l in lines[:6]:
            print("   ", l[:400])
        return 0
    print("MISSED: every test passed with the mutation")
    return 1


if __name__ == "__main__":
    sys.exit(main())
