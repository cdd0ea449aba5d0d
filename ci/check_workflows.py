"""Checks .github/workflows/*.yml (CTest: ci.workflows, label unit).

Every workflow must parse (python3-yaml), have a name, triggers and jobs whose steps each either
`uses:` a known action or `run:` a shell command. In every `run:`, each reference to a file under
scripts/ must exist, a script it runs must be executable, and each --option given to it must be
one that the script's --help lists (so a renamed or dropped option breaks this test, not a CI run
weeks later). The four workflows the README documents must exist with their triggers, and the
stress matrix must cover every shard of its --shard i/N.

  python3 ci/check_workflows.py [REPO_ROOT]
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

KNOWN_ACTIONS = {"actions/checkout@v4", "actions/upload-artifact@v4"}
EXPECTED = {  # workflow file -> the triggers it must have and the script commands it must run
    "ci.yml": ({"push", "pull_request"}, ["scripts/test", "scripts/verify --quick --summary-md"]),
    "stress.yml": ({"schedule", "workflow_dispatch"},
                   ["scripts/stress --sanitizer --minutes --seed --shard --json"]),
    "bench.yml": ({"pull_request"}, ["scripts/bench-compare --json --summary-md"]),
    "nightly.yml": ({"schedule"}, ["scripts/verify --thorough --seed --summary-md"]),
}
SCRIPT_TOKEN = re.compile(r"^(?:\./)?(scripts/[A-Za-z0-9_.\-/]+)$")
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<", "<<", "2>", "|&"}
PREFIX_COMMANDS = {"exec", "env", "time", "nice", "command", "bash", "sh"}


class Checker:
    def __init__(self, root: Path):
        self.root = root
        self.errors: list[str] = []
        self.help_cache: dict[str, set] = {}
        self.invocations: dict[str, list[tuple[str, list[str]]]] = {}

    def error(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    # ---- the options a script accepts: what its --help prints --------------------------------
    def options_of(self, script: str) -> set:
        if script not in self.help_cache:
            env = dict(os.environ, CI="true")
            try:
                out = subprocess.run([str(self.root / script), "--help"], cwd=self.root, env=env,
                                     capture_output=True, text=True, timeout=60)
                text = out.stdout + out.stderr
                ok = out.returncode == 0
            except (OSError, subprocess.TimeoutExpired) as e:
                text, ok = str(e), False
            opts = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) if ok else set()
            if not ok:
                self.error(script, f"`{script} --help` failed: {text.strip()[-300:]}")
            self.help_cache[script] = opts
        return self.help_cache[script]

    # ---- one run: block ------------------------------------------------------------------------
    def check_run(self, where: str, text: str) -> None:
        text = re.sub(r"\$\{\{.*?\}\}", "GHA_EXPR", text, flags=re.S)  # ${{ ... }} expressions
        text = text.replace("\\\n", " ")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
            lex.whitespace_split = True
            try:
                tokens = list(lex)
            except ValueError as e:
                self.error(where, f"line {lineno}: cannot parse {line.strip()!r}: {e}")
                continue
            self.check_tokens(f"{where} line {lineno}", tokens)

    def check_tokens(self, where: str, tokens: list[str]) -> None:
        command_position = True
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in OPERATORS:
                command_position = True
                i += 1
                continue
            m = SCRIPT_TOKEN.match(tok)
            if m:
                self.check_script(where, m.group(1), tokens, i, command_position)
            if command_position and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tok):
                i += 1  # VAR=value before a command
                continue
            if command_position and tok in PREFIX_COMMANDS | {"source", "."}:
                i += 1
                continue
            command_position = False
            i += 1

    def check_script(self, where: str, script: str, tokens: list[str], i: int,
                     runs_it: bool) -> None:
        path = self.root / script
        if not path.is_file():
            self.error(where, f"{script} does not exist")
            return
        if not runs_it or script.startswith("scripts/lib/"):
            return  # sourced or passed as data: existence is enough
        if not os.access(path, os.X_OK):
            self.error(where, f"{script} is not executable")
            return
        known = self.options_of(script)
        given = []
        for tok in tokens[i + 1:]:
            if tok in OPERATORS:
                break
            if tok.startswith("--"):
                opt = tok.split("=", 1)[0]
                given.append(opt)
                if opt not in known:
                    self.error(where, f"{script}: option {opt} is not in `{script} --help`")
        self.invocations.setdefault(where.split(" ")[0], []).append((script, given))

    # ---- a workflow ----------------------------------------------------------------------------
    def check_workflow(self, path: Path) -> None:
        where = path.name
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            self.error(where, f"not valid YAML: {e}")
            return
        if not isinstance(doc, dict):
            self.error(where, "not a mapping")
            return
        # YAML 1.1 reads a bare `on` key as the boolean true.
        triggers = doc.get("on", doc.get(True))
        if not doc.get("name"):
            self.error(where, "no name")
        if not triggers:
            self.error(where, "no `on:` triggers")
        trigger_names = set(triggers if isinstance(triggers, (dict, list)) else [triggers])
        jobs = doc.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            self.error(where, "no jobs")
            return
        for job_id, job in jobs.items():
            jw = f"{where} job {job_id}"
            if not isinstance(job, dict):
                self.error(jw, "not a mapping")
                continue
            if "runs-on" not in job:
                self.error(jw, "no runs-on")
            container = job.get("container")
            if container is not None and container not in ("debian:12",) and not (
                    isinstance(container, dict) and container.get("image") == "debian:12"):
                self.error(jw, f"container {container!r}: expected debian:12")
            if job.get("runs-on") not in ("ubuntu-latest",):
                self.error(jw, f"runs-on {job.get('runs-on')!r}: expected ubuntu-latest")
            steps = job.get("steps")
            if not isinstance(steps, list) or not steps:
                self.error(jw, "no steps")
                continue
            for n, step in enumerate(steps, 1):
                sw = f"{where}:{job_id}:step{n}"
                if not isinstance(step, dict) or ("uses" in step) == ("run" in step):
                    self.error(sw, "a step needs exactly one of uses: and run:")
                    continue
                if "uses" in step and step["uses"] not in KNOWN_ACTIONS:
                    self.error(sw, f"unknown action {step['uses']} (known: {sorted(KNOWN_ACTIONS)})")
                if "run" in step:
                    self.check_run(sw, str(step["run"]))
            self.check_shards(jw, job)
        self.check_expected(where, trigger_names)

    def check_shards(self, where: str, job: dict) -> None:
        """A job running `--shard "$SHARD/N"` (or i/N) must have matrix shards 0..N-1."""
        text = yaml.safe_dump(job.get("steps", []))
        m = re.search(r"--shard\s+\"?[^\s\"/]*/(\d+)", text)
        if not m:
            return
        n = int(m.group(1))
        shards = ((job.get("strategy") or {}).get("matrix") or {}).get("shard")
        if sorted(shards or []) != list(range(n)):
            self.error(where, f"--shard i/{n} but the matrix shards are {shards}")

    def check_expected(self, where: str, triggers: set) -> None:
        if where not in EXPECTED:
            return
        want_triggers, want_commands = EXPECTED[where]
        if not want_triggers <= triggers:
            self.error(where, f"triggers {sorted(triggers)}; expected at least {sorted(want_triggers)}")
        runs = [(s, g) for k, v in self.invocations.items() if k.startswith(where + ":")
                for s, g in v]
        for want in want_commands:
            script, *opts = want.split()
            if not any(s == script and set(opts) <= set(g) for s, g in runs):
                self.error(where, f"no step runs `{want}` (found: {runs})")


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
    wf = root / ".github" / "workflows"
    files = sorted(wf.glob("*.yml")) + sorted(wf.glob("*.yaml"))
    c = Checker(root)
    if not files:
        c.error(str(wf), "no workflows")
    for name in EXPECTED:
        if not (wf / name).exists():
            c.error(name, "missing")
    for f in files:
        c.check_workflow(f)
    for e in c.errors:
        print("FAIL", e)
    if c.errors:
        print(f"check_workflows: {len(c.errors)} problem(s) in {len(files)} workflow(s)")
        return 1
    scripts = sorted({s for v in c.invocations.values() for s, _ in v})
    print(f"check_workflows: {len(files)} workflows OK; scripts run: {', '.join(scripts)}; "
          f"options checked against --help of: {', '.join(sorted(c.help_cache))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
