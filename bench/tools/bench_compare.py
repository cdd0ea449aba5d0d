"""scripts/bench-compare BASE [HEAD] — see --help."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

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
dir:PATH for any directory holding an impl/ (e.g. a patched copy; re-measured when it changes)."""


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


def holm(pvalues: dict) -> dict:
    """Holm-Bonferroni adjusted p-values (family-wise error rate over all benchmarks): with
    ~70 benchmarks, a plain p < 0.05 flags a few 'regressions' in every run by chance alone."""
    known = sorted((p, name) for name, p in pvalues.items() if p is not None)
    m = len(known)
    out = {name: None for name in pvalues}
    running = 0.0
    for i, (p, name) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        out[name] = running
    return out


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
    rows = []
    regressions = []
    thr = args.threshold / 100
    entries = [e for e in diff
               if e["name"] != "OVERALL_GEOMEAN" and e["name"] in med_a and e["name"] in med_b]
    raw_p = {}
    for entry in entries:
        ut = entry.get("utest") or {}
        raw_p[entry["name"]] = ut.get(
            "time_pvalue" if bl.metric_of(entry["name"]) == "real_time" else "cpu_pvalue")
    adj_p = raw_p if args.no_holm else holm(raw_p)
    for entry in entries:
        name = entry["name"]
        metric = bl.metric_of(name)
        ma, mb = med_a[name]["time"], med_b[name]["time"]
        change = (mb - ma) / ma if ma else 0.0
        pval = raw_p[name]
        padj = adj_p[name]
        significant = padj is not None and padj < args.alpha
        if change > thr and significant:
            verdict = "REGRESSION"
            regressions.append(name)
        elif change < -thr and significant:
            verdict = "faster"
        elif abs(change) > thr:
            verdict = "noise"
        else:
            verdict = ""
        fa, fb = med_a[name], med_b[name]
        rows.append([name, metric.replace("_time", ""), bl.fmt_num(fa["figure"], fa["unit"]),
                     bl.fmt_num(fb["figure"], fb["unit"]), f"{change * 100:+.1f}%",
                     "-" if pval is None else f"{pval:.2g}",
                     "-" if padj is None else f"{padj:.2g}", verdict])

    if not args.no_callgrind:
        cg_a = a.callgrind(args.jobs)
        cg_b = b.callgrind(args.jobs)
        for op, va in cg_a["ops"].items():
            vb = cg_b["ops"].get(op)
            if vb is None:
                continue
            ia, ib = va["ir_per_op"], vb["ir_per_op"]
            change = (ib - ia) / ia if ia else 0.0
            verdict = ""
            if change * 100 > args.ir_threshold:
                verdict = "REGRESSION"
                regressions.append("callgrind:" + op)
            elif change * 100 < -args.ir_threshold:
                verdict = "fewer"
            rows.append([f"callgrind:{op}", "Ir/op", f"{ia:.1f}", f"{ib:.1f}",
                         f"{change * 100:+.1f}%", "exact", "", verdict])

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
    print(f"\nkept in {outdir.relative_to(bl.REPO)}/ (table.md, compare_py.txt, base.json, "
          f"head.json); {bl.elapsed(t0)}")
    if regressions:
        print(f"\nbench-compare: {len(regressions)} regression(s): " + ", ".join(regressions))
        return 1
    print("\nbench-compare: no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
