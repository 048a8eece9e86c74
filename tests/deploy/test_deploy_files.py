"""The deploy/ files are checked, offline: Kubernetes manifests against the API schemas
bundled in kubernetes-validate, the compose file with ``docker compose config`` where
docker can run it, else against the compose-spec schema bundled in check-jsonschema; and
every plugin-di command in them parses with the real command line."""

from __future__ import annotations

import argparse
import copy
import importlib.resources
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from plugin_di.cli import host as host_cli
from plugin_di.host.shared.config import StoreConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
K8S_VERSION = "1.30.0"  # native sidecars and gRPC probes are GA there


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}: {doc['kind']} {doc['metadata']['name']}", doc)
            for path in K8S for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kubernetes_manifests_match_the_api_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_mistake() -> None:
    (_, deployment) = next(d for d in _documents() if d[1]["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_hosts_deployment_probes_grpc_health_and_shares_one_store() -> None:
    docs = {d["metadata"]["name"] + "/" + d["kind"]: d for _, d in _documents()}
    host = docs["plugin-di-host/Deployment"]
    assert host["spec"]["replicas"] >= 2
    (container,) = host["spec"]["template"]["spec"]["containers"]
    port = container["ports"][0]["containerPort"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port  # the host serves grpc.health.v1
    store = docs["plugin-di-host/ConfigMap"]["data"]["PLUGIN_DI_STORE"]
    assert StoreConfig(url=store).shared
    assert store.startswith("redis://plugin-di-redis:6379/")
    sidecar = docs["kv-with-logger-sidecar/Deployment"]["spec"]["template"]["spec"]
    assert sidecar["initContainers"][0]["restartPolicy"] == "Always"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _docker_compose_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_the_compose_file_is_valid() -> None:
    if _docker_compose_works():
        done = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
            capture_output=True, text=True, timeout=60,
            env={"GO_PEER_BIN": str(ROOT), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(_compose(), schema)
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.validate({"services": {"x": {"image": 3}}}, schema)


def test_compose_runs_two_hosts_on_one_store_and_both_plugins() -> None:
    services = _compose()["services"]
    hosts = [s for s in services.values() if s.get("command", [None])[0] == "host"]
    assert len(hosts) == 2
    stores = {h["environment"]["PLUGIN_DI_STORE"] for h in hosts}
    assert len(stores) == 1
    assert StoreConfig(url=stores.pop()).shared
    kv = services["kv"]
    assert kv["environment"]["PLUGIN_DI_HOST_URL"].count("http://") == 2  # fails over
    go = services["go-kv"]
    assert go["volumes"][0]["type"] == "bind"  # the Go binary is mounted, never built in
    assert "-host-url" in go["command"]
    assert not list((ROOT / "deploy").rglob("gokvserver"))


def _host_commands() -> list[list[str]]:
    commands = [s["command"] for s in _compose()["services"].values()
                if s.get("command", [None])[0] == "host"]  # fmt: skip
    for _, doc in _documents():
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c.get("args", [None])[0] == "host":
                    commands.append(c["args"])
    return commands


@pytest.mark.parametrize("command", _host_commands(), ids=shlex.join)
def test_every_host_command_parses(command: list[str]) -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    host_cli.add_arguments(parser)
    parser.parse_args(command[1:])  # raises on a misspelled flag
