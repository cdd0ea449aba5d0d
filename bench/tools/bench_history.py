"""scripts/bench-history [N] — see --help."""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
from bench_report import ensure_solo_runs  # noqa: E402

IMPL_STYLE = {"cancelkit": "-", "std": "--", "raw": ":", "condvar": "-."}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench-history",
        description="Benchmark the last N commits (first-parent history of --from, default "
                    "HEAD) and draw one PNG trend chart per family, cancelkit vs std (vs raw), "
                    "plus one of callgrind instruction counts. Every commit is measured with the "
                    "same benchmark sources (--from's bench/, else the working tree's); kept "
                    "runs and builds in .bench-results/ are re-used, so re-running is cheap. "
                    "Times of different commits come from different runs on a shared machine: "
                    "read the cancelkit/std gap within a commit, and the callgrind chart across "
                    "commits.")
    p.add_argument("n", nargs="?", type=int, default=10, help="how many commits (default 10)")
    p.add_argument("--from", dest="start", default="HEAD", help="newest commit (default HEAD)")
    p.add_argument("--reps", type=int, default=3, help="runs per commit (default 3)")
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--out", default=str(bl.RESULTS / "history"), help="where the PNGs go")
    p.add_argument("--no-callgrind", action="store_true")
    p.add_argument("--cxx", default="g++")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return history(a)
    except bl.BenchError as e:
        print(f"bench-history: {e}", file=sys.stderr)
        return 2


def history(a) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise bl.BenchError("matplotlib missing (Debian: apt-get install python3-matplotlib)")

    shas = bl.git("rev-list", "--first-parent", f"--max-count={a.n}", a.start).split()
    if not shas:
        raise bl.BenchError(f"no commits at {a.start}")
    shas.reverse()  # oldest first
    start = bl.Revision(a.start)
    yard = bl.Yardstick(start)
    bl.log(f"bench-history: {len(shas)} commits, measured with {yard.origin}")

    columns = []  # (label, medians, callgrind)
    skipped = []
    for sha in shas:
        subj = bl.Subject(bl.Revision(sha), yard, a.cxx)
        try:
            subj.build(a.jobs)
        except bl.BenchError as e:
            first = str(e).splitlines()[0]
            bl.log(f"  skipping {sha[:12]}: {first}")
            skipped.append(sha[:12])
            continue
        files = ensure_solo_runs(subj, a.reps, a.min_time)
        cg = None if a.no_callgrind else subj.callgrind(a.jobs)
        columns.append((sha[:8], bl.medians(files), cg))
    if not columns:
        raise bl.BenchError("no commit could be built")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    labels = [c[0] for c in columns]

    # One CSV with everything.
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["commit", "benchmark", "figure", "unit", "runs"])
        for label, med, _ in columns:
            for name, m in med.items():
                w.writerow([label, name, f"{m['figure']:.4g}", m["unit"], m["n"]])
        for label, _, cg in columns:
            if cg:
                for op, v in cg["ops"].items():
                    w.writerow([label, "callgrind:" + op, f"{v['ir_per_op']:.1f}", "Ir/op", 1])

    # One chart per family: a line per (scenario, implementation).
    families: dict[str, dict[str, dict[str, float]]] = {}
    units: dict[str, str] = {}
    for label, med, _ in columns:
        for name, m in med.items():
            fam, case, impl, rest = bl.split_name(name)
            rest = re.sub(r"/?(manual_time|real_time|iterations:\d+)", "", rest).strip("/")
            series = f"{case}{'/' + rest if rest else ''} [{impl}]"
            families.setdefault(fam, {}).setdefault(series, {})[label] = m["figure"]
            units[fam + series] = m["unit"]
    written = []
    for fam, series in families.items():
        fig, ax = plt.subplots(figsize=(11, 6))
        scenarios = sorted({s.rsplit(" [", 1)[0] for s in series})
        colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(scenarios)}
        for s, points in sorted(series.items()):
            scen, impl = s.rsplit(" [", 1)
            impl = impl.rstrip("]")
            xs = [i for i, lab in enumerate(labels) if lab in points]
            ys = [points[labels[i]] for i in xs]
            style = IMPL_STYLE.get(impl.split("_")[0], "-")
            ax.plot(xs, ys, style, marker="o", markersize=3, color=colors[scen],
                    linewidth=2.2 if impl.startswith("cancelkit") else 1.2, label=s)
        ax.set_yscale("log")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"family '{fam}': cancelkit (solid, thick) vs std (dashed) vs raw "
                     f"(dotted); medians of {a.reps}+ runs per commit", fontsize=10)
        ax.set_ylabel("ns per operation (manual-time rows: per-operation counter; wakeup: us)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        path = out / f"{fam}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if any(c[2] for c in columns):
        fig, axes = plt.subplots(1, 2, figsize=(15, 6))
        ops = sorted({op for _, _, cg in columns if cg for op in cg["ops"]})
        bases = sorted({op.partition("/")[0] for op in ops})
        colors = {b: plt.cm.tab10(i % 10) for i, b in enumerate(bases)}
        for ax, field, title, log in (
                (axes[0], "ir_per_op", "instructions per operation", True),
                (axes[1], "atomic_rmw_per_op", "atomic read-modify-writes per operation", False)):
            for op in ops:
                basename, _, impl = op.partition("/")
                xs = [i for i, c in enumerate(columns)
                      if c[2] and op in c[2]["ops"] and field in c[2]["ops"][op]]
                if not xs:
                    continue
                ys = [columns[i][2]["ops"][op][field] for i in xs]
                ax.plot(xs, ys, IMPL_STYLE.get(impl, "-"), marker="o", markersize=3,
                        color=colors[basename], label=op)
            if log:
                ax.set_yscale("log")
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"callgrind: {title}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[1].legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.suptitle("cancelkit (solid) vs std (dashed) vs raw (dotted)", fontsize=10)
        fig.tight_layout()
        path = out / "callgrind.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    print(f"bench-history: {len(columns)} commits ({labels[0]} .. {labels[-1]}), "
          f"measured with {yard.origin}")
    if skipped:
        print(f"  not buildable with these benchmarks, skipped: {', '.join(skipped)}")
    for pth in written:
        print(f"  {pth}")
    print(f"  {out / 'history.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
