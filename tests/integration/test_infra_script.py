"""scripts/infra: reuses what runs, reports a port held by another program."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from minsheng_core.paths import REPO_ROOT

pytestmark = pytest.mark.integration
INFRA = str(REPO_ROOT / "scripts" / "infra")


def test_up_twice_reuses_the_running_servers():
    result = subprocess.run([INFRA, "up"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "RabbitMQ already running: reused" in result.stdout
    assert "FerretDB already running" in result.stdout


def test_a_port_taken_by_another_program_is_a_clear_error():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "MINSHENG_MONGO_PORT": str(port)}
        result = subprocess.run([INFRA, "up"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0
    assert f"port {port} is taken by another program" in result.stderr
