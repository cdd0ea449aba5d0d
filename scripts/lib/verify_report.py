"""scripts/verify's machine-readable outputs: verify-report/report.json and the step summary.

scripts/verify calls this once at the end with its stage records (a NUL-separated file, seven
fields per stage: name, result, seconds, command, description, key figures, extra reproduce
lines "what: command", one a line) and the run's facts as --meta key=value. It writes

  REPORT_DIR/report.json   schema "cancelkit-verify/1" (docs/ci.md)
  REPORT_DIR/summary.md    the compact markdown for $GITHUB_STEP_SUMMARY (and --summary-md FILE)

The functions are separate from the command line so that ci/ tests them on a fixture without
running the verification: parse_stage_records(), build_report(), summary_markdown().
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SCHEMA = "cancelkit-verify/1"
FIELDS = ("name", "result", "seconds", "command", "description", "key_figures", "reproduce")

# Which stages take the run's seed, and how (report.json "seeds").
SEEDED_STAGES = ("property", "linearizability", "stress_tsan", "stress_asan", "model")


def parse_stage_records(data: bytes) -> list[dict]:
    """The NUL-separated records scripts/verify writes -> one dict per stage (raw strings)."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    if len(parts) % len(FIELDS):
        raise ValueError(f"stage records: {len(parts)} fields, not a multiple of {len(FIELDS)}")
    out = []
    for i in range(0, len(parts), len(FIELDS)):
        out.append({k: v.decode("utf-8", "replace") for k, v in zip(FIELDS, parts[i:i + len(FIELDS)])})
    return out


def _seconds(text: str):
    try:
        return round(float(text), 1)
    except ValueError:
        return None  # "-": not run


def _status(result: str) -> str:
    """The stage result as one word: pass, fail, skipped, interrupted, not_run."""
    if result == "pass":
        return "pass"
    if result == "FAIL":
        return "fail"
    if result.startswith("skipped"):
        return "skipped"
    if result == "interrupted":
        return "interrupted"
    return "not_run"


def _reproduce(raw: dict) -> list[dict]:
    """The stage's own command first, then its extra lines ("what: command")."""
    if _status(raw["result"]) != "fail":
        return []
    out = [{"what": "the stage", "command": raw["command"]}]
    for line in raw["reproduce"].splitlines():
        line = line.strip()
        if not line:
            continue
        what, sep, command = line.partition(": ")
        out.append({"what": what, "command": command} if sep else {"what": "", "command": line})
    return out


def _meta_bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes")


def build_report(meta: dict, stages: list[dict], report_dir: Path | None = None) -> dict:
    """report.json's content. meta: scripts/verify's facts (strings); stages: from
    parse_stage_records. The stress stages' own JSON (cancelkit-stress --json, beside the logs in
    report_dir) goes into their "details"."""
    mode_flag = meta.get("mode_flag", "")
    seed = meta.get("seed", "")
    seed_value = int(seed) if str(seed).isdigit() else seed
    replay = "scripts/verify" + (f" {mode_flag}" if mode_flag else "") + f" --seed {seed}"
    rows = []
    for raw in stages:
        status = _status(raw["result"])
        row = {
            "name": raw["name"],
            "result": status,
            "result_text": raw["result"],
            "seconds": _seconds(raw["seconds"]),
            "key_figures": raw["key_figures"],
            "command": None if raw["command"] == "-" else raw["command"],
            "description": raw["description"],
            "log": None,
            "seed": seed_value if raw["name"] in SEEDED_STAGES else None,
            "reproduce": _reproduce(raw),
            "details": None,
        }
        if report_dir is not None:
            if (report_dir / f"{raw['name']}.log").exists():
                row["log"] = f"{raw['name']}.log"
            js = report_dir / f"{raw['name']}.json"
            if raw["name"].startswith("stress_") and js.exists():
                try:
                    row["details"] = json.loads(js.read_text())
                except (OSError, ValueError) as e:
                    row["details"] = {"error": f"unreadable {js.name}: {e}"}
        rows.append(row)
    failed = [r["name"] for r in rows if r["result"] == "fail"]
    interrupted = _meta_bool(meta.get("interrupted", "0"))
    result = "interrupted" if interrupted else ("fail" if failed else "pass")
    return {
        "schema": SCHEMA,
        "result": result,
        "mode": meta.get("mode", ""),
        "command": replay,
        "seed": seed_value,
        "seed_source": meta.get("seed_source", ""),
        "replay": replay,
        "preset": meta.get("preset", ""),
        "commit": meta.get("commit", ""),
        "date": meta.get("date", ""),
        "total_seconds": _seconds(meta.get("total_seconds", "-")),
        "interrupted_by": meta.get("signal") if interrupted else None,
        "compilers": meta.get("compilers", ""),
        "machine": meta.get("machine", ""),
        "counts": {k: sum(1 for r in rows if r["result"] == k)
                   for k in ("pass", "fail", "skipped", "interrupted", "not_run")},
        "failed": failed,
        "reproduce": [dict(stage=r["name"], **x) for r in rows for x in r["reproduce"]],
        "seeds": {r["name"]: r["seed"] for r in rows if r["seed"] is not None},
        "stages": rows,
    }


def _cell(text) -> str:
    """A markdown table cell: no line breaks, pipes escaped."""
    return re.sub(r"\s*\n\s*", " ", str(text if text is not None else "")).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code that survives backticks inside (CommonMark: a longer fence)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


ICON = {"pass": "pass", "fail": "**FAIL**", "skipped": "skipped", "interrupted": "interrupted",
        "not_run": "not run"}


def summary_markdown(report: dict) -> str:
    """Headline first, then the failed stages with their reproduce commands, then the table."""
    c = report["counts"]
    run = len(report["stages"]) - c["skipped"] - c["not_run"]
    head = {"pass": "passed", "fail": "FAILED", "interrupted": "INTERRUPTED"}[report["result"]]
    mode = report["mode"] + (f", seed {report['seed']} ({report['seed_source']})"
                             if report.get("seed") != "" else "")
    total = report["total_seconds"]
    lines = [f"### cancelkit verify {head}: {c['pass']}/{run} stages passed"
             + (f", {c['fail']} failed" if c["fail"] else "")
             + f" ({mode}; {total if total is not None else '?'} s)", ""]
    if report["result"] == "interrupted":
        lines += [f"Interrupted by {report.get('interrupted_by') or 'a signal'}; "
                  "the stages after it did not run.", ""]
    lines += [f"Replay this run: {_code(report['replay'])} (commit {report.get('commit') or '?'})",
              ""]
    if report["failed"]:
        lines += ["**Failed stages; reproduce from the repository root:**", ""]
        for st in report["stages"]:
            if st["result"] != "fail":
                continue
            lines.append(f"- **{st['name']}**: {_cell(st['key_figures']) or 'failed'}"
                         + (f" (log: {st['log']})" if st.get("log") else ""))
            for rep in st["reproduce"]:
                what = rep["what"] or "reproduce"
                lines.append(f"  - {what}: {_code(rep['command'])}")
        lines.append("")
    lines += ["| stage | result | seconds | key figures |", "| --- | --- | ---: | --- |"]
    for st in report["stages"]:
        secs = "-" if st["seconds"] is None else f"{st['seconds']:.1f}"
        result = ICON[st["result"]]
        if st["result"] == "skipped":
            result = _cell(st["result_text"])
        lines.append(f"| {st['name']} | {result} | {secs} | {_cell(st['key_figures'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="verify_report.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", required=True, type=Path, help="NUL-separated stage records")
    p.add_argument("--report-dir", required=True, type=Path)
    p.add_argument("--summary-md", type=Path, help="also write the summary here")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    meta = {}
    for kv in a.meta:
        k, sep, v = kv.partition("=")
        if not sep:
            p.error(f"--meta wants KEY=VALUE: {kv!r}")
        meta[k] = v
    report = build_report(meta, parse_stage_records(a.stages.read_bytes()), a.report_dir)
    (a.report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    md = summary_markdown(report)
    (a.report_dir / "summary.md").write_text(md)
    if a.summary_md:
        a.summary_md.parent.mkdir(parents=True, exist_ok=True)
        a.summary_md.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
