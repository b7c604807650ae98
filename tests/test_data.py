"""The RAVDESS data pipeline on real mp4 files: index and check, preprocessing cache, splits, dataset."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_lib import demo, locking
from fer_lib.config import PreprocessConfig
from fer_lib.data import synthetic
from fer_lib.data.augment import augment_audio, augment_frames
from fer_lib.data.cache import (
    CacheMismatchError, Staging, cached_stems, decode_entry, entry_path, list_clips, manifest_hash, read_entry,
    read_members,
)
from fer_lib.data.cache import copy_to_local as copy_cache_to_local
from fer_lib.data.dataset import RavdessDataset, collate, make_loader
from fer_lib.data.faces import select_track, smooth_boxes
from fer_lib.data.index import DataError, build_index, check_data, expected_stems
from fer_lib.data.splits import (
    ALL_ACTORS, SplitError, Split, describe_splits, fixed_split, fold_groups, get_split, kfold_splits,
)
from fer_lib.models.roi import canonical_landmarks
from fer_lib.paths import COLAB_DRIVE_ROOT, COLAB_LOCAL_ROOT, default_layout
from fer_lib.preprocess import main, preprocess

REPO = Path(__file__).resolve().parents[1]


def link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


class FacelessRenderer(synthetic.FaceRenderer):
    """The actor's background and nothing else."""

    def frames(self, spec):
        canvas = np.empty((synthetic.HEIGHT, synthetic.WIDTH, 3), np.uint8)
        canvas[:] = spec.background
        for _ in range(int(round(spec.seconds * synthetic.FPS))):
            yield canvas


@pytest.fixture(scope="module")
def bad_files(synthetic_clips, tmp_path_factory):
    """Real broken files, made once: no audio track, faceless, truncated, 0 bytes."""
    out = tmp_path_factory.mktemp("bad")
    good = synthetic_clips.paths[0]
    spec = synthetic.draw_spec(0, 4, "av", np.random.default_rng(5), seconds=3.2)
    files = {
        "no_audio": synthetic.write_clip(out / "01-01-02-01-01-01-04.mp4", spec, with_audio=False),
        "faceless": synthetic.write_clip(out / "01-01-03-01-01-01-04.mp4", spec, FacelessRenderer()),
        "truncated": out / "01-01-04-01-01-01-04.mp4",
        "empty": out / "01-01-05-01-01-01-04.mp4",
    }
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    return files


def problem_kinds(problems) -> dict:
    out = {}
    for p in problems:
        kind = p.kind if hasattr(p, "kind") else p["kind"]
        out[kind] = out.get(kind, 0) + 1
    return out


# --------------------------------------------------------------------------------------------
# Index and integrity check
# --------------------------------------------------------------------------------------------


def test_index_parses_typed_records(synthetic_clips):
    index = build_index(synthetic_clips.root, progress=False)
    assert len(index.clips) == len(synthetic_clips.paths) and not index.problems
    assert [c.stem for c in index.clips] == sorted((c.stem for c in index.clips), key=lambda s: (int(s[-2:]), s))
    c = next(c for c in index.clips if c.stem == "01-01-03-01-01-01-01")
    assert (c.media_type, c.vocal_channel, c.emotion, c.intensity, c.statement, c.repetition, c.actor) == (1, 1, 3, 1, 1, 1, 1)
    assert c.gender == "male" and c.label == 2 and isinstance(c.path, Path)
    assert next(c for c in index.clips if c.actor == 2).gender == "female"
    assert len(expected_stems(1)) == 60 and len(expected_stems(1, vocal_channel=2)) == 44 and not expected_stems(18, 2)


def test_check_reports_every_bad_kind(synthetic_clips, bad_files, tmp_path, capsys):
    data = tmp_path / "data"
    a, b = synthetic_clips.paths[:2]
    link(a, data / "Actor_01" / a.name.upper().replace(".MP4", ".MP4"))  # upper-case extension is accepted
    link(b, data / "nested" / "deeper" / "Actor_01" / b.name)  # any nesting
    link(a, data / "Actor_01" / "clip_final.mp4")  # bad name
    link(a, data / "Actor_01" / "01-01-09-01-01-01-01.mp4")  # emotion 09
    link(a, data / "Actor_01" / "02-01-01-01-01-01-01.mp4")  # video-only: skipped, not a problem
    link(a, data / "Actor_01" / "01-02-01-01-01-01-01.mp4")  # song: skipped by default
    link(b, data / "copy" / b.name)  # the same clip twice
    for kind in ("no_audio", "truncated", "empty"):
        link(bad_files[kind], data / "Actor_04" / bad_files[kind].name)
    (data / "Actor_01" / "notes.txt").write_text("not a clip")
    out = tmp_path / "report"

    index = check_data(data, out_dir=out, progress=False)
    assert sorted(c.stem for c in index.clips) == sorted([a.stem, b.stem])
    assert problem_kinds(index.problems) == {"bad_name": 1, "out_of_range": 1, "duplicate": 1, "no_audio": 1,
                                             "truncated": 1, "empty": 1}
    assert index.skipped == {"song": 1, "video_only": 1}
    by_kind = {p.kind: p for p in index.problems}
    assert "emotion 09" in by_kind["out_of_range"].reason and by_kind["bad_name"].path.endswith("clip_final.mp4")

    printed = capsys.readouterr().out
    assert "2 of 1440 expected" in printed and "24 actors x 60" in printed
    assert "actor 01 (58)" in printed  # the missing clips of a partial actor are named
    assert "1 video-only" in printed and "truncated" in printed

    report = json.loads((out / "report.json").read_text())
    assert report["expected"]["audio_visual_speech_total"] == 1440
    assert report["found"]["audio_visual_speech_total"] == 2
    assert report["found"]["per_actor"]["01"]["neutral"] == 1 and report["found"]["per_actor"]["01"]["calm"] == 1
    assert len(report["missing"]["01"]) == 58 and len(report["missing"]["05"]) == 60
    rows = list(csv.DictReader((out / "problems.csv").open()))
    assert sorted(r["kind"] for r in rows) == sorted(p.kind for p in index.problems)
    assert {"stage", "kind", "path", "reason"} <= set(rows[0])

    with_song = build_index(data, PreprocessConfig(include_song=True), progress=False)
    assert any(c.vocal_channel == 2 for c in with_song.clips) and "song" not in with_song.skipped


def test_missing_or_empty_folder_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(DataError) as err:
        build_index(tmp_path / "nowhere")
    assert "not found" in str(err.value) and "Actor_01/01-01-01-01-01-01-01.mp4" in str(err.value)
    assert "Video_Speech_Actor_XX.zip" in str(err.value) and "\n" not in str(err.value)

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no usable RAVDESS clip") as err:
        build_index(tmp_path / "empty")
    assert "Actor_01/" in str(err.value) and "\n" not in str(err.value)

    assert main(["--data_dir", str(tmp_path / "nowhere"), "--cache_dir", str(tmp_path / "c"), "--no_progress"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: data folder not found")
    assert not (tmp_path / "c").exists()  # nothing created on bad input


def test_only_video_only_files_says_so(synthetic_clips, tmp_path):
    link(synthetic_clips.paths[0], tmp_path / "Actor_01" / "02-01-01-01-01-01-01.mp4")
    with pytest.raises(DataError, match="video-only"):
        build_index(tmp_path)


def test_zip_input_is_unpacked_once(synthetic_clips, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    a, b = synthetic_clips.paths[:2]
    with zipfile.ZipFile(data / "Video_Speech_Actor_01.zip", "w") as zf:
        zf.write(a, f"Actor_01/{a.name}")
        zf.write(b, f"Actor_01/{b.name}")
        zf.write(a, "Actor_01/02-01-01-01-01-01-01.mp4")  # video-only: not extracted, counted
    index = build_index(data, progress=False)
    assert sorted(c.stem for c in index.clips) == sorted([a.stem, b.stem])
    assert index.skipped == {"video_only": 1} and not index.problems
    extracted = data / "Actor_01" / a.name
    assert extracted.read_bytes() == a.read_bytes() and not (data / "Actor_01" / "02-01-01-01-01-01-01.mp4").exists()
    mtime = extracted.stat().st_mtime_ns
    again = build_index(data, progress=False)  # idempotent: nothing extracted twice, no duplicates
    assert len(again.clips) == 2 and not again.problems and extracted.stat().st_mtime_ns == mtime

    elsewhere = tmp_path / "unpacked"
    other = build_index(data, progress=False, unpack_dir=elsewhere)
    assert (elsewhere / "Actor_01" / b.name).is_file()
    assert problem_kinds(other.problems) == {"duplicate": 2}  # the same clips beside the zip and in unpack_dir

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "Video_Speech_Actor_02.zip").write_bytes(b"PK\x03\x04 not really a zip")
    link(a, tmp_path / "broken" / "Actor_01" / a.name)
    broken = build_index(tmp_path / "broken", progress=False)
    assert problem_kinds(broken.problems) == {"bad_zip": 1}


# --------------------------------------------------------------------------------------------
# Preprocessing cache
# --------------------------------------------------------------------------------------------


def test_cache_files_have_the_contract(synthetic_cache):
    cache = synthetic_cache.root
    summary = synthetic_cache.summary
    assert summary["cached"] == summary["new"] == len(synthetic_cache.clips.paths) and summary["problems"] == 0
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["hash"] == manifest_hash(cache) == summary["manifest_hash"]
    assert manifest["preprocess_config"]["input"]["clip_seconds"] == 3.0
    clips = list_clips(cache)
    assert len(clips) == len(synthetic_cache.clips.paths)
    for clip in clips:
        z = read_entry(clip.path)
        assert z["audio"].shape == (48000,) and z["audio"].dtype == np.float32
        assert z["audio_length"].dtype == np.int64 and 0 < int(z["audio_length"]) <= 48000
        assert z["frames"].shape == (16, 3, 224, 224) and z["frames"].dtype == np.uint8
        assert z["landmarks"].shape == (16, 5, 2) and z["landmarks"].dtype == np.float32
        spec = synthetic_cache.clips.specs[clip.stem]
        assert int(z["label"]) == spec.label and int(z["actor"]) == spec.actor
        assert z["face_detected"].all()
        assert z["frames"].std() > 20  # a real picture, not padding
    report = json.loads((cache / "report.json").read_text())
    assert report["cached"]["audio_visual_speech"] == len(synthetic_cache.clips.paths)


def test_window_lies_on_the_speech(synthetic_cache):
    for stem, spec in synthetic_cache.clips.specs.items():
        z = read_entry(entry_path(synthetic_cache.root, stem))
        start, length, audio = float(z["window_start"]), int(z["audio_length"]), z["audio"]
        times = z["frame_times"]
        end = start + 3.0
        speech = spec.speech_end - spec.speech_start
        covered = max(0.0, min(end, spec.speech_end) - max(start, spec.speech_start))
        assert covered >= min(speech, 3.0) - 0.1, (stem, start, spec)
        # the 16 frames are spread uniformly over the same window
        assert start <= times[0] < start + 3.0 / 16 + 0.04
        inside = times[times < spec.seconds - 0.05]
        assert len(inside) == 16 or spec.seconds < 3.0
        assert np.all(np.diff(inside) > 0.1) and np.all(times <= spec.seconds)  # past a short clip's end: its last frame
        if spec.seconds < 3.0:  # shorter than the window: starts at 0, zero-padded, length recorded
            assert start == pytest.approx(0.0, abs=0.03)
            assert length == pytest.approx(spec.seconds * 16000, abs=1100)
            assert not audio[length:].any() and np.abs(audio[:length]).max() > 0.05
        else:
            assert length == 48000
    designed = synthetic_cache.clips.specs["01-01-03-01-01-01-01"]
    assert (designed.speech_start, designed.speech_end) == (1.0, 3.6)
    z = read_entry(entry_path(synthetic_cache.root, "01-01-03-01-01-01-01"))
    assert 0.6 <= float(z["window_start"]) <= 1.0  # the first 3 s would cut 0.6 s of speech
    quiet = np.abs(z["audio"][: int(0.15 * 16000)]).max()
    loud = np.abs(z["audio"][int(1.0 * 16000) : int(2.0 * 16000)]).max()
    assert loud > 10 * quiet  # window starts in the silence just before the speech


def test_crops_contain_the_face(synthetic_cache):
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, min_face_size=60, device="cpu")
    for clip in list_clips(synthetic_cache.root)[:4]:
        z = read_entry(clip.path)
        frames, marks = z["frames"], z["landmarks"]
        assert ((marks >= 0) & (marks <= 224)).all()
        left_eye, right_eye, nose, mouth_l, mouth_r = (marks[:, k] for k in range(5))
        assert (left_eye[:, 0] < right_eye[:, 0]).all() and (mouth_l[:, 0] < mouth_r[:, 0]).all()
        assert (left_eye[:, 1] < nose[:, 1]).all() and (nose[:, 1] < mouth_l[:, 1]).all()
        assert 0.25 * 224 < left_eye[:, 1].mean() < 0.5 * 224 and 0.55 * 224 < mouth_l[:, 1].mean() < 0.8 * 224
        assert abs(marks[:, :, 0].mean() - 112) < 25  # a centred face
        # the fallback template for undetected landmarks lies within one 16 px patch of the detected ones
        assert np.abs(canonical_landmarks(224).numpy() - marks.mean(axis=0)).max() < 10
        # an independent full MTCNN run on the crop finds one face there, with the same landmarks
        boxes, probs, points = detector.detect(frames[8].transpose(1, 2, 0), landmarks=True)
        assert boxes is not None and probs[0] > 0.95
        assert np.abs(points[0] - marks[8]).max() < 12


def test_problems_are_reported_and_good_clips_cached(synthetic_clips, bad_files, tmp_path):
    data = tmp_path / "data"
    good = synthetic_clips.paths[:2]
    for p in good:
        link(p, data / "Actor_01" / p.name)
    for kind in ("no_audio", "faceless", "truncated", "empty"):
        link(bad_files[kind], data / "Actor_04" / bad_files[kind].name)
    cache = tmp_path / "cache"
    summary = preprocess(data, cache, progress=False, verbose=False)
    assert summary["cached"] == summary["new"] == 2
    assert summary["problem_kinds"] == {"empty": 1, "faceless": 1, "no_audio": 1, "truncated": 1}
    assert sorted(cached_stems(cache)) == sorted(p.stem for p in good)
    rows = list(csv.DictReader((cache / "problems.csv").open()))
    assert {r["kind"] for r in rows} == {"empty", "faceless", "no_audio", "truncated"}
    assert {r["stage"] for r in rows} == {"preprocess"}
    faceless = next(r for r in rows if r["kind"] == "faceless")
    assert faceless["path"].endswith(bad_files["faceless"].name) and "no face" in faceless["reason"]

    start = time.perf_counter()
    again = preprocess(data, cache, progress=False, verbose=False)  # nothing new: known problems not retried
    assert again["new"] == 0 and again["problem_kinds"] == summary["problem_kinds"]
    assert time.perf_counter() - start < 5
    fixed = data / "Actor_04" / bad_files["no_audio"].name  # the user replaces a broken file
    link(synthetic_clips.paths[2], fixed)
    third = preprocess(data, cache, progress=False, verbose=False)
    assert third["new"] == 1 and "no_audio" not in third["problem_kinds"] and third["cached"] == 3
    assert not (cache / "problems" / f"{fixed.stem}.json").exists()
    retried = preprocess(data, cache, progress=False, verbose=False, retry_problems=True)
    assert retried["new"] == 0 and retried["problem_kinds"] == {"empty": 1, "faceless": 1, "truncated": 1}


def staged_files(staging: Path) -> dict[str, Path]:
    return {p.stem: p for p in staging.glob("*/actor_*/*.npz")}


def test_resume_after_a_kill(synthetic_clips, tmp_path):
    """Killed mid-actor, finished clips wait in the staging folder (local disk) and are not redone."""
    data, cache, staging = tmp_path / "data", tmp_path / "cache", tmp_path / "staging"
    clips = synthetic_clips.paths[:5]  # actor 1: 4 clips, actor 2: 1
    for p in clips:
        link(p, data / p.parent.name / p.name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "fer_lib.preprocess", "--data_dir", str(data),
                             "--cache_dir", str(cache), "--staging_dir", str(staging), "--workers", "1",
                             "--no_progress"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not staged_files(staging) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {stem: path.read_bytes() for stem, path in staged_files(staging).items()}
    assert 1 <= len(before) < 4 and not list(cache.glob("*.shard")), "the run should have been killed mid-actor"
    for data_bytes in before.values():  # a killed run leaves no half-written clip
        assert decode_entry(data_bytes)["frames"].shape == (16, 3, 224, 224)
    actor_dir = next(iter(staged_files(staging).values())).parent
    strays = [actor_dir / ".01-01-02-01-01-01-01.npz.999.tmp", cache / ".actor_01.shard.999.tmp"]  # killed mid-write
    for stray in strays:
        stray.write_bytes(b"partial")

    summary = preprocess(data, cache, staging_dir=staging, progress=False, verbose=False)
    assert summary["cached"] == len(clips) and summary["resumed"] == len(before)
    assert summary["new"] == len(clips) - len(before)  # staged clips are not processed again
    assert read_members(cache, 1, before) == before  # they went into the shard as they were
    assert sorted(p.name for p in cache.glob("*.shard")) == ["actor_01.shard", "actor_02.shard"]
    assert not any(stray.exists() for stray in strays) and not staging.exists()  # staging cleaned up
    assert len(list_clips(cache)) == len(clips)

    start = time.perf_counter()
    rerun = preprocess(data, cache, staging_dir=staging, progress=False, verbose=False)
    assert rerun["new"] == 0 and rerun["already_cached"] == len(clips)
    assert time.perf_counter() - start < 5


def test_a_full_disk_stops_preprocessing_and_is_recorded_against_no_clip(synthetic_clips, tmp_path, small_disk, capsys):
    """Issue 16.2: a fault of the machine is not a fault of the clip being written (a rerun would skip it)."""
    data = tmp_path / "data"
    clips = synthetic_clips.paths[:3]  # one actor: its shard waits for all three
    for p in clips:
        link(p, data / p.parent.name / p.name)
    disk = small_disk(8 << 20)  # enough for the cache's estimate, until another program fills it
    cache = disk.path / "cache"
    argv = ["--data_dir", str(data), "--cache_dir", str(cache), "--workers", "1", "--no_progress"]
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(main, argv)
        while not running.done() and not staged_files(cache / ".staging"):
            time.sleep(0.01)
        with open(disk.path / "someone_else.bin", "wb") as handle:  # leaves less than one clip (~0.33 MB)
            handle.write(b"\0" * (disk.capacity - disk.used() - 200_000))
        assert running.result() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "nothing was recorded against a clip" in err[0], err
    assert not list((cache / "problems").glob("*.json")) if (cache / "problems").exists() else True
    staged = staged_files(cache / ".staging")
    assert len(staged) == 1  # the clip finished before the disk filled up is kept

    (disk.path / "someone_else.bin").unlink()
    summary = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert summary["cached"] == len(clips) and summary["problems"] == 0
    assert summary["resumed"] == 1 and summary["new"] == len(clips) - 1  # nothing skipped, nothing done twice


def test_preprocessing_stops_before_writing_what_does_not_fit(synthetic_clips, tmp_path, small_disk, capsys):
    data = tmp_path / "data"
    link(synthetic_clips.paths[0], data / "Actor_01" / synthetic_clips.paths[0].name)
    disk = small_disk(200_000)
    assert main(["--data_dir", str(data), "--cache_dir", str(disk.path / "cache"), "--no_progress"]) == 2
    captured = capsys.readouterr()
    assert "the preprocessing cache of 1 clips: about 0.00 GB to write to" in captured.out  # what and the free space
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "needs about" in err[0] and "is free" in err[0], err
    assert not list((disk.path / "cache").glob("*.shard")) and not staged_files(disk.path / "cache" / ".staging")


def test_a_held_cache_stops_a_second_run_and_leftovers_go_on_the_next(synthetic_clips, tmp_path, capsys):
    """Issue 16.4: what an interrupted run left is removed by the next run there, never under a running one."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    clip = synthetic_clips.paths[0]
    link(clip, data / "Actor_01" / clip.name)
    foreign = Staging(cache / ".staging", cache, "0123456789abcdef").open()  # staged with other parameters
    leftovers = [foreign.put(clip.stem, b"from another configuration"), cache / ".actor_01.shard.4242.tmp"]
    leftovers[1].write_bytes(b"partial")

    with locking.exclusive(cache, "preprocessing"):
        assert main(["--data_dir", str(data), "--cache_dir", str(cache), "--workers", "1", "--no_progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"in use by preprocessing (pid {os.getpid()}" in err[0], err
        assert all(p.exists() for p in leftovers) and not list(cache.glob("*.shard"))  # nothing touched

    summary = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert summary["cached"] == 1 and summary["resumed"] == 0  # the foreign clip was not taken
    assert not any(p.exists() for p in leftovers) and not (cache / ".staging").exists()


def test_a_changed_source_is_processed_again_and_nothing_stale_is_used(synthetic_cache, tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    first, second, other = synthetic_cache.clips.paths[:3]  # all of actor 1
    for p in (first, second):
        link(p, data / "Actor_01" / p.name)
    preprocess(data, cache, workers=1, progress=False, verbose=False)
    shard = entry_path(cache, first.stem).parent

    link(other, data / "Actor_01" / first.name)  # the user replaces a file: another size
    changed = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert changed["new"] == 1 and changed["already_cached"] == 1
    now, expected = read_entry(entry_path(cache, first.stem)), read_entry(entry_path(synthetic_cache.root, other.stem))
    np.testing.assert_array_equal(now["audio"], expected["audio"])  # the new source's clip, not the stale one
    assert now["window_start"] == expected["window_start"]

    stamp = shard.stat().st_mtime_ns
    os.utime(data / "Actor_01" / second.name, (time.time() + 5, time.time() + 5))  # same bytes, newer file
    touched = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert touched["new"] == 1 and shard.stat().st_mtime_ns != stamp

    (data / "Actor_01" / second.name).unlink()  # a source that is gone leaves its clip cached
    gone = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert gone["new"] == 0 and cached_stems(cache) == {first.stem, second.stem}


def test_a_cache_of_the_old_format_is_recognised_and_rebuilt(synthetic_clips, tmp_path, capsys):
    data, cache = tmp_path / "data", tmp_path / "cache"
    clip = synthetic_clips.paths[0]
    link(clip, data / "Actor_01" / clip.name)
    cache.mkdir()
    (cache / "manifest.json").write_text(json.dumps({"format": 1, "hash": "0123456789abcdef", "preprocess_config":
                                                     dataclasses.asdict(PreprocessConfig())}))
    np.savez(cache / f"{clip.stem}.npz", audio=np.zeros(48000, np.float32), frames=np.zeros((16, 3, 224, 224), np.uint8))
    for read in (list_clips, manifest_hash, RavdessDataset):
        with pytest.raises(DataError, match="format 1 .one .npz file per clip.") as err:
            read(cache)
        assert "fer_lib.preprocess" in str(err.value) and "\n" not in str(err.value)

    summary = preprocess(data, cache, workers=1, progress=False, verbose=False)
    assert "format 1" in capsys.readouterr().out and summary["new"] == 1
    assert not list(cache.glob("*.npz")) and [c.stem for c in list_clips(cache)] == [clip.stem]
    assert read_entry(entry_path(cache, clip.stem))["frames"].std() > 20


def test_a_zip_without_audio_visual_speech_names_the_zips_needed(synthetic_clips, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    with zipfile.ZipFile(data / "Audio_Speech_Actors_01-24.zip", "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"RIFF")
    assert main(["--data_dir", str(data), "--cache_dir", str(tmp_path / "cache"), "--no_progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Audio_Speech_Actors_01-24.zip holds no audio-visual speech clip" in err[0], err
    assert "Video_Speech_Actor_01.zip ... Video_Speech_Actor_24.zip" in err[0]

    link(synthetic_clips.paths[0], data / "Actor_01" / synthetic_clips.paths[0].name)  # beside a usable clip: listed
    index = build_index(data, progress=False)
    assert [(p.kind, p.path) for p in index.problems] == [("wrong_zip", "Audio_Speech_Actors_01-24.zip")]


def test_smoke_mode_never_writes_into_the_drive_layout(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))  # as in a Colab runtime
    scratch, drive = default_layout(smoke=True), default_layout()
    assert scratch.root == COLAB_DRIVE_ROOT / "smoke" and scratch.local == COLAB_LOCAL_ROOT / "smoke"
    assert scratch.ravdess != drive.ravdess and scratch.preprocessed != drive.preprocessed and scratch.runs != drive.runs
    assert scratch.on_drive and scratch.is_scratch and not drive.is_scratch  # Drive: smoke runs survive the runtime
    assert drive.root == COLAB_DRIVE_ROOT and drive.on_drive
    with pytest.raises(DataError, match="scratch root"):
        demo.ensure_clips(drive)


def test_changed_parameters_invalidate_the_cache(synthetic_clips, tmp_path):
    data = tmp_path / "data"
    clip = synthetic_clips.paths[0]
    link(clip, data / "Actor_01" / clip.name)
    cache = tmp_path / "cache"
    first = preprocess(data, cache, progress=False, verbose=False)
    old = entry_path(cache, clip.stem)
    mtime = old.parent.stat().st_mtime_ns  # the clip's shard

    changed = PreprocessConfig()
    changed.input.clip_seconds = 2.0
    with pytest.raises(CacheMismatchError) as err:
        preprocess(data, cache, changed, progress=False, verbose=False)
    message = str(err.value)
    assert "input.clip_seconds: 3.0 -> 2.0" in message and "--overwrite" in message and "\n" not in message
    assert old.parent.stat().st_mtime_ns == mtime and manifest_hash(cache) == first["manifest_hash"]  # untouched

    second = preprocess(data, cache, changed, overwrite=True, progress=False, verbose=False)
    assert second["manifest_hash"] != first["manifest_hash"]
    assert manifest_hash(cache) == second["manifest_hash"] and second["new"] == 1
    assert read_entry(old)["audio"].shape == (32000,)

    (cache / "manifest.json").unlink()  # cache files without a manifest: parameters unknown
    with pytest.raises(CacheMismatchError, match="no manifest.json"):
        preprocess(data, cache, progress=False, verbose=False)
    with pytest.raises(DataError, match="not a preprocessing cache"):
        manifest_hash(tmp_path)


def test_parallel_workers_give_the_same_cache(synthetic_cache, tmp_path):
    data = tmp_path / "data"
    clips = synthetic_cache.clips.paths[:3]
    for p in clips:
        link(p, data / p.parent.name / p.name)
    cache = tmp_path / "cache"
    summary = preprocess(data, cache, workers=2, progress=False, verbose=False)
    assert summary["new"] == 3 and summary["problems"] == 0
    assert summary["manifest_hash"] == synthetic_cache.summary["manifest_hash"]
    for p in clips:
        a, b = read_entry(entry_path(cache, p.stem)), read_entry(entry_path(synthetic_cache.root, p.stem))
        np.testing.assert_array_equal(a["audio"], b["audio"])
        assert np.abs(a["frames"].astype(int) - b["frames"].astype(int)).mean() < 2
        assert np.abs(a["landmarks"] - b["landmarks"]).max() < 3


# --------------------------------------------------------------------------------------------
# Face tracking (unit level)
# --------------------------------------------------------------------------------------------


def test_track_keeps_the_largest_central_face_over_time():
    big = np.array([560.0, 250, 720, 450])  # central, large
    small = np.array([40.0, 40, 120, 140])  # corner, small
    pts = np.zeros((5, 2))
    detections = {
        0: (np.stack([small, big]), np.stack([pts, pts])),
        8: (np.stack([big + 10, small]), np.stack([pts, pts])),
        15: (np.stack([small + 3]), np.stack([pts])),  # only the other face: not taken
    }
    chosen = select_track(detections, 1280, 720)
    assert set(chosen) == {0, 8}
    np.testing.assert_allclose(chosen[0][0], big)
    np.testing.assert_allclose(chosen[8][0], big + 10)
    boxes = np.array([[0, 0, 10, 10]] * 5 + [[4, 0, 14, 10]] * 5, float)
    smoothed = smooth_boxes(boxes, 0.6)
    assert (np.diff(smoothed[:, 0]) >= -1e-9).all() and smoothed[0, 0] < 2 and smoothed[-1, 0] > 2


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def assert_disjoint_and_complete(split: Split, actors):
    parts = [set(split.train), set(split.val), set(split.test)]
    assert all(parts)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(actors)


@pytest.mark.parametrize("actors", [ALL_ACTORS, tuple(range(1, 7)), tuple(range(3, 9)),
                                    tuple(a for a in ALL_ACTORS if a not in (18, 7)), (2, 5, 11, 14, 20)])
def test_splits_are_by_actor_and_disjoint(actors):
    fixed = fixed_split(actors)
    assert_disjoint_and_complete(fixed, actors)
    folds = kfold_splits(actors) if len(actors) >= 6 else kfold_splits(actors, n_folds=len(actors))
    tests = []
    for split in folds:
        assert_disjoint_and_complete(split, actors)
        tests += split.test
    assert sorted(tests) == sorted(actors)  # every actor is tested exactly once
    shuffled = list(actors)[::-1]
    assert fixed_split(shuffled) == fixed and kfold_splits(shuffled, len(folds)) == folds  # no order dependence


def test_default_splits_are_the_documented_ones(capsys):
    fixed = fixed_split()
    assert fixed.test == (21, 22, 23, 24) and fixed.val == (17, 18, 19, 20) and fixed.train == tuple(range(1, 17))
    assert fold_groups() == [tuple(range(s, s + 4)) for s in (1, 5, 9, 13, 17, 21)]  # HiCMAE
    folds = kfold_splits()
    assert folds[0].val == (5, 6, 7, 8) and folds[5].val == (1, 2, 3, 4)
    for split in [fixed] + folds:  # gender balanced: 2 male + 2 female in val and test
        for part in (split.val, split.test):
            assert sum(a % 2 for a in part) == 2 and len(part) == 4
    assert get_split(None) == fixed and get_split(3) == folds[3]
    assert Split.from_dict(json.loads(json.dumps(fixed.as_dict()))) == fixed
    described = describe_splits()
    assert described["fixed"]["test"] == [21, 22, 23, 24] and len(described["folds"]) == 6
    assert "test   4 actors (2 m, 2 f): 21, 22, 23, 24" in capsys.readouterr().out


def test_too_few_actors_is_a_clear_error():
    with pytest.raises(SplitError, match="at least 3 actors"):
        fixed_split([1, 2])
    with pytest.raises(SplitError, match="6 folds need at least 6 actors"):
        kfold_splits([1, 2, 3, 4])
    with pytest.raises(SplitError, match="fold must be in 0..5"):
        get_split(6)
    with pytest.raises(SplitError, match="1..24"):
        fixed_split([0, 1, 2, 3])


# --------------------------------------------------------------------------------------------
# Dataset and loader
# --------------------------------------------------------------------------------------------


def test_dataset_items_and_batches(synthetic_cache):
    ds = RavdessDataset(synthetic_cache.root)
    assert len(ds) == len(synthetic_cache.clips.paths) and ds.actors == [1, 2, 3]
    item = ds[0]
    expected = {"audio": ((48000,), torch.float32), "audio_lengths": ((), torch.int64),
                "frames": ((16, 3, 224, 224), torch.uint8), "landmarks": ((16, 5, 2), torch.float32),
                "label": ((), torch.int64), "actor": ((), torch.int64)}
    assert set(item) == set(expected) | {"path"} and isinstance(item["path"], str)
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape and item[key].dtype == dtype, key
    again = ds[0]  # eval: deterministic
    for key in expected:
        assert torch.equal(item[key], again[key])

    from fer_lib.training.items import TrainingItems  # the one augmentation path: seeded per (seed, epoch, clip)

    train = TrainingItems(ds, ("audio", "visual"), {}, augment=True, seed=0)
    a, b = train[(0, 0)], train[(1, 0)]
    for key, (shape, dtype) in expected.items():
        assert tuple(a[key].shape) == shape and a[key].dtype == dtype, key
    assert not torch.equal(a["frames"], b["frames"]) and not torch.equal(a["audio"], b["audio"])
    assert 0 < int(a["audio_lengths"]) <= 48000 and not a["audio"][int(a["audio_lengths"]):].any()

    split_ds = RavdessDataset(synthetic_cache.root, actors=[2])
    assert {int(split_ds[i]["actor"]) for i in range(len(split_ds))} == {2} and len(split_ds) == 3
    assert [c.label for c in list_clips(synthetic_cache.root, actors=[3])] == [0, 1, 7]
    with pytest.raises(DataError, match="no cached clip"):
        RavdessDataset(synthetic_cache.root, actors=[9])

    loader = make_loader(ds, 4, num_workers=0)
    batch = next(iter(loader))
    assert batch["frames"].shape == (4, 16, 3, 224, 224) and batch["audio"].shape == (4, 48000)
    assert batch["audio_lengths"].shape == (4,) and batch["label"].dtype == torch.int64 and len(batch["path"]) == 4
    assert sum(len(b["path"]) for b in loader) == len(ds)
    default = make_loader(ds, 2)
    assert default.num_workers == min(4, os.cpu_count()) and default.persistent_workers
    assert default.pin_memory == torch.cuda.is_available()
    assert collate([item, again])["frames"].shape == (2, 16, 3, 224, 224)


def test_frame_augmentation_moves_landmarks_with_the_pixels():
    frames = torch.zeros(16, 3, 224, 224, dtype=torch.uint8)
    marks = torch.tensor([[70.0, 90], [150, 90], [112, 130], [85, 170], [140, 170]]).repeat(16, 1, 1)
    for k, (x, y) in enumerate(marks[0].tolist()):  # a bright dot, one colour per landmark
        frames[:, k % 3, int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = 255
    g = torch.Generator().manual_seed(1)
    out, moved = augment_frames(frames, marks, generator=g, flip_p=1.0, jitter=0.0)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert torch.equal(out[0], out[15])  # the same transform on every frame
    # after the flip the points are swapped, so "left eye" is still the one on the image left
    assert moved[0, 0, 0] < moved[0, 1, 0] and moved[0, 3, 0] < moved[0, 4, 0]
    for k in range(5):  # each moved landmark sits on its (moved) dot
        src = (1, 0, 2, 4, 3)[k]
        x, y = moved[0, k].round().long().tolist()
        channel = src % 3
        assert out[0, channel, max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].max() > 100, (k, x, y)
    audio = torch.ones(48000) * 0.1
    shifted, length = augment_audio(audio, 30000, generator=torch.Generator().manual_seed(3))
    assert shifted.shape == (48000,) and 0 < length <= 48000 and not shifted[length:].any()


def test_copy_cache_to_local(synthetic_cache, tmp_path):
    local = copy_cache_to_local(synthetic_cache.root, tmp_path / "local", progress=False)
    names = sorted(p.name for p in synthetic_cache.root.glob("*.shard"))
    assert sorted(p.name for p in local.glob("*.shard")) == names
    assert manifest_hash(local) == manifest_hash(synthetic_cache.root)
    mtimes = {p.name: p.stat().st_mtime_ns for p in local.iterdir()}
    copy_cache_to_local(synthetic_cache.root, local, progress=False)  # nothing changed: nothing copied
    assert {p.name: p.stat().st_mtime_ns for p in local.iterdir()} == mtimes
    (local / names[0]).write_bytes(b"stale")  # a damaged local copy is replaced
    copy_cache_to_local(synthetic_cache.root, local, progress=False)
    assert (local / names[0]).read_bytes() == (synthetic_cache.root / names[0]).read_bytes()
    assert len(RavdessDataset(local)) == len(synthetic_cache.clips.paths)

    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"hash": "0000"}))
    with pytest.raises(DataError, match="other parameters"):
        copy_cache_to_local(synthetic_cache.root, other, progress=False)
