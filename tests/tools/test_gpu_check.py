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


# Logs "start NAME TIME" / "end NAME TIME" to $SPANS around a second's sleep; NAME is the tool
# and the test suite (memcheck runs whole binaries: "memcheck-all<pid>").
SPAN_SANITIZER = """#!/bin/sh
args="$*"; tool=${args#*--tool }; tool=${tool%% *}
case "$args" in --version*) echo "stand-in"; exit 0 ;; esac
case "$args" in *--gtest_filter=*) suite=${args##*--gtest_filter=}; suite=${suite%%.*} ;;
  *) suite=all$$ ;; esac
echo "start $tool-$suite $(date +%s.%N)" >>"$SPANS"
sleep 1
echo "end $tool-$suite $(date +%s.%N)" >>"$SPANS"
echo "[  PASSED  ] 1 test."
echo "========= ERROR SUMMARY: 0 errors"
"""

# A timed step (a kernel lab, or PyTorch's kernels): its span, two seconds, exit 0 or 77.
SPAN_STEP = """#!/bin/sh
echo "start %s $(date +%%s.%%N)" >>"$SPANS"
sleep 2
echo "end %s $(date +%%s.%%N)" >>"$SPANS"
exit %d
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

    def test_sanitizers_never_run_while_kernels_are_timed(self):
        # The sanitizers run in the background from the tests on, and pause (finishing what is
        # in flight) while the kernel labs and PyTorch's kernels are timed.
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir, build, out = fake_gpu_machine(tmp, SPAN_SANITIZER)
            os.makedirs(os.path.join(build, "bench"))
            bench = os.path.join(build, "bench", "gelu_bench")
            torch_py = os.path.join(bin_dir, "fake-python")
            for path, name, rc in ((bench, "bench", 0), (torch_py, "torch", 77)):
                with open(path, "w") as f:
                    f.write(SPAN_STEP % (name, name, rc))
                os.chmod(path, 0o755)
            spans_file = os.path.join(tmp, "spans.txt")
            env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"],
                       GPU_CHECK_ONLY="bench,memcheck,racecheck", GPU_CHECK_BENCHES="gelu_bench",
                       GPU_CHECK_RACECHECK_SUITES="CudaLabsKnn CudaMatmul CudaPool",
                       GPU_CHECK_RACECHECK_JOBS="2", PARITY_PYTHON=torch_py, SPANS=spans_file)
            r = subprocess.run(["bash", SCRIPT, out, build], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
            with open(os.path.join(out, "results.json")) as f:
                steps = {st["name"]: st for st in json.load(f)["steps"]}
            spans = {}
            with open(spans_file) as f:
                for line in f:
                    what, name, t = line.split()
                    spans.setdefault(name, {})[what] = float(t)
            sanitizer_runs = [n for n in spans if n.startswith(("memcheck-", "racecheck-"))]
            self.assertEqual(len(sanitizer_runs), 5, (spans, r.stdout, r.stderr))  # 2 + 3
            for timed in ("bench", "torch"):
                for n in sanitizer_runs:
                    overlap = (spans[n]["start"] < spans[timed]["end"] and
                               spans[timed]["start"] < spans[n]["end"])
                    self.assertFalse(overlap, "%s ran while %s was timed: %s" % (n, timed, spans))
            # The worker went on after the timings (paused, then resumed). (Whether it started
            # before them is a race here: no step runs between the tests and the timings.)
            self.assertGreater(max(spans[n]["end"] for n in sanitizer_runs), spans["torch"]["end"])
            for name in ("memcheck:cuda_labs_tests", "memcheck:cuda_tests",
                         "racecheck:CudaLabsKnn", "racecheck:CudaMatmul", "racecheck:CudaPool"):
                self.assertEqual(steps[name]["status"], "PASS", (name, steps))
            self.assertEqual(steps["gelu_bench"]["status"], "PASS", steps)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertFalse([f for f in os.listdir(out) if f.startswith(".sanitizer")])

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
