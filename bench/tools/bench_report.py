"""scripts/bench-report and scripts/bench-callgrind — see --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import targets  # noqa: E402


def subject_for(rev_spec: str, cxx: str) -> bl.Subject:
    rev = bl.Revision(rev_spec)
    origin = rev if rev.sha is not None and rev.has_path("bench/CMakeLists.txt") else None
    return bl.Subject(rev, bl.Yardstick(origin), cxx)


def ensure_solo_runs(subj: bl.Subject, reps: int, min_time: float, fresh: bool = False):
    """At least `reps` unfiltered runs of `subj` with this min time: kept ones first."""
    kept = []
    if not fresh:
        for d, meta in subj.sessions():
            if not meta.get("filter") and meta.get("min_time") == min_time:
                kept.extend(sorted(d.glob("[0-9]*.json")))
    missing = reps - len(kept)
    if missing > 0:
        d = bl.new_session(subj, "solo", min_time, None, None)
        t0 = time.monotonic()
        for i in range(missing):
            bl.log(f"  run {i + 1}/{missing} of {subj.rev.short} ({bl.elapsed(t0)})")
            subj.run_once(d / f"{i}.json", min_time, None)
        bl.finish_session(d, missing)
        kept.extend(sorted(d.glob("[0-9]*.json")))
    return kept


def report_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench-report",
        description="Print the markdown table of bench/README.md for one revision: medians of "
                    "--reps runs (kept runs re-used), cancelkit vs std vs raw with ratios, "
                    "allocations per operation, and the callgrind instruction counts; then the "
                    "issue 20 targets (bench/tools/targets.py) with holds/misses.")
    p.add_argument("rev", nargs="?", default=bl.WORKTREE_REV,
                   help="revision (default WORKTREE: the uncommitted tree)")
    p.add_argument("--reps", type=int, default=5, help="runs to take the median of (default 5)")
    p.add_argument("--min-time", type=float, default=0.2,
                   help="--benchmark_min_time per run (default 0.2)")
    p.add_argument("--fresh", action="store_true", help="ignore kept runs")
    p.add_argument("--cxx", default="g++")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    try:
        subj = subject_for(a.rev, a.cxx)
        subj.build(a.jobs)
        files = ensure_solo_runs(subj, a.reps, a.min_time, a.fresh)
        cg = subj.callgrind(a.jobs)
    except bl.BenchError as e:
        print(f"bench-report: {e}", file=sys.stderr)
        return 2
    print(f"Revision {subj.rev} {subj.rev.subject!r}, measured with {subj.yard.origin}; "
          f"medians of {len(files)} runs (--benchmark_min_time={a.min_time}), Release "
          f"({bl.BUILD_FLAGS}); ratios are medians of per-run ratios.\n"
          f"Machine: {bl.machine_line(files)}.\n")
    print(bl.family_table(bl.medians(files), cg, bl.run_ratios(files)))
    print("\n" + targets.wall_table(files))
    print("\n" + targets.ir_table(cg))
    return 0


def callgrind_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench-callgrind",
        description="Instructions per operation of the hot paths (callgrind), cancelkit vs std, "
                    "then the issue 20 instruction-count targets (bench/tools/targets.py). "
                    "Builds the revision (default: the working tree) in Release unless --driver "
                    "is given. --annotate OP prints callgrind_annotate's inclusive per-function "
                    "breakdown of one operation (e.g. cancel0/cancelkit).")
    p.add_argument("rev", nargs="?", default=bl.WORKTREE_REV)
    p.add_argument("--driver", help="use this cancelkit-bench-callgrind instead of building")
    p.add_argument("--ops", nargs="*", help="only these operations (see the driver's --list)")
    p.add_argument("--annotate", metavar="OP", help="per-function breakdown of one operation")
    p.add_argument("--n", type=int, default=bl.CALLGRIND_N)
    p.add_argument("--cxx", default="g++")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    try:
        if a.driver:
            driver = Path(a.driver).resolve()
            workdir = bl.RESULTS / "callgrind-adhoc"
            label = str(driver)
        else:
            subj = subject_for(a.rev, a.cxx)
            subj.build(a.jobs)
            driver = subj.driver
            workdir = subj.build_dir / "callgrind"
            label = f"{subj.rev} ({subj.rev.subject[:50]!r})"
        if a.annotate:
            out = workdir / ("annotate." + a.annotate.replace("/", "_") + ".out")
            workdir.mkdir(parents=True, exist_ok=True)
            bl.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    "--collect-atstart=no", "--toggle-collect=ckbench_measure", "--dump-instr=yes",
                    driver, a.annotate, str(a.n)], capture=True)
            ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                                  str(out)], capture_output=True, text=True)
            print(f"{a.annotate} x {a.n} ({label}); Ir per op = Ir / {a.n}; file: {out}\n")
            print(ann.stdout)
            print("Atomic read-modify-writes per operation, by site (innermost frame last):")
            for per_op, frames in bl.locked_sites(out, a.n):
                print(f"  {per_op:5.2f}  " + "\n         <- ".join(reversed(frames)))
            print(f"\n(line-level: callgrind_annotate --auto=yes {out})")
            return 0
        if a.driver or a.ops or a.n != bl.CALLGRIND_N:
            cg = bl.callgrind_counts(driver, workdir, a.jobs, a.n, a.ops)
        else:
            cg = subj.callgrind(a.jobs)
    except bl.BenchError as e:
        print(f"bench-callgrind: {e}", file=sys.stderr)
        return 2
    print(f"{label}\n")
    print(bl.callgrind_table(cg))
    print("\n" + targets.ir_table(cg))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "report":
        sys.exit(report_main(sys.argv[2:]))
    if cmd == "callgrind":
        sys.exit(callgrind_main(sys.argv[2:]))
    print("usage: bench_report.py report|callgrind ...", file=sys.stderr)
    sys.exit(2)
