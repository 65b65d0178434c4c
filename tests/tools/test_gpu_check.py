#!/usr/bin/env python3
"""tools/gpu_check.sh's sanitizer verdicts, without a GPU: stand-ins for nvidia-smi and
compute-sanitizer on the PATH. racecheck prints a hazard as "Warning: Race reported" and still
ends with "ERROR SUMMARY: 0 errors" (on an H200, 2026-11-27, the script called such a run PART
with "0 errors"): any reported race must fail its step, one racecheck step per test suite."""
import json
import os
import stat
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "gpu_check.sh")

FAKE_SMI = "#!/bin/sh\necho 'GPU 0: Stand-in GPU (UUID: GPU-0)'\n"
# Reports a race for the k-NN suite only; every run passes its tests.
FAKE_SANITIZER = """#!/bin/sh
echo "========= COMPUTE-SANITIZER"
case "$*" in *CudaLabsKnn*)
  echo "========= Warning: Race reported between Read access at k() in knn.cu:487" ;;
esac
echo "[  PASSED  ] 3 tests."
echo "========= ERROR SUMMARY: 0 errors"
"""


# Writes "start SUITE TIME" and "end SUITE TIME" lines to $SPANS around a second's sleep.
TIMED_SANITIZER = """#!/bin/sh
args="$*"; suite=${args##*--gtest_filter=}; suite=${suite%%.*}
echo "start $suite $(date +%s.%N)" >>"$SPANS"
sleep 1
echo "end $suite $(date +%s.%N)" >>"$SPANS"
echo "[  PASSED  ] 1 test."
echo "========= ERROR SUMMARY: 0 errors"
"""


def fake_gpu_machine(tmp, sanitizer):
    """A PATH with stand-in nvidia-smi and compute-sanitizer, and a build folder with the two
    test binaries; returns (bin_dir, build, out)."""
    bin_dir, build, out = (os.path.join(tmp, d) for d in ("bin", "build", "out"))
    os.makedirs(os.path.join(build, "tests"))
    os.makedirs(bin_dir)
    for name, text in (("nvidia-smi", FAKE_SMI), ("compute-sanitizer", sanitizer)):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    for name in ("cuda_tests", "cuda_labs_tests"):  # present and executable
        path = os.path.join(build, "tests", name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o755)
    return bin_dir, build, out


def run_racecheck(bin_dir, build, out, suites, **extra):
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"],
               GPU_CHECK_ONLY="racecheck", GPU_CHECK_RACECHECK_SUITES=suites, **extra)
    r = subprocess.run(["bash", SCRIPT, out, build], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    with open(os.path.join(out, "results.json")) as f:
        return r, json.load(f)["steps"]


class GpuCheckSanitizers(unittest.TestCase):
    def test_a_reported_race_fails_its_suite_only(self):
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir, build, out = fake_gpu_machine(tmp, FAKE_SANITIZER)
            r, step_list = run_racecheck(bin_dir, build, out, "CudaLabsKnn CudaMatmul")
            steps = {s["name"]: s for s in step_list}
            self.assertEqual(steps["racecheck:CudaLabsKnn"]["status"], "FAIL", r.stdout)
            self.assertIn("1 reports", steps["racecheck:CudaLabsKnn"]["summary"])
            self.assertEqual(steps["racecheck:CudaMatmul"]["status"], "PASS", r.stdout)
            self.assertNotEqual(r.returncode, 0)  # a failed step fails the script
            # Each suite went to the binary that holds it.
            with open(os.path.join(out, "racecheck_CudaLabsKnn.log")) as f:
                self.assertIn("cuda_labs_tests --gtest_brief=1 --gtest_filter=CudaLabsKnn.*",
                              f.readline())
            with open(os.path.join(out, "racecheck_CudaMatmul.log")) as f:
                self.assertIn("cuda_tests --gtest_brief=1 --gtest_filter=CudaMatmul.*",
                              f.readline())

    def spans(self, jobs):
        """Runs four suites' racecheck with GPU_CHECK_RACECHECK_JOBS=jobs; returns the recorded
        step names in order and each suite's (start, end) times."""
        suites = ["CudaLabsKnn", "CudaMatmul", "CudaLabsGelu", "CudaPool"]
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir, build, out = fake_gpu_machine(tmp, TIMED_SANITIZER)
            spans_file = os.path.join(tmp, "spans.txt")
            r, steps = run_racecheck(bin_dir, build, out, " ".join(suites),
                                     GPU_CHECK_RACECHECK_JOBS=str(jobs), SPANS=spans_file)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            times = {}
            with open(spans_file) as f:
                for line in f:
                    what, suite, t = line.split()
                    times.setdefault(suite, {})[what] = float(t)
            names = [s["name"] for s in steps if s["name"].startswith("racecheck:")]
            self.assertEqual(names, ["racecheck:" + s for s in suites])  # the list's order
            self.assertTrue(all(s["status"] == "PASS" for s in steps
                                if s["name"].startswith("racecheck:")), steps)
            return [(times[s]["start"], times[s]["end"]) for s in suites]

    def test_racecheck_runs_suites_at_once_when_asked(self):
        spans = self.spans(jobs=3)
        # The first three started before any of them ended; the fourth waited for a slot.
        self.assertLess(max(s for s, _ in spans[:3]), min(e for _, e in spans[:3]))
        self.assertGreaterEqual(spans[3][0], min(e for _, e in spans[:3]))
        spans = self.spans(jobs=1)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertGreaterEqual(start, end)  # one after another


if __name__ == "__main__":
    unittest.main()
