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
