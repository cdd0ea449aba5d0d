"""Tests of cancelkit's CI outputs (CTest label unit; ci/CMakeLists.txt runs one class per test):
the JSON, JUnit and markdown that scripts and tools write, parsed back and checked against the
schemas of docs/ci.md, the --seed random plumbing, the workflows and the no-silent-skips option.

  python3 ci/test_outputs.py CLASS      (environment: see ci/CMakeLists.txt)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(os.environ.get("CANCELKIT_SOURCE_DIR", Path(__file__).resolve().parents[1]))
FIXTURES = ROOT / "ci" / "fixtures"
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "bench" / "tools"))
sys.path.insert(0, str(ROOT / "ci"))

HEX = re.compile(r"^0x[0-9a-f]+$")


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def need_env(name):
    value = os.environ.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} not set (run through ctest)")
    return value


def need_runner():
    """The stress runner, when this build has it: scripts/test builds every target, but
    scripts/mutate builds only each suite's own targets and then runs `ctest -L unit`, where a
    missing runner must not count as a kill."""
    runner = need_env("CANCELKIT_STRESS_RUNNER")
    if not os.access(runner, os.X_OK):
        raise unittest.SkipTest(f"{runner} is not built in this tree")
    return runner


def check_keys(test, obj, keys, where):
    missing = [k for k in keys if k not in obj]
    test.assertFalse(missing, f"{where}: missing keys {missing} in {sorted(obj)}")


def check_stress_doc(test, doc):
    """The cancelkit-stress/1 schema (docs/ci.md)."""
    check_keys(test, doc, ["schema", "status", "complete", "command", "seed", "seed_given", "shard",
                           "start_round", "threads", "duration_s", "iterations", "perturb",
                           "perturbation_build", "perturbation_points_hit", "scenarios_planned",
                           "scenarios", "totals", "fatal", "replay"], "stress json")
    test.assertEqual(doc["schema"], "cancelkit-stress/1")
    test.assertIn(doc["status"], ("running", "pass", "fail", "hang", "sanitizer_error"))
    test.assertRegex(doc["seed"], HEX)
    check_keys(test, doc["shard"], ["index", "count"], "shard")
    test.assertIsInstance(doc["replay"], list)
    for sc in doc["scenarios"]:
        check_keys(test, sc, ["name", "rules", "threads", "rounds", "ops", "ops_per_s", "violations",
                              "seconds", "result", "failure"], "scenario")
        test.assertIn(sc["result"], ("pass", "fail"))
        test.assertEqual(sc["result"] == "fail", sc["violations"] > 0)
        if sc["failure"] is not None:
            check_keys(test, sc["failure"], ["kind", "round", "round_seed", "where", "expression",
                                             "detail", "replay"], "failure")
            test.assertIn(sc["failure"]["replay"], doc["replay"])
    t = doc["totals"]
    test.assertEqual(t["scenarios"], len(doc["scenarios"]))
    test.assertEqual(t["rounds"], sum(s["rounds"] for s in doc["scenarios"]))
    test.assertEqual(t["violations"], sum(s["violations"] for s in doc["scenarios"]))
    if doc["fatal"] is not None:
        check_keys(test, doc["fatal"], ["kind", "scenario", "detail"], "fatal")
        if "replay" in doc["fatal"]:
            test.assertEqual(doc["replay"][0], doc["fatal"]["replay"])


class StressJson(unittest.TestCase):
    """cancelkit-stress --json FILE: a short run of two scenarios, parsed back."""

    def test_json_of_a_passing_run(self):
        runner = need_runner()
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "stress.json"
            p = run([runner, "--scenario", "concurrent_cancel,register_vs_cancel", "--iterations",
                     "20", "--threads", "2", "--seed", "0x5eed", "--shard", "1/3", "--json", str(out)])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            doc = json.loads(out.read_text())
        check_stress_doc(self, doc)
        self.assertEqual(doc["status"], "pass")
        self.assertTrue(doc["complete"])
        self.assertEqual(doc["seed"], "0x5eed")
        self.assertTrue(doc["seed_given"])
        self.assertEqual(doc["shard"], {"index": 1, "count": 3})
        self.assertEqual([s["name"] for s in doc["scenarios"]],
                         ["concurrent_cancel", "register_vs_cancel"])
        for sc in doc["scenarios"]:
            self.assertEqual(sc["rounds"], 20)
            self.assertEqual(sc["violations"], 0)
            self.assertIsNone(sc["failure"])
        self.assertEqual(doc["replay"], [])
        self.assertIsNone(doc["fatal"])

    def test_random_seed_is_recorded(self):
        runner = need_runner()
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "stress.json"
            p = run([runner, "--scenario", "concurrent_cancel", "--iterations", "5", "--json",
                     str(out)])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            doc = json.loads(out.read_text())
        check_stress_doc(self, doc)
        self.assertFalse(doc["seed_given"])
        self.assertIn(f"seed {doc['seed']},", p.stdout)  # the same seed the header line printed

    def test_recorded_hang_fixture_names_its_replay(self):
        doc = json.loads((FIXTURES / "verify" / "stress_tsan.json").read_text())
        check_stress_doc(self, doc)
        self.assertEqual(doc["status"], "hang")
        self.assertFalse(doc["complete"])
        self.assertRegex(doc["replay"][0], r"^cancelkit-stress --scenario signals_vs_waits --seed "
                                            r"0x[0-9a-f]+ --start-round \d+ --iterations 1")

    def test_scripts_stress_prints_a_random_seed_first_and_stores_it(self):
        runner = need_runner()
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "stress.json"
            p = run([str(ROOT / "scripts" / "stress"), "--runner", runner, "--seed", "random",
                     "--minutes", "0.01", "--threads", "2", "--json", str(out), "concurrent_cancel"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            first = p.stdout.splitlines()[0]
            m = re.match(r"^scripts/stress: seed (0x[0-9a-f]{16}) \(random; replay with --seed \1\)$",
                         first)
            self.assertIsNotNone(m, first)
            doc = json.loads(out.read_text())
        check_stress_doc(self, doc)
        self.assertEqual(int(doc["seed"], 16), int(m.group(1), 16))


class Junit(unittest.TestCase):
    """scripts/test writes build/<preset>/junit.xml with ctest --output-junit; what ctest
    writes there is parsed back from a tiny ctest run (a passing and a failing test)."""

    def test_scripts_test_passes_output_junit_per_preset(self):
        text = (ROOT / "scripts" / "test").read_text()
        self.assertIn('junit=$PWD/build/$preset/junit.xml', text)
        self.assertRegex(text, r'ctest --preset "\$preset"[^\n]*\\\n\s*--output-junit "\$junit"')

    def test_ctest_junit_file_parses(self):
        ctest = need_env("CANCELKIT_CTEST")
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "CTestTestfile.cmake").write_text(
                'add_test(ci.junit_pass "/bin/sh" "-c" "echo fine")\n'
                'set_tests_properties(ci.junit_pass PROPERTIES LABELS "unit")\n'
                'add_test(ci.junit_fail "/bin/sh" "-c" "echo broken; exit 3")\n'
                'set_tests_properties(ci.junit_fail PROPERTIES LABELS "unit")\n')
            junit = Path(d) / "junit.xml"
            p = run([ctest, "--test-dir", d, "--output-junit", str(junit)], cwd=d)
            self.assertNotEqual(p.returncode, 0)  # one test fails
            root = ET.parse(junit).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        self.assertEqual(suite.get("tests"), "2")
        self.assertEqual(suite.get("failures"), "1")
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        self.assertEqual(set(cases), {"ci.junit_pass", "ci.junit_fail"})
        self.assertEqual(cases["ci.junit_fail"].get("status"), "fail")
        self.assertIn("broken", "".join(cases["ci.junit_fail"].itertext()))


def load_verify_fixture():
    import verify_report as vr
    fx = json.loads((FIXTURES / "verify" / "stages.json").read_text())
    records = b"".join(f.encode() + b"\0" for st in fx["stages"] for f in st)
    return vr, fx, records


class VerifyReport(unittest.TestCase):
    """scripts/lib/verify_report.py on a recorded --quick run with two failed stages."""

    def setUp(self):
        self.vr, self.fx, self.records = load_verify_fixture()
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name) / "verify-report"
        self.dir.mkdir()
        shutil.copy(FIXTURES / "verify" / "stress_tsan.json", self.dir / "stress_tsan.json")
        (self.dir / "stress_tsan.log").write_text("log\n")
        (self.dir / ".stages").write_bytes(self.records)
        self.summary = Path(self.tmp.name) / "step-summary.md"
        argv = ["--stages", str(self.dir / ".stages"), "--report-dir", str(self.dir),
                "--summary-md", str(self.summary)]
        for k, v in self.fx["meta"].items():
            argv += ["--meta", f"{k}={v}"]
        self.assertEqual(self.vr.main(argv), 0)
        self.report = json.loads((self.dir / "report.json").read_text())
        self.md = self.summary.read_text()

    def tearDown(self):
        self.tmp.cleanup()

    def test_report_json_schema(self):
        r = self.report
        check_keys(self, r, ["schema", "result", "mode", "seed", "seed_source", "replay", "preset",
                             "commit", "date", "total_seconds", "counts", "failed", "reproduce",
                             "seeds", "stages"], "report.json")
        self.assertEqual(r["schema"], "cancelkit-verify/1")
        self.assertEqual(r["result"], "fail")
        self.assertEqual(r["seed"], 20240601)
        self.assertEqual(r["replay"], "scripts/verify --quick --seed 20240601")
        self.assertEqual(r["failed"], ["linearizability", "stress_tsan"])
        self.assertEqual(len(r["stages"]), len(self.fx["stages"]))
        self.assertEqual(r["counts"], {"pass": 11, "fail": 2, "skipped": 1, "interrupted": 0,
                                       "not_run": 0})
        for st in r["stages"]:
            check_keys(self, st, ["name", "result", "seconds", "key_figures", "command", "log",
                                  "seed", "reproduce", "details"], st["name"])
        self.assertEqual(r["seeds"]["stress_tsan"], 20240601)

    def test_failed_stages_carry_their_reproduce_commands(self):
        rep = [(x["stage"], x["what"], x["command"]) for x in self.report["reproduce"]]
        self.assertIn(("linearizability", "shrunk counterexample",
                       'RC_PARAMS="reproduce=BchVaxlQ" CKTEST_LIN_RUNS=50 '
                       'build/release/property_tests/cancelkit_property_linearizability'), rep)
        stress = [c for s, w, c in rep if s == "stress_tsan" and w == "replay the failing round"]
        self.assertEqual(len(stress), 1)
        self.assertIn("--scenario signals_vs_waits --seed 0x134d8d9 --start-round 12", stress[0])
        st = {s["name"]: s for s in self.report["stages"]}
        self.assertEqual(st["stress_tsan"]["details"]["status"], "hang")  # the runner's JSON
        self.assertEqual(st["stress_tsan"]["log"], "stress_tsan.log")
        self.assertEqual(st["unit"]["reproduce"], [])

    def test_summary_headline_then_failures_then_table(self):
        md = self.md
        self.assertEqual(md, (self.dir / "summary.md").read_text())
        lines = md.splitlines()
        self.assertTrue(lines[0].startswith("### cancelkit verify FAILED: 11/13 stages passed, 2 failed"),
                        lines[0])
        self.assertIn("seed 20240601", lines[0])
        failures = md.index("**Failed stages")
        table = md.index("| stage | result | seconds | key figures |")
        self.assertLess(failures, table)
        self.assertIn("`RC_PARAMS=\"reproduce=BchVaxlQ\" CKTEST_LIN_RUNS=50", md[failures:table])
        self.assertIn("--start-round 12", md[failures:table])
        rows = [l for l in lines[lines.index("| stage | result | seconds | key figures |") + 2:]
                if l.startswith("| ")]
        self.assertEqual([r.split(" | ")[0][2:] for r in rows], [s[0] for s in self.fx["stages"]])
        self.assertIn("register 1.1x std \\| check 0.9x std", md)  # pipes escaped in cells
        for r in rows:
            self.assertEqual(r.count(" | "), 3, r)

    def test_a_passing_run_has_no_failure_section(self):
        stages = [s[:] for s in self.fx["stages"]]
        for s in stages:
            if s[1] == "FAIL":
                s[1], s[6] = "pass", ""
        report = self.vr.build_report(self.fx["meta"], [dict(zip(self.vr.FIELDS, s)) for s in stages])
        md = self.vr.summary_markdown(report)
        self.assertEqual(report["result"], "pass")
        self.assertEqual(report["reproduce"], [])
        self.assertTrue(md.startswith("### cancelkit verify passed: 13/13 stages passed"), md[:80])
        self.assertNotIn("Failed stages", md)


class BenchCompareOutput(unittest.TestCase):
    """bench/tools/compare_output.py on recorded compare.py output (ci/fixtures/bench_compare)."""

    @classmethod
    def setUpClass(cls):
        import benchlib as bl
        import compare_output as co
        cls.bl, cls.co = bl, co
        F = FIXTURES / "bench_compare"
        diff = json.loads((F / "diff.json").read_text())
        cga = json.loads((F / "callgrind_base.json").read_text())
        cgb = json.loads((F / "callgrind_head.json").read_text())
        cls.result = co.evaluate(diff, bl.medians([F / "base.json"]), bl.medians([F / "head.json"]),
                                 cga, cgb, threshold=5.0, ir_threshold=2.0, alpha=0.05)
        cls.doc = co.to_json(
            cls.result, base={"rev": "1111111", "sha": "1" * 40, "short": "1111111"},
            head={"rev": "2222222", "sha": "2" * 40, "short": "2222222"},
            settings={"reps": 10, "reps_head": 10, "min_time_s": 0.05, "threshold_pct": 5.0,
                      "ir_threshold_pct": 2.0, "alpha": 0.05, "holm": True, "filter": "",
                      "callgrind": True},
            command="scripts/bench-compare 1111111 2222222 --json x.json")
        cls.md = co.summary_markdown(json.loads(json.dumps(cls.doc)), bl.fmt_num)

    def test_verdicts(self):
        v = {b["name"]: b["verdict"] for b in self.result["benchmarks"]}
        self.assertEqual(v["check/is_cancelled/cancelkit"], "regression")
        self.assertEqual(v["register/one/cancelkit"], "faster")
        self.assertEqual(v["register/one/std"], "")
        c = {x["op"]: x["verdict"] for x in self.result["callgrind"]}
        self.assertEqual(c, {"register": "regression", "cancel": "", "check": "fewer"})
        self.assertEqual(self.result["regressions"],
                         ["check/is_cancelled/cancelkit", "callgrind:register"])

    def test_holm_adjusts_upwards(self):
        for b in self.result["benchmarks"]:
            self.assertGreaterEqual(b["p_adjusted"], b["p"])
        self.assertEqual(self.co.holm({"a": 0.01, "b": 0.04, "c": None}), {"a": 0.02, "b": 0.04, "c": None})

    def test_json_schema(self):
        d = json.loads(json.dumps(self.doc))
        check_keys(self, d, ["schema", "result", "exit_status", "command", "base", "head",
                             "settings", "regressions", "geomean", "benchmarks", "callgrind"], "json")
        self.assertEqual(d["schema"], "cancelkit-bench-compare/1")
        self.assertEqual(d["result"], "regression")
        self.assertEqual(d["exit_status"], 1)
        for b in d["benchmarks"]:
            check_keys(self, b, ["name", "metric", "base", "head", "change_pct", "p", "p_adjusted",
                                 "verdict"], b["name"])
            check_keys(self, b["base"], ["median", "figure", "figure_unit", "runs"], "side")
            self.assertAlmostEqual(b["change_pct"],
                                   (b["head"]["median"] / b["base"]["median"] - 1) * 100, places=2)
        for c in d["callgrind"]:
            check_keys(self, c, ["op", "base_ir_per_op", "head_ir_per_op", "change_pct", "verdict"], "cg")

    def test_summary_headline_then_regressions_then_tables(self):
        lines = self.md.splitlines()
        self.assertEqual(lines[0],
                         "### cancelkit bench-compare: **2 regression(s)** (A 1111111 -> B 2222222)")
        regs = self.md.index("**Regressions:**")
        sig = self.md.index("**Significant changes (U-test):**")
        self.assertLess(regs, sig)
        self.assertLess(sig, self.md.index("<details>"))
        self.assertIn("- `check/is_cancelled/cancelkit`: +19.9% (cpu_time)", self.md)
        self.assertIn("- `callgrind:register`: +4.5% instructions per operation", self.md)
        self.assertIn("--filter '^(check/is_cancelled/cancelkit)$'", self.md)

    def test_text_table_rows_unchanged_in_form(self):
        rows = self.co.table_rows(self.result, self.bl.fmt_num)
        first = rows[0]
        self.assertEqual(first[0], "check/is_cancelled/cancelkit")
        self.assertEqual(first[1], "cpu")
        self.assertEqual(first[4], "+19.9%")
        self.assertEqual(first[7], "REGRESSION")
        self.assertEqual(rows[-3][:2], ["callgrind:register", "Ir/op"])

    def test_no_regression_document(self):
        clean = dict(self.result, regressions=[])
        d = self.co.to_json(clean, base={"rev": "a"}, head={"rev": "b"}, settings={}, command="x")
        self.assertEqual((d["result"], d["exit_status"]), ("pass", 0))
        self.assertTrue(self.co.summary_markdown(d).startswith(
            "### cancelkit bench-compare: no regression (A a -> B b)"))


class BenchCompareEndToEnd(unittest.TestCase):
    """bench_compare.main() with the builds and runs stood in by the fixture's runs (the real
    compare.py does the U-test): the table, exit 1, --json and --summary-md."""

    def test_main_writes_json_and_summary(self):
        import benchlib as bl
        import bench_compare as bc
        try:
            bl.compare_py()
            run(["/usr/bin/python3", "-c", "import scipy"], check=True)
        except Exception as e:  # noqa: BLE001 - any reason the tool is not there
            raise unittest.SkipTest(f"compare.py or scipy missing (libbenchmark-tools "
                                    f"python3-scipy): {e}")
        F = FIXTURES / "bench_compare"
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)

        class Rev:
            def __init__(self, spec):
                self.spec, self.sha, self.short = spec, spec * 5, spec[:7]

            def has_path(self, _):
                return True

            def __str__(self):
                return self.spec

        class Yard:
            def __init__(self, origin):
                self.origin = f"yardstick {origin}"

        class Subj:
            def __init__(self, rev, yard, cxx):
                self.rev, self.key, self.result_dir = rev, rev.spec, tmp / rev.spec
                self.side = "base" if rev.spec == "aaaaaaa" else "head"

            def label(self):
                return self.rev.spec

            def build(self, jobs):
                pass

            def sessions(self):
                return []

            def run_once(self, out, min_time, flt):
                doc = json.loads((F / f"{self.side}.json").read_text())
                rows = [b for b in doc["benchmarks"] if b["repetition_index"] == int(out.stem)]
                out.write_text(json.dumps({"context": doc["context"], "benchmarks": rows}))

            def callgrind(self, jobs):
                return json.loads((F / f"callgrind_{self.side}.json").read_text())

        saved = (bl.Revision, bl.Yardstick, bl.Subject, bl.RESULTS, bl.REPO)
        self.addCleanup(lambda: setattr(bl, "Revision", saved[0]) or setattr(bl, "Yardstick", saved[1])
                        or setattr(bl, "Subject", saved[2]) or setattr(bl, "RESULTS", saved[3])
                        or setattr(bl, "REPO", saved[4]))
        bl.Revision, bl.Yardstick, bl.Subject = Rev, Yard, Subj
        bl.RESULTS, bl.REPO = tmp / "results", tmp
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            rc = bc.main(["aaaaaaa", "bbbbbbb", "--reps", "10", "--json", str(tmp / "c.json"),
                          "--summary-md", str(tmp / "s.md")])
        self.assertEqual(rc, 1, buf.getvalue())
        self.assertIn("bench-compare: 2 regression(s): check/is_cancelled/cancelkit, "
                      "callgrind:register", buf.getvalue())
        doc = json.loads((tmp / "c.json").read_text())
        self.assertEqual(doc["schema"], "cancelkit-bench-compare/1")
        self.assertEqual(doc["regressions"], ["check/is_cancelled/cancelkit", "callgrind:register"])
        self.assertEqual(doc["settings"]["reps"], 10)
        self.assertTrue((tmp / "s.md").read_text().startswith(
            "### cancelkit bench-compare: **2 regression(s)** (A aaaaaaa -> B bbbbbbb)"))


FAKE_PASS = """#!/bin/sh
echo "Using configuration: $RC_PARAMS"
echo "OK, passed 5 tests"
"""
FAKE_FAIL = """#!/bin/sh
echo "Using configuration: $RC_PARAMS"
echo "Falsifiable after 3 tests"
echo 'Some of your RapidCheck properties had failures. To reproduce these, run with:'
echo 'RC_PARAMS="reproduce=XYZ123"'
exit 1
"""


class PropertyJson(unittest.TestCase):
    """scripts/property --seed random --json FILE, against stand-in binaries (--bin DIR)."""

    def campaign(self, sequential, linearizability, *args, env=None):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        for name, text in (("cancelkit_property_sequential", sequential),
                           ("cancelkit_property_linearizability", linearizability)):
            (Path(d) / name).write_text(text)
            (Path(d) / name).chmod(0o755)
        out = Path(d) / "property.json"
        p = run([str(ROOT / "scripts" / "property"), "--bin", d, "--cases", "40", "--runs", "2",
                 "--json", str(out), *args], env=dict(os.environ, **(env or {})))
        return p, json.loads(out.read_text()) if out.exists() else None, d

    def test_random_seed_printed_first_and_stored(self):
        p, doc, _ = self.campaign(FAKE_PASS, FAKE_PASS, "--seed", "random")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = re.match(r"^scripts/property: seed (\d+) \(random; rerun with --seed \1\)$",
                     p.stdout.splitlines()[0])
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(doc["schema"], "cancelkit-property/1")
        self.assertEqual(doc["result"], "pass")
        self.assertEqual(doc["seed"], int(m.group(1)))
        self.assertEqual(doc["seed_source"], "random")
        self.assertEqual([(r["suite"], r["seed"], r["cases"]) for r in doc["runs"]],
                         [("sequential", doc["seed"], 40), ("linearizability", doc["seed"], 2)])
        self.assertIsNone(doc["failure"])

    def test_cancelkit_seed_environment(self):
        p, doc, _ = self.campaign(FAKE_PASS, FAKE_PASS, env={"CANCELKIT_SEED": "77"})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((doc["seed"], doc["seed_source"]), (77, "env"))

    def test_failure_records_the_replay(self):
        p, doc, d = self.campaign(FAKE_PASS, FAKE_FAIL, "--seed", "1234")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(doc["result"], "fail")
        f = doc["failure"]
        self.assertEqual((f["suite"], f["seed"], f["round"]), ("linearizability", 1234, 1))
        self.assertEqual(f["replay"], f'RC_PARAMS="reproduce=XYZ123" CKTEST_LIN_RUNS=2 '
                                      f'{d}/cancelkit_property_linearizability')
        self.assertIn('RC_PARAMS="seed=1234 max_success=2"', f["rerun"])


class Seed(unittest.TestCase):
    """scripts/lib/seed.sh: fixed default, given, CANCELKIT_SEED, random, malformed."""

    def resolve(self, spec, default, fmt, env_seed=None):
        env = {k: v for k, v in os.environ.items() if k != "CANCELKIT_SEED"}
        if env_seed is not None:
            env["CANCELKIT_SEED"] = env_seed
        p = run(["bash", "-c", 'source scripts/lib/seed.sh && cancelkit_resolve_seed "$@" && '
                 'echo "$CANCELKIT_SEED_VALUE $CANCELKIT_SEED_SOURCE"', "x", spec, default, fmt],
                cwd=ROOT, env=env)
        return p.returncode, p.stdout.split()

    def test_fixed_default_for_gating_runs(self):
        self.assertEqual(self.resolve("", "20240601", "dec"), (0, ["20240601", "default"]))

    def test_given_and_environment(self):
        self.assertEqual(self.resolve("42", "20240601", "dec"), (0, ["42", "given"]))
        self.assertEqual(self.resolve("", "20240601", "dec", "99"), (0, ["99", "env"]))
        self.assertEqual(self.resolve("42", "20240601", "dec", "99"), (0, ["42", "given"]))
        self.assertEqual(self.resolve("0x5eed", "random", "hex64"), (0, ["0x5eed", "given"]))

    def test_random(self):
        rc, (value, source) = self.resolve("random", "20240601", "dec")
        self.assertEqual((rc, source), (0, "random"))
        self.assertRegex(value, r"^\d+$")
        rc, (value, source) = self.resolve("", "20240601", "dec", "random")
        self.assertEqual((rc, source), (0, "random"))
        rc, (value, _) = self.resolve("random", "random", "hex64")
        self.assertRegex(value, r"^0x[0-9a-f]{16}$")

    def test_malformed_is_an_error(self):
        self.assertEqual(self.resolve("12ab", "1", "dec")[0], 2)
        self.assertEqual(self.resolve("0xzz", "1", "hex64")[0], 2)

    def test_scripts_verify_takes_random(self):
        text = (ROOT / "scripts" / "verify").read_text()
        self.assertIn('cancelkit_resolve_seed "$seed" 20240601 dec', text)
        p = run([str(ROOT / "scripts" / "verify"), "--seed", "bogus"], cwd=ROOT)
        self.assertEqual(p.returncode, 2)


class Workflows(unittest.TestCase):
    """ci/check_workflows.py on the real workflows, and that it can fail."""

    def test_real_workflows_pass(self):
        import check_workflows as cw
        c = cw.Checker(ROOT)
        for f in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
            c.check_workflow(f)
        self.assertEqual(c.errors, [])

    def test_unknown_option_and_missing_script_are_caught(self):
        import check_workflows as cw
        c = cw.Checker(ROOT)
        c.check_run("w", 'FOO=1 scripts/stress --sanitizer tsan --no-such-option 3 && scripts/nope')
        c.check_run("w", 'source scripts/lib/seed.sh; echo "scripts/verify --bogus is text"')
        self.assertEqual(len(c.errors), 2, c.errors)
        self.assertIn("option --no-such-option", c.errors[0])
        self.assertIn("scripts/nope does not exist", c.errors[1])

    def test_shard_matrix_must_cover_every_shard(self):
        import check_workflows as cw
        c = cw.Checker(ROOT)
        c.check_shards("j", {"strategy": {"matrix": {"shard": [0, 1, 2]}},
                             "steps": [{"run": 'scripts/stress --shard "$SHARD/4"'}]})
        self.assertEqual(len(c.errors), 1)


class RequireTestDeps(unittest.TestCase):
    """CANCELKIT_REQUIRE_TEST_DEPS: ON in every preset; a missing suite dependency is then a
    configure error naming the Debian package."""

    def test_on_in_every_configure_preset(self):
        presets = json.loads((ROOT / "CMakePresets.json").read_text())["configurePresets"]
        by_name = {p["name"]: p for p in presets}

        def value(p):
            while p is not None:
                v = p.get("cacheVariables", {}).get("CANCELKIT_REQUIRE_TEST_DEPS")
                if v is not None:
                    return v
                p = by_name.get(p.get("inherits")) if isinstance(p.get("inherits"), str) else None
            return None
        for p in presets:
            if not p.get("hidden"):
                self.assertEqual(value(p), "ON", p["name"])

    def test_missing_rapidcheck_is_a_configure_error(self):
        cmake = need_env("CANCELKIT_CMAKE")
        with tempfile.TemporaryDirectory() as d:
            p = run([cmake, "-S", str(ROOT), "-B", d, "-DCANCELKIT_REQUIRE_TEST_DEPS=ON",
                     "-DCMAKE_DISABLE_FIND_PACKAGE_rapidcheck=ON", "-DCANCELKIT_BUILD_BENCH=OFF",
                     "-DCANCELKIT_BUILD_EXAMPLES=OFF",
                     f"-DCMAKE_CXX_COMPILER={os.environ.get('CANCELKIT_CXX', 'c++')}"],
                    timeout=300)
        self.assertNotEqual(p.returncode, 0, p.stdout[-2000:])
        err = re.sub(r"\s+", " ", p.stderr)
        self.assertIn("the property_tests suite needs RapidCheck", err)
        self.assertIn("apt-get install librapidcheck-dev", err)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1], sys.modules[__name__])
        ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
        sys.exit(0 if ok else 1)
    unittest.main()
