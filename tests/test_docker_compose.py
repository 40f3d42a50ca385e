"""docker-compose.yaml stays consistent with the project.

The compose file cannot run here (no Docker engine on the test machines; docs/deployment.md
says so): this checks what can be checked without Docker."""

from __future__ import annotations

import re
import subprocess

import pytest

from sardana_redis.redis_stack import default_config, find_redis_stack
from sardana_redis.redis_url import DEFAULT_REDIS_URL
from tests.doc_commands import ROOT

yaml = pytest.importorskip("yaml")  # PyYAML: installed with blissdata (redis-om, redisvl)


def conf_value(name: str) -> str:
    """The value of a directive of blredis.conf."""
    match = re.search(rf"^{name}\s+(\S+)", (ROOT / "blredis.conf").read_text(), re.M)
    assert match, name
    return match.group(1)


@pytest.fixture(scope="module")
def redis_service() -> dict:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    assert list(compose["services"]) == ["redis"]
    service = compose["services"]["redis"]
    service["_named_volumes"] = compose.get("volumes", {})
    return service


def test_mounts_the_packaged_blredis_conf(redis_service):
    source, target, mode = next(v.split(":") for v in redis_service["volumes"]
                                if v.startswith("./blredis.conf"))
    assert (ROOT / source).read_bytes() == default_config().read_bytes()
    assert (target, mode) == ("/redis-stack.conf", "ro")  # the image's configuration file
    volume, data = next(v.split(":") for v in redis_service["volumes"] if v.endswith(":/data"))
    assert volume in redis_service["_named_volumes"]


def test_publishes_the_documented_port_on_loopback(redis_service):
    port = conf_value("port")
    assert redis_service["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert DEFAULT_REDIS_URL == f"redis://localhost:{port}"
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    assert "loopback only" in deployment and "docker compose up -d" in deployment
    assert "not exercised by the\ntest suite" in deployment


def test_modules_come_from_the_image_and_redis_matches_the_bundled_one(redis_service):
    # The image's entrypoint loads ReJSON and search; blredis.conf must not load them again.
    assert not re.search(r"^\s*loadmodule", (ROOT / "blredis.conf").read_text(), re.M)
    image, tag = redis_service["image"].split(":")
    assert image == "redis/redis-stack-server"
    version = subprocess.run([str(find_redis_stack().server), "--version"], capture_output=True,
                             text=True, check=True).stdout
    bundled = re.search(r"v=(\d+\.\d+)\.", version).group(1)
    assert tag.startswith(bundled + "."), (tag, version)
    # Inside the container Redis must listen on every interface to be reachable at all.
    assert "--bind 0.0.0.0" in redis_service["environment"]["REDIS_ARGS"]
