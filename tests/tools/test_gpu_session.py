#!/usr/bin/env python3
"""tools/gpu_session.sh leaves what the device tool can bring back: at most a few files, none in
a subfolder (the tool returns 8 files at most, none deeper than two folders below its $OUT). Run
here without a GPU and with an empty stage (every GPU step skips or fails in seconds): OUT_DIR
must hold exactly check.tar.gz, bench.tar.gz and summary.txt, the archives each phase's results,
also when the script is stopped by a signal halfway."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "gpu_session.sh")


def names_in(archive):
    with tarfile.open(archive) as t:
        return set(t.getnames())


class GpuSession(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.stage = os.path.join(self.tmp.name, "stage")
        os.makedirs(self.stage)
        with open(os.path.join(self.stage, "STAGED"), "w") as f:
            f.write("commit test, staged by tests/tools/test_gpu_session.py\n")
        self.out = os.path.join(self.tmp.name, "out", "session")
        self.env = dict(os.environ, GPU_SESSION_BUDGET="60",
                        GPU_SESSION_WORK=os.path.join(self.tmp.name, "work"),
                        GPU_BENCH_COMPILE="0", GPU_BENCH_LIBTORCH="0")

    def tearDown(self):
        self.tmp.cleanup()

    def test_leaves_three_files_and_no_folder(self):
        r = subprocess.run(["bash", SCRIPT, self.out, self.stage], env=self.env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        self.assertIn("gpu_session:", r.stdout)
        self.assertEqual(sorted(os.listdir(self.out)), ["bench.tar.gz", "check.tar.gz", "summary.txt"],
                         r.stdout + r.stderr)
        self.assertIn("check/results.json", names_in(os.path.join(self.out, "check.tar.gz")))
        self.assertIn("bench/steps.json", names_in(os.path.join(self.out, "bench.tar.gz")))
        with open(os.path.join(self.out, "summary.txt")) as f:
            summary = f.read()
        self.assertIn("gpu_check exit", summary)  # the script's own output, kept

    def check_budget(self, **extra):
        """The budget gpu_check.sh was given, from its results.json in check.tar.gz."""
        env = dict(self.env, **extra)
        r = subprocess.run(["bash", SCRIPT, self.out, self.stage], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        with tarfile.open(os.path.join(self.out, "check.tar.gz")) as t:
            doc = json.load(t.extractfile("check/results.json"))
        return doc["budget"], r

    def test_checks_get_the_whole_budget_when_the_benchmarks_are_skipped(self):
        # A session's first call runs the checks alone (GPU_SESSION_SKIP=bench): they must not
        # be held to the share meant for a call that also runs the benchmarks.
        budget, r = self.check_budget(GPU_SESSION_SKIP="bench")
        self.assertEqual(budget, 60, r.stdout + r.stderr)
        self.assertNotIn("bench.tar.gz", os.listdir(self.out))
        shutil.rmtree(os.path.join(self.tmp.name, "out"))
        shutil.rmtree(self.env["GPU_SESSION_WORK"])
        budget, r = self.check_budget()
        self.assertEqual(budget, 60 * 55 // 100, r.stdout + r.stderr)

    def test_unpacks_a_stage_carried_as_tar_xz(self):
        # gpu_stage.sh packs the stage as .tar.xz (a dictionary spanning every binary: 13 MiB
        # where gzip made 88); the GPU machine unpacks it with xz, or Python's lzma without xz.
        for how in ("xz", "python"):
            with self.subTest(unxz=how):
                packed = os.path.join(self.tmp.name, "carried", "stage")
                os.makedirs(os.path.dirname(packed), exist_ok=True)
                subprocess.run(["tar", "-cJf", packed + ".tar.xz", "-C", self.tmp.name, "stage"],
                               check=True)
                out = os.path.join(self.tmp.name, "out-" + how)
                env = dict(self.env, GPU_SESSION_UNXZ=how, GPU_SESSION_SKIP="bench",
                           GPU_SESSION_WORK=os.path.join(self.tmp.name, "work-" + how))
                r = subprocess.run(["bash", SCRIPT, out, packed], env=env, cwd=ROOT,
                                   capture_output=True, text=True, timeout=120)
                self.assertIn("gpu_session: commit test, staged by", r.stdout, r.stderr)
                self.assertTrue(os.path.isfile(os.path.join(packed, "STAGED")))
                shutil.rmtree(os.path.join(self.tmp.name, "carried"))

    def test_big_files_are_left_out_and_big_logs_cut(self):
        # The first GPU session's check.tar.gz came to 24 MB (checkpoints of the app smoke
        # test), over the 16 MiB the device tool brings back: files over the limit stay behind,
        # logs over it go in as their head and tail, and LEFT_OUT.txt says which.
        check = os.path.join(self.env["GPU_SESSION_WORK"], "check")
        os.makedirs(os.path.join(check, "app_smoke"))
        with open(os.path.join(check, "app_smoke", "model.ckpt"), "wb") as f:
            f.write(os.urandom(3 << 20))
        with open(os.path.join(check, "huge.log"), "w") as f:
            f.write("first line\n" + "x" * (3 << 20) + "\nlast line\n")
        env = dict(self.env, GPU_SESSION_PACK_MAX_KB="1024")
        r = subprocess.run(["bash", SCRIPT, self.out, self.stage], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        archive = os.path.join(self.out, "check.tar.gz")
        names = names_in(archive)
        self.assertNotIn("check/app_smoke/model.ckpt", names, r.stdout + r.stderr)
        self.assertIn("check/results.json", names)
        with tarfile.open(archive) as t:
            log = t.extractfile("check/huge.log").read().decode()
            left = t.extractfile("check/LEFT_OUT.txt").read().decode()
        self.assertLess(len(log), 1100 * 1024)
        self.assertTrue(log.startswith("first line") and log.rstrip().endswith("last line"))
        self.assertIn("cut by gpu_session.sh", log)
        self.assertIn("left out (3145728 bytes): check/app_smoke/model.ckpt", left)
        self.assertIn("cut to its first and last 512 KiB: check/huge.log", left)

    def test_a_signal_still_leaves_the_archives(self):
        p = subprocess.Popen(["bash", SCRIPT, self.out, self.stage], env=self.env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Stop it once the checks have started (their work folder exists), mid-run.
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.isdir(os.path.join(self.env["GPU_SESSION_WORK"], "check")):
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        self.assertIn("check.tar.gz", os.listdir(self.out))
        self.assertNotIn(".check.tar.gz.tmp", os.listdir(self.out))
        self.assertTrue(any(n.startswith("check") for n in names_in(os.path.join(self.out, "check.tar.gz"))))


if __name__ == "__main__":
    sys.exit(unittest.main())
