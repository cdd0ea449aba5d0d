"""Issue 20's performance targets: the one place their limits live. scripts/bench-report prints
both tables after its main table; scripts/bench-callgrind prints the instruction-count one.

A wall-clock target compares a cancelkit row with a floor row of the same Google Benchmark run:
its ratio is the median over runs of the ratio inside each run (same load, same moment), like
the main table's ck/raw column. A callgrind target is an absolute instruction count (the counts
do not move with load, so one measurement is the figure). A limit of None prints the row for
information, with no verdict.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


@dataclass(frozen=True)
class WallTarget:
    what: str
    cancelkit: str        # Google Benchmark row name
    floor: str            # the floor's row name in the same run
    limit: float | None   # cancelkit / floor must be <= limit (None: information only)
    counter: str | None = None  # the counter compared (default: the row's figure, bl.figure_of)


@dataclass(frozen=True)
class IrTarget:
    what: str
    op: str               # callgrind driver operation
    floor: str | None     # an operation shown beside it (ratio for information)
    limit: float          # instructions per operation, <=


def _dispatch(impl: str, n: int) -> str:
    return f"dispatch/cancel/{impl}/{n}/manual_time"


WALL_TARGETS = [
    WallTarget("register+unregister", "register/callback/cancelkit", "register/callback/raw", 1.0),
    WallTarget("cancel, 0 callbacks", _dispatch("cancelkit", 0), _dispatch("raw", 0), 1.2),
    WallTarget("cancel, 1 callback", _dispatch("cancelkit", 1), _dispatch("raw", 1), 1.1),
    WallTarget("per callback, N = 8", _dispatch("cancelkit", 8), _dispatch("raw", 8), 1.0,
               "ns/callback"),
    WallTarget("per callback, N = 64", _dispatch("cancelkit", 64), _dispatch("raw", 64), 0.9,
               "ns/callback"),
    WallTarget("per callback, N = 1024", _dispatch("cancelkit", 1024), _dispatch("raw", 1024),
               0.9, "ns/callback"),
    WallTarget("per callback, N = 8 vs pop-once", _dispatch("cancelkit", 8),
               _dispatch("raw_detach", 8), None, "ns/callback"),
    WallTarget("per callback, N = 64 vs pop-once", _dispatch("cancelkit", 64),
               _dispatch("raw_detach", 64), None, "ns/callback"),
    WallTarget("per callback, N = 1024 vs pop-once", _dispatch("cancelkit", 1024),
               _dispatch("raw_detach", 1024), None, "ns/callback"),
    WallTarget("per callback, N = 8 vs claim-per-callback", _dispatch("cancelkit", 8),
               _dispatch("raw_claim", 8), None, "ns/callback"),
    WallTarget("per callback, N = 64 vs claim-per-callback", _dispatch("cancelkit", 64),
               _dispatch("raw_claim", 64), None, "ns/callback"),
    WallTarget("per callback, N = 1024 vs claim-per-callback", _dispatch("cancelkit", 1024),
               _dispatch("raw_claim", 1024), None, "ns/callback"),
    WallTarget("create + token + destroy", "source/create_token_destroy/cancelkit",
               "source/create_token_destroy/raw_heap", 3.0),
    WallTarget("cross-thread round trip", "crossthread/roundtrip/cancelkit/manual_time",
               "crossthread/roundtrip/raw/manual_time", 1.1),
    WallTarget("contended, 2 threads", "contended/callback/cancelkit/real_time/threads:2",
               "contended/callback/raw/real_time/threads:2", 1.0),
]

IR_TARGETS = [
    IrTarget("register+unregister", "register/cancelkit", "register/raw", 55),
    IrTarget("cancel, 0 callbacks", "cancel0/cancelkit", "cancel0/raw", 30),
    IrTarget("cancel, 8 callbacks", "cancel8/cancelkit", "cancel8/raw", 260),
]


def _value(row: dict, counter: str | None):
    if counter is None:
        return bl.figure_of(row)[0]
    return row.get(counter)


def _fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"


def _verdict(value, limit) -> str:
    if value is None:
        return "not measured"
    if limit is None:
        return "(info)"
    return "holds" if value <= limit else "misses"


def wall_table(files) -> str:
    """The wall-clock targets over Google Benchmark JSON runs `files`."""
    runs = [{b["name"]: b for b in bl.iteration_rows(bl.load(f))} for f in files]
    rows = []
    for t in WALL_TARGETS:
        ck_vals, floor_vals, ratios = [], [], []
        unit = "ns"
        for r in runs:
            a, b = r.get(t.cancelkit), r.get(t.floor)
            va = _value(a, t.counter) if a else None
            vb = _value(b, t.counter) if b else None
            if va is not None:
                ck_vals.append(va)
                unit = t.counter or bl.figure_of(a)[1]
            if vb is not None:
                floor_vals.append(vb)
            if va is not None and vb:
                ratios.append(va / vb)
        ratio = statistics.median(ratios) if ratios else None
        med = lambda v: bl.fmt_num(statistics.median(v), unit) if v else "-"  # noqa: E731
        floor_impl = bl.split_name(t.floor)[2]
        rows.append([t.what, med(ck_vals), f"{med(floor_vals)} ({floor_impl})", _fmt_ratio(ratio),
                     "-" if t.limit is None else f"<= {t.limit:.1f}x", _verdict(ratio, t.limit)])
    note = (f"Issue 20 targets, wall clock: medians of {len(files)} runs; the ratio is the median "
            f"of per-run cancelkit / floor ratios (per-callback rows: the ns/callback counter). "
            f"Limits: bench/tools/targets.py.")
    return note + "\n\n" + bl.render(
        ["target", "cancelkit", "floor", "ck/floor", "limit", "verdict"], rows,
        ["l", "r", "r", "r", "r", "l"])


def ir_table(cg: dict) -> str:
    """The callgrind targets over bl.callgrind_counts() output `cg`."""
    ops = cg.get("ops", {})
    rows = []
    for t in IR_TARGETS:
        ck = ops.get(t.op, {}).get("ir_per_op")
        fl = ops.get(t.floor, {}).get("ir_per_op") if t.floor else None
        ratio = ck / fl if ck is not None and fl else None
        rows.append([t.what, t.op, "-" if ck is None else f"{ck:.1f}",
                     "-" if fl is None else f"{fl:.1f} ({t.floor})", _fmt_ratio(ratio),
                     f"<= {t.limit:g} Ir", _verdict(ck, t.limit)])
    note = ("Issue 20 targets, callgrind: instructions per operation (the verdict is on the "
            "cancelkit count; the floor is shown for reference). Limits: bench/tools/targets.py.")
    return note + "\n\n" + bl.render(
        ["target", "operation", "cancelkit Ir/op", "floor Ir/op", "ck/floor", "limit", "verdict"],
        rows, ["l", "l", "r", "r", "r", "r", "l"])
