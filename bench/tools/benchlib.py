"""Shared machinery of scripts/bench-compare, scripts/bench-history, scripts/bench-callgrind and
scripts/bench-report: resolve commits, build each one's library with one set of benchmark
sources (the "yardstick") in a git worktree, run cancelkit-bench and the callgrind driver, keep
every result under .bench-results/ (git-ignored) keyed by commit + yardstick, and format tables.

Layout of .bench-results/ (everything can be deleted at any time):
  worktrees/<sha12>/              `git worktree add --detach` of a commit
  worktrees/worktree-<hash>/      a copy of the uncommitted working tree (revision WORKTREE)
  yardsticks/<yhash>/bench/       the benchmark sources used for a comparison
  builds/<key>/                   CMake build (Release: -O2 -g -DNDEBUG) of <key>
  results/<key>/meta.json         what <key> is (commit, subject, yardstick origin, compiler)
  results/<key>/callgrind.json    instructions per operation (deterministic: computed once)
  results/<key>/runs/<session>/<i>.json   Google Benchmark JSON of one run
  compare/<keyA>__<keyB>/         merged JSONs, compare.py output and the table of a comparison
  history/                        bench-history's charts and CSV
where <key> = <sha12>-<yhash8> (or worktree-<hash12>-<yhash8>).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / ".bench-results"
WORKTREE_REV = "WORKTREE"
DEFAULT_COMPARE_PY = "/usr/share/benchmark/compare.py"
BUILD_FLAGS = "-O2 -g -DNDEBUG"  # CMake "Release" with the issue's -O2 (and symbols for annotate)
CALLGRIND_N = 20000

# Counters that carry the per-operation figure of a manual-time benchmark (whose time column
# is per batch).
FIGURE_COUNTERS = ("ns/cancel", "ns/first", "ns/roundtrip", "us/wakeup")


class BenchError(Exception):
    """A failure the scripts report in one line and exit 2 for (cannot compare)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd, cwd=None, capture=False, check=True, env=None, log_file=None):
    if log_file is not None:
        with open(log_file, "a") as f:
            f.write("$ " + " ".join(str(c) for c in cmd) + "\n")
            f.flush()
            p = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                               env=env)
    else:
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True,
                           stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE if capture else None)
    if check and p.returncode != 0:
        detail = f" (log: {log_file})" if log_file else ""
        if capture and p.stderr:
            detail += ": " + p.stderr.strip().splitlines()[-1]
        raise BenchError(f"command failed with {p.returncode}: {' '.join(map(str, cmd))}{detail}")
    return p


def git(*args, capture=True, check=True) -> str:
    p = run(["git", "-C", REPO, *args], capture=capture, check=check)
    return (p.stdout or "").strip() if capture else ""


# ---- revisions ------------------------------------------------------------------------------

class Revision:
    """A commit (sha) or the uncommitted working tree (sha None)."""

    def __init__(self, spec: str):
        self.spec = spec
        self.dir = None
        if spec == WORKTREE_REV:
            self.sha = None
            self.subject = "uncommitted working tree"
            self.content_hash = worktree_content_hash()
            self.short = "worktree-" + self.content_hash[:12]
        elif spec.startswith("dir:"):
            # Any directory with impl/ (a patched copy, another clone): measured as it is.
            self.dir = Path(spec[4:]).resolve()
            if not (self.dir / "impl" / "src").is_dir():
                raise BenchError(f"{self.dir} has no impl/src")
            self.sha = None
            self.subject = f"directory {self.dir}"
            self.content_hash = dir_content_hash(self.dir)
            self.short = "dir-" + self.content_hash[:12]
        else:
            p = run(["git", "-C", REPO, "rev-parse", "--verify", "--quiet", spec + "^{commit}"],
                    capture=True, check=False)
            if p.returncode != 0:
                raise BenchError(f"{spec!r} is not a commit of {REPO}")
            self.sha = p.stdout.strip()
            self.subject = git("log", "-1", "--format=%s", self.sha)
            self.short = self.sha[:12]

    def __str__(self):
        if self.spec == self.short or (self.sha and self.spec == self.sha):
            return self.short
        return f"{self.spec} ({self.short})"

    def has_path(self, path: str) -> bool:
        if self.dir is not None:
            return (self.dir / path).exists()
        if self.sha is None:
            return (REPO / path).exists()
        return run(["git", "-C", REPO, "cat-file", "-e", f"{self.sha}:{path}"], capture=True,
                   check=False).returncode == 0

    def checkout(self) -> Path:
        """A directory holding this revision's files."""
        if self.dir is not None:
            return self.dir
        if self.sha is None:
            dest = RESULTS / "worktrees" / self.short
            if not dest.exists():
                tmp = dest.with_name(dest.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                for rel in worktree_files():
                    src = REPO / rel
                    if src.is_file():
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, tmp / rel)
                tmp.rename(dest)
            return dest
        dest = RESULTS / "worktrees" / self.short
        if not (dest / ".git").exists():
            shutil.rmtree(dest, ignore_errors=True)
            run(["git", "-C", REPO, "worktree", "prune"], capture=True, check=False)
            dest.parent.mkdir(parents=True, exist_ok=True)
            run(["git", "-C", REPO, "worktree", "add", "--detach", "--force", dest, self.sha],
                capture=True)
        return dest


def worktree_files():
    out = git("ls-files", "-co", "--exclude-standard", "-z")
    return [f for f in out.split("\0") if f and not f.startswith(".bench-results/")]


def worktree_content_hash() -> str:
    """Hash of what a build of the working tree reads: the library and the build system."""
    h = hashlib.sha1()
    for rel in sorted(worktree_files()):
        if rel.startswith(("bench/", "property_tests/", "stress/", "examples/", "scripts/")):
            continue
        p = REPO / rel
        if p.is_file():
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def dir_content_hash(root: Path) -> str:
    h = hashlib.sha1()
    for sub in ("impl", "cmake"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file() and "/tests/" not in p.as_posix():
                h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    for name in ("CMakeLists.txt",):
        if (root / name).is_file():
            h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()


# ---- yardstick (the benchmark sources) ------------------------------------------------------

class Yardstick:
    """The bench/ sources every revision of one comparison is measured with."""

    def __init__(self, origin: Revision | None):
        # origin None: the working tree's bench/.
        if origin is not None and origin.sha is not None and origin.has_path("bench/CMakeLists.txt"):
            self.origin = f"bench/ of {origin.short}"
            tmp = RESULTS / "yardsticks" / "incoming"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", origin.sha, "bench"],
                                     stdout=subprocess.PIPE, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
            src = tmp / "bench"
        else:
            if not (REPO / "bench" / "CMakeLists.txt").exists():
                raise BenchError("no bench/ sources in the working tree")
            why = "" if origin is None else f" ({origin.short} has no bench/)"
            self.origin = "bench/ of the working tree" + why
            src = REPO / "bench"
            tmp = None
        self.hash = tree_hash(src)
        self.dir = RESULTS / "yardsticks" / self.hash[:12] / "bench"
        if not self.dir.exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, self.dir,
                            ignore=shutil.ignore_patterns("__pycache__", "tools", "*.md"))
        if tmp is not None:
            shutil.rmtree(tmp.parent / "incoming", ignore_errors=True)


def tree_hash(root: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        # The tools and the docs do not change what is measured.
        if (p.is_file() and "__pycache__" not in rel and not rel.startswith("tools/")
                and not rel.endswith(".md")):
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


# ---- one measured revision ------------------------------------------------------------------

class Subject:
    """A revision built with a yardstick: its binaries and kept results."""

    def __init__(self, rev: Revision, yard: Yardstick, cxx: str):
        self.rev = rev
        self.yard = yard
        self.cxx = cxx
        cxx_tag = "" if cxx == "g++" else "-" + re.sub(r"[^A-Za-z0-9.+]", "_", cxx)
        self.key = f"{rev.short}-{yard.hash[:8]}{cxx_tag}"
        self.build_dir = RESULTS / "builds" / self.key
        self.result_dir = RESULTS / "results" / self.key
        self.bench = self.build_dir / "cancelkit-bench"
        self.driver = self.build_dir / "cancelkit-bench-callgrind"

    def label(self) -> str:
        return f"{self.rev} {self.rev.subject[:50]!r}"

    def build(self, jobs: int = 2) -> None:
        if (self.build_dir / "built.ok").exists():
            return
        src = self.rev.checkout()
        self.build_dir.mkdir(parents=True, exist_ok=True)
        logf = self.build_dir / "build.log"
        logf.write_text("")
        log(f"building {self.rev} with {self.yard.origin} (log: {logf.relative_to(REPO)})")
        cmake_dir = self.build_dir / "cmake"
        try:
            run(["cmake", "-S", self.yard.dir, "-B", cmake_dir, f"-DCANCELKIT_ROOT={src}",
                 "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CXX_FLAGS_RELEASE={BUILD_FLAGS}",
                 f"-DCMAKE_CXX_COMPILER={self.cxx}"], log_file=logf)
            run(["cmake", "--build", cmake_dir, "-j", str(jobs), "--target", "cancelkit-bench",
                 "cancelkit-bench-callgrind"], log_file=logf)
        except BenchError:
            tail = "".join(logf.read_text().splitlines(True)[-15:])
            raise BenchError(
                f"cannot compare: {self.rev} does not build with {self.yard.origin}.\n"
                f"(The yardstick's benchmark sources must compile against every revision's "
                f"library; a revision whose API differs cannot be measured with them.)\n"
                f"Last lines of {logf}:\n{tail}")
        for exe in ("cancelkit-bench", "cancelkit-bench-callgrind"):
            shutil.copy2(cmake_dir / "bench" / exe if (cmake_dir / "bench" / exe).exists()
                         else cmake_dir / exe, self.build_dir / exe)
        self.result_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "key": self.key, "revision": self.rev.spec, "sha": self.rev.sha,
            "subject": self.rev.subject, "yardstick": self.yard.origin,
            "yardstick_hash": self.yard.hash, "compiler": self.cxx, "flags": BUILD_FLAGS,
        }
        (self.result_dir / "meta.json").write_text(json.dumps(meta, indent=2))
        (self.build_dir / "built.ok").write_text("ok\n")

    # -- timing runs --

    def run_once(self, out: Path, min_time: float, bench_filter: str | None) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [self.bench, f"--benchmark_out={out}", "--benchmark_out_format=json",
               f"--benchmark_min_time={min_time}", "--benchmark_repetitions=1",
               f"--benchmark_context=revision={self.rev.short}"]
        if bench_filter:
            cmd.append(f"--benchmark_filter={bench_filter}")
        tmp = out.with_suffix(".partial")
        cmd[1] = f"--benchmark_out={tmp}"
        p = subprocess.run([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise BenchError(f"{self.bench} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
        tmp.rename(out)

    def sessions(self):
        """Kept timing sessions: list of (dir, meta)."""
        out = []
        base = self.result_dir / "runs"
        if base.exists():
            for d in sorted(base.iterdir()):
                mf = d / "session.json"
                if mf.exists():
                    out.append((d, json.loads(mf.read_text())))
        return out

    def all_runs(self, unfiltered_only=True):
        files = []
        for d, meta in self.sessions():
            if unfiltered_only and meta.get("filter"):
                continue
            files.extend(sorted(d.glob("[0-9]*.json")))
        return files

    # -- callgrind --

    def callgrind(self, jobs: int = 2) -> dict:
        cache = self.result_dir / "callgrind.json"
        if cache.exists():
            return json.loads(cache.read_text())
        log(f"callgrind: counting instructions for {self.rev}")
        data = callgrind_counts(self.driver, self.build_dir / "callgrind", jobs)
        cache.write_text(json.dumps(data, indent=2))
        return data


def new_session(subject: Subject, kind: str, min_time: float, bench_filter: str | None,
                partner: str | None) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = subject.result_dir / "runs" / (f"{stamp}-{kind}" + (f"-vs-{partner}" if partner else ""))
    d.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "partner": partner, "min_time": min_time, "filter": bench_filter or "",
            "started": stamp, "host": platform.node(), "complete": False}
    (d / "session.json").write_text(json.dumps(meta, indent=2))
    return d


def finish_session(d: Path, runs: int) -> None:
    mf = d / "session.json"
    meta = json.loads(mf.read_text())
    meta["complete"] = True
    meta["runs"] = runs
    mf.write_text(json.dumps(meta, indent=2))


# ---- callgrind ------------------------------------------------------------------------------

def callgrind_counts(driver: Path, workdir: Path, jobs: int = 2, n: int = CALLGRIND_N,
                     ops=None) -> dict:
    """Instructions per operation, net of the empty measuring loop."""
    if shutil.which("valgrind") is None:
        raise BenchError("valgrind not found (Debian: apt-get install valgrind)")
    listing = run([driver, "--list"], capture=True).stdout
    names = [line.split("\t")[0] for line in listing.splitlines() if line.strip()]
    what = {line.split("\t")[0]: line.split("\t")[1] for line in listing.splitlines() if "\t" in line}
    if ops:
        names = ["empty"] + [o for o in names if o in ops and o != "empty"]
    workdir.mkdir(parents=True, exist_ok=True)

    def one(op: str):
        out = workdir / ("callgrind." + op.replace("/", "_") + ".out")
        run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=yes",
             "--collect-atstart=no", "--toggle-collect=ckbench_measure", driver, op, str(n)],
            capture=True)
        total = None
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
        if total is None:
            raise BenchError(f"no instruction total in {out}")
        return total, locked_executions(out)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        totals = dict(zip(names, pool.map(one, names)))
    empty, empty_locked = totals.get("empty", (0, 0))
    ops_out = {}
    for name, (total, locked) in totals.items():
        if name == "empty":
            continue
        ops_out[name] = {"ir_per_op": (total - empty) / n,
                         "atomic_rmw_per_op": (locked - empty_locked) / n,
                         "what": what.get(name, "")}
    return {"n": n, "empty_loop_ir_per_op": empty / n, "ops": ops_out,
            "valgrind": run(["valgrind", "--version"], capture=True).stdout.strip()}


_LOCKED_CACHE: dict[str, set] = {}


def locked_addresses(obj: str) -> set:
    """Addresses of the atomic read-modify-write instructions (lock prefix, xchg with memory)
    and full fences of an object file, as objdump shows them."""
    if obj not in _LOCKED_CACHE:
        addrs = set()
        p = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True,
                           text=True)
        for line in p.stdout.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
            if not m:
                continue
            ins = m.group(2).strip()
            if ins.startswith("lock ") or ins.startswith("mfence") or (
                    ins.startswith("xchg") and "(" in ins):
                addrs.add(int(m.group(1), 16))
        _LOCKED_CACHE[obj] = addrs
    return _LOCKED_CACHE[obj]


def locked_executions(out: Path, per_site: dict | None = None) -> int:
    """How many atomic RMW / fence instructions ran, from a --dump-instr=yes callgrind file
    (a syscall is not one: futex wakes are not counted here). With `per_site`, also fills
    {(object, address): executions}."""
    obs: dict[str, str] = {}
    cur_ob = None
    addr = 0
    after_calls = False
    count = 0
    locked: set = set()
    for line in out.read_text().splitlines():
        if not line:
            continue
        c = line[0]
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    obs[m.group(1)] = m.group(2)
                cur_ob = obs.get(m.group(1))
                locked = locked_addresses(cur_ob) if cur_ob and os.path.exists(cur_ob) else set()
            continue
        if line.startswith(("cob=", "cfi=", "cfl=", "cfn=")):
            m = re.match(r"cob=\((\d+)\)(?: (.*))?", line)
            if m and m.group(2):
                obs[m.group(1)] = m.group(2)
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if c in "0123456789+-*":
            tok = line.split()
            a = tok[0]
            if a.startswith("0x"):
                addr = int(a, 16)
            elif a.startswith("+"):
                addr += int(a[1:], 16) if a[1:].startswith("0x") else int(a[1:])
            elif a.startswith("-"):
                addr -= int(a[1:], 16) if a[1:].startswith("0x") else int(a[1:])
            if after_calls:
                after_calls = False
                continue
            if addr in locked and len(tok) >= 3:
                count += int(tok[2])
                if per_site is not None:
                    per_site[(cur_ob, addr)] = per_site.get((cur_ob, addr), 0) + int(tok[2])
    return count


def locked_sites(out: Path, n: int):
    """[(executions per op, 'inlined frames, innermost last')] of every atomic RMW site."""
    sites: dict = {}
    locked_executions(out, sites)
    rows = []
    for (obj, addr), cnt in sorted(sites.items(), key=lambda kv: -kv[1]):
        p = subprocess.run(["addr2line", "-f", "-i", "-C", "-e", obj, hex(addr)],
                           capture_output=True, text=True)
        lines = p.stdout.strip().splitlines()
        frames = []
        for fn, loc in zip(lines[0::2], lines[1::2]):
            loc = re.sub(r".*/(impl|bench)/", r"\1/", loc)
            loc = re.sub(r".*/include/c\+\+/\d+/", "", loc)
            frames.append(f"{fn.split('(')[0]} @ {loc}")
        rows.append((cnt / n, frames))
    return rows


# ---- reading Google Benchmark JSON ----------------------------------------------------------

def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def iteration_rows(doc: dict):
    return [b for b in doc.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"
            and not b.get("error_occurred")]


def merge_runs(files, out: Path) -> dict:
    """One JSON holding every run's rows as repetitions (what compare.py's U-test wants)."""
    merged = None
    for i, f in enumerate(files):
        doc = load(f)
        if merged is None:
            merged = {"context": doc.get("context", {}), "benchmarks": []}
        for b in iteration_rows(doc):
            b = dict(b)
            b["repetition_index"] = i
            b["repetitions"] = len(files)
            merged["benchmarks"].append(b)
    if merged is None:
        raise BenchError("no benchmark runs to merge")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged))
    return merged


def metric_of(name: str) -> str:
    """The time field a regression is judged on: wall time for manual/real-time benchmarks,
    CPU time for the rest (less disturbed when the shared machine preempts us)."""
    return "real_time" if ("/manual_time" in name or "/real_time" in name) else "cpu_time"


def figure_of(row: dict):
    """(value, unit) a table shows for one run of a benchmark."""
    for c in FIGURE_COUNTERS:
        if c in row:
            return row[c], c
    return row[metric_of(row["name"])], row.get("time_unit", "ns")


def split_name(name: str):
    """'dispatch/cancel/std/8/manual_time' -> ('dispatch', 'cancel', 'std', '8/manual_time')."""
    parts = name.split("/")
    if len(parts) < 3:
        return parts[0], "", "", ""
    return parts[0], parts[1], parts[2], "/".join(parts[3:])


def is_floor(impl: str) -> bool:
    """A floor implementation: `raw`, or a named one such as `raw_detach`, `raw_heap`
    (bench/raw_floor.hpp)."""
    return impl == "raw" or impl.startswith("raw_")


def run_ratios(files) -> dict:
    """(name_a, name_b) -> median over runs of figure(a)/figure(b) within the same run, for
    every cancelkit row against the std / condvar / floor (raw, raw_*) rows of the same
    scenario. Ratios are taken inside one run (same load, same moment) before the median:
    steadier than a ratio of medians on a shared machine."""
    per: dict[tuple, list] = {}
    for f in files:
        figs = {b["name"]: figure_of(b)[0] for b in iteration_rows(load(f))}
        by_scenario: dict[tuple, list] = {}
        for name in figs:
            fam, case, impl, rest = split_name(name)
            by_scenario.setdefault((fam, case, rest), []).append((impl, name))
        for name, v in figs.items():
            fam, case, impl, rest = split_name(name)
            if not impl.startswith("cancelkit"):
                continue
            for other, oname in by_scenario[(fam, case, rest)]:
                if (other in ("std", "condvar") or is_floor(other)) and figs[oname]:
                    per.setdefault((name, oname), []).append(v / figs[oname])
    return {k: statistics.median(v) for k, v in per.items()}


def medians(files) -> dict:
    """name -> {'figure': median, 'unit': ..., 'time': median metric, 'allocs': median, 'n': k}"""
    by_name: dict[str, list] = {}
    for f in files:
        for b in iteration_rows(load(f)):
            by_name.setdefault(b["name"], []).append(b)
    out = {}
    for name, rows in by_name.items():
        figs = [figure_of(r)[0] for r in rows]
        out[name] = {
            "figure": statistics.median(figs),
            "unit": figure_of(rows[0])[1],
            "time": statistics.median(r[metric_of(name)] for r in rows),
            "allocs": statistics.median(r["allocs/op"] for r in rows) if "allocs/op" in rows[0] else None,
            "per_callback": statistics.median(r["ns/callback"] for r in rows) if "ns/callback" in rows[0] else None,
            "n": len(rows),
        }
    return out


# ---- tables ---------------------------------------------------------------------------------

def fmt_num(v, unit=""):
    if v is None:
        return "-"
    if unit == "us/wakeup":
        return f"{v:.1f} us"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f} us"
    if abs(v) >= 100:
        return f"{v:.0f} ns"
    return f"{v:.2f} ns" if abs(v) < 10 else f"{v:.1f} ns"


def render(headers, rows, aligns=None) -> str:
    """A GitHub-markdown table (also readable as plain text)."""
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(str(c)))
    aligns = aligns or ["l"] + ["r"] * (len(headers) - 1)

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.ljust(widths[i]) if aligns[i] == "l" else c.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join((":" + "-" * (w + 1)) if a == "l" else ("-" * (w + 1) + ":")
                         for w, a in zip(widths, aligns)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def family_table(med: dict, callgrind: dict | None = None, ratios: dict | None = None) -> str:
    """cancelkit vs std vs raw per scenario, with ratios (per-run ratios when given)."""
    groups: dict[tuple, dict] = {}
    order = []
    for name, m in med.items():
        fam, case, impl, rest = split_name(name)
        key = (fam, case, rest)
        if key not in groups:
            groups[key] = {}
            order.append(key)
        groups[key][impl] = dict(m, name=name)
    rows = []
    for key in order:
        g = groups[key]
        fam, case, rest = key
        rest_clean = re.sub(r"/?(manual_time|real_time|iterations:\d+)", "", rest).strip("/")
        scen = f"{fam}/{case}" + (f"/{rest_clean}" if rest_clean else "")
        ck_impls = [i for i in g if i.startswith("cancelkit")]
        others = [i for i in g if not i.startswith("cancelkit")]
        for ck in ck_impls or [None]:
            ckm = g.get(ck) if ck else None
            unit = (ckm or next(iter(g.values())))["unit"]
            std = g.get("std")
            raw = g.get("raw")
            base = g.get("condvar")
            def ratio(a, b):
                if not a or not b or not b["figure"]:
                    return "-"
                if ratios and (a["name"], b["name"]) in ratios:
                    r = ratios[(a["name"], b["name"])]
                else:
                    r = a["figure"] / b["figure"]
                return f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"
            extra = ""
            if ckm and ckm.get("per_callback") is not None:
                extra = f"{ckm['per_callback']:.2f} ns/cb"
                if std and std.get("per_callback") is not None:
                    extra += f" (std {std['per_callback']:.1f})"
            label = scen + ("" if ck in (None, "cancelkit") else f" [{ck}]")
            rows.append([
                label,
                fmt_num(ckm["figure"], unit) if ckm else "-",
                fmt_num(std["figure"], unit) if std else "-",
                fmt_num(raw["figure"], unit) if raw else (f"condvar {fmt_num(base['figure'], unit)}" if base else "-"),
                ratio(ckm, std),
                ratio(ckm, raw) if raw else ratio(ckm, base),
                "-" if not ckm or ckm["allocs"] is None else f"{ckm['allocs']:.3g}",
                "-" if not std or std["allocs"] is None else f"{std['allocs']:.3g}",
                extra,
            ])
            # The named floors (raw_detach, raw_heap, ...): one row each, under the scenario,
            # with the floor in the "raw / floor" column and cancelkit / it in "ck/raw".
            for fl in sorted(i for i in others if is_floor(i) and i != "raw"):
                flm = g[fl]
                fextra = ""
                if ckm and ckm.get("per_callback") is not None and flm.get("per_callback") is not None:
                    fextra = f"{ckm['per_callback']:.2f} ns/cb ({fl} {flm['per_callback']:.2f})"
                rows.append([
                    f"{label} [vs {fl}]",
                    fmt_num(ckm["figure"], unit) if ckm else "-",
                    "-",
                    f"{fl} {fmt_num(flm['figure'], unit)}",
                    "-",
                    ratio(ckm, flm),
                    "-" if not ckm or ckm["allocs"] is None else f"{ckm['allocs']:.3g}",
                    "-",
                    fextra,
                ])
        del others
    table = render(["scenario", "cancelkit", "std", "raw / floor", "ck/std", "ck/raw",
                    "ck allocs/op", "std allocs/op", "per callback"], rows)
    if callgrind:
        table += "\n\n" + callgrind_table(callgrind)
    return table


def callgrind_table(cg: dict) -> str:
    ops = cg["ops"]
    pairs: dict[str, dict] = {}
    for name, v in ops.items():
        op, _, impl = name.partition("/")
        pairs.setdefault(op, {})[impl] = v["ir_per_op"]
    rmw: dict[str, dict] = {}
    for name, v in ops.items():
        op, _, impl = name.partition("/")
        if "atomic_rmw_per_op" in v:
            rmw.setdefault(op, {})[impl] = v["atomic_rmw_per_op"]
    rows = []
    fmt = lambda v: f"{v:.1f}" if v is not None else "-"
    fmt_r = lambda v: f"{v:.0f}" if v is not None else "-"
    ratio = lambda a, b: f"{a / b:.2f}x" if a is not None and b else "-"
    for op, p in pairs.items():
        ck, st = p.get("cancelkit"), p.get("std")
        raw = p.get("raw")
        r = rmw.get(op, {})
        rows.append([op, fmt(ck), fmt(st), fmt(raw), ratio(ck, st), ratio(ck, raw),
                     fmt_r(r.get("cancelkit")), fmt_r(r.get("std")), fmt_r(r.get("raw"))])
        # Named floors (raw_detach, raw_heap): a row each, the floor in the raw columns.
        for fl in sorted(i for i in p if is_floor(i) and i != "raw"):
            rows.append([f"{op} [vs {fl}]", fmt(ck), "-", fmt(p[fl]), "-", ratio(ck, p[fl]),
                         fmt_r(r.get("cancelkit")), "-", fmt_r(r.get(fl))])
    note = (f"Instructions per operation (callgrind, N = {cg['n']}, empty loop of "
            f"{cg['empty_loop_ir_per_op']:.1f} Ir/op subtracted; a syscall counts as 1) and "
            f"atomic read-modify-writes per operation (lock-prefixed instructions executed). "
            f"Rows \"[vs raw_X]\" put a named floor of bench/raw_floor.hpp in the raw columns.")
    return note + "\n\n" + render(["operation", "cancelkit Ir/op", "std Ir/op", "raw Ir/op",
                                   "ck/std Ir", "ck/raw Ir", "ck RMW/op", "std RMW/op",
                                   "raw RMW/op"], rows)


def machine_line(files=None) -> str:
    """CPU, kernel, compiler, load and date; with `files` (Google Benchmark JSONs), the load
    averages and the date recorded by those runs rather than now."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load_avg = os.getloadavg()
    except OSError:
        load_avg = (0, 0, 0)
    cxx = run(["g++", "--version"], capture=True, check=False).stdout.splitlines()[:1]
    load_txt = f"{load_avg[0]:.1f}"
    date_txt = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    if files:
        contexts = [load(f).get("context", {}) for f in files]
        loads = [c["load_avg"][0] for c in contexts if c.get("load_avg")]
        dates = sorted(c["date"] for c in contexts if c.get("date"))
        if loads:
            load_txt = f"{min(loads):.1f}-{max(loads):.1f} during the runs"
        if dates:
            date_txt = dates[-1][:16].replace("T", " ")
    return (f"{cpu or platform.processor()} x{os.cpu_count()}, {platform.system()} "
            f"{platform.release()}, {cxx[0] if cxx else 'g++'}, load average "
            f"{load_txt}, {date_txt}")


def compare_py() -> Path:
    p = Path(os.environ.get("BENCH_COMPARE_PY", DEFAULT_COMPARE_PY))
    if not p.exists():
        found = run(["dpkg", "-L", "libbenchmark-tools"], capture=True, check=False).stdout
        for line in found.splitlines():
            if line.endswith("/compare.py"):
                return Path(line)
        raise BenchError("Google Benchmark's compare.py not found (Debian: apt-get install "
                         "libbenchmark-tools python3-scipy), or set BENCH_COMPARE_PY")
    return p


def elapsed(t0: float) -> str:
    return f"{time.monotonic() - t0:.0f} s"
