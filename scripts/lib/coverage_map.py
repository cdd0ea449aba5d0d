#!/usr/bin/python3
"""The per-suite coverage map of impl/ (issue 17, part 4), from gcovr JSON files.

Run by scripts/coverage; standard library only. Reads one gcovr JSON (`gcovr --json`) per suite
and the combined one (gcovr --add-tracefile of all of them), keeps the files of
impl/include and impl/src, and writes a markdown report with:
  - lines and branches reached per file, per suite, by any concurrent suite and combined;
  - the lines that no concurrent suite reaches (and, among them, those that no suite reaches);
  - the functions whose text contains an atomic operation or a lock but that no concurrent suite
    enters (from gcovr's per-function execution counts).
The last line printed is exactly
  coverage: impl lines L%, branches B%; lines reached by a concurrent suite C%

Denominators: every percentage is over the combined data's lines and branches, so the columns
compare. gcov only knows the code a translation unit instantiated: a template or inline function
that no suite's program instantiates appears in no column (the report says so).

  coverage_map.py --root DIR --combined FILE --suite NAME=FILE... --concurrent NAME,...
                  --out coverage.md [--title TEXT]
"""

import argparse
import json
import re
import sys
from pathlib import Path

IMPL_FILE = re.compile(r"^impl/(include|src)/")

# Source text that marks an atomic operation or a lock (the brief's list, plus the other
# read-modify-writes and scoped_lock): matched on code with comments and literals blanked.
SYNC_PATTERN = re.compile(
    r"\.load\(|\.store\(|fetch_add|fetch_sub|fetch_or|fetch_and|compare_exchange|exchange\("
    r"|lock\(|lock_guard|unique_lock|scoped_lock")


def load(path):
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    files = {}
    for f in data.get("files", []):
        name = f["file"].replace("\\", "/")
        if name.startswith("./"):
            name = name[2:]
        if not IMPL_FILE.match(name):
            continue
        files[name] = f
    return files


def code_lines(fdata):
    """line number -> line record, for the lines gcov counts (code, not excluded)."""
    out = {}
    for line in fdata.get("lines", []):
        if line.get("gcovr/noncode") or line.get("gcovr/excluded"):
            continue
        out[line["line_number"]] = line
    return out


def ranges(numbers):
    numbers = sorted(numbers)
    parts = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ", ".join(parts)


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def fmt(covered, total):
    return f"{pct(covered, total):.1f}" if total else "-"


def blank_comments_and_literals(text):
    """The source with comments, string and character literals replaced by spaces (newlines kept),
    so that braces and patterns are only found in code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' and text.startswith('R"', i - 1) and (i < 2 or not text[i - 2].isalnum()):
            m = re.match(r'"([^(\s]*)\(', text[i:])
            end = text.find(")" + (m.group(1) if m else "") + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            # A digit separator (1'000) is not a literal.
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j, n)
            closed = j < n and text[j] == c
            out.append(c + " " * (j - i - 1) + (c if closed else ""))
            i = j + 1 if closed else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def function_extent(code, line_starts, lineno, is_lambda):
    """(first, last) line of the function whose name gcov puts on `lineno`: from that line to the
    brace that closes its body. Braces inside parentheses (default arguments, T{} arguments) are
    skipped; a brace group followed by ',' or '{' is a member initializer (a_{1}, b_{2} {...}),
    so the scan goes on to the body. Lambdas start mid-line, so their parentheses are not
    counted before the first brace."""
    if lineno < 1 or lineno > len(line_starts):
        return lineno, lineno
    i = line_starts[lineno - 1]
    n = len(code)
    paren = 0
    end = None
    while i < n:
        c = code[i]
        if c == ";" and paren == 0 and end is None:
            break  # a declaration or '= default' without a body on these lines
        if c in "([" and not is_lambda:
            paren += 1
        elif c in ")]" and not is_lambda:
            paren = max(0, paren - 1)
        elif c == "{" and paren == 0:
            depth = 0
            while i < n:
                if code[i] == "{":
                    depth += 1
                elif code[i] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            end = i
            k = i + 1
            while k < n and code[k].isspace():
                k += 1
            if k < n and code[k] in ",{":
                i = k
                continue
            break
        i += 1
    if end is None:
        return lineno, lineno
    last = lineno
    while last < len(line_starts) and line_starts[last] <= end:
        last += 1
    return lineno, last


def sync_functions(root, name, functions):
    """[(lineno, display name, sorted patterns)] for the functions of file `name` that contain an
    atomic operation or a lock; `functions` maps lineno -> demangled names. A line counts for the
    innermost function around it (a lambda, not the function that holds the lambda)."""
    path = Path(root) / name
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    code = blank_comments_and_literals(text)
    lines = code.split("\n")
    line_starts = []
    pos = 0
    for ln in lines:
        line_starts.append(pos)
        pos += len(ln) + 1
    extents = {}
    for lineno, names in functions.items():
        is_lambda = any("lambda" in nm for nm in names)
        extents[lineno] = function_extent(code, line_starts, lineno, is_lambda)
    found = {}
    for idx, ln in enumerate(lines, start=1):
        hits = set(m.group(0) for m in SYNC_PATTERN.finditer(ln))
        if not hits:
            continue
        around = [(last - first, fl) for fl, (first, last) in extents.items() if first <= idx <= last]
        if not around:
            continue
        _, owner = min(around)
        found.setdefault(owner, set()).update(h.rstrip("(").lstrip(".") for h in hits)
    out = []
    for lineno, pats in sorted(found.items()):
        display = min(functions[lineno], key=len)
        if len(display) > 90:
            display = display[:87] + "..."
        out.append((lineno, display, sorted(pats)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--combined", required=True)
    ap.add_argument("--suite", action="append", default=[], metavar="NAME=FILE")
    ap.add_argument("--concurrent", default="stress,linearizability,model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="cancelkit coverage map (impl/)")
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args()

    suites = []
    for spec in args.suite:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"--suite {spec}: expected NAME=FILE")
        suites.append((name, load(path) if Path(path).is_file() else None))
    missing = [n for n, d in suites if d is None]
    concurrent = [c for c in args.concurrent.split(",") if c]
    combined = load(args.combined)
    if not combined:
        print("coverage_map: no impl/ file in the combined data", file=sys.stderr)
        return 1

    suite_data = {n: (d or {}) for n, d in suites}
    names = [n for n, _ in suites]
    files = sorted(combined)

    tot_lines = {k: 0 for k in names + ["concurrent", "combined"]}
    tot_br = dict(tot_lines)
    tot_lines_all = tot_br_all = 0
    line_rows, branch_rows, unreached_conc, unreached_all, sync_rows = [], [], [], [], []

    for f in files:
        comb = code_lines(combined[f])
        n_lines = len(comb)
        n_br = sum(len(rec.get("branches", [])) for rec in comb.values())
        per_suite = {n: code_lines(suite_data[n].get(f, {})) for n in names}
        lcov, bcov = {}, {}
        conc_hit_lines = set()
        conc_br = 0
        for n in names:
            sl = per_suite[n]
            lcov[n] = sum(1 for ln in comb if ln in sl and sl[ln].get("count", 0) > 0)
            b = 0
            for ln, rec in comb.items():
                sb = sl.get(ln, {}).get("branches", [])
                b += min(len(rec.get("branches", [])), sum(1 for x in sb if x.get("count", 0) > 0))
            bcov[n] = b
        for ln, rec in comb.items():
            if any(per_suite[c].get(ln, {}).get("count", 0) > 0 for c in concurrent if c in per_suite):
                conc_hit_lines.add(ln)
            nb = len(rec.get("branches", []))
            taken = set()
            for c in concurrent:
                for idx, x in enumerate(per_suite.get(c, {}).get(ln, {}).get("branches", [])):
                    if idx < nb and x.get("count", 0) > 0:
                        taken.add(idx)
            conc_br += len(taken)
        lcov["concurrent"] = len(conc_hit_lines)
        bcov["concurrent"] = conc_br
        lcov["combined"] = sum(1 for rec in comb.values() if rec.get("count", 0) > 0)
        bcov["combined"] = sum(1 for rec in comb.values() for x in rec.get("branches", []) if x.get("count", 0) > 0)
        for k in lcov:
            tot_lines[k] += lcov[k]
            tot_br[k] += bcov[k]
        tot_lines_all += n_lines
        tot_br_all += n_br
        line_rows.append([f"`{f}`", str(n_lines)] + [fmt(lcov[k], n_lines) for k in names + ["concurrent", "combined"]])
        branch_rows.append([f"`{f}`", str(n_br)] + [fmt(bcov[k], n_br) for k in names + ["concurrent", "combined"]])

        not_conc = [ln for ln in comb if ln not in conc_hit_lines]
        if not_conc:
            unreached_conc.append((f, not_conc))
        none = [ln for ln, rec in comb.items() if rec.get("count", 0) == 0]
        if none:
            unreached_all.append((f, none))

        # Functions with an atomic or a lock, grouped by line (instantiations, ctor variants).
        functions = {}
        for fn in combined[f].get("functions", []):
            functions.setdefault(fn["lineno"], set()).add(fn["name"])
        entered = {n: set() for n in names}
        for n in names:
            for fn in suite_data[n].get(f, {}).get("functions", []):
                if fn.get("execution_count", 0) > 0:
                    entered[n].add(fn["lineno"])
        for lineno, display, pats in sync_functions(args.root, f, functions):
            if any(lineno in entered.get(c, set()) for c in concurrent):
                continue
            others = [n for n in names if lineno in entered[n]]
            sync_rows.append((f, lineno, display, pats, others))

    cols = names + ["any concurrent", "combined"]
    keys = names + ["concurrent", "combined"]
    out = [f"# {args.title}", ""]
    out += args.note
    if args.note:
        out.append("")
    out.append(f"Concurrent suites: {', '.join(concurrent)}. Percentages are over the combined data's "
               "lines and branches of each file (gcov sees only instantiated code).")
    if missing:
        out.append("")
        out.append(f"**Missing suites (not run or no data):** {', '.join(missing)}.")
    out.append("")

    def table(title, rows, totals, total_all, unit):
        res = [f"## {title}", "", "| file | " + unit + " | " + " | ".join(cols) + " |",
               "|---|---:|" + "---:|" * len(cols)]
        for r in rows:
            res.append("| " + " | ".join(r) + " |")
        res.append("| **impl/ total** | " + str(total_all) + " | "
                   + " | ".join(f"**{fmt(totals[k], total_all)}**" for k in keys) + " |")
        res.append("")
        return res

    out += table("Lines reached (%)", line_rows, tot_lines, tot_lines_all, "lines")
    out += table("Branches taken (%)", branch_rows, tot_br, tot_br_all, "branches")

    def unreached_table(title, rows):
        section = [f"## {title}", ""]
        if not rows:
            return section + ["None.", ""]
        section += ["| file | lines | line numbers |", "|---|---:|---|"]
        section += [f"| `{f}` | {len(lns)} | {ranges(lns)} |" for f, lns in rows]
        return section + [""]

    out += unreached_table("Lines that no concurrent suite reaches", unreached_conc)
    out += unreached_table("Lines that no suite reaches", unreached_all)
    out += ["## Functions with an atomic operation or a lock that no concurrent suite enters", ""]
    if sync_rows:
        out += ["| file:line | function | atomic / lock | entered by |", "|---|---|---|---|"]
        for f, lineno, display, pats, others in sync_rows:
            disp = display.replace("|", "\\|")
            out.append(f"| `{f}:{lineno}` | `{disp}` | {', '.join(pats)} | {', '.join(others) or 'no suite'} |")
    else:
        out.append("None.")
    out.append("")

    L = pct(tot_lines["combined"], tot_lines_all)
    B = pct(tot_br["combined"], tot_br_all)
    C = pct(tot_lines["concurrent"], tot_lines_all)
    last = f"coverage: impl lines {L:.1f}%, branches {B:.1f}%; lines reached by a concurrent suite {C:.1f}%"
    out.append(last)
    Path(args.out).write_text("\n".join(out) + "\n", encoding="utf-8")

    # The summary tables on stdout; the last line is the one scripts rely on.
    print("\n".join(table("Lines reached (%)", line_rows, tot_lines, tot_lines_all, "lines")))
    print(f"{len(sync_rows)} function(s) with an atomic or a lock that no concurrent suite enters; "
          f"{sum(len(x) for _, x in unreached_conc)} line(s) no concurrent suite reaches, "
          f"{sum(len(x) for _, x in unreached_all)} no suite reaches (see {args.out})")
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
