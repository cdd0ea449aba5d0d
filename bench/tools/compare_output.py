"""scripts/bench-compare's verdicts and its machine-readable outputs (--json, --summary-md).

bench_compare.py measures; this module turns what it measured (compare.py's U-test JSON, the
per-benchmark medians of both sides, the callgrind counts) into verdicts, and the verdicts into
the text table, the JSON (schema "cancelkit-bench-compare/1", docs/ci.md) and the step-summary
markdown. It reads no files and runs nothing, so that ci/ tests it on recorded compare.py output.
"""

from __future__ import annotations

import re

SCHEMA = "cancelkit-bench-compare/1"


def metric_of(name: str) -> str:
    """The time field a regression is judged on (benchlib.metric_of, repeated here so that this
    module imports nothing): wall time for manual/real-time benchmarks, CPU time otherwise."""
    return "real_time" if ("/manual_time" in name or "/real_time" in name) else "cpu_time"


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


def evaluate(diff: list, med_a: dict, med_b: dict, cg_a: dict | None, cg_b: dict | None, *,
             threshold: float, ir_threshold: float, alpha: float, use_holm: bool = True) -> dict:
    """The verdicts. diff: compare.py -d output; med_a/med_b: benchlib.medians() of each side;
    cg_a/cg_b: Subject.callgrind() of each side, or None (--no-callgrind); threshold and
    ir_threshold in percent. Verdicts: "regression" (median slower by more than threshold with
    p < alpha, Holm-adjusted unless use_holm is false; or more than ir_threshold % more
    instructions), "faster"/"fewer", "noise" (a change past the threshold without significance),
    "" (within the threshold)."""
    thr = threshold / 100
    entries = [e for e in diff
               if e["name"] != "OVERALL_GEOMEAN" and e["name"] in med_a and e["name"] in med_b]
    raw_p = {}
    for entry in entries:
        ut = entry.get("utest") or {}
        raw_p[entry["name"]] = ut.get(
            "time_pvalue" if metric_of(entry["name"]) == "real_time" else "cpu_pvalue")
    adj_p = holm(raw_p) if use_holm else raw_p
    benchmarks = []
    regressions = []
    for entry in entries:
        name = entry["name"]
        ma, mb = med_a[name]["time"], med_b[name]["time"]
        change = (mb - ma) / ma if ma else 0.0
        padj = adj_p[name]
        significant = padj is not None and padj < alpha
        if change > thr and significant:
            verdict = "regression"
            regressions.append(name)
        elif change < -thr and significant:
            verdict = "faster"
        elif abs(change) > thr:
            verdict = "noise"
        else:
            verdict = ""
        ut = entry.get("utest") or {}
        benchmarks.append({
            "name": name,
            "metric": metric_of(name),
            "time_unit": entry.get("time_unit", "ns"),
            "base": _side(med_a[name]),
            "head": _side(med_b[name]),
            "change_pct": round(change * 100, 3),
            "p": raw_p[name],
            "p_adjusted": padj,
            "repetitions": [ut.get("nr_of_repetitions"), ut.get("nr_of_repetitions_other")],
            "verdict": verdict,
        })
    callgrind = []
    if cg_a is not None and cg_b is not None:
        for op, va in cg_a["ops"].items():
            vb = cg_b["ops"].get(op)
            if vb is None:
                continue
            ia, ib = va["ir_per_op"], vb["ir_per_op"]
            change = (ib - ia) / ia if ia else 0.0
            verdict = ""
            if change * 100 > ir_threshold:
                verdict = "regression"
                regressions.append("callgrind:" + op)
            elif change * 100 < -ir_threshold:
                verdict = "fewer"
            callgrind.append({"op": op, "base_ir_per_op": ia, "head_ir_per_op": ib,
                              "change_pct": round(change * 100, 3), "verdict": verdict})
    geo = next((e for e in diff if e["name"] == "OVERALL_GEOMEAN"), None)
    geomean = None
    if geo and geo.get("measurements"):
        m = geo["measurements"][0]
        geomean = {"time_pct": round(m["time"] * 100, 3), "cpu_pct": round(m["cpu"] * 100, 3)}
    return {"benchmarks": benchmarks, "callgrind": callgrind, "regressions": regressions,
            "geomean": geomean, "holm": use_holm}


def _side(med: dict) -> dict:
    return {"median": med["time"], "figure": med["figure"], "figure_unit": med["unit"],
            "runs": med.get("n")}


def _fmt_p(p) -> str:
    return "-" if p is None else f"{p:.2g}"


def table_rows(result: dict, fmt_num) -> list:
    """Rows of the printed table (benchlib.render): benchmark, metric, A, B, change, p, p (Holm),
    verdict; fmt_num is benchlib.fmt_num (how a figure is shown)."""
    rows = []
    for b in result["benchmarks"]:
        rows.append([b["name"], b["metric"].replace("_time", ""),
                     fmt_num(b["base"]["figure"], b["base"]["figure_unit"]),
                     fmt_num(b["head"]["figure"], b["head"]["figure_unit"]),
                     f"{b['change_pct']:+.1f}%", _fmt_p(b["p"]), _fmt_p(b["p_adjusted"]),
                     b["verdict"].upper() if b["verdict"] == "regression" else b["verdict"]])
    for c in result["callgrind"]:
        rows.append([f"callgrind:{c['op']}", "Ir/op", f"{c['base_ir_per_op']:.1f}",
                     f"{c['head_ir_per_op']:.1f}", f"{c['change_pct']:+.1f}%", "exact", "",
                     c["verdict"].upper() if c["verdict"] == "regression" else c["verdict"]])
    return rows


def to_json(result: dict, *, base: dict, head: dict, settings: dict, command: str,
            machine: str = "", yardstick: str = "") -> dict:
    """The --json document. base/head: {"rev": spec, "sha": ..., "label": ...}; settings: the
    thresholds and run counts."""
    n_reg = len(result["regressions"])
    return {
        "schema": SCHEMA,
        "result": "regression" if n_reg else "pass",
        "exit_status": 1 if n_reg else 0,
        "command": command,
        "base": base,
        "head": head,
        "measured_with": yardstick,
        "machine": machine,
        "settings": settings,
        "regressions": result["regressions"],
        "geomean": result["geomean"],
        "benchmarks": result["benchmarks"],
        "callgrind": result["callgrind"],
    }


def _md_cell(text) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|")


def _md_table(headers, rows) -> list:
    out = ["| " + " | ".join(headers) + " |",
           "| " + " | ".join(["---"] + ["---:"] * (len(headers) - 2) + ["---"]) + " |"]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out


def summary_markdown(doc: dict, fmt_num=None) -> str:
    """Headline first (regressions, with the command that re-runs just them), then the
    significant changes, then the instruction counts, then every benchmark (collapsed)."""
    fmt_num = fmt_num or (lambda v, unit="": f"{v:.4g}")
    s = doc["settings"]
    a, b = doc["base"], doc["head"]
    ab = f"A {a.get('short') or a.get('rev')} -> B {b.get('short') or b.get('rev')}"
    regs = doc["regressions"]
    lines = []
    if regs:
        lines.append(f"### cancelkit bench-compare: **{len(regs)} regression(s)** ({ab})")
    else:
        lines.append(f"### cancelkit bench-compare: no regression ({ab})")
    lines.append("")
    lines.append(f"{s.get('reps', '?')} interleaved runs per side; regression: median more than "
                 f"{s.get('threshold_pct', '?')}% slower with "
                 f"{'Holm-adjusted ' if s.get('holm', True) else ''}U-test p < "
                 f"{s.get('alpha', '?')}, or more than {s.get('ir_threshold_pct', '?')}% more "
                 "instructions (callgrind)."
                 + (f" Geomean change: time {doc['geomean']['time_pct']:+.1f}%, cpu "
                    f"{doc['geomean']['cpu_pct']:+.1f}%." if doc.get("geomean") else ""))
    lines.append("")
    headers = ["benchmark", "A", "B", "change", "p (U-test)",
               "p (Holm)" if s.get("holm", True) else "p", "verdict"]

    def brow(x):
        return [x["name"], fmt_num(x["base"]["figure"], x["base"]["figure_unit"]),
                fmt_num(x["head"]["figure"], x["head"]["figure_unit"]), f"{x['change_pct']:+.1f}%",
                _fmt_p(x["p"]), _fmt_p(x["p_adjusted"]),
                "**REGRESSION**" if x["verdict"] == "regression" else x["verdict"]]

    if regs:
        time_regs = [r for r in regs if not r.startswith("callgrind:")]
        lines.append("**Regressions:**")
        lines.append("")
        for x in doc["benchmarks"]:
            if x["verdict"] == "regression":
                lines.append(f"- `{x['name']}`: {x['change_pct']:+.1f}% ({x['metric']}), "
                             f"p {_fmt_p(x['p'])}, adjusted {_fmt_p(x['p_adjusted'])}")
        for c in doc["callgrind"]:
            if c["verdict"] == "regression":
                lines.append(f"- `callgrind:{c['op']}`: {c['change_pct']:+.1f}% instructions per "
                             f"operation ({c['base_ir_per_op']:.1f} -> {c['head_ir_per_op']:.1f})")
        lines.append("")
        if time_regs:
            alt = "|".join(re.escape(r) for r in time_regs)
            rerun = (f"scripts/bench-compare {a.get('rev')} {b.get('rev')} --fresh "
                     f"--filter '^({alt})$'")
            lines.append(f"Re-measure just these: `{rerun}`")
            lines.append("")
    sig = [x for x in doc["benchmarks"] if x["verdict"] in ("regression", "faster")]
    if sig:
        lines.append("**Significant changes (U-test):**")
        lines.append("")
        lines += _md_table(headers, [brow(x) for x in sig])
        lines.append("")
    elif doc["benchmarks"]:
        lines.append("No significant timing change.")
        lines.append("")
    if doc["callgrind"]:
        lines.append("**Instructions per operation (callgrind, exact):**")
        lines.append("")
        lines += _md_table(["operation", "A Ir/op", "B Ir/op", "change", "verdict"],
                           [[c["op"], f"{c['base_ir_per_op']:.1f}", f"{c['head_ir_per_op']:.1f}",
                             f"{c['change_pct']:+.1f}%",
                             "**REGRESSION**" if c["verdict"] == "regression" else c["verdict"]]
                            for c in doc["callgrind"]])
        lines.append("")
    if doc["benchmarks"]:
        lines.append(f"<details><summary>All {len(doc['benchmarks'])} benchmarks</summary>")
        lines.append("")
        lines += _md_table(headers, [brow(x) for x in doc["benchmarks"]])
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return "\n".join(lines)
