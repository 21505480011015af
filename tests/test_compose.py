"""docker-compose.yml against the CLI and settings (fast, no Docker). scripts/compose-check runs the
stack itself on a Docker engine (docs/data-engineers.md)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import yaml

from moodwire.settings import Settings
from moodwire_cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def image(service: dict) -> str:
    """The image a service runs by default: ``${VAR:-default}`` read as its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", service.get("image", ""))


def moodwire_services() -> dict:
    return {n: s for n, s in COMPOSE["services"].items() if image(s).startswith("moodwire")}


def test_image_names_come_from_variables_whose_defaults_are_the_official_images():
    services = COMPOSE["services"]
    assert services["kafka"]["image"] == "${MOODWIRE_KAFKA_IMAGE:-apache/kafka:4.1.1}"
    assert services["postgres"]["image"] == "${MOODWIRE_POSTGRES_IMAGE:-postgres:16}"
    assert {s["image"] for s in moodwire_services().values()} == {"${MOODWIRE_IMAGE:-moodwire:latest}"}


def test_every_moodwire_command_exists_with_its_options():
    services = moodwire_services()
    assert {"topics", "ingest", "classify", "aggregate"} <= set(services)
    for name, service in services.items():
        args = list(service["command"])
        group: click.Command = cli
        while isinstance(group, click.Group) and args and not args[0].startswith("-"):
            group = group.commands.get(args.pop(0))
            assert group is not None, f"service {name}: unknown command in {service['command']}"
        known = {opt for p in group.params for opt in getattr(p, "opts", [])}
        for arg in args:
            if arg.startswith("--"):
                assert arg in known, f"service {name}: {arg} is not an option of {group.name}"


def test_every_environment_variable_is_a_setting():
    fields = {f"MOODWIRE_{k.upper()}" for k in Settings.model_fields}
    for name, service in moodwire_services().items():
        for key in service.get("environment", {}):
            if key.startswith("MOODWIRE_"):
                assert key in fields, f"service {name}: {key} is not a Moodwire setting"


def test_dependencies_exist_and_mounted_files_are_in_the_repository():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"service {name} depends on unknown {dep}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"service {name} mounts missing {source}"
    for volume in COMPOSE.get("volumes", {}):
        assert any(volume in v for s in services.values() for v in s.get("volumes", []))


def test_kafka_is_kraft_and_bootstrap_matches():
    env = COMPOSE["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    advertised = re.search(r"PLAINTEXT://([^,]+)", env["KAFKA_ADVERTISED_LISTENERS"]).group(1)
    assert COMPOSE["x-moodwire-env"]["MOODWIRE_KAFKA_BOOTSTRAP"] == advertised


def test_every_long_running_stage_has_a_health_check_on_its_metrics_port():
    for name, service in COMPOSE["services"].items():
        port = (service.get("environment") or {}).get("MOODWIRE_METRICS_PORT")
        if port:
            check = " ".join(service["healthcheck"]["test"])
            assert f"127.0.0.1:{port}/healthz" in check, name


def test_the_image_copies_every_package_the_wheel_holds():
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "bench"))
    assert packages and all(f"COPY {name} ./{name}" in dockerfile for name in packages), packages
