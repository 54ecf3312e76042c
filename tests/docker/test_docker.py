"""docker/: no Docker engine runs where the tests run, so the files are checked for what can go
wrong without one: compose.yaml against the Compose Specification's JSON schema, every file
they name exists, every NIXA_* they set is a setting NIXA reads, and the topology is the one the issue asks for.

compose-spec.json beside this file is a pinned copy of schema/compose-spec.json from the Compose
Specification's repository (github.com/compose-spec/compose-spec, commit
170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0), unchanged.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from idp.settings import SECRET_SETTINGS, Settings
from tests.topology.harness import placeholders, render

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text(encoding="utf-8"))
TEMPLATE = (DOCKER / "nginx" / "nixa.conf.template").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))  # merge keys (<<) resolved


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def nixa_setting_names() -> set[str]:
    names = {f"NIXA_{name.upper()}" for name in Settings.model_fields}
    return names | {f"NIXA_{name.upper()}_FILE" for name in SECRET_SETTINGS}


def test_compose_file_is_valid_against_the_compose_spec(compose):
    assert schema_errors(compose) == []


@pytest.mark.parametrize("damage", [
    lambda c: c["services"]["nixa"].__setitem__("enviroment", {"NIXA_ISSUER": "https://x"}),  # a misspelt key
    lambda c: c["services"]["nixa"].__setitem__("replicas", 2),  # belongs under deploy:
    lambda c: c["services"]["redis"]["healthcheck"].__setitem__("tries", 3),
    lambda c: c["services"]["nginx"].__setitem__("depends_on", {"nixa": {"condition": "when_ready"}}),
    lambda c: c.__setitem__("service", {}),
])
def test_the_schema_check_catches_a_broken_file(compose, damage):
    broken = copy.deepcopy(compose)
    damage(broken)
    assert schema_errors(broken), "the schema check accepted a broken compose file"


def test_topology_is_the_issue_s(compose):
    services = compose["services"]
    assert services["nixa"]["deploy"]["replicas"] >= 2
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert services["postgres"]["image"].startswith("postgres:")
    for sandbox, module in (("registry", "connectors.population.sandbox"), ("sms", "connectors.telecom.sandbox"),
                            ("ca", "connectors.certificate.sandbox")):
        assert module in " ".join(services[sandbox]["command"]), sandbox
    assert services["nixa"]["environment"]["NIXA_REDIS_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in services["nixa"]["environment"]["NIXA_DATABASE_URL"]


def test_nginx_is_the_only_trusted_proxy_and_fills_every_placeholder(compose):
    nginx = compose["services"]["nginx"]
    address = nginx["networks"]["nixa"]["ipv4_address"]
    assert json.loads(compose["services"]["nixa"]["environment"]["NIXA_TRUSTED_PROXIES"]) == [f"{address}/32"]
    subnet = compose["networks"]["nixa"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert set(nginx["environment"]) == placeholders(TEMPLATE)
    assert "/etc/nginx/templates/nixa.conf.template" in " ".join(nginx["volumes"])
    rendered = render(TEMPLATE, nginx["environment"])
    assert "proxy_pass http://nixa;" in rendered and "upstream nixa" in (DOCKER / "nginx" / "upstream.conf").read_text()
    assert "ssl_verify_client optional_no_ca;" in rendered
    assert "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;" in rendered
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in rendered


def test_every_file_named_exists(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from=" not in args:
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}"
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text()
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from=" not in args:
            assert not any(source.strip("./") in ignore.split() for source in shlex.split(args)[:-1])


def test_every_nixa_variable_is_a_setting(compose):
    known = nixa_setting_names()
    used = set()
    for service in compose["services"].values():
        used |= {k for k in (service.get("environment") or {}) if k.startswith("NIXA_")}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            used |= {pair.split("=")[0] for pair in shlex.split(args) if pair.startswith("NIXA_")}
    assert used and used <= known, sorted(used - known)
    assert "NIXA_MASTER_KEY" in used and "NIXA_DATABASE_URL" in used


def test_dockerfile_builds_a_wheel_and_runs_slim_unprivileged_with_a_health_check(app):  # noqa: ANN001
    steps = dockerfile_instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and all(re.match(r"python:3\.\d+-slim\b", f) for f in froms)
    build = steps[: next(i for i, (w, _) in enumerate(steps) if w == "FROM" and i > 0)]
    assert any(w == "RUN" and "pip wheel" in a for w, a in build)
    final = steps[len(build):]
    assert any(w == "COPY" and "--from=build" in a for w, a in final)
    assert any(w == "RUN" and "pip install" in a and ".whl" in a for w, a in final)
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = " ".join(a for w, a in final if w == "HEALTHCHECK")
    assert "/healthz" in health
    assert "/healthz" in {getattr(r, "path", "") for r in app.routes}
    assert any(w == "CMD" and '"serve"' in a for w, a in final)
