"""The preprocessing cache: its folder, its manifest, its per-clip entries, and how they are read and written.

This is the only module that knows the cache's format; preprocessing writes through it, and the
dataset, training, evaluation and the explorer read through it.

    cache_dir/
        manifest.json            {"format", "hash", "preprocess_config": asdict(PreprocessConfig), "created"}
        01-01-03-02-01-01-05.npz one entry per clip, named by the clip stem (np.savez, uncompressed)
        problems/<stem>.json     a clip that could not be cached: kind, reason, source size and mtime
        report.json, problems.csv  what was found vs expected, what was cached, every problem

An entry holds (`ENTRY_FIELDS`):

    audio         float32 [num_samples]          mono 16 kHz window, zeros after audio_length
    audio_length  int64   []                     valid samples
    frames        uint8   [T, 3, S, S]           face crops, RGB, channels first
    landmarks     float32 [T, 5, 2]              crop pixels: l-eye, r-eye, nose, l-mouth, r-mouth
    label         int64   []                     0..7, order of fer_lib.EMOTIONS
    actor         int64   []                     1..24
    face_detected bool    [T]                    False: box reused from neighbours, landmarks canonical
    window_start  float64 []                     seconds into the clip
    frame_times   float64 [T]                    time of each frame used
    duration      float64 []                     seconds of audio in the clip

Rules:
- The manifest hash covers the cache format and every PreprocessConfig field. Opening a cache_dir
  built with other parameters (`prepare`) raises `CacheMismatchError` naming the changed fields;
  `overwrite=True` deletes this cache's files, and only those.
- Every file is written atomically (`fer_lib.fileio`): a killed run leaves no half entry, only a
  temporary file that `remove_stale_temporaries` deletes on the next run.
- A problem marker remembers the source's size and mtime: a changed source is tried again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from tqdm.auto import tqdm

from fer_lib.config import ConfigError, PreprocessConfig, from_dict
from fer_lib.data.index import PROBLEMS_CSV, REPORT_JSON, DataError
from fer_lib.data.ravdess import NAME_PATTERN, RavdessClip, RavdessNameError, parse_name
from fer_lib.fileio import atomic_file, atomic_write_text, stale_temporaries

FORMAT = 1
MANIFEST = "manifest.json"
PROBLEMS_DIR = "problems"
ENTRY_SUFFIX = ".npz"
ENTRY_FIELDS = ("audio", "audio_length", "frames", "landmarks", "label", "actor", "face_detected", "window_start",
                "frame_times", "duration")


class CacheMismatchError(DataError):
    """The cache_dir was built with other preprocessing parameters."""


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


def config_hash(config: PreprocessConfig) -> str:
    """16 hex digits over the cache format and every PreprocessConfig field."""
    payload = json.dumps({"format": FORMAT, "config": dataclasses.asdict(config)}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_manifest(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / MANIFEST
    if not Path(cache_dir).is_dir():
        raise DataError(f"cache folder not found: {cache_dir}; build it with "
                        f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {cache_dir}`")
    if not path.is_file():
        raise DataError(f"no {MANIFEST} in {cache_dir}: not a preprocessing cache; run "
                        f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {cache_dir}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rebuild the cache with --overwrite") from None


def manifest_hash(cache_dir: str | Path) -> str:
    """The hash of the preprocessing parameters a cache was built with (keys embedding caches, checkpoints)."""
    return read_manifest(cache_dir)["hash"]


def manifest_config(cache_dir: str | Path) -> PreprocessConfig:
    """The PreprocessConfig a cache was built with."""
    try:
        return from_dict(PreprocessConfig, read_manifest(cache_dir)["preprocess_config"])
    except (ConfigError, KeyError) as exc:
        raise DataError(f"{Path(cache_dir) / MANIFEST} does not match this version of fer_lib ({exc}); "
                        "rebuild the cache with --overwrite or use a new cache_dir") from None


def is_cache(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


MODEL_INPUT_FIELDS = ("sample_rate", "clip_seconds", "num_frames", "image_size")


def check_inputs(cache_dir: str | Path, input_cfg) -> None:
    """CacheMismatchError unless the cache's clips are what a model with `input_cfg` (InputConfig) takes:
    the same sample rate, window, frames per clip and crop size. Training and evaluation both check this."""
    built = manifest_config(cache_dir).input
    changed = [f"{f} {getattr(built, f)} vs {getattr(input_cfg, f)}" for f in MODEL_INPUT_FIELDS
               if getattr(built, f) != getattr(input_cfg, f)]
    if changed:
        raise CacheMismatchError(f"the cache {cache_dir} was built for other model inputs than the model's "
                                 f"({'; '.join(changed)}): preprocess with the model's input settings")


def prepare(cache_dir: str | Path, config: PreprocessConfig, overwrite: bool = False) -> dict:
    """Create or validate `cache_dir` for `config`; returns its manifest. See the module rules."""
    cache_dir = Path(cache_dir).expanduser()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise DataError(f"cache_dir {cache_dir} exists and is not a folder")
    cache_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"format": FORMAT, "hash": config_hash(config), "preprocess_config": dataclasses.asdict(config)}
    path = cache_dir / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {"hash": "unreadable", "preprocess_config": {}}
        if old.get("hash") == wanted["hash"]:
            return old
        if not overwrite:
            before, after = _flatten(old.get("preprocess_config", {})), _flatten(wanted["preprocess_config"])
            changed = [f"{k}: {before.get(k, '-')} -> {after.get(k, '-')}" for k in sorted(set(before) | set(after))
                       if before.get(k) != after.get(k)]
            what = "; ".join(changed) if changed else f"cache format {old.get('format')} -> {FORMAT}"
            raise CacheMismatchError(f"{cache_dir} was built with other preprocessing parameters ({what}); "
                                     "use a new --cache_dir, or pass --overwrite (overwrite=True) to delete and rebuild it")
    elif cached_stems(cache_dir) and not overwrite:
        raise CacheMismatchError(f"{cache_dir} holds {len(cached_stems(cache_dir))} cached clips but no {MANIFEST}, so "
                                 "their parameters are unknown; use a new --cache_dir, or pass --overwrite to rebuild it")
    if overwrite:
        for p in _own_files(cache_dir):
            p.unlink(missing_ok=True)
    manifest = {**wanted, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(path, json.dumps(manifest, indent=2, default=list))
    return manifest


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _own_files(cache_dir: Path) -> list[Path]:
    """The files this module writes in a cache_dir (what overwrite deletes)."""
    files = [entry_path(cache_dir, stem) for stem in cached_stems(cache_dir)]
    files += stale_temporaries(cache_dir) + stale_temporaries(cache_dir / PROBLEMS_DIR)
    files += sorted((cache_dir / PROBLEMS_DIR).glob("*.json")) if (cache_dir / PROBLEMS_DIR).is_dir() else []
    files += [p for p in (cache_dir / MANIFEST, cache_dir / REPORT_JSON, cache_dir / PROBLEMS_CSV) if p.exists()]
    return files


def remove_stale_temporaries(cache_dir: str | Path) -> None:
    """Delete the temporary files a killed run left (call it only while no other run writes here)."""
    for folder in (Path(cache_dir), Path(cache_dir) / PROBLEMS_DIR):
        for stray in stale_temporaries(folder):
            stray.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


def entry_path(cache_dir: str | Path, stem: str) -> Path:
    return Path(cache_dir) / f"{stem}{ENTRY_SUFFIX}"


def write_entry(cache_dir: str | Path, stem: str, arrays: dict) -> Path:
    """Store one clip's arrays (ENTRY_FIELDS) atomically."""
    missing = [name for name in ENTRY_FIELDS if name not in arrays]
    if missing:
        raise ValueError(f"cache entry {stem} lacks {missing}")
    path = entry_path(cache_dir, stem)
    with atomic_file(path) as handle:
        np.savez(handle, **{name: arrays[name] for name in ENTRY_FIELDS})
    return path


def read_entry(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of one entry (`RavdessClip.path` of a cached clip)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: np.asarray(data[name]) for name in data.files}


def cached_stems(cache_dir: str | Path) -> set[str]:
    return {p.stem for p in Path(cache_dir).glob(f"*{ENTRY_SUFFIX}") if NAME_PATTERN.match(p.stem)}


def list_clips(cache_dir: str | Path, actors: Optional[Iterable[int]] = None) -> list[RavdessClip]:
    """The cached clips (sorted by actor, then name), optionally only those of `actors`; opens no entry."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        raise DataError(f"cache folder not found: {cache_dir}; build it with "
                        f"`python -m fer_lib.preprocess --data_dir DIR --cache_dir {cache_dir}`")
    wanted = None if actors is None else {int(a) for a in actors}
    clips = []
    for stem in cached_stems(cache_dir):
        try:
            clip = parse_name(entry_path(cache_dir, stem))
        except RavdessNameError:
            continue
        if wanted is None or clip.actor in wanted:
            clips.append(clip)
    return sorted(clips, key=lambda c: (c.actor, c.stem))


# --------------------------------------------------------------------------------------------
# Problem markers
# --------------------------------------------------------------------------------------------


def _source_signature(source: Path) -> dict:
    st = source.stat()
    return {"size": st.st_size, "mtime": int(st.st_mtime)}


def record_problem(cache_dir: str | Path, stem: str, source: str | Path, record: dict) -> None:
    """Remember that the clip `stem` (from `source`) could not be cached: `record` has path, kind, reason."""
    marker = Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json"
    atomic_write_text(marker, json.dumps({**record, **_source_signature(Path(source))}))


def clear_problem(cache_dir: str | Path, stem: str) -> None:
    (Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json").unlink(missing_ok=True)


def known_problem(cache_dir: str | Path, stem: str, source: str | Path) -> Optional[dict]:
    """The recorded problem of `stem` (path, kind, reason) while its source is unchanged; None otherwise."""
    marker = Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
        if {k: record.get(k) for k in ("size", "mtime")} != _source_signature(Path(source)):
            return None  # the source changed: try again
        return {k: record[k] for k in ("path", "kind", "reason")}
    except (OSError, json.JSONDecodeError, KeyError):
        return None


# --------------------------------------------------------------------------------------------
# Colab: a local copy of the cache on Drive
# --------------------------------------------------------------------------------------------


def copy_to_local(cache_dir: str | Path, local_dir: str | Path, progress: bool = True, overwrite: bool = False) -> Path:
    """Copy a cache (on Drive) to a local folder; only files missing or changed (size or mtime) there.

    Many small files on Drive are slow to read; training reads the local copy. Each file is copied
    atomically, so an interrupted copy resumes by calling again; the manifest goes last. A local
    folder holding a cache with another manifest hash raises DataError unless `overwrite=True` (then
    its entries are deleted first). Returns `local_dir` as a Path.
    """
    src, dst = Path(cache_dir).expanduser(), Path(local_dir).expanduser()
    src_hash = manifest_hash(src)
    if (dst / MANIFEST).is_file():
        try:
            dst_hash = manifest_hash(dst)
        except (DataError, KeyError):
            dst_hash = None
        if dst_hash != src_hash:
            if not overwrite:
                raise DataError(f"{dst} holds a cache with other parameters (hash {dst_hash} vs {src_hash}); "
                                "use another local_dir or overwrite=True")
            for stem in cached_stems(dst):
                entry_path(dst, stem).unlink()
            (dst / MANIFEST).unlink()
    dst.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dst)
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix in (ENTRY_SUFFIX, ".json", ".csv"))
    todo = []
    for p in files:
        target = dst / p.name
        st = p.stat()
        if target.is_file():
            tt = target.stat()
            if tt.st_size == st.st_size and int(tt.st_mtime) == int(st.st_mtime):
                continue
        todo.append(p)
    todo.sort(key=lambda p: p.name == MANIFEST)  # the manifest last
    for p in tqdm(todo, desc="copy cache", unit="file", disable=not progress or not todo):
        with open(p, "rb") as source, atomic_file(dst / p.name) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        shutil.copystat(p, dst / p.name)
    return dst
