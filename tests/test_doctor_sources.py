"""Where doctor reads from: Kubernetes (with a stand-in for the `kubernetes` package: pods are discovered, read
through the API server's pod proxy, and evaluated; cluster problems are one-line errors) and URLs (credentials never shown)."""

import json
import sys
import types
from types import SimpleNamespace

import pytest

from cilium_day2 import cli

from .conftest import fixture_text

BODIES = {9962: "agent_v1_18.txt", 9963: "operator_eni.txt", 9965: "hubble_context.txt"}


def pod(name, node, phase="Running"):
    return SimpleNamespace(metadata=SimpleNamespace(name=name), spec=SimpleNamespace(node_name=node),
                           status=SimpleNamespace(phase=phase))


def fake_kubernetes(monkeypatch, agents, operators, kubeconfig_error=None, list_error=None):
    calls = []

    class CoreV1Api:
        def list_namespaced_pod(self, namespace, label_selector):
            if list_error:
                raise RuntimeError(list_error)
            calls.append(("list", namespace, label_selector))
            return SimpleNamespace(items=agents if label_selector == "k8s-app=cilium" else operators)

        def connect_get_namespaced_pod_proxy_with_path(self, name_port, namespace, path, _request_timeout=None):
            calls.append(("proxy", name_port, namespace, path))
            return fixture_text(BODIES[int(name_port.rsplit(":", 1)[1])])

    def load_kube_config(context=None):
        if kubeconfig_error:
            raise RuntimeError(kubeconfig_error)
        calls.append(("config", context))

    module = types.ModuleType("kubernetes")
    module.client = SimpleNamespace(CoreV1Api=CoreV1Api)
    module.config = SimpleNamespace(load_kube_config=load_kube_config)
    monkeypatch.setitem(sys.modules, "kubernetes", module)
    return calls


def test_pods_are_discovered_and_read_through_the_proxy(monkeypatch, capsys):
    calls = fake_kubernetes(
        monkeypatch,
        agents=[pod("cilium-a1", "node-a"), pod("cilium-b2", "node-b"), pod("cilium-x9", "node-c", phase="Pending")],
        operators=[pod("cilium-operator-7d9", "node-a")],
    )
    code = cli.main(["doctor", "--kubernetes", "--context", "prod", "--namespace", "cilium",
                     "--samples", "1", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 2) and report["exit_code"] == code
    assert ("config", "prod") in calls
    proxied = {c[1] for c in calls if c[0] == "proxy"}
    # Running pods only: the pending one is not scraped.
    assert proxied == {"cilium-a1:9962", "cilium-a1:9965", "cilium-b2:9962", "cilium-b2:9965", "cilium-operator-7d9:9963"}
    assert all(c[2] == "cilium" and c[3] == "metrics" for c in calls if c[0] == "proxy")
    assert all(e["error"] is None for e in report["endpoints"])
    assert {e["name"] for e in report["endpoints"] if e["component"] == "agent"} == {"node-a", "node-b"}
    assert {e["url"] for e in report["endpoints"] if e["component"] == "operator"} == {"k8s://cilium/cilium-operator-7d9:9963/metrics"}


@pytest.mark.parametrize(
    "setup, words",
    [
        ({"kubeconfig_error": "no context named prod\ndetails"}, "cannot load the kubeconfig (no context named prod)"),
        ({"list_error": "Forbidden\nmore"}, "cannot list pods in kube-system (Forbidden)"),
        ({}, "no running Cilium agent pods"),
    ],
)
def test_cluster_problems_are_one_line_errors(setup, words, monkeypatch, capsys):
    fake_kubernetes(monkeypatch, agents=[], operators=[], **setup)
    code = cli.main(["doctor", "--kubernetes", "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_without_the_package_the_error_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import fails
    code = cli.main(["doctor", "--kubernetes"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install kubernetes" in err


def test_credentials_in_urls_never_reach_the_output(capsys):
    code = cli.main(["doctor", "--agent", "http://admin:hunter2@127.0.0.1:1/metrics?token=abc123", "--samples", "1",
                     "--format", "json"])
    captured = capsys.readouterr()
    assert code == 3
    for secret in ("hunter2", "abc123", "admin:"):
        assert secret not in captured.out and secret not in captured.err
    assert json.loads(captured.out)["endpoints"][0]["url"] == "http://127.0.0.1:1/metrics"
