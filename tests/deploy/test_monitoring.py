"""deploy/prometheus and deploy/grafana: promtool accepts the rules and the config, the
alerts' unit tests pass, and no dashboard or rule names a metric that no process exports.

promtool comes from Debian's ``prometheus`` package. Missing, these tests fail in CI
(``CI=true``) and skip elsewhere, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import (
    dashboard_expressions,
    exported_names,
    metric_names,
    recorded_names,
    rule_expressions,
    unknown_names,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing: apt-get install prometheus (Debian's package has it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


# --- promtool ------------------------------------------------------------------------


def test_promtool_accepts_the_rules() -> None:
    output = run_promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert "SUCCESS" in output


def test_promtool_accepts_the_config_and_the_rule_files_it_names() -> None:
    output = run_promtool("check", "config", "prometheus.yml")
    assert f"{len(RULE_FILES)} rule files found" in output


def test_alert_unit_tests_pass() -> None:
    # Breaker open, error rate and fast burn, budget near its limit, queue backlog; and
    # cases where they must stay quiet.
    tests = PROMETHEUS / "tests" / "alerts_test.yml"
    assert len(load_yaml(tests)["tests"]) >= 2
    assert "SUCCESS" in run_promtool("test", "rules", str(tests.relative_to(PROMETHEUS)))


def test_promtool_would_catch_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: sum(rate(x[5m]\n")
    done = subprocess.run(
        [promtool(), "check", "rules", str(broken)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0


# --- metric names --------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_names()


def named_in_monitoring() -> list[tuple[str, str]]:
    """``(where, expr)`` for every rule and dashboard query."""
    found: list[tuple[str, str]] = []
    for path in RULE_FILES:
        found += [(f"{path.name}: {name}", e) for name, e in rule_expressions(load_yaml(path))]
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        found += [(f"{path.name}: {title}", e) for title, e in dashboard_expressions(dashboard)]
    return found


def test_every_metric_in_dashboards_and_rules_is_exported(exported: set[str]) -> None:
    recorded: set[str] = set()
    for path in RULE_FILES:
        recorded |= recorded_names(load_yaml(path))
    expressions = named_in_monitoring()
    assert len(expressions) > 50  # the dashboards and rules were found and read
    missing = {
        where: sorted(unknown)
        for where, expr in expressions
        if (unknown := unknown_names(expr, exported | recorded))
    }
    assert missing == {}, "names no process exports (a typo, or a metric that was renamed)"


def test_each_family_of_dashboards_reads_what_it_is_about() -> None:
    # Each dashboard queries the metrics of its subject, not only generic ones.
    prefixes = {
        "gateway.json": "orchestrion_gateway_",
        "engine.json": "orchestrion_queue_",
        "ai-cost.json": "orchestrion_llm_",
        "bus.json": "orchestrion_bus_",
    }
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        names = set().union(*(metric_names(e) for _, e in dashboard_expressions(dashboard)))
        assert any(n.startswith(prefixes[path.name]) for n in names), path.name


def test_the_checker_flags_a_name_no_process_exports(exported: set[str]) -> None:
    assert "orchestrion_http_requests_total" in exported
    assert "orchestrion_step_duration_seconds_bucket" in exported
    assert "orchestrion_queue_depth" in exported
    # One letter off: the check must say so.
    assert unknown_names("sum(rate(orchestrion_http_request_total[5m]))", exported) == {
        "orchestrion_http_request_total"
    }
    # A histogram is read through its series; the family's bare name is no series.
    assert unknown_names("orchestrion_step_duration_seconds > 1", exported) == {
        "orchestrion_step_duration_seconds"
    }


def test_the_tokenizer_keeps_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"x(y)", s="sum"}'
        "[$__rate_interval]))) / ignoring (route) group_left b:recorded:ratio "
        "> bool 1e6 and on(le) c_total offset 5m or vector(0) unless d[1h:5m]"
    )
    assert metric_names(expr) == {"a_bucket", "b:recorded:ratio", "c_total", "d"}
    assert metric_names("sum(increase(cost_total[$__range])) * 1.5e-3") == {"cost_total"}


# --- Grafana -------------------------------------------------------------------------


def test_dashboards_are_provisioned_with_the_prometheus_datasource() -> None:
    sources = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")
    uids = {source["uid"]: source["type"] for source in sources["datasources"]}
    assert uids["prometheus"] == "prometheus"
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {p.name for p in DASHBOARDS} == {
        "gateway.json",
        "engine.json",
        "ai-cost.json",
        "bus.json",
    }
    seen: set[str] = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["uid"] not in seen
        seen.add(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
