"""The benchmark stage of scripts/verify: a short run of cancelkit-bench, its table and charts.

  /usr/bin/python3 -B scripts/lib/verify_bench.py --bench build/release/bench/cancelkit-bench \
      --out verify-report/bench [--runs 3] [--min-time 0.05] [--filter REGEX]

Runs the binary --runs times (one Google Benchmark JSON per run: OUT/run-<i>.json), then, with
the bench tools' own code (bench/tools/benchlib.py: medians over runs, cancelkit/std and
cancelkit/raw ratios taken inside each run, the bench/README.md table), writes
  OUT/table.md      the ratio table (cancelkit vs std vs raw per scenario)
  OUT/<family>.png  one bar chart per family: cancelkit, std, raw side by side (log scale)
  OUT/figures.txt   one line of headline ratios for the verify summary table
and prints the table. Exit status: 0, or 1 when the binary fails or reports nothing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "tools"))
import benchlib as bl  # noqa: E402

# The families verify measures, and the scenario whose ratio stands for each in the summary:
# (family, benchmark name of the cancelkit row, the other implementation, short label).
KEY_FAMILIES = ("check", "register", "dispatch", "crossthread", "source")
HEADLINES = (
    ("check/live/cancelkit/threads:1", "std", "check"),
    ("register/callback/cancelkit", "std", "register"),
    ("dispatch/cancel/cancelkit/8/manual_time", "std", "dispatch/8"),
    ("crossthread/roundtrip/cancelkit/manual_time", "raw", "roundtrip"),
    ("source/create_destroy/cancelkit", "std", "create+destroy"),
)
IMPL_COLORS = {"cancelkit": "tab:blue", "std": "tab:orange", "raw": "tab:gray",
               "condvar": "tab:green"}


def run_bench(binary: Path, out: Path, runs: int, min_time: float, bench_filter: str) -> list:
    files = []
    for i in range(runs):
        f = out / f"run-{i + 1}.json"
        cmd = [str(binary), f"--benchmark_filter={bench_filter}",
               f"--benchmark_min_time={min_time}", "--benchmark_repetitions=1",
               f"--benchmark_out={f}", "--benchmark_out_format=json"]
        print(f"==== run {i + 1}/{runs}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            print(f"verify_bench: {binary} exited with {rc}", file=sys.stderr)
            sys.exit(1)
        print(f"==== run {i + 1}/{runs} done in {time.monotonic() - t0:.1f} s", flush=True)
        files.append(f)
    return files


def headline(ratios: dict) -> str:
    parts = []
    for ck_name, other, label in HEADLINES:
        fam, case, _, rest = bl.split_name(ck_name)
        other_name = "/".join(x for x in (fam, case, other, rest) if x)
        r = ratios.get((ck_name, other_name))
        if r is not None:
            parts.append(f"{label} {r:.2f}x {other}" if r >= 0.1 else f"{label} {r:.3f}x {other}")
    return ", ".join(parts)


def charts(med: dict, ratios: dict, out: Path, runs: int) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("verify_bench: matplotlib missing (Debian: python3-matplotlib); no charts",
              file=sys.stderr)
        return []
    # family -> scenario -> impl -> (ns, name)
    fams: dict[str, dict[str, dict[str, tuple]]] = {}
    for name, m in med.items():
        fam, case, impl, rest = bl.split_name(name)
        rest = re.sub(r"/?(manual_time|real_time|iterations:\d+)", "", rest).strip("/")
        scen = case + (f"/{rest}" if rest else "")
        ns = m["figure"] * (1000.0 if m["unit"] == "us/wakeup" else 1.0)
        fams.setdefault(fam, {}).setdefault(scen, {})[impl] = (ns, name)
    written = []
    for fam, scens in fams.items():
        names = list(scens)
        impls = [i for i in ("cancelkit", "std", "raw", "condvar")
                 if any(i in s for s in scens.values())]
        impls += sorted({i for s in scens.values() for i in s} - set(impls))
        height = 0.8 / max(len(impls), 1)
        fig, ax = plt.subplots(figsize=(10, 0.55 * len(names) * max(len(impls), 2) / 2 + 1.8))
        for k, impl in enumerate(impls):
            ys, xs = [], []
            for j, scen in enumerate(names):
                if impl in scens[scen]:
                    ys.append(j + (k - (len(impls) - 1) / 2) * height)
                    xs.append(scens[scen][impl][0])
            ax.barh(ys, xs, height=height, label=impl,
                    color=IMPL_COLORS.get(impl.split("_")[0], None))
            for y, x in zip(ys, xs):
                ax.text(x, y, " " + bl.fmt_num(x), va="center", fontsize=7)
        # cancelkit/std (or /raw) ratio next to each scenario name
        labels = []
        for scen in names:
            ck = scens[scen].get("cancelkit")
            tag = ""
            if ck:
                for other in ("std", "raw", "condvar"):
                    if other in scens[scen]:
                        r = ratios.get((ck[1], scens[scen][other][1]))
                        if r is not None:
                            tag = f"\n{r:.2f}x {other}" if r >= 0.1 else f"\n{r:.3f}x {other}"
                            break
            labels.append(scen + tag)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("ns per operation, median of runs (manual-time rows: their per-operation "
                      "counter; wakeup converted from us)", fontsize=8)
        ax.set_title(f"family '{fam}': cancelkit vs std vs raw; {runs} run(s)", fontsize=10)
        all_x = [v[0] for s in scens.values() for v in s.values() if v[0] > 0]
        if all_x:
            ax.set_xlim(min(all_x) / 2, max(all_x) * 4)  # room for the value labels
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        path = out / f"{fam}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/lib/verify_bench.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, help="the cancelkit-bench binary")
    p.add_argument("--out", required=True, help="folder for the JSONs, table and charts")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--filter", default="^(" + "|".join(KEY_FAMILIES) + ")/")
    a = p.parse_args(argv)
    binary = Path(a.bench)
    if not binary.is_file():
        print(f"verify_bench: {binary} not built (needs Debian libbenchmark-dev)",
              file=sys.stderr)
        return 1
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = run_bench(binary, out, a.runs, a.min_time, a.filter)
    med = bl.medians(files)
    if not med:
        print("verify_bench: the runs reported no benchmarks", file=sys.stderr)
        return 1
    ratios = bl.run_ratios(files)
    table = bl.family_table(med, None, ratios)
    intro = (f"cancelkit-bench, {len(files)} run(s), --benchmark_min_time={a.min_time}, "
             f"filter `{a.filter}`; medians over runs, ratios are medians of per-run ratios "
             f"(`<1` means cancelkit is faster).\nMachine: {bl.machine_line(files)}.\n")
    (out / "table.md").write_text(intro + "\n" + table + "\n")
    figures = headline(ratios)
    (out / "figures.txt").write_text(figures + "\n")
    written = charts(med, ratios, out, len(files))
    print()
    print(intro)
    print(table)
    print()
    print(f"headline: {figures}")
    for path in written:
        print(f"chart: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
