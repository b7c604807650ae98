"""The requirement files protect a Colab runtime and pin the CPU trio for CI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirement_names(path):
    names = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        names[name] = line
    return names


def test_colab_requirements_never_touch_torch():
    names = requirement_names("requirements-colab.txt")
    assert not {"torch", "torchvision", "torchaudio"} & set(names)
    assert names["facenet-pytorch"] == "facenet-pytorch==2.5.3"
    assert names["transformers"].startswith("transformers>=5")


def test_dev_requirements_pin_the_matched_trio():
    names = requirement_names("requirements-dev.txt")
    assert names["torch"] == "torch==2.11.0"
    assert names["torchvision"] == "torchvision==0.26.0"
    assert names["torchaudio"] == "torchaudio==2.11.0"
    assert "-r requirements-colab.txt" in (ROOT / "requirements-dev.txt").read_text()


def locked_versions(path):
    return {name: line.split("==", 1)[1] for name, line in requirement_names(path).items()}


def test_the_lock_pins_every_requirement_within_its_range_and_matches_this_environment():
    """requirements-lock.txt (scripts/lock.sh) pins every requirement of the dev and Colab files at a version
    their specifiers accept, and it is what the running environment has (setup_env.sh installs it)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    locked = locked_versions("requirements-lock.txt")
    assert all("==" in line for line in requirement_names("requirements-lock.txt").values())
    for path in ("requirements-dev.txt", "requirements-colab.txt"):
        for name, line in requirement_names(path).items():
            requirement = Requirement(line)
            assert name in locked, f"{name} of {path} is not in requirements-lock.txt: run bash scripts/lock.sh"
            assert requirement.specifier.contains(locked[name], prereleases=True), (line, locked[name])
    stale = []
    for name, pinned in locked.items():
        try:
            if version(name) != pinned:
                stale.append(f"{name} {version(name)} installed, {pinned} locked")
        except PackageNotFoundError:
            stale.append(f"{name} not installed")
    assert not stale, f"this environment is not the locked one: {stale}"
    assert "-r requirements-lock.txt" in (ROOT / "scripts" / "setup_env.sh").read_text()


def test_colab_constraints_are_the_locked_versions_and_never_torch():
    constraints = locked_versions("constraints-colab.txt")
    locked = locked_versions("requirements-lock.txt")
    assert not {"torch", "torchvision", "torchaudio", "numpy", "ipython"} & set(constraints)
    assert set(requirement_names("requirements-colab.txt")) <= set(constraints)
    assert all(locked[name] == pinned for name, pinned in constraints.items())
