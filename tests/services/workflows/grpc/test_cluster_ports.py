"""``orchestrion cluster up`` gives each workflows instance its own gRPC port."""

from __future__ import annotations

import pytest

from orchestrion.cluster import plan


@pytest.mark.parametrize(
    ("env", "ports"),
    [({}, ["50051", "50052"]), ({"ORCHESTRION_GRPC__PORT": "0"}, ["0", "0"])],
)
def test_workflows_instances_serve_grpc_on_successive_ports(
    env: dict[str, str], ports: list[str]
) -> None:
    children = plan(host="127.0.0.1", port=8000, instances={"workflows": 2}, workers=0, env=env)
    serving = [c for c in children if c.name.startswith("workflows-")]
    assert [c.env["ORCHESTRION_GRPC__PORT"] for c in serving] == ports
