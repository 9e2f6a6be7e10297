"""The upgrade gate: `doctor --preflight`, `--connectivity`, `--save-baseline`/`--baseline`, in any
combination, one verdict. Inputs are realistic samples written from Cilium's source
(tests/fixtures/gate/); the baseline tests run against the simulator over HTTP on 127.0.0.1."""

import io
import json
import sys
from pathlib import Path

import pytest

from cilium_day2 import cli
from cilium_day2.catalog import load_catalog
from cilium_day2.catalog.model import REGRESSION_DEFAULTS, parse_regression
from cilium_day2.doctor import baseline
from cilium_day2.doctor.command import Endpoint, diagnose
from cilium_day2.doctor.preflight import judge as judge_preflight, parse_line
from cilium_day2.errors import CatalogError
from cilium_day2.simulator.model import Clock
from cilium_day2.simulator.scenarios import load_scenarios
from cilium_day2.simulator.server import Simulation

GATE = Path(__file__).parent / "fixtures" / "gate"
SCENARIOS = load_scenarios(str(GATE / "degraded_scenarios.yaml"))
SPEED = 600.0


def doctor(capsys, *argv):
    code = cli.main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- preflight ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["preflight_clean_logrus.log", "preflight_clean_slog.log"])
def test_clean_preflight_passes(capsys, fixture):
    code, out, _ = doctor(capsys, "--preflight", str(GATE / fixture))
    assert code == 0
    assert "All CCNPs and CNPs valid!" in out and "PASS" in out


def test_warning_with_all_valid_is_an_action_item(capsys):
    code, out, _ = doctor(capsys, "--preflight", str(GATE / "preflight_warning_slog.log"))
    assert code == 1
    assert "ACTION" in out and "CiliumCIDRGroup is deprecated" in out


@pytest.mark.parametrize("fixture, policy, reason", [
    ("preflight_invalid_json.log", "shop/allow-frontend", "unknown fields found"),
    ("preflight_invalid_logrus.log", "kube-system/init-dns", "incorrectly matches reserved:init label"),
])
def test_invalid_policy_blocks_and_is_named_with_its_reason(capsys, fixture, policy, reason):
    code, out, _ = doctor(capsys, "--preflight", str(GATE / fixture), "--format", "json")
    assert code == 2
    doc = json.loads(out)
    blocking = [f for f in doc["findings"] if f["level"] == "BLOCK"]
    assert [f["subject"] for f in blocking] == [f"CiliumNetworkPolicy {policy}"]
    assert reason in blocking[0]["message"] and blocking[0]["source"] == "preflight"


def test_a_warning_about_an_invalid_policy_is_folded_into_it():
    result = judge_preflight((GATE / "preflight_invalid_json.log").read_text())
    assert [f.level for f in result.findings] == ["BLOCK"]
    assert "extra unknown fields" in result.findings[0].message


@pytest.mark.parametrize("fixture, words", [
    ("preflight_cut_off.log", "summary"),
    ("preflight_no_apiserver.log", "Unable to connect to Kubernetes apiserver"),
    ("preflight_not_a_log.txt", "not a validate-cnp log"),
])
def test_unfinished_or_unrecognised_preflight_could_not_be_evaluated(capsys, fixture, words):
    code, out, err = doctor(capsys, "--preflight", str(GATE / fixture))
    assert code == 3
    assert words in out and "could not evaluate" in err


def test_empty_preflight_is_never_ok(capsys, tmp_path):
    empty = tmp_path / "preflight.log"
    empty.write_text("")
    code, out, _ = doctor(capsys, "--preflight", str(empty))
    assert code == 3 and "empty" in out


def test_preflight_from_stdin(capsys, monkeypatch):
    data = (GATE / "preflight_invalid_logrus.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = doctor(capsys, "--preflight", "-")
    assert code == 2 and "kube-system/init-dns" in out


def test_missing_preflight_file_is_a_one_line_error(capsys, tmp_path):
    code, out, err = doctor(capsys, "--preflight", str(tmp_path / "nope.log"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no such file" in err


def test_log_encodings_read_the_same_record():
    lines = [
        'level=error msg="Unexpected validation error" CiliumNetworkPolicy=a/b error="x y" subsys=cilium-dbg',
        'time=2025-01-01T00:00:00Z level=ERROR msg="Unexpected validation error" type=CiliumNetworkPolicy name=a/b error="x y"',
        '{"level":"ERROR","msg":"Unexpected validation error","type":"CiliumNetworkPolicy","name":"a/b","error":"x y"}',
        '2025-01-01T00:00:00.000000001Z level=error msg="Unexpected validation error" CiliumNetworkPolicy=a/b error="x y"',
    ]
    results = []
    for line in lines:
        entry = parse_line(line)
        results.append((entry.level, entry.msg, entry.fields.get("error")))
    assert len(set(results)) == 1 and results[0][1] == "Unexpected validation error"


# --- connectivity test -----------------------------------------------------------------------


def test_connectivity_all_passed_is_ok_and_lists_skipped(capsys):
    code, out, _ = doctor(capsys, "--connectivity", str(GATE / "connectivity_passed.xml"))
    assert code == 0
    assert "3 of 4 tests passed" in out and "pod-to-ingress-service" in out


def test_connectivity_failure_blocks_and_names_the_test(capsys):
    code, out, _ = doctor(capsys, "--connectivity", str(GATE / "connectivity_failed.xml"), "--format", "json")
    assert code == 2
    doc = json.loads(out)
    failed = [f for f in doc["findings"] if f["level"] == "BLOCK"]
    assert [f["subject"] for f in failed] == ["to-fqdns"]
    assert "one.one.one.one:80" in failed[0]["message"] and failed[0]["source"] == "connectivity"


@pytest.mark.parametrize("text", ["", "not xml at all", "<html><body>502</body></html>",
                                  '<?xml version="1.0"?><testsuites tests="0"></testsuites>'])
def test_connectivity_file_without_results_could_not_be_evaluated(capsys, tmp_path, text):
    path = tmp_path / "junit.xml"
    path.write_text(text)
    code, _, err = doctor(capsys, "--connectivity", str(path))
    assert code == 3 and "could not evaluate" in err


def test_errored_test_case_blocks(capsys, tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite name="connectivity test" tests="1"><testcase name="client-egress-l7">'
                    '<error message="client-egress-l7 errored" type="error">timeout waiting for pods</error>'
                    '</testcase></testsuite>')
    code, out, _ = doctor(capsys, "--connectivity", str(path))
    assert code == 2 and "client-egress-l7" in out and "timeout waiting for pods" in out


# --- any combination -------------------------------------------------------------------------


def test_worst_finding_decides_and_every_source_is_listed(capsys):
    code, out, _ = doctor(capsys, "--preflight", str(GATE / "preflight_warning_slog.log"),
                          "--connectivity", str(GATE / "connectivity_failed.xml"), "--format", "json")
    assert code == 2
    doc = json.loads(out)
    assert doc["exit_code"] == 2 and doc["verdict"] == "BLOCKED"
    assert {f["source"] for f in doc["findings"]} == {"preflight", "connectivity"}
    assert doc["findings"][0]["level"] == "BLOCK"


def test_warning_and_pass_make_an_action_item(capsys):
    code, _, _ = doctor(capsys, "--preflight", str(GATE / "preflight_warning_slog.log"),
                        "--connectivity", str(GATE / "connectivity_passed.xml"))
    assert code == 1


def test_a_bad_file_stops_before_anything_runs(capsys, tmp_path):
    code, out, err = doctor(capsys, "--preflight", str(GATE / "preflight_clean_slog.log"),
                            "--baseline", str(tmp_path / "missing.json"), "--demo")
    assert code == 2 and out == "" and "--baseline" in err


def test_baseline_needs_a_live_run(capsys, tmp_path):
    code, out, err = doctor(capsys, "--save-baseline", str(tmp_path / "b.json"))
    assert code == 2 and "needs a live run" in err and not (tmp_path / "b.json").exists()


# --- baseline and canary ---------------------------------------------------------------------


def _urls(sim):
    argv = []
    for t in sim.targets:
        argv += [f"--{t.component}", f"{t.node}={t.url}" if t.node else t.url]
    return argv


def test_baseline_of_a_live_cluster_compares_clean_against_itself(capsys, tmp_path):
    saved = tmp_path / "baseline.json"
    with Simulation([SCENARIOS["steady"].build(speed=1.0)]) as sim:
        code, out, _ = doctor(capsys, *_urls(sim), "--samples", "2", "--interval", "1s", "--save-baseline", str(saved))
        assert code == 0 and "baseline written" in out
        code, out, _ = doctor(capsys, *_urls(sim), "--samples", "2", "--interval", "1s", "--baseline", str(saved),
                              "--format", "json")
    doc = json.loads(out)
    assert code == 0, doc["findings"]
    assert not [f for f in doc["findings"] if f["source"] == "regression" and f["level"] != "INFO"]
    written = json.loads(saved.read_text())
    assert written["kind"] == "cilium-day2-baseline" and written["version"] == baseline.VERSION
    catalog = load_catalog()
    assert set(written["signals"]) == {s.id for s in catalog.enabled()}
    # The rates and quantiles behind the values are kept.
    parts = written["signals"]["policy_implementation_delay_p99"]["parts"]
    assert parts[0]["fn"] == "quantile" and parts[0]["value"] > 0


def _measured(name):
    catalog = load_catalog()
    cluster = SCENARIOS[name].build(clock=Clock(speed=SPEED, start=600))
    with Simulation([cluster]) as sim:
        endpoints = [Endpoint(t.component, t.node or "operator", t.url) for t in sim.targets]
        snapshots = []
        findings, _, code, _ = diagnose(catalog, endpoints, name, 3, 0.3, timeout=3, time_scale=SPEED, sampled=snapshots)
    return code, baseline.measure(catalog, findings, snapshots, {"cluster": name})


def test_degradation_below_thresholds_is_a_regression():
    catalog = load_catalog()
    code_before, before = _measured("steady")
    code_after, after = _measured("quietly-worse")
    assert code_before == 0 and code_after == 0  # doctor alone passes both
    found = {f.subject: f for f in baseline.compare(catalog, before, after, "test") if f.level != "INFO"}
    assert set(found) == {"datapath_capacity_drops", "policy_implementation_delay_p99"}, [
        (f.subject, f.message) for f in found.values()]
    assert all(f.level == "ACTION" for f in found.values())  # both signals have a warning threshold
    assert "bucket" in found["policy_implementation_delay_p99"].message
    # Compared the other way round, nothing got worse.
    assert [f for f in baseline.compare(catalog, after, before, "test") if f.level != "INFO"] == []


def test_canary_against_fleet_baseline_through_the_cli(capsys, tmp_path):
    """The fleet's baseline file, the canary's live endpoints: per signal, not per node."""
    _, fleet = _measured("steady")
    path = tmp_path / "fleet.json"
    baseline.save(str(path), fleet)
    # Live endpoints run in real time (rates per second of the wall clock, as in a cluster).
    with Simulation([SCENARIOS["quietly-worse"].build(clock=Clock(speed=1.0, start=600))]) as sim:
        code, out, _ = doctor(capsys, *_urls(sim), "--samples", "2", "--interval", "1s", "--baseline", str(path))
    assert code == 1
    assert "policy_implementation_delay_p99" in out and "regression" in out


@pytest.mark.parametrize("text, words", [
    ("{", "not JSON"),
    ('{"kind": "something-else"}', "not a cilium-day2 baseline"),
    ('{"kind": "cilium-day2-baseline", "version": 99, "signals": {}}', "newer"),
    ('{"kind": "cilium-day2-baseline", "version": 1, "signals": []}', "signals"),
])
def test_bad_baseline_files_are_one_line_errors(capsys, tmp_path, text, words):
    path = tmp_path / "b.json"
    path.write_text(text)
    code, out, err = doctor(capsys, "--baseline", str(path), "--demo")
    assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1


def _signal(unit, comparison=">", warning=1.0, **regression):
    from types import SimpleNamespace

    tol = parse_regression(regression or None, unit, warning, "test", comparison)
    return SimpleNamespace(unit=unit, comparison=comparison, tolerance=tol, quantile=None, id="s")


@pytest.mark.parametrize("unit, before, now, regressed", [
    ("per_second", 0.2, 0.39, False),  # less than double
    ("per_second", 0.2, 0.41, True),  # doubled and above the floor
    ("per_second", 0.001, 0.004, False),  # quadrupled, but below the floor: noise
    ("ratio", None, 0.01, True),  # from nothing to 1%
    ("count", 0, 1, True),  # a restart where there was none
    ("count", 5000, 5040, False),  # identities grew a little
    ("count", 5, 6, False),  # one more event in the sampled span: noise
    ("count", 5, 8, True),
    ("bool", 0, 1, True),
])
def test_tolerances_per_unit(unit, before, now, regressed):
    assert bool(baseline.regression(_signal(unit), before, now)) is regressed


def test_lower_is_worse_signals_regress_downwards():
    sig = _signal("count", comparison="<", warning=10)
    assert baseline.regression(sig, 40, 20)
    assert not baseline.regression(sig, 20, 40)


def test_catalog_regression_field_overrides_the_unit_defaults():
    tol = parse_regression({"factor": 3, "severity": "critical"}, "per_second", 0.1, "signal x.regression")
    assert tol.factor == 3 and tol.severity == "critical" and tol.floor == REGRESSION_DEFAULTS["per_second"].floor
    # A signal without a warning threshold regresses at critical by default.
    assert parse_regression(None, "count", None, "x").severity == "critical"
    for bad in ({"factor": 0.5}, {"severity": "page"}, {"bucket": 1}, [1]):
        with pytest.raises(CatalogError):
            parse_regression(bad, "seconds", 1.0, "signal x.regression")


# --- the in-cluster hook ---------------------------------------------------------------------

K8S = Path(__file__).resolve().parents[1] / "assets" / "kubernetes"


def _documents():
    import yaml

    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_hook_jobs_run_doctor_with_arguments_it_accepts_and_rbac_it_needs():
    docs = _documents()
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert {j["metadata"]["annotations"]["helm.sh/hook"] for j in jobs} == {"pre-upgrade", "post-upgrade"}
    parser = cli.build_parser("doctor")
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        doctor_container = next(c for c in spec["containers"] if c["name"] == "doctor")
        args = parser.parse_args(doctor_container["args"])  # argparse exits on an unknown flag
        account = spec["serviceAccountName"]
        assert any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account for d in docs)
        mounted = {m["mountPath"] for c in spec["containers"] + spec.get("initContainers", []) for m in c["volumeMounts"]}
        for path in filter(None, (args.preflight, args.connectivity, args.baseline)):
            assert any(path.startswith(m + "/") for m in mounted), path
        if args.discover:
            # A Role bound to the job's account lets it list pods in the namespace it searches.
            roles = {d["metadata"]["name"] for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == args.namespace
                     and any("pods" in r["resources"] and "list" in r["verbs"] for r in d["rules"])}
            bound = [d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["name"] in roles
                     and any(s["name"] == account for s in d["subjects"])]
            assert bound


def test_live_signals_and_files_in_one_verdict(capsys):
    with Simulation([SCENARIOS["steady"].build(speed=1.0)]) as sim:
        code, out, _ = doctor(capsys, *_urls(sim), "--samples", "2", "--interval", "1s",
                              "--preflight", str(GATE / "preflight_warning_slog.log"),
                              "--connectivity", str(GATE / "connectivity_passed.xml"), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["exit_code"] == 1 and doc["signals_exit_code"] == 0
    assert {f["source"] for f in doc["findings"]} == {"live signal", "preflight", "connectivity"}
    assert len(doc["signals"]) == len(load_catalog().enabled())  # the live report is all there
