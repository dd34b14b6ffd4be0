"""The lock files in requirements/ (which `make` and the Dockerfile install from, with --require-hashes)
agree with the pins in pyproject.toml: every pin at its pinned version, every package with hashes, and
the run set the same versions as the dev set. After changing a pin, `make lock` rewrites them."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(.*?)\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        name, version = requirement.split("==")
        found[canonical(name.split("[")[0])] = version
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) for each entry of a `uv pip compile --generate-hashes` file."""
    entries, current = {}, None
    for line in path.read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            current = canonical(match[1])
            entries[current] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


RUN = locked(ROOT / "requirements" / "run.txt")
DEV = locked(ROOT / "requirements" / "dev.txt")
RUN_PINS = pins(PYPROJECT["project"]["dependencies"])
DEV_PINS = pins(PYPROJECT["project"]["optional-dependencies"]["dev"])


@pytest.mark.parametrize(("name", "version"), sorted(RUN_PINS.items()))
def test_every_run_pin_is_locked_at_its_version_in_both_sets(name, version):
    assert RUN.get(name, (None,))[0] == version, f"requirements/run.txt: run `make lock` ({name})"
    assert DEV.get(name, (None,))[0] == version, f"requirements/dev.txt: run `make lock` ({name})"


@pytest.mark.parametrize(("name", "version"), sorted(DEV_PINS.items()))
def test_every_dev_pin_is_locked_at_its_version_in_the_dev_set(name, version):
    assert DEV.get(name, (None,))[0] == version, f"requirements/dev.txt: run `make lock` ({name})"


def test_every_locked_package_has_hashes_and_the_run_set_matches_the_dev_set():
    assert len(RUN) > len(RUN_PINS) and len(DEV) > len(RUN)
    assert [name for name, (_, hashes) in {**RUN, **DEV}.items() if hashes == 0] == []
    assert {name: version for name, (version, _) in RUN.items() if DEV[name][0] != version} == {}


def test_make_and_the_image_install_from_the_lock_files_only():
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "pip install --quiet --require-hashes -r requirements/run.txt" in makefile
    assert "pip install --quiet --require-hashes -r requirements/dev.txt" in makefile
    assert makefile.count("pip install --quiet --no-deps -e .") == 2
    assert "pip install --require-hashes -r requirements/run.txt && pip install --no-deps ." in dockerfile
