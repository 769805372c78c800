"""The lock files agree with pyproject.toml's pins, and the README's commands use them as the
smoke test and CI do."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = _PIN.match(requirement)
        assert match, f"pyproject.toml pins exactly: {requirement}"
        pins[_name(match[1])] = match[2]
    return pins


def _lock(path: str) -> dict[str, str]:
    """name -> version of a lock file, each entry checked to carry hashes."""
    text = (ROOT / path).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1])
    locked = {}
    for entry in entries:
        match = _PIN.match(entry)
        assert match, entry
        assert "--hash=sha256:" in entry, f"{path}: {match[1]} has no hash"
        locked[_name(match[1])] = match[2]
    return locked


def test_the_locks_hold_pyprojects_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, test = _pins(project["dependencies"]), _pins(project["optional-dependencies"]["test"])
    runtime_lock, test_lock = _lock("requirements.lock"), _lock("requirements-test.lock")
    stale = "is stale: run scripts/lock.sh"
    for name, version in runtime.items():
        assert runtime_lock.get(name) == version, f"requirements.lock {stale} ({name})"
    for name, version in (runtime | test).items():
        assert test_lock.get(name) == version, f"requirements-test.lock {stale} ({name})"
    for name in test:
        assert name not in runtime_lock or name in runtime, f"{name} is test-only"
    # One resolution: what both hold, they hold at one version.
    assert {n: v for n, v in test_lock.items() if n in runtime_lock} == runtime_lock


def test_readme_commands_install_from_the_locks_as_smoke_and_ci_do() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    run = ("python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.lock"
           " && .venv/bin/pip install --no-deps -e . && .venv/bin/veritas serve")
    test = ("python3 -m venv .venv && .venv/bin/pip install --require-hashes -r"
            " requirements-test.lock && .venv/bin/pip install --no-deps -e ."
            " && .venv/bin/python -m pytest")
    assert blocks[0] == run and test in [block.split("\n")[0] for block in blocks]
    smoke = (ROOT / "scripts/smoke_fresh_install.sh").read_text()
    assert ('"$venv/bin/pip" install -q --require-hashes -r requirements.lock\n'
            '"$venv/bin/pip" install -q --no-deps -e .\n') in smoke
    ci = (ROOT / ".ci/run").read_text()
    assert ("pip install -q --require-hashes -r requirements-test.lock \\\n"
            "  && .venv/bin/pip install -q --no-deps -e .\n") in ci
