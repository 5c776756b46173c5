"""The binaries freeze the redis-py that the sources are tested with: build/requirements.txt pins the
same version as pyproject.toml's `redis` extra (and its `test` extra), so a bump of one without the
other fails here instead of shipping binaries that run a client the tests never saw."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pins(lines: list[str]) -> dict[str, str]:
    """name -> exact version of every `name==version` requirement (markers ignored)."""
    pins = {}
    for line in lines:
        spec = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in spec:
            name, _, version = spec.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_binaries_pin_the_redis_py_the_sources_are_tested_with():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    build = _pins((REPO / "build" / "requirements.txt").read_text().splitlines())
    assert "redis" in build, "build/requirements.txt must pin redis-py for AGENT_RELAY_URL"
    assert _pins(extras["redis"])["redis"] == build["redis"]
    assert _pins(extras["test"])["redis"] == build["redis"]


def test_the_build_includes_redis_py_without_its_optional_extras():
    script = (REPO / "build" / "build.sh").read_text()
    assert "--include-package=redis" in script
    for optional in ("hiredis", "cryptography", "OpenSSL", "requests", "jwt", "redis.ocsp"):
        assert f"--nofollow-import-to={optional}" in script, optional
