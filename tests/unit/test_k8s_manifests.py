"""The Kubernetes manifests, the Grafana dashboard and the Prometheus configuration hold together with the code:
images the project builds, ports the services listen on, settings the services really have (no cluster needed)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from minsheng_core import metrics
from minsheng_core.paths import REPO_ROOT
from minsheng_core.settings import DEFAULT_TOPOLOGY_FILE, IntakeSettings, ServiceSettings
from minsheng_core.topology import Topology

K8S = REPO_ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
TOPOLOGY = Topology.load(DEFAULT_TOPOLOGY_FILE)
PROJECT_IMAGE = "minsheng"  # the Dockerfile's image; kustomization.yaml's `images` points it at a registry
# The port each service listens on (scripts/run and the issue's table); every manifest must use the same.
PORTS = {
    "intake-web": 8000,
    "classifier": 8001,
    "store": 8002,
    "intake-wechat": 8003,
    "intake-hotline": 8004,
    "intake-survey": 8005,
    "notifier": 8006,
    "webhooks": 8007,
}
KNOWN_KINDS = {
    "v1": {"Namespace", "Service", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim"},
    "apps/v1": {"Deployment", "StatefulSet"},
    "batch/v1": {"Job"},
    "policy/v1": {"PodDisruptionBudget"},
    "autoscaling/v2": {"HorizontalPodAutoscaler"},
    "rbac.authorization.k8s.io/v1": {"Role", "RoleBinding"},
    "keda.sh/v1alpha1": {"ScaledObject", "TriggerAuthentication"},
    "kustomize.config.k8s.io/v1beta1": {"Kustomization"},
    "kustomize.config.k8s.io/v1alpha1": {"Component"},
}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


YAML_FILES = sorted(K8S.rglob("*.yaml"))
MANIFESTS = [doc for name in KUSTOMIZATION["resources"] for doc in load_all(K8S / name)]
SECRETS = {doc["metadata"]["name"]: doc for doc in load_all(K8S / "secrets.example.yaml")}
GENERATED = {gen["name"]: gen for gen in KUSTOMIZATION["configMapGenerator"]}


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in MANIFESTS if doc["kind"] == kind}


WORKLOADS = {**of_kind("Deployment"), **of_kind("StatefulSet"), **of_kind("Job")}
SERVICES = of_kind("Service")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def app_containers() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """name → (workload, container) of every container that runs one of the project's services."""
    found = {}
    for name, workload in WORKLOADS.items():
        for container in pod_spec(workload)["containers"]:
            if container["image"] == PROJECT_IMAGE and "uvicorn" in container.get("command", []):
                found[name] = (workload, container)
    return found


APPS = app_containers()


def factory(container: dict[str, Any]) -> str:
    command = container["command"]
    return command[command.index("--factory") + 1]


def settings_class(container: dict[str, Any]) -> type[ServiceSettings]:
    """The settings class of the service the container runs: the ServiceSettings subclass in its package's settings."""
    package = factory(container).split(".")[0]
    module = importlib.import_module(f"{package}.settings")
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, ServiceSettings) and obj.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"{package}.settings should define one settings class, found {classes}"
    return classes[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [entry["name"] for entry in container.get("env", [])]
    assert len(names) == len(set(names)), f"{container['name']}: an env var is set twice"
    return {entry["name"]: entry for entry in container.get("env", [])}


def command_port(container: dict[str, Any]) -> int:
    command = container["command"]
    return int(command[command.index("--port") + 1])


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port number, or a named port resolved against the container's ports."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def generated_literals(name: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in GENERATED[name].get("literals", []))


def generated_files(name: str) -> dict[str, Path]:
    files = {}
    for item in GENERATED[name].get("files", []):
        key, _, source = item.rpartition("=") if "=" in item else (Path(item).name, "", item)
        files[key] = (K8S / source).resolve()
    return files


# Parsing and kinds


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(K8S)))
def test_every_yaml_parses_and_is_a_known_kind(path):
    docs = load_all(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert doc["kind"] in KNOWN_KINDS.get(doc["apiVersion"], set()), (path, doc["apiVersion"], doc["kind"])
        if doc["kind"] not in ("Kustomization", "Component"):
            assert doc["metadata"]["name"]


def test_the_kustomization_lists_every_manifest_and_never_the_secrets_template():
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert listed == on_disk
    assert KUSTOMIZATION["namespace"] == "minsheng"
    assert not of_kind("Secret"), "real secrets never live in the repository's manifests"
    for name in GENERATED:
        for source in generated_files(name).values():
            assert source.is_file(), f"{name}: {source} does not exist"


def test_the_config_map_carries_the_repositorys_own_campaign_units_and_topology_files():
    assert generated_files("minsheng-config") == {
        "campaign.yaml": (REPO_ROOT / "config" / "campaigns" / "2020.yaml").resolve(),
        "units.yaml": (REPO_ROOT / "config" / "units.yaml").resolve(),
    }
    assert generated_files("rabbitmq-topology") == {"definitions.json": Path(DEFAULT_TOPOLOGY_FILE).resolve()}


# Images, resources, ports


def test_every_image_is_the_projects_own_or_the_official_rabbitmq_and_mongo_ones():
    compose_images = {COMPOSE["services"][name]["image"] for name in ("rabbitmq", "mongo")}
    assert "build" in COMPOSE["services"]["store"] and (REPO_ROOT / "Dockerfile").is_file()
    assert [image["name"] for image in KUSTOMIZATION["images"]] == [PROJECT_IMAGE]
    for name, workload in WORKLOADS.items():
        for container in containers(workload):
            assert container["image"] == PROJECT_IMAGE or container["image"] in compose_images, (name, container["image"])


def test_every_container_has_requests_and_limits():
    for name, workload in WORKLOADS.items():
        for container in containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (name, container["name"], bound)


def test_every_service_of_the_project_runs_on_its_own_port():
    assert set(APPS) == set(PORTS), "one workload per service, named after it"
    for name, (_, container) in APPS.items():
        assert command_port(container) == PORTS[name]
        assert container_port(container, "http") == PORTS[name]
        service = SERVICES[name]
        assert service["spec"]["selector"].items() <= APPS[name][0]["spec"]["template"]["metadata"]["labels"].items()
        for port in service["spec"]["ports"]:
            assert container_port(container, port["targetPort"]) == PORTS[name], name


def test_local_run_script_agrees_on_ports_factories_and_prefixes():
    run = (REPO_ROOT / "scripts" / "run").read_text()
    entries = re.findall(r'^\s+"([\w-]+)\s+(\d+)\s+([\w.:]+)\s+(MINSHENG_\w+_)"', run, re.MULTILINE)
    assert len(entries) >= 6
    for name, port, app_factory, prefix in entries:
        _, container = APPS[name]
        assert (command_port(container), factory(container)) == (int(port), app_factory)
        assert settings_class(container).model_config["env_prefix"] == prefix


def test_pod_annotations_point_prometheus_at_a_real_port():
    for name, workload in WORKLOADS.items():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            ports = {p["containerPort"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
            assert int(annotations["prometheus.io/port"]) in ports, name
    for name in APPS:
        assert WORKLOADS[name]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


# Settings


@pytest.mark.parametrize("name", sorted(PORTS))
def test_env_vars_are_real_settings_and_every_required_one_is_given(name):
    _, container = APPS[name]
    settings = settings_class(container)
    prefix = settings.model_config["env_prefix"]
    env = env_of(container)
    for key in env:
        if key.startswith("MINSHENG_"):
            assert key.startswith(prefix), f"{name}: {key} has another service's prefix (expected {prefix})"
            assert key.removeprefix(prefix).lower() in settings.model_fields, f"{name}: {key} is not a setting"
    given = {key.removeprefix(prefix).lower() for key in env}
    required = {field for field, info in settings.model_fields.items() if info.is_required()}
    assert required <= given, f"{name}: required settings missing: {required - given}"
    assert env[f"{prefix}ENVIRONMENT"]["value"] == "production"
    # Production refuses every development placeholder secret: each one must come from a Secret.
    placeholders = {
        field
        for field, info in settings.model_fields.items()
        if isinstance(info.default, SecretStr) and info.default.get_secret_value().startswith("dev-only-")
    }
    assert placeholders <= given, f"{name}: placeholder secrets not replaced: {placeholders - given}"
    for field in placeholders:
        assert "secretKeyRef" in env[f"{prefix}{field.upper()}"].get("valueFrom", {}), f"{name}: {field} not from a Secret"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_secret_and_config_references_exist_and_files_are_mounted(name):
    workload, container = APPS[name]
    literals = generated_literals("minsheng-settings")
    for key, entry in env_of(container).items():
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["key"] in SECRETS[ref["name"]]["stringData"], (name, key)
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] == "minsheng-settings"
            assert ref.get("optional") or ref["key"] in literals, (name, key)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    for volume in mounts:
        assert volume in volumes or volume in claims, (name, volume)
    for volume in volumes.values():
        if "configMap" in volume:
            assert volume["configMap"]["name"] in GENERATED
        if "secret" in volume:
            assert volume["secret"]["secretName"] in SECRETS
    # Every file or path setting points into something mounted, and a mounted config file exists under that name.
    for key, entry in env_of(container).items():
        if re.search(r"_(FILE|PATH|DIR)$", key) and "value" in entry:
            path = entry["value"]
            holder = next((v for v, m in mounts.items() if path.startswith(m.rstrip("/") + "/")), None)
            if holder is None:
                continue  # inside the image (the model, the topology): nothing to mount
            if holder in volumes and "configMap" in volumes[holder]:
                assert Path(path).name in generated_files(volumes[holder]["configMap"]["name"]), (name, key)
            if holder in volumes and "secret" in volumes[holder]:
                assert Path(path).name in SECRETS[volumes[holder]["secret"]["secretName"]]["stringData"], (name, key)


def test_the_secrets_template_holds_only_placeholders():
    for secret in SECRETS.values():
        assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == "minsheng"
        for key, value in secret["stringData"].items():
            if key.endswith("username"):
                continue
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}.{key} looks like a real secret"


# Probes, intakes, consumers


def http_path(probe: dict[str, Any], container: dict[str, Any], port: int) -> str:
    assert container_port(container, probe["httpGet"]["port"]) == port
    return probe["httpGet"]["path"]


@pytest.mark.parametrize("name", sorted(PORTS))
def test_probes_hit_healthz_and_readyz(name):
    workload, container = APPS[name]
    port = PORTS[name]
    assert http_path(container["livenessProbe"], container, port) == "/healthz"
    assert http_path(container["startupProbe"], container, port) == "/healthz"
    readiness = http_path(container["readinessProbe"], container, port)
    if issubclass(settings_class(container), IntakeSettings):
        # An intake accepts into its outbox while the broker is away: taking it out of the Service then would lose
        # exactly the submissions the outbox is there to keep. Its /readyz is for humans and dashboards.
        assert readiness == "/healthz"
    else:
        assert readiness == "/readyz"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_intakes_are_stateful_sets_with_an_outbox_volume_per_pod_and_consumers_scale(name):
    workload, container = APPS[name]
    settings = settings_class(container)
    prefix = settings.model_config["env_prefix"]
    if issubclass(settings, IntakeSettings):
        assert workload["kind"] == "StatefulSet"
        outbox = Path(env_of(container)[f"{prefix}OUTBOX_PATH"]["value"])
        mount = next(m for m in container["volumeMounts"] if m["name"] == "outbox")
        assert outbox.parent == Path(mount["mountPath"])
        claim = workload["spec"]["volumeClaimTemplates"][0]
        assert claim["metadata"]["name"] == "outbox" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    else:
        assert workload["kind"] == "Deployment"
        assert settings.model_fields["queue"].default in TOPOLOGY.queue_names()
        hpa = of_kind("HorizontalPodAutoscaler")[name]
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def replicas(name: str, workload: dict[str, Any]) -> int:
    """The replica count: the workload's own, or at least the HPA's minimum for those an HPA owns."""
    hpa = of_kind("HorizontalPodAutoscaler").get(name)
    if hpa is not None:
        assert "replicas" not in workload["spec"], f"{name}: the HPA owns the count; kubectl apply would reset it"
        return hpa["spec"]["minReplicas"]
    return workload["spec"].get("replicas", 1)


def test_every_workload_has_a_disruption_budget():
    budgets = of_kind("PodDisruptionBudget").values()
    for name, workload in WORKLOADS.items():
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, name
        count = replicas(name, workload)
        if count > 1:
            budget = matching[0]["spec"]
            assert budget.get("minAvailable", 0) >= 1 or 0 < budget.get("maxUnavailable", 0) < count, name


def test_keda_scales_existing_deployments_on_existing_queues():
    component = yaml.safe_load((K8S / "components" / "keda" / "kustomization.yaml").read_text())
    removed = {yaml.safe_load(p["patch"])["metadata"]["name"] for p in component["patches"]}
    scaled = [doc for doc in load_all(K8S / "components" / "keda" / "scaledobjects.yaml") if doc["kind"] == "ScaledObject"]
    assert {s["metadata"]["name"] for s in scaled} == removed == set(of_kind("HorizontalPodAutoscaler"))
    for scaled_object in scaled:
        assert scaled_object["spec"]["scaleTargetRef"]["name"] in of_kind("Deployment")
        queues = [t["metadata"]["queueName"] for t in scaled_object["spec"]["triggers"] if t["type"] == "rabbitmq"]
        assert queues and all(q in TOPOLOGY.queue_names() for q in queues)


# The broker and the database


def test_rabbitmq_runs_three_clustered_nodes_loading_the_topology():
    rabbit = WORKLOADS["rabbitmq"]
    assert rabbit["kind"] == "StatefulSet" and rabbit["spec"]["replicas"] == 3
    conf = (K8S / "rabbitmq" / "rabbitmq.conf").read_text()
    plugins = (K8S / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbit_peer_discovery_k8s" in conf and "rabbitmq_peer_discovery_k8s" in plugins
    assert f"cluster_formation.k8s.service_name = {rabbit['spec']['serviceName']}" in conf
    loaded = re.search(r"^load_definitions = (\S+)$", conf, re.MULTILINE).group(1)
    node = next(c for c in pod_spec(rabbit)["containers"] if c["name"] == "rabbitmq")
    assert any(loaded.startswith(m["mountPath"] + "/") for m in node["volumeMounts"])
    assert all(q["arguments"]["x-queue-type"] == "quorum" for q in TOPOLOGY.queues)
    ports = {p["containerPort"] for p in node["ports"]}
    assert {5672, 15692} <= ports
    assert "amqp://" in SECRETS["minsheng-connections"]["stringData"]["amqp-url"]
    assert "@rabbitmq:5672/" in SECRETS["minsheng-connections"]["stringData"]["amqp-url"]


def test_mongodb_is_a_replica_set_of_three_initiated_by_a_job():
    mongo = WORKLOADS["mongo"]
    assert mongo["kind"] == "StatefulSet" and mongo["spec"]["replicas"] == 3
    args = pod_spec(mongo)["containers"][0]["args"]
    replica_set = args[args.index("--replSet") + 1]
    script = pod_spec(WORKLOADS["mongo-init"])["containers"][0]["command"][-1]
    hosts = [f"mongo-{i}.{mongo['spec']['serviceName']}:27017" for i in range(3)]
    assert f'_id: "{replica_set}"' in script and all(host in script for host in hosts)
    url = SECRETS["minsheng-connections"]["stringData"]["mongo-url"]
    assert f"replicaSet={replica_set}" in url and all(host in url for host in hosts)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
def test_kustomize_builds_the_whole_set_with_the_image_pointed_at_the_registry():
    command = ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(K8S)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    images = {c["image"] for doc in built if doc["kind"] in ("Deployment", "StatefulSet") for c in containers(doc)}
    target = KUSTOMIZATION["images"][0]
    assert f"{target['newName']}:{target['newTag']}" in images and PROJECT_IMAGE not in images
    assert all(doc["metadata"].get("namespace", "minsheng") == "minsheng" for doc in built)


# Dashboard and scrape configuration


def referenced_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(minsheng_[a-z0-9_]+)", text))


def test_the_grafana_dashboard_uses_only_metrics_the_services_expose():
    dashboard = json.loads((REPO_ROOT / "deploy" / "grafana" / "minsheng.json").read_text(encoding="utf-8"))
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expressions += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = set().union(*(referenced_metrics(e) for e in expressions))
    assert used and used <= metrics.exposed_names(), used - metrics.exposed_names()
    for needed in (
        "minsheng_http_requests_total",
        "minsheng_http_request_duration_seconds_bucket",
        "minsheng_events_published_total",
        "minsheng_events_consumed_total",
        "minsheng_queue_messages_ready",
        "minsheng_queue_messages_parked",
        "minsheng_outbox_pending",
    ):
        assert needed in used, f"the dashboard shows no {needed}"


def test_prometheus_configuration_and_alerts_use_real_metrics_and_ports():
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    local = next(job for job in config["scrape_configs"] if job["job_name"] == "minsheng-local")
    assert {int(t.rsplit(":", 1)[1]) for t in local["static_configs"][0]["targets"]} == set(PORTS.values())
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    used = set().union(*(referenced_metrics(rule["expr"]) for group in rules["groups"] for rule in group["rules"]))
    assert used and used <= metrics.exposed_names()
