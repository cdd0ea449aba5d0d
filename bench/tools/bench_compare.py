"""scripts/bench-compare BASE [HEAD] — see --help."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import compare_output as co  # noqa: E402
from compare_output import holm  # noqa: E402,F401  (kept importable from here)

DESCRIPTION = """\
Compare the benchmarks of two revisions of cancelkit.

Each revision is checked out in its own git worktree under .bench-results/worktrees/ and built
in Release (-O2 -g -DNDEBUG) with ONE set of benchmark sources, the yardstick: HEAD's bench/
when HEAD has one, else the working tree's bench/ (so a BASE from before bench/ existed is
measured with today's benchmarks against its own library; a BASE whose API the yardstick
cannot compile against is reported as "cannot compare", exit 2). The two cancelkit-bench
binaries then run interleaved, A B A B ..., --reps times each (JSON out), Google's compare.py
runs the Mann-Whitney U-test over the repetitions, callgrind counts instructions per operation
for both, and one table is printed.

Exit status: 0 no regression; 1 a regression: a benchmark whose median is slower by more than
--threshold % with U-test p < --alpha (Holm-Bonferroni adjusted over all benchmarks, so that
seventy tests on a noisy machine do not raise false alarms; --no-holm to judge each p alone),
or an instruction count up by more than --ir-threshold %;
2 cannot compare (bad revision, build failure, missing tools).

Results are kept per revision under .bench-results/ (git-ignored): builds, callgrind counts
and the runs of this pair are re-used on the next call (--fresh re-runs the timings).
BASE and HEAD are anything `git rev-parse` accepts, WORKTREE for the uncommitted tree, or
dir:PATH for any directory holding an impl/ (e.g. a patched copy; re-measured when it changes).

--json FILE writes every benchmark's medians, change, U-test p (raw and adjusted), verdict and
the callgrind deltas (schema cancelkit-bench-compare/1, docs/ci.md); --summary-md FILE the
markdown for a CI step summary: the verdict first, then the regressions with the command that
re-measures them, then the tables. Both are written whenever the comparison ran (exit 0 or 1)."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/bench-compare", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", metavar="BASE")
    p.add_argument("head", metavar="HEAD", nargs="?", default="HEAD")
    p.add_argument("--reps", type=int, default=10, help="interleaved runs per side (default 10)")
    p.add_argument("--min-time", type=float, default=0.05,
                   help="--benchmark_min_time of each run, seconds (default 0.05)")
    p.add_argument("--filter", default="", help="only benchmarks matching this regex")
    p.add_argument("--threshold", type=float, default=5.0,
                   help="time regression threshold, percent (default 5)")
    p.add_argument("--ir-threshold", type=float, default=2.0,
                   help="instruction-count regression threshold, percent (default 2)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="U-test significance, family-wise over all benchmarks (default 0.05)")
    p.add_argument("--no-holm", action="store_true",
                   help="judge each U-test p-value on its own instead of Holm-Bonferroni "
                        "adjusted over all benchmarks (more false alarms on a noisy machine)")
    p.add_argument("--fresh", action="store_true", help="re-run timings even if kept")
    p.add_argument("--bench-from", metavar="REV",
                   help="whose bench/ measures both sides (a revision or WORKTREE)")
    p.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    p.add_argument("--cxx", default="g++", help="compiler (default g++)")
    p.add_argument("--jobs", type=int, default=2, help="build/valgrind parallelism (default 2)")
    p.add_argument("--show-compare-py", action="store_true",
                   help="also print compare.py's own output")
    p.add_argument("--json", metavar="FILE", type=Path,
                   help="write the results as JSON (schema cancelkit-bench-compare/1)")
    p.add_argument("--summary-md", metavar="FILE", type=Path,
                   help="write the markdown step summary (verdict, regressions, tables)")
    a = p.parse_args(argv)
    if a.reps < 2:
        p.error("--reps must be at least 2 (the U-test wants 9 or more)")
    return a


def find_pair_session(mine: bl.Subject, other: bl.Subject, args):
    for d, meta in reversed(mine.sessions()):
        if (meta.get("kind") == "pair" and meta.get("partner") == other.key
                and meta.get("complete") and meta.get("filter", "") == args.filter
                and meta.get("min_time") == args.min_time and meta.get("runs", 0) >= args.reps):
            twin = other.result_dir / "runs" / (meta["started"] + "-pair-vs-" + mine.key)
            if (twin / "session.json").exists():
                tm = json.loads((twin / "session.json").read_text())
                if tm.get("complete") and tm.get("runs", 0) >= args.reps:
                    return d, twin
    return None


def interleave(a: bl.Subject, b: bl.Subject, args):
    da = bl.new_session(a, "pair", args.min_time, args.filter, b.key)
    # Same stamp for both halves of the pair.
    stamp = json.loads((da / "session.json").read_text())["started"]
    db = b.result_dir / "runs" / f"{stamp}-pair-vs-{a.key}"
    db.mkdir(parents=True, exist_ok=True)
    meta = json.loads((da / "session.json").read_text())
    meta["partner"] = a.key
    (db / "session.json").write_text(json.dumps(meta, indent=2))
    t0 = time.monotonic()
    for i in range(args.reps):
        for subj, d in ((a, da), (b, db)):
            bl.log(f"  run {i + 1}/{args.reps} {'A' if subj is a else 'B'} {subj.rev.short} "
                   f"({bl.elapsed(t0)})")
            subj.run_once(d / f"{i}.json", args.min_time, args.filter or None)
    bl.finish_session(da, args.reps)
    bl.finish_session(db, args.reps)
    return da, db


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.command = "scripts/bench-compare " + shlex.join(argv)
    try:
        return compare(args)
    except bl.BenchError as e:
        print(f"bench-compare: {e}", file=sys.stderr)
        return 2


def compare(args) -> int:
    t0 = time.monotonic()
    base = bl.Revision(args.base)
    head = bl.Revision(args.head)
    if args.bench_from:
        origin = None if args.bench_from == bl.WORKTREE_REV else bl.Revision(args.bench_from)
        if origin is not None and not origin.has_path("bench/CMakeLists.txt"):
            raise bl.BenchError(f"{origin} has no bench/ to measure with")
    else:
        origin = head if head.sha is not None else None
    yard = bl.Yardstick(origin)
    a = bl.Subject(base, yard, args.cxx)
    b = bl.Subject(head, yard, args.cxx)
    bl.log(f"bench-compare: A = {a.label()}\n               B = {b.label()}\n"
           f"               measured with {yard.origin}")
    a.build(args.jobs)
    b.build(args.jobs)

    kept = None if args.fresh else find_pair_session(a, b, args)
    if kept:
        da, db = kept
        bl.log(f"re-using kept runs {da.name} (pass --fresh to re-run)")
    else:
        bl.log(f"running {args.reps} interleaved repetitions per side "
               f"(min time {args.min_time} s each)")
        da, db = interleave(a, b, args)

    files_a = sorted(da.glob("[0-9]*.json"), key=lambda p: int(p.stem))[: args.reps]
    files_b = sorted(db.glob("[0-9]*.json"), key=lambda p: int(p.stem))[: args.reps]
    outdir = bl.RESULTS / "compare" / f"{a.key}__{b.key}"
    outdir.mkdir(parents=True, exist_ok=True)
    bl.merge_runs(files_a, outdir / "base.json")
    bl.merge_runs(files_b, outdir / "head.json")

    # Google's compare.py: the U-test (and its own table, kept in compare_py.txt).
    cp = subprocess.run(["/usr/bin/python3", str(bl.compare_py()), "--no-color", "-d",
                         str(outdir / "diff.json"), "--alpha", str(args.alpha), "benchmarks",
                         str(outdir / "base.json"), str(outdir / "head.json")],
                        capture_output=True, text=True)
    (outdir / "compare_py.txt").write_text(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise bl.BenchError(f"compare.py failed: {cp.stderr.strip()[-400:]}")
    if args.show_compare_py:
        print(cp.stdout)
    diff = json.loads((outdir / "diff.json").read_text())

    med_a = bl.medians(files_a)
    med_b = bl.medians(files_b)
    cg_a = cg_b = None
    if not args.no_callgrind:
        cg_a = a.callgrind(args.jobs)
        cg_b = b.callgrind(args.jobs)
    result = co.evaluate(diff, med_a, med_b, cg_a, cg_b, threshold=args.threshold,
                         ir_threshold=args.ir_threshold, alpha=args.alpha,
                         use_holm=not args.no_holm)
    rows = co.table_rows(result, bl.fmt_num)
    regressions = result["regressions"]

    geo = next((e for e in diff if e["name"] == "OVERALL_GEOMEAN"), None)
    table = bl.render(["benchmark", "metric", f"A {a.rev.short}", f"B {b.rev.short}", "change",
                       "p (U-test)", "p (Holm)" if not args.no_holm else "p", "verdict"], rows)
    header = (f"A = {a.label()}\nB = {b.label()}\nmeasured with {yard.origin}; "
              f"{len(files_a)} vs {len(files_b)} interleaved runs, min time {args.min_time} s; "
              f"regression: > {args.threshold:g}% slower (median) with "
              f"{'Holm-adjusted ' if not args.no_holm else ''}p < {args.alpha:g}, or > "
              f"{args.ir_threshold:g}% more instructions\n"
              f"machine: {bl.machine_line(files_a + files_b)}\n"
              f"(times are medians; manual-time rows show their per-operation counter)")
    print(header)
    print()
    print(table)
    if geo:
        m = geo["measurements"][0]
        print(f"\ngeomean change over all benchmarks: time {m['time'] * 100:+.1f}%, "
              f"cpu {m['cpu'] * 100:+.1f}%")
    (outdir / "table.md").write_text(header + "\n\n" + table + "\n")
    doc = co.to_json(
        result,
        base={"rev": args.base, "sha": a.rev.sha, "short": a.rev.short, "label": a.label()},
        head={"rev": args.head, "sha": b.rev.sha, "short": b.rev.short, "label": b.label()},
        settings={"reps": len(files_a), "reps_head": len(files_b), "min_time_s": args.min_time,
                  "threshold_pct": args.threshold, "ir_threshold_pct": args.ir_threshold,
                  "alpha": args.alpha, "holm": not args.no_holm, "filter": args.filter,
                  "callgrind": not args.no_callgrind},
        command=args.command, machine=bl.machine_line(files_a + files_b),
        yardstick=str(yard.origin))
    (outdir / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    for path, text in ((args.json, json.dumps(doc, indent=2) + "\n"),
                       (args.summary_md, co.summary_markdown(doc, bl.fmt_num))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(f"\nkept in {outdir.relative_to(bl.REPO)}/ (table.md, compare_py.txt, base.json, "
          f"head.json); {bl.elapsed(t0)}")
    if regressions:
        print(f"\nbench-compare: {len(regressions)} regression(s): " + ", ".join(regressions))
        return 1
    print("\nbench-compare: no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
