"""The broker definitions and docker-compose.yml hold together (no Docker engine here: a structural check)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from minsheng_classifier.settings import ClassifierSettings
from minsheng_core.paths import REPO_ROOT
from minsheng_core.settings import DEFAULT_TOPOLOGY_FILE
from minsheng_core.topology import PARKING_EXCHANGE, Topology, parking_queue, retry_queue
from minsheng_intake_hotline.settings import HotlineSettings
from minsheng_intake_survey.settings import SurveySettings
from minsheng_intake_web.settings import WebSettings
from minsheng_intake_wechat.settings import WechatSettings
from minsheng_store.settings import StoreSettings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
TOPOLOGY = Topology.load(DEFAULT_TOPOLOGY_FILE)
SETTINGS_BY_PREFIX = {
    "MINSHENG_WEB_": WebSettings,
    "MINSHENG_WECHAT_": WechatSettings,
    "MINSHENG_HOTLINE_": HotlineSettings,
    "MINSHENG_SURVEY_": SurveySettings,
    "MINSHENG_STORE_": StoreSettings,
    "MINSHENG_CLASSIFIER_": ClassifierSettings,
}
CONSUMER_QUEUES = [StoreSettings().queue, ClassifierSettings().queue]


@pytest.mark.parametrize("queue", CONSUMER_QUEUES)
def test_every_consumer_queue_is_quorum_with_dead_lettering_retry_and_parking(queue):
    queues = {q["name"]: q["arguments"] for q in TOPOLOGY.queues}
    args = queues[queue]
    assert args["x-queue-type"] == "quorum"
    assert args["x-dead-letter-exchange"] == PARKING_EXCHANGE and args["x-dead-letter-routing-key"] == queue
    assert 1 <= args["x-delivery-limit"] <= 20
    assert queues[retry_queue(queue)]["x-dead-letter-routing-key"] == queue
    assert queues[retry_queue(queue)]["x-message-ttl"] > 0
    assert queue in [b["routing_key"] for b in TOPOLOGY.bindings if b["destination"] == parking_queue(queue)]
    assert TOPOLOGY.bindings_of(queue), "a consumer queue must be bound to some events"


def test_bindings_only_name_declared_things():
    names = set(TOPOLOGY.queue_names())
    exchanges = {e["name"] for e in TOPOLOGY.exchanges}
    for binding in TOPOLOGY.bindings:
        assert binding["source"] in exchanges and binding["destination"] in names


def test_compose_runs_every_service_on_real_images_with_health_gates():
    services = COMPOSE["services"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:") and services["mongo"]["image"].startswith("mongo:")
    for name in ("intake-web", "intake-wechat", "intake-hotline", "intake-survey", "classifier", "store"):
        service = services[name]
        assert "healthcheck" in service and "readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        for infra in ("rabbitmq", "mongo"):
            assert "healthcheck" in services[infra]
    mounts = " ".join(services["rabbitmq"]["volumes"])
    assert "deploy/rabbitmq/definitions.json" in mounts, "compose must load the same topology the code declares"
    conf = (REPO_ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf


def test_compose_sets_only_settings_the_services_have():
    for name in ("intake-web", "intake-wechat", "intake-hotline", "intake-survey", "classifier", "store"):
        for key in COMPOSE["services"][name]["environment"]:
            prefix = next(p for p in SETTINGS_BY_PREFIX if key.startswith(p))
            field = key.removeprefix(prefix).lower()
            assert field in SETTINGS_BY_PREFIX[prefix].model_fields, f"{name}: {key} is not a setting"


def test_compose_commands_name_real_application_factories():
    import importlib

    for name in ("intake-web", "intake-wechat", "intake-hotline", "intake-survey", "classifier", "store"):
        command = COMPOSE["services"][name]["command"]
        module, attr = command[command.index("--factory") + 1].split(":")
        assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_when_the_plugin_exists():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed")
    result = subprocess.run(["docker", "compose", "config", "-q"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_definitions_user_password_hash_is_well_formed():
    data = json.loads(Path(DEFAULT_TOPOLOGY_FILE).read_text())
    for user in data["users"]:
        assert re.fullmatch(r"[A-Za-z0-9+/]{46}==|[A-Za-z0-9+/]{48}", user["password_hash"])
