"""deploy/compose and deploy/k8s parse, and what they run is real: every Orchestrion
command line parses with the CLI's own options, every setting they set exists, every
``depends_on`` names a service, every service of the platform runs, on the ports
Prometheus scrapes, and deploy/k8s/monitoring/ is an exact copy of what it mirrors.

No container engine or cluster runs here: these are static checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel

from orchestrion import cli
from orchestrion.cluster import SERVICES
from orchestrion.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "k8s"
#: The distributed shape's ports (as ``orchestrion cluster up`` gives them).
PORTS = {"gateway": 8000, **{name: 8001 + i for i, name in enumerate(SERVICES)}, "worker": 9100}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def parse_command(args: list[str]) -> Any:
    """Parse ``orchestrion <args>`` as the CLI would, without running it; its context
    (raises the CLI's usage error on an option it does not have)."""
    command: Any = typer.main.get_command(cli.app)
    rest = list(args)
    # Groups list sub-commands (Typer carries its own copy of Click: no isinstance here).
    while hasattr(command, "list_commands"):
        if not rest:
            raise AssertionError(f"orchestrion {' '.join(args)}: no command")
        name, rest = rest[0], rest[1:]
        found = command.get_command(typer.Context(command), name)
        if found is None:
            raise AssertionError(f"orchestrion has no command {name!r}")
        command = found
    return command.make_context(command.name, rest)


def check_setting(name: str) -> None:
    """``ORCHESTRION_A__B`` must be the setting ``a.b``."""
    parts = name.removeprefix("ORCHESTRION_").lower().split("__")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        assert part in model.model_fields, f"{name}: no setting {'.'.join(parts[: index + 1])}"
        annotation = model.model_fields[part].annotation
        if index < len(parts) - 1:
            assert isinstance(annotation, type), name
            assert issubclass(annotation, BaseModel), name
            model = annotation


def served(args: list[str]) -> tuple[str, int | None]:
    """What an Orchestrion command line runs and the port it listens on."""
    context = parse_command(args)
    params = context.params
    if args[0] == "serve":
        return params["service"], params["port"]
    if args[0] == "worker":
        return "worker", params["metrics_port"]
    return args[0], params.get("port")


def test_the_checks_catch_a_wrong_option_and_a_wrong_setting() -> None:
    with pytest.raises(Exception, match="No such option: --metric-port") as raised:
        parse_command(["worker", "--metric-port", "9100"])
    assert type(raised.value).__name__ == "NoSuchOption"
    with pytest.raises(AssertionError, match="no command 'servce'"):
        parse_command(["servce", "auth"])
    with pytest.raises(AssertionError, match=r"no setting observability\.worker_metric_port"):
        check_setting("ORCHESTRION_OBSERVABILITY__WORKER_METRIC_PORT")
    check_setting("ORCHESTRION_OBSERVABILITY__WORKER_METRICS_PORT")


# --- compose -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_compose_services_have_an_image_and_known_dependencies(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        depends = service.get("depends_on", {})
        for dependency in depends if isinstance(depends, list) else depends.keys():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name
    required = {"postgres", "redis", "nats", "prometheus", "grafana", "otel-collector", "jaeger"}
    assert required <= services.keys()
    for mount in (v for s in services.values() for v in s.get("volumes", [])):
        source = mount.split(":")[0]
        if source.startswith("."):
            assert (COMPOSE.parent / source).exists(), f"{source} is mounted but missing"


def test_compose_runs_every_part_on_the_scraped_ports(compose: dict[str, Any]) -> None:
    runs: dict[str, int | None] = {}
    for name, service in compose["services"].items():
        if service.get("image") != "orchestrion:latest":
            continue
        command = service["command"]
        assert isinstance(command, list), name
        if command[0] == "db":
            parse_command(command)
            continue
        what, port = served(command)
        assert what == name, f"the compose service {name} runs {what}"
        runs[what] = port
        for variable in service.get("environment", {}):
            if variable.startswith("ORCHESTRION_"):
                check_setting(variable)
    assert runs == PORTS
    gateway = parse_command(compose["services"]["gateway"]["command"]).params["upstream"]
    assert sorted(gateway) == sorted(f"{s}=http://{s}:{PORTS[s]}" for s in SERVICES)
    environment = compose["services"]["gateway"]["environment"]
    assert json.loads(environment["ORCHESTRION_PEERS"]) == {
        s: f"http://{s}:{PORTS[s]}" for s in SERVICES
    }
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_prometheus_scrapes_what_compose_and_k8s_run() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= set(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets |= {f"{name}:{dns['port']}" for name in dns["names"]}
    assert {f"{name}:{port}" for name, port in PORTS.items()} <= targets


def test_the_collector_sends_traces_to_jaeger() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "otel-collector.yml").read_text())
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    [exporter] = traces["exporters"]
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"
    assert set(traces["processors"]) <= config["processors"].keys()


# --- Kubernetes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs += load_all(K8S / resource)
    return docs


def test_every_k8s_document_is_a_named_object(manifests: list[dict[str, Any]]) -> None:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            assert doc.get("apiVersion"), path.name
            assert doc.get("kind"), path.name
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), (path.name, doc["kind"])
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in manifests]
    assert len(names) == len(set(names)), "an object is defined twice"


def test_kustomization_files_exist_and_mirror_their_sources() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for file in [*generator.get("files", []), *generator.get("envs", [])]:
            assert (K8S / file).is_file(), file
    copies = {
        K8S / "monitoring" / "prometheus.yml": DEPLOY / "prometheus" / "prometheus.yml",
        K8S / "monitoring" / "otel-collector.yml": DEPLOY / "compose" / "otel-collector.yml",
        **{
            K8S / "monitoring" / "rules" / p.name: p
            for p in (DEPLOY / "prometheus" / "rules").glob("*.yml")
        },
        **{
            K8S / "monitoring" / "dashboards" / p.name: p
            for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")
        },
        K8S / "monitoring" / "grafana" / "datasources.yml": DEPLOY
        / "grafana/provisioning/datasources/datasources.yml",
        K8S / "monitoring" / "grafana" / "dashboards.yml": DEPLOY
        / "grafana/provisioning/dashboards/dashboards.yml",
    }
    for copy, source in copies.items():
        assert copy.read_bytes() == source.read_bytes(), (
            f"{copy.relative_to(DEPLOY)} differs from {source.relative_to(DEPLOY)}: copy it again"
        )
    secret_keys = {
        line.split("=")[0]
        for line in (K8S / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    env_keys = {line.split("=")[0] for line in (K8S / "orchestrion.env").read_text().splitlines()}
    for key in secret_keys | env_keys:
        if key.startswith("ORCHESTRION_"):
            check_setting(key)


def test_k8s_runs_every_part_and_services_select_pods(manifests: list[dict[str, Any]]) -> None:
    workloads = [d for d in manifests if d["kind"] in ("Deployment", "StatefulSet", "Job")]
    runs: dict[str, int | None] = {}
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["image"] != "orchestrion:latest":
                continue
            args = container["args"]
            if args[0] == "db":
                parse_command(args)
                continue
            what, port = served(args)
            assert what == workload["metadata"]["name"]
            declared = {p["containerPort"] for p in container["ports"]}
            assert port in declared, (what, port, declared)
            runs[what] = port
    assert runs == PORTS
    labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads if w["kind"] != "Job"]
    for service in (d for d in manifests if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= pod.items() for pod in labels), service["metadata"]["name"]
        name = service["metadata"]["name"]
        if name in PORTS:
            assert [p["port"] for p in service["spec"]["ports"]] == [PORTS[name]]


def references(node: Any, keys: tuple[str, ...]) -> list[str]:
    """The ``name`` of every mapping under one of ``keys``, anywhere in ``node``."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, dict):
                found.append(value["name"])
            found += references(value, keys)
    elif isinstance(node, list):
        for item in node:
            found += references(item, keys)
    return found


def test_manifests_name_only_config_they_define(manifests: list[dict[str, Any]]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    generated = {g["name"] for g in kustomization["configMapGenerator"]}
    secrets = {g["name"] for g in kustomization["secretGenerator"]}
    config_maps = set(references(manifests, ("configMap", "configMapRef")))
    assert config_maps == generated  # each named exists, each generated is used
    assert set(references(manifests, ("secretRef", "secretKeyRef"))) == secrets
