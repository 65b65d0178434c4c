#!/usr/bin/env python3
"""tools/profile_diff.py — two of the engine's per-op profiles side by side: did a change make a
step faster, and where? Reads the Chrome traces engine::profiler writes (image2gps train
--profile: RUN_DIR/profile.trace.json; the benchmarks' --profile folders), sums each by op and
phase (or by op family) per step, and prints one row per op: A ms, B ms, B / A, B - A, largest
change first.

  python3 tools/profile_diff.py before/profile.trace.json after/profile.trace.json
  python3 tools/profile_diff.py --steps 2 --by family \\
      out/session/bench/profile/profile_train_convnext_tiny_tf32_vendor.trace.json \\
      out/session/bench/profile/profile_train_convnext_tiny_tf32_ours.trace.json   # cuDNN vs ours

Times are the session's clock (the GPU's in a CUDA session; --host: the host's time queuing
each op instead). --steps divides both by the number of steps each trace holds (default 1: the
totals). Standard library only.
"""
import argparse
import sys

import profile_families


def totals(path, steps, by, pid):
    """{key: ms per step}; key = "op (phase)" or the op's family."""
    if by == "family":
        return profile_families.ours_ms_per_family(path, steps, pid)
    return profile_families.ours_ms(path, steps, lambda e: "%s (%s)" % (e.get("name", ""), e.get("cat", "")), pid)


def diff_rows(a, b):
    """[(key, a ms or None, b ms or None)], largest absolute change first (ties: by key)."""
    keys = sorted(set(a) | set(b))
    rows = [(k, a.get(k), b.get(k)) for k in keys]
    return sorted(rows, key=lambda r: (-abs((r[2] or 0.0) - (r[1] or 0.0)), r[0]))


def render(rows, label_a, label_b, limit, what="op (phase)"):
    width = max([len(r[0]) for r in rows] + [len(what)])
    out = ["%-*s %12s %12s %8s %10s" % (width, what, label_a + " ms", label_b + " ms", "B / A", "B - A ms")]

    def cell(v):
        return "%12.3f" % v if v is not None else "%12s" % "-"

    shown = rows[:limit] if limit else rows
    for k, x, y in shown:
        ratio = "%8.2f" % (y / x) if x and y is not None else "%8s" % "-"
        out.append("%-*s %s %s %s %+10.3f" % (width, k, cell(x), cell(y), ratio, (y or 0.0) - (x or 0.0)))
    if len(shown) < len(rows):
        out.append("(%d more rows)" % (len(rows) - len(shown)))
    ta, tb = sum(r[1] or 0.0 for r in rows), sum(r[2] or 0.0 for r in rows)
    out.append("%-*s %12.3f %12.3f %8s %+10.3f" % (width, "total in ops", ta, tb,
                                                  "%.2f" % (tb / ta) if ta else "-", tb - ta))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="the first trace (A, the baseline)")
    ap.add_argument("b", help="the second trace (B)")
    ap.add_argument("--by", choices=["op", "family"], default="op")
    ap.add_argument("--steps", type=int, default=1, help="steps each trace holds (ms per step)")
    ap.add_argument("--host", action="store_true", help="the host's timeline of a CUDA trace")
    ap.add_argument("--limit", type=int, default=30, help="rows shown (0: all)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    pid = 1 if args.host else 0
    try:
        a = totals(args.a, args.steps, args.by, pid)
        b = totals(args.b, args.steps, args.by, pid)
    except (OSError, ValueError) as e:
        print("profile_diff: %s" % e, file=sys.stderr)
        return 1
    if not a and not b:
        print("profile_diff: no op events%s in either trace" % (" on the host's timeline" if args.host else ""),
              file=sys.stderr)
        return 1
    print(render(diff_rows(a, b), "A", "B", args.limit, "op family" if args.by == "family" else "op (phase)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
