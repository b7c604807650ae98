"""Shared fixtures: real RAVDESS-format mp4 clips (generated once per session) and their cache.

    synthetic_clips  a folder Actor_01..Actor_03/ with 10 clips covering the 8 classes; `.specs`
                     maps each clip stem to its ClipSpec (speech start/end, duration, ...). One clip
                     is designed so that the naive first-3-s window misses speech; one is 2.0 s
                     long (shorter than the 3 s window).
    synthetic_cache  that folder preprocessed once with the default PreprocessConfig (workers=1).

Both are read-only for tests: copy what you need to change.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (actor, label, take, seconds, speech_start, speech_end); None: drawn by draw_spec
CLIP_PLAN = [
    (1, 0, 0, None, None, None),
    (1, 1, 0, None, None, None),
    (1, 2, 0, 4.0, 1.0, 3.6),  # speech 1.0-3.6 s: the window must move off the first 3 s
    (1, 3, 0, None, None, None),
    (2, 4, 0, None, None, None),
    (2, 5, 0, None, None, None),
    (2, 6, 0, None, None, None),
    (3, 7, 0, None, None, None),
    (3, 0, 1, 2.0, 0.4, 1.7),  # shorter than the window: zero-padded
    (3, 1, 1, None, None, None),
]


@pytest.fixture(scope="session")
def synthetic_clips(tmp_path_factory):
    from fer_lib.data import synthetic

    root = tmp_path_factory.mktemp("ravdess")
    rng = np.random.default_rng(2024)
    renderer = synthetic.FaceRenderer()
    specs, paths = {}, []
    for actor, label, take, seconds, start, end in CLIP_PLAN:
        spec = synthetic.draw_spec(label, actor, "av", rng, seconds=seconds)
        if start is not None:
            spec = dataclasses.replace(spec, speech_start=start, speech_end=end)
        name = synthetic.clip_name(label, actor, take)
        path = synthetic.write_clip(root / f"Actor_{actor:02d}" / name, spec, renderer)
        specs[Path(name).stem] = spec
        paths.append(path)
    return SimpleNamespace(root=root, paths=paths, specs=specs)


@pytest.fixture(scope="session")
def synthetic_cache(synthetic_clips, tmp_path_factory):
    from fer_lib.preprocess import preprocess

    cache = tmp_path_factory.mktemp("cache")
    summary = preprocess(synthetic_clips.root, cache, workers=1, progress=False, verbose=False)
    return SimpleNamespace(root=cache, summary=summary, clips=synthetic_clips)


class SmallDisk:
    """A folder that holds about `capacity` bytes, for faults of a full disk.

    A real file system (a tmpfs mounted there) where this machine lets the tests mount one; elsewhere
    every file opened for writing under it with `open` raises ENOSPC once the folder would exceed
    its capacity (a patched `open`, so only in this process).
    """

    def __init__(self, path: Path, capacity: int, monkeypatch):
        import builtins
        import subprocess

        path.mkdir(parents=True)
        self.path, self.capacity = path, capacity
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={capacity}", "tmpfs", str(path)],
                                      capture_output=True).returncode == 0
        if not self.mounted:
            real_open = builtins.open

            def limited_open(file, mode="r", *args, **kwargs):
                handle = real_open(file, mode, *args, **kwargs)
                inside = isinstance(file, (str, os.PathLike)) and Path(file).absolute().is_relative_to(path.absolute())
                return _LimitedFile(handle, self, str(file)) if inside and set(mode) & set("wax+") else handle

            monkeypatch.setattr(builtins, "open", limited_open)

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def resize(self, capacity: int) -> None:
        import subprocess

        self.capacity = capacity
        if self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={capacity}", str(self.path)], check=True)

    def close(self) -> None:
        import subprocess

        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=True)


class _LimitedFile:
    def __init__(self, handle, disk: SmallDisk, name: str):
        self._handle, self._disk, self._name = handle, disk, name

    def write(self, data):
        import errno

        self._handle.flush()
        if self._disk.used() + len(data) > self._disk.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """`small_disk(capacity)` -> a SmallDisk under tmp_path (unmounted at the end of the test)."""
    disks = []

    def make(capacity: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path / f"disk{len(disks)}", capacity, monkeypatch))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


TINY_SIGLIP_ID = "someone/tiny-siglip"


@pytest.fixture
def tiny_hub(tmp_path):
    """A local Hugging Face hub cache (use with HF_HUB_OFFLINE=1 and HF_HUB_CACHE=`cache`) holding two commits of
    `someone/tiny-siglip`, small SigLIP checkpoints written with `save_pretrained`: commit "a"*40 (seed 1) and
    "b"*40 (seed 2), `refs/main` at "a"*40. `weights[commit]`: the sum of its patch-embedding weights;
    `move_main(commit)` moves `refs/main` as a hub update would; `env`: a subprocess environment that uses it."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    from fer_lib.config import TINY_VISUAL_ENCODER

    cache = tmp_path / "hub"
    repo = cache / ("models--" + TINY_SIGLIP_ID.replace("/", "--"))
    weights = {}
    for seed, commit in ((1, "a" * 40), (2, "b" * 40)):
        torch.manual_seed(seed)
        text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=64)
        model = SiglipModel(SiglipConfig(vision_config=TINY_VISUAL_ENCODER, text_config=text))
        model.save_pretrained(repo / "snapshots" / commit)
        weights[commit] = float(model.vision_model.embeddings.patch_embedding.weight.detach().sum())
    (repo / "refs").mkdir()

    def move_main(commit: str) -> None:
        (repo / "refs" / "main").write_text(commit)

    move_main("a" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return SimpleNamespace(cache=cache, repo_id=TINY_SIGLIP_ID, weights=weights, move_main=move_main, env=env)
