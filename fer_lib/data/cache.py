"""The preprocessing cache: its folder, its manifest, its shards of clips, and how they are read and written.

This is the only module that knows the cache's format; preprocessing writes through it, and the
dataset, training, evaluation and the explorer read through it.

    cache_dir/
        manifest.json            {"format", "hash", "preprocess_config": asdict(PreprocessConfig), "created"}
        actor_01.shard ...       one shard per actor: an uncompressed zip (any zip tool lists it) holding
            index.json           {"format", "hash", "actor", "origin", "clips": {stem: source key}}
            01-01-03-02-01-01-01.npz   one member per clip: its entry (np.savez, below)
        problems/<stem>.json     a clip that could not be cached: kind, reason, source key
        report.json, problems.csv  what was found vs expected, what was cached, every problem

Why shards: Google Drive serves many small files slowly (1440 files of 2.5 MB in format 1), and 24
files of ~20 MB copy and list fast. A clip stays readable on its own: the Dataset opens the shard,
reads the zip's table of contents and one member (`read_entry`), so no shard is ever loaded whole.
`RavdessClip.path` of a cached clip is `cache_dir/actor_01.shard/<stem>.npz`: the shard, then the
member, so `Path(path).stem` is the clip's stem as it was for a per-clip file.

An entry, as `read_entry` returns it (`ENTRY_FIELDS`, the same arrays format 1 stored raw):

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

Stored compactly (`encode_entry`): the T crops as baseline JPEG files (quality `JPEG_QUALITY`, no
chroma subsampling: >= 38 dB PSNR against the raw crops, measured by `bench/bench_cache.py`)
concatenated in `frames_jpeg` with their `frames_offsets`; the audio as int16 scaled to its own peak
(`audio_pcm`, `audio_peak`); the source key of the clip (`source_size`, `source_mtime`). About 0.3 MB
a clip instead of 2.6 MB.

Rules:
- The manifest hash covers the cache format and every PreprocessConfig field. Opening a cache_dir
  built with other parameters (`prepare`) raises `CacheMismatchError` naming the changed fields;
  `overwrite=True` deletes this cache's files, and only those. A cache of an older format (format 1:
  one .npz per clip) is recognised: readers refuse it with a one-line DataError, and `prepare`
  deletes its entries and rebuilds it, saying so. Nothing is ever read in the wrong format.
- Freshness: a cached clip is keyed by its source, the file's name (the stem), size and whole-second
  modification time (`source_key`), and by the manifest hash. A source that is present and differs
  is processed again; a source that is absent leaves its clip cached (the RAVDESS zips and their
  clips are deleted once cached, and the cache must outlive them).
- A shard is written whole and atomically (`fer_lib.fileio`) once its actor is complete. Until then
  each finished clip is a file in the staging folder (`Staging`), on the runtime's local disk, so a
  killed run redoes nothing it finished and Drive only ever sees complete shards.
- A problem marker remembers the source key: a changed source is tried again.
- Integrity: a shard is checked when read (it opens as a zip and holds its index; each member's CRC-32
  as it is read). A damaged one is never skipped: listing the clips (training, evaluation) raises a
  one-line `DamagedShardError` naming it and the command that rebuilds its actor; preprocessing
  rebuilds it from the actor's raw clips when they are there (saying so) and otherwise reports it as a
  problem, as `preprocess --check` does (`shard_problems`, which also checks every CRC).
- Readers take a cache only when no builder holds it (`check_not_building`, `fer_lib.locking`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fer_lib import locking
from fer_lib.config import ConfigError, PreprocessConfig, from_dict
from fer_lib.data.index import PROBLEMS_CSV, REPORT_JSON, DataError, DataIndex, Problem
from fer_lib.data.ravdess import ALL_ACTORS, NAME_PATTERN, RavdessClip, RavdessNameError, parse_name
from fer_lib.fileio import atomic_file, atomic_write_text, stale_temporaries

FORMAT = 2
MANIFEST = "manifest.json"
PROBLEMS_DIR = "problems"
SHARD_SUFFIX = ".shard"
SHARD_INDEX = "index.json"
ENTRY_SUFFIX = ".npz"
ENTRY_FIELDS = ("audio", "audio_length", "frames", "landmarks", "label", "actor", "face_detected", "window_start",
                "frame_times", "duration")
JPEG_QUALITY = 90  # with 4:4:4 chroma; part of the format (a change needs a new FORMAT)
# What one cached clip costs on disk, for the Drive budget: 16 JPEG crops of up to 24 KB (measured
# 14 KB on the synthetic face, more on a textured one) + 2 bytes per audio sample + the rest.
JPEG_BYTES_PER_PIXEL = 24_000 / 224**2
ENTRY_OVERHEAD_BYTES = 4_000


class CacheMismatchError(DataError):
    """The cache_dir was built with other preprocessing parameters."""


class DamagedShardError(DataError):
    """A shard of the cache cannot be read (cut short, bits changed); the message names it and how to rebuild it."""


class DiskSpaceError(DataError):
    """What is about to be written does not fit in the free space of its disk."""


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


def config_hash(config: PreprocessConfig) -> str:
    """16 hex digits over the cache format and every PreprocessConfig field."""
    payload = json.dumps({"format": FORMAT, "config": dataclasses.asdict(config)}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _build_hint(cache_dir) -> str:
    return (f"notebook 01_data_check (it downloads RAVDESS), or `python -m fer_lib.preprocess --data_dir RAW "
            f"--cache_dir {cache_dir}`")


def read_manifest(cache_dir: str | Path) -> dict:
    """The manifest of a cache of the current format; a one-line DataError for anything else."""
    path = Path(cache_dir) / MANIFEST
    if not Path(cache_dir).is_dir():
        raise DataError(f"cache folder not found: {cache_dir}; build it with {_build_hint(cache_dir)}")
    if not path.is_file():
        raise DataError(f"no {MANIFEST} in {cache_dir}: not a preprocessing cache; run {_build_hint(cache_dir)} first")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rebuild the cache with --overwrite") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is damaged (not a mapping); rebuild the cache with --overwrite")
    if manifest.get("format") != FORMAT:
        what = "one .npz file per clip" if manifest.get("format") == 1 else "another fer_lib version's"
        raise DataError(f"{cache_dir} is a cache of format {manifest.get('format')} ({what}), which this fer_lib "
                        f"does not read (format {FORMAT}: one shard per actor); {_build_hint(cache_dir)} rebuilds it")
    try:
        config = from_dict(PreprocessConfig, manifest["preprocess_config"])
    except (ConfigError, KeyError) as exc:
        raise DataError(f"{path} does not match this version of fer_lib ({exc}); "
                        "rebuild the cache with --overwrite or use a new cache_dir") from None
    if config_hash(config) != manifest.get("hash"):  # a flipped byte in either: not other parameters
        raise DataError(f"{path} is damaged (its hash {manifest.get('hash')!r} is not that of its preprocess_config); "
                        "rebuild the cache with --overwrite or use a new cache_dir")
    return manifest


def manifest_hash(cache_dir: str | Path) -> str:
    """The hash of the preprocessing parameters a cache was built with (keys embedding caches, checkpoints)."""
    return read_manifest(cache_dir)["hash"]


def manifest_config(cache_dir: str | Path) -> PreprocessConfig:
    """The PreprocessConfig a cache was built with."""
    return from_dict(PreprocessConfig, read_manifest(cache_dir)["preprocess_config"])


def check_not_building(cache_dir: str | Path) -> None:
    """DataError when a builder (preprocessing, the download) holds `cache_dir`: the clips it has written so
    far are not the cache, and training or evaluating on them would silently use fewer actors. The readers
    call this (`fer_lib.preprocess.ensure_cache`) before listing the clips."""
    if not (Path(cache_dir) / locking.LOCK_NAME).exists():  # nobody holds it: nothing is written to find out
        return
    try:
        held = locking.is_held(cache_dir)
    except OSError:  # a folder this user may only read: no builder of this user's is in it
        held = False
    if held:
        raise DataError(f"{cache_dir} is still being written by {locking.holder(cache_dir)}; wait until it "
                        "finishes (or stop it and run it again to finish the cache), then run this command again")


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
    legacy = _legacy_entries(cache_dir)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {"hash": "unreadable", "preprocess_config": {}}
        if old.get("hash") == wanted["hash"]:
            return old
        if isinstance(old.get("format"), int) and old["format"] < FORMAT:
            print(f"{cache_dir} holds a cache of format {old['format']} ({len(legacy)} .npz files, one per clip): "
                  f"deleting it and rebuilding it in format {FORMAT} (one shard per actor)")
            overwrite = True
        elif not overwrite:
            before, after = _flatten(old.get("preprocess_config", {})), _flatten(wanted["preprocess_config"])
            changed = [f"{k}: {before.get(k, '-')} -> {after.get(k, '-')}" for k in sorted(set(before) | set(after))
                       if before.get(k) != after.get(k)]
            what = "; ".join(changed) if changed else f"cache format {old.get('format')} -> {FORMAT}"
            raise CacheMismatchError(f"{cache_dir} was built with other preprocessing parameters ({what}); "
                                     "use a new --cache_dir, or pass --overwrite (overwrite=True) to delete and rebuild it")
    elif (legacy or cached_stems(cache_dir)) and not overwrite:
        raise CacheMismatchError(f"{cache_dir} holds {len(legacy) or len(cached_stems(cache_dir))} cached clips but no "
                                 f"{MANIFEST}, so their parameters are unknown; use a new --cache_dir, or pass "
                                 "--overwrite to rebuild it")
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


def _legacy_entries(cache_dir: Path) -> list[Path]:
    """Format 1's per-clip files (`<stem>.npz` at the top of the cache folder)."""
    return sorted(p for p in cache_dir.glob(f"*{ENTRY_SUFFIX}") if NAME_PATTERN.match(p.stem))


def _own_files(cache_dir: Path) -> list[Path]:
    """The files this module writes in a cache_dir, in this format or format 1 (what overwrite deletes)."""
    files = _shards(cache_dir) + _legacy_entries(cache_dir)
    files += stale_temporaries(cache_dir) + stale_temporaries(cache_dir / PROBLEMS_DIR)
    files += sorted((cache_dir / PROBLEMS_DIR).glob("*.json")) if (cache_dir / PROBLEMS_DIR).is_dir() else []
    files += [p for p in (cache_dir / MANIFEST, cache_dir / REPORT_JSON, cache_dir / PROBLEMS_CSV) if p.exists()]
    return files


def remove_stale_temporaries(cache_dir: str | Path) -> None:
    """Delete the temporary files a killed run left (call it only while holding the cache, `fer_lib.locking`)."""
    for folder in (Path(cache_dir), Path(cache_dir) / PROBLEMS_DIR):
        for stray in stale_temporaries(folder):
            stray.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Entries: one clip, encoded
# --------------------------------------------------------------------------------------------


def source_key(source: str | Path) -> dict:
    """What a cached clip is keyed by besides its name: {"size", "mtime"} (whole seconds) of its source file."""
    st = Path(source).stat()
    return {"size": st.st_size, "mtime": int(st.st_mtime)}


def encode_entry(arrays: dict, key: dict) -> bytes:
    """One clip's arrays (ENTRY_FIELDS) and its source key -> the bytes of its shard member."""
    missing = [name for name in ENTRY_FIELDS if name not in arrays]
    if missing:
        raise ValueError(f"cache entry lacks {missing}")
    jpegs = []
    for crop in arrays["frames"]:  # (3, S, S)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(crop.transpose(1, 2, 0))).save(
            buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        jpegs.append(np.frombuffer(buffer.getvalue(), np.uint8))
    audio = np.asarray(arrays["audio"], np.float32)
    peak = float(np.abs(audio).max()) or 1.0
    stored = {name: arrays[name] for name in ENTRY_FIELDS if name not in ("audio", "frames")}
    stored.update(
        frames_jpeg=np.concatenate(jpegs), frames_offsets=np.cumsum([0] + [j.size for j in jpegs]).astype(np.int64),
        audio_pcm=np.round(audio * (32767 / peak)).astype(np.int16), audio_peak=np.float32(peak),
        source_size=np.int64(key["size"]), source_mtime=np.int64(key["mtime"]),
    )
    buffer = io.BytesIO()
    np.savez(buffer, **stored)
    return buffer.getvalue()


def decode_entry(data: bytes) -> dict[str, np.ndarray]:
    """The bytes of a shard member -> the arrays of ENTRY_FIELDS (module docstring).

    The crops are decoded by torchvision's `decode_jpeg` (libjpeg-turbo), straight into channels-first
    tensors, without the copies a PIL image takes to become a (T, 3, S, S) array."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        entry = {name: np.asarray(stored[name]) for name in ENTRY_FIELDS if name not in ("audio", "frames")}
        jpeg, offsets = torch.from_numpy(stored["frames_jpeg"]), stored["frames_offsets"].tolist()
        frames = decode_jpeg([jpeg[a:b] for a, b in zip(offsets[:-1], offsets[1:])], mode=ImageReadMode.RGB)
        entry["frames"] = torch.stack(frames).numpy()  # (T, 3, S, S)
        entry["audio"] = stored["audio_pcm"].astype(np.float32) * (float(stored["audio_peak"]) / 32767)
    return entry


def _entry_key(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        return {"size": int(stored["source_size"]), "mtime": int(stored["source_mtime"])}


def entry_path(cache_dir: str | Path, stem: str) -> Path:
    """Where clip `stem` is (or would be) in the cache: `<cache_dir>/actor_AA.shard/<stem>.npz`."""
    return shard_path(cache_dir, parse_name(stem).actor) / f"{stem}{ENTRY_SUFFIX}"


def cache_dir_of(path: str | Path) -> Path:
    """The cache folder of a cached clip's path (`RavdessClip.path`)."""
    return Path(path).parent.parent


def read_entry(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of one cached clip (`RavdessClip.path` of a cached clip: shard / member). The zip's CRC-32
    of the member is checked as it is read: a damaged one is a DamagedShardError, never wrong arrays."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path.parent) as shard:
            data = shard.read(path.name)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise damaged_shard(path.parent, f"cannot read {path.name} ({exc})") from None
    return decode_entry(data)


# --------------------------------------------------------------------------------------------
# Shards: one actor's clips
# --------------------------------------------------------------------------------------------


def shard_path(cache_dir: str | Path, actor: int) -> Path:
    return Path(cache_dir) / f"actor_{int(actor):02d}{SHARD_SUFFIX}"


def damaged_shard(shard: Path, why: str) -> DamagedShardError:
    """The one-line error of a damaged shard: which, why, and the command that rebuilds its actor."""
    actor = int(shard.name[len("actor_"):len("actor_") + 2])
    return DamagedShardError(
        f"damaged cache shard {shard}: {why}; rebuild actor {actor}: put Actor_{actor:02d}'s clips (or "
        f"Video_Speech_Actor_{actor:02d}.zip) in RAW and run `python -m fer_lib.preprocess --data_dir RAW "
        f"--cache_dir {shard.parent}`")


def _open_shard(path: Path, crc: bool = False) -> list[str]:
    """The member names of a shard, after checking it opens, holds its index and (`crc`) that every member's
    CRC-32 matches (reads the whole shard). DamagedShardError otherwise."""
    try:
        with zipfile.ZipFile(path) as shard:
            json.loads(shard.read(SHARD_INDEX))
            bad = shard.testzip() if crc else None
            if bad is not None:
                raise zipfile.BadZipFile(f"{bad} fails its CRC-32 check")
            return shard.namelist()
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        raise damaged_shard(path, f"not a complete zip ({exc})") from None


def shard_problems(cache_dir: str | Path, crc: bool = True) -> list[Problem]:
    """Every damaged shard of `cache_dir` as a Problem (kind damaged_shard; the reason says how to rebuild it),
    for the check and the preprocessing report. `crc`: read every member (the whole cache) to check it."""
    problems = []
    for path in _shards(Path(cache_dir)):
        try:
            _open_shard(path, crc)
        except DamagedShardError as exc:
            problems.append(Problem(str(path), "damaged_shard", str(exc), stage="preprocess"))
    return problems


def _shards(cache_dir: Path) -> list[Path]:
    return sorted(Path(cache_dir).glob(f"actor_[0-9][0-9]{SHARD_SUFFIX}"))


def shard_index(cache_dir: str | Path, actor: int) -> Optional[dict]:
    """The index of an actor's shard ({"hash", "origin", "clips": {stem: source key}}), None when there is none."""
    path = shard_path(cache_dir, actor)
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as shard:
            return json.loads(shard.read(SHARD_INDEX))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        # damaged (it was written atomically, so by something else): rebuilt like a missing one, saying so
        tqdm.write(f"{path} is damaged ({exc}): its actor's clips are preprocessed again")
        return None


def read_members(cache_dir: str | Path, actor: int, stems: Iterable[str]) -> dict[str, bytes]:
    """The stored bytes of some clips of an actor's shard, to carry them into its next version."""
    stems = list(stems)
    if not stems:
        return {}
    with zipfile.ZipFile(shard_path(cache_dir, actor)) as shard:
        return {stem: shard.read(f"{stem}{ENTRY_SUFFIX}") for stem in stems}


def write_shard(cache_dir: str | Path, actor: int, members: dict[str, bytes], manifest_hash: str,
                origin: Optional[dict] = None) -> Path:
    """Write an actor's shard atomically: `members` maps each clip's stem to its encoded entry.

    `origin`: where the actor's clips came from (the download records the RAVDESS zip and its md5),
    so a later download knows the actor is done. Returns the shard's path."""
    index = {"format": FORMAT, "hash": manifest_hash, "actor": int(actor), "origin": origin,
             "clips": {stem: _entry_key(data) for stem, data in sorted(members.items())}}
    path = shard_path(cache_dir, actor)
    with atomic_file(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as shard:
        shard.writestr(SHARD_INDEX, json.dumps(index, indent=1))
        for stem, data in sorted(members.items()):
            shard.writestr(f"{stem}{ENTRY_SUFFIX}", data)
    return path


def cached_stems(cache_dir: str | Path) -> set[str]:
    """Every clip stem in the readable shards of `cache_dir` (reads only the shards' tables of contents; a
    damaged shard counts as holding none: preprocessing rebuilds it, `shard_problems` reports it)."""
    return {c.stem for c in _clips_in_shards(Path(cache_dir), skip_damaged=True)}


def _clips_in_shards(cache_dir: Path, skip_damaged: bool = False) -> list[RavdessClip]:
    """The clips of every shard; DamagedShardError for a shard that cannot be read, unless `skip_damaged`."""
    clips = []
    for path in _shards(cache_dir):
        try:
            names = _open_shard(path)
        except DamagedShardError:
            if skip_damaged:
                continue
            raise
        for name in names:
            if name.endswith(ENTRY_SUFFIX):
                try:
                    clips.append(parse_name(path / name))
                except RavdessNameError:
                    continue
    return clips


def list_clips(cache_dir: str | Path, actors: Optional[Iterable[int]] = None) -> list[RavdessClip]:
    """The cached clips (sorted by actor, then name), optionally only those of `actors`; opens no entry."""
    cache_dir = Path(cache_dir)
    read_manifest(cache_dir)  # one-line DataError for a missing folder, no cache, or another format
    wanted = None if actors is None else {int(a) for a in actors}
    clips = [c for c in _clips_in_shards(cache_dir) if wanted is None or c.actor in wanted]
    return sorted(clips, key=lambda c: (c.actor, c.stem))


# --------------------------------------------------------------------------------------------
# Staging: finished clips of actors whose shard is not written yet
# --------------------------------------------------------------------------------------------


class Staging:
    """Finished clips waiting for their actor's shard, in `<root>/<key of cache_dir>/actor_AA/<stem>.npz`.

    `root` is on the runtime's local disk in Colab (`paths.DriveLayout.staging`), so Drive only sees
    complete shards. Only the process holding the cache (`fer_lib.locking`) uses its staging folder:
    `open()` deletes what an interrupted run left that cannot be used any more (temporary files, a
    staging folder of other preprocessing parameters); finished clips are kept and picked up.
    """

    def __init__(self, root: str | Path, cache_dir: str | Path, manifest_hash: str):
        key = hashlib.sha256(str(Path(cache_dir).expanduser().resolve()).encode()).hexdigest()[:16]
        self.dir = Path(root).expanduser() / key
        self.cache_dir, self.manifest_hash = Path(cache_dir), manifest_hash

    def open(self) -> "Staging":
        stamp = self.dir / MANIFEST
        try:
            same = json.loads(stamp.read_text()).get("hash") == self.manifest_hash
        except (OSError, json.JSONDecodeError):
            same = False
        if not same and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not same:
            atomic_write_text(stamp, json.dumps({"cache_dir": str(self.cache_dir), "hash": self.manifest_hash}))
        for folder in [p for p in self.dir.iterdir() if p.is_dir()]:
            for stray in stale_temporaries(folder):
                stray.unlink(missing_ok=True)
        return self

    def actor_dir(self, actor: int) -> Path:
        return self.dir / f"actor_{int(actor):02d}"

    def put(self, stem: str, data: bytes) -> Path:
        path = self.actor_dir(parse_name(stem).actor) / f"{stem}{ENTRY_SUFFIX}"
        with atomic_file(path) as handle:
            handle.write(data)
        return path

    def keys(self, actor: int) -> dict[str, dict]:
        """stem -> source key of every clip staged for `actor`."""
        folder = self.actor_dir(actor)
        if not folder.is_dir():
            return {}
        keys = {}
        for path in sorted(folder.glob(f"*{ENTRY_SUFFIX}")):
            try:
                keys[path.stem] = _entry_key(path.read_bytes())
            except (ValueError, KeyError, OSError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)  # unreadable: it is redone
        return keys

    def drop(self, stem: str) -> None:
        (self.actor_dir(parse_name(stem).actor) / f"{stem}{ENTRY_SUFFIX}").unlink(missing_ok=True)

    def members(self, actor: int) -> dict[str, bytes]:
        folder = self.actor_dir(actor)
        return {p.stem: p.read_bytes() for p in sorted(folder.glob(f"*{ENTRY_SUFFIX}"))} if folder.is_dir() else {}

    def actors(self) -> list[int]:
        return sorted(int(p.name[-2:]) for p in self.dir.glob("actor_[0-9][0-9]") if any(p.glob(f"*{ENTRY_SUFFIX}")))

    def clear(self, actor: int) -> None:
        shutil.rmtree(self.actor_dir(actor), ignore_errors=True)

    def close(self) -> None:
        """Remove the staging folder once nothing is staged in it any more."""
        if self.dir.is_dir() and not self.actors():
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.dir.parent.rmdir()  # the staging root too, when no other cache stages there


# --------------------------------------------------------------------------------------------
# Problem markers
# --------------------------------------------------------------------------------------------


def record_problem(cache_dir: str | Path, stem: str, source: str | Path, record: dict) -> None:
    """Remember that the clip `stem` (from `source`) could not be cached: `record` has path, kind, reason."""
    marker = Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json"
    atomic_write_text(marker, json.dumps({**record, **source_key(source)}))


def clear_problem(cache_dir: str | Path, stem: str) -> None:
    (Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json").unlink(missing_ok=True)


def known_problem(cache_dir: str | Path, stem: str, source: str | Path) -> Optional[dict]:
    """The recorded problem of `stem` (path, kind, reason) while its source is unchanged; None otherwise."""
    marker = Path(cache_dir) / PROBLEMS_DIR / f"{stem}.json"
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
        if {k: record.get(k) for k in ("size", "mtime")} != source_key(source):
            return None  # the source changed: try again
        return {k: record[k] for k in ("path", "kind", "reason")}
    except (OSError, json.JSONDecodeError, KeyError):
        return None


def recorded_problems(cache_dir: str | Path) -> list[Problem]:
    """Every clip recorded as a problem in `cache_dir` (for a report when the sources are gone)."""
    problems = []
    for marker in sorted((Path(cache_dir) / PROBLEMS_DIR).glob("*.json")):
        try:
            record = json.loads(marker.read_text())
            problems.append(Problem(record["path"], record["kind"], record["reason"], stage="preprocess"))
        except (OSError, json.JSONDecodeError, KeyError):
            continue
    return problems


def as_index(cache_dir: str | Path, actors: Iterable[int] = ALL_ACTORS) -> DataIndex:
    """What the cache holds of `actors` as a DataIndex (their clips, the problems recorded when it was built),
    for the integrity report when the raw clips are gone (downloaded clips are deleted once cached)."""
    cache_dir = Path(cache_dir)
    problems = recorded_problems(cache_dir)
    try:
        report = json.loads((cache_dir / REPORT_JSON).read_text())
        problems += [Problem(**p) for p in report.get("problems", []) if p.get("stage") == "index"]
        skipped = report.get("skipped_not_problems", {})
    except (OSError, ValueError, TypeError):
        skipped = {}
    return DataIndex(root=cache_dir, clips=list_clips(cache_dir), problems=[p for p in problems if _of(p, actors)],
                     skipped=skipped, actors=tuple(actors))


def _of(problem: Problem, actors: Iterable[int]) -> bool:
    """True unless the problem is about a clip (named as RAVDESS names it) of an actor outside `actors`."""
    try:
        return parse_name(problem.path.rsplit(":", 1)[-1]).actor in set(actors)
    except RavdessNameError:
        return True


# --------------------------------------------------------------------------------------------
# The Drive budget
# --------------------------------------------------------------------------------------------


def estimated_bytes(clips: int, config: PreprocessConfig) -> int:
    """An upper estimate of what `clips` cached clips take on disk with `config` (module docstring)."""
    per_clip = (config.input.num_frames * JPEG_BYTES_PER_PIXEL * config.input.image_size ** 2
                + 2 * config.input.num_samples + ENTRY_OVERHEAD_BYTES)
    return int(clips * per_clip)


def free_bytes(folder: str | Path) -> int:
    """Free space (statvfs, what this user may write) on the disk of `folder` or of its nearest existing parent."""
    folder = Path(folder).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def check_space(folder: str | Path, needed: int, what: str) -> None:
    """Print what is about to be written to `folder` and the free space there; DiskSpaceError when it does not fit."""
    free = free_bytes(folder)
    print(f"{what}: about {gigabytes(needed)} to write to {folder}; free there: {gigabytes(free)}")
    if needed > free:
        raise DiskSpaceError(f"{what} needs about {gigabytes(needed)} in {folder} but only {gigabytes(free)} is "
                             "free: free some space there (or choose another folder), then run again")


# --------------------------------------------------------------------------------------------
# Colab: a local copy of the cache on Drive
# --------------------------------------------------------------------------------------------


def copy_to_local(cache_dir: str | Path, local_dir: str | Path, progress: bool = True, overwrite: bool = False) -> Path:
    """Copy a cache (on Drive) to a local folder; only files missing or changed (size or mtime) there.

    Training reads the local copy at local-disk speed. Each file is copied atomically, so an
    interrupted copy resumes by calling again; the manifest goes last. A local folder holding a
    cache with another manifest hash raises DataError unless `overwrite=True` (then its files are
    deleted first). Returns `local_dir` as a Path.
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
            for p in _own_files(dst):
                p.unlink(missing_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dst)
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix in (SHARD_SUFFIX, ".json", ".csv"))
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
    for stale in set(_shards(dst)) - {dst / p.name for p in files}:  # a shard no longer in the source
        stale.unlink()
    return dst
