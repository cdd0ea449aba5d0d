"""scripts/header-cost — what including cancelkit costs a user's translation unit (see --help).

Preprocessed lines (stable) and `-fsyntax-only` wall time (not stable: medians of interleaved
repetitions) of impl/tests/header_budget/umbrella.cpp (`#include <cancelkit/cancelkit.hpp>`)
against std_baseline.cpp (only the std headers the API needs), per compiler, with the ratio.
The line budget itself is a unit test (header_budget.preprocessed_lines_and_includes); this
reports the time, which a test must not assert."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lines(cxx: str, include: Path, tu: Path) -> int:
    out = subprocess.run([cxx, "-std=c++20", "-E", f"-I{include}", str(tu)], check=True,
                         capture_output=True, text=True).stdout
    return out.count("\n")


def syntax_seconds(cxx: str, include: Path, tu: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([cxx, "-std=c++20", "-fsyntax-only", f"-I{include}", str(tu)], check=True)
    return time.perf_counter() - t0


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="scripts/header-cost", description=__doc__.split("\n\n")[1])
    p.add_argument("--reps", type=int, default=9, help="timed compiles per file (default 9)")
    p.add_argument("--cxx", nargs="*", default=["g++", "clang++"], help="compilers")
    p.add_argument("--include", default=str(ROOT / "impl" / "include"),
                   help="the include directory to measure (default: this tree's)")
    a = p.parse_args(argv)
    include = Path(a.include).resolve()
    folder = ROOT / "impl" / "tests" / "header_budget"
    ours, base = folder / "umbrella.cpp", folder / "std_baseline.cpp"
    print(f"Header cost of {include}; medians of {a.reps} interleaved -fsyntax-only runs.\n")
    print("| compiler | cancelkit.hpp lines | std baseline lines | ratio | cancelkit.hpp s "
          "| std baseline s | time ratio |")
    print("|---|---|---|---|---|---|---|")
    for cxx in a.cxx:
        lo, lb = lines(cxx, include, ours), lines(cxx, include, base)
        to, tb, ratios = [], [], []
        for _ in range(a.reps):  # interleaved, so load changes hit both alike
            o, b = syntax_seconds(cxx, include, ours), syntax_seconds(cxx, include, base)
            to.append(o), tb.append(b), ratios.append(o / b)
        print(f"| {cxx} | {lo} | {lb} | {lo / lb:.2f}x | {statistics.median(to):.3f} "
              f"| {statistics.median(tb):.3f} | {statistics.median(ratios):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
