#!/usr/bin/env python3
"""tools/profile_diff.py on two traces shaped as engine::profiler writes them: per-step sums by op
and phase or by family, the session's or the host's timeline, rows ordered by the size of the
change, ops present on one side only, and a clear error for a file that is not a trace."""
import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import profile_diff  # noqa: E402


def trace(events):
    """events: (name, phase, dur_us, pid)."""
    return {"traceEvents": [{"ph": "M", "name": "thread_name", "pid": 0, "tid": 0, "args": {"name": "forward"}}] +
            [{"ph": "X", "name": n, "cat": c, "pid": pid, "tid": 0, "ts": 0.0, "dur": d} for n, c, d, pid in events]}


class ProfileDiff(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, doc):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = profile_diff.main(list(args))
        return rc, out.getvalue(), err.getvalue()

    def test_totals_per_step_by_op_family_and_timeline(self):
        p = self.write("a.json", trace([("conv2d", "forward", 4000, 0), ("conv2d", "forward", 2000, 0),
                                         ("conv2d", "backward", 1000, 0), ("depthwise_conv2d", "forward", 500, 0),
                                         ("conv2d", "forward", 9000, 1)]))
        self.assertEqual(profile_diff.totals(p, 2, "op", 0),
                         {"conv2d (forward)": 3.0, "conv2d (backward)": 0.5, "depthwise_conv2d (forward)": 0.25})
        self.assertEqual(profile_diff.totals(p, 1, "family", 0), {"conv2d": 7.0, "depthwise conv": 0.5})
        self.assertEqual(profile_diff.totals(p, 1, "op", 1), {"conv2d (forward)": 9.0})

    def test_rows_by_size_of_change_with_one_sided_ops(self):
        rows = profile_diff.diff_rows({"x": 10.0, "y": 5.0, "gone": 1.0}, {"x": 4.0, "y": 5.5, "new": 2.0})
        self.assertEqual([r[0] for r in rows], ["x", "new", "gone", "y"])
        text = profile_diff.render(rows, "A", "B", 0)
        self.assertIn("gone", text)
        line = next(ln for ln in text.splitlines() if ln.startswith("new"))
        self.assertIn("-", line.split()[1])  # absent on A's side
        self.assertIn("total in ops", text.splitlines()[-1])
        self.assertEqual(text.splitlines()[-1].split()[-4:], ["16.000", "11.500", "0.72", "-4.500"])

    def test_command_line(self):
        a = self.write("a.json", trace([("mlp", "backward", 8000, 0), ("layer_norm", "forward", 1000, 0)]))
        b = self.write("b.json", trace([("mlp", "backward", 6000, 0), ("layer_norm", "forward", 1000, 0)]))
        rc, out, _ = self.run_main(a, b)
        self.assertEqual(rc, 0)
        first = out.splitlines()[1].split()
        self.assertEqual(first[:2], ["mlp", "(backward)"])
        self.assertEqual(first[-2:], ["0.75", "-2.000"])
        rc, out, _ = self.run_main("--by", "family", a, b)
        self.assertTrue(out.startswith("op family"))
        rc, _, err = self.run_main("--host", a, b)
        self.assertEqual(rc, 1)
        self.assertIn("host's timeline", err)
        rc, _, err = self.run_main(a, self.write("bad.json", "{not json"))
        self.assertEqual(rc, 1)
        self.assertIn("profile_diff:", err)


if __name__ == "__main__":
    unittest.main()
