"""Emotions over time for any video: sliding windows, one prediction each, and an overall label.

    python -m fer_lib.predict VIDEO --checkpoint PATH [--out DIR] [--hop SECONDS] [--modalities auto|av|a|v]

or, in a notebook, `predict_video(video, checkpoint, ...) -> dict`.

Any file PyAV opens (mp4, mov, mkv, webm, ...), any length, any frame rate, with or without audio;
a phone's portrait video (stored sideways with a rotation flag) is turned upright first.
Windows of the model's `input.clip_seconds` (3.0 s by default) slide over the clip with a hop of
half a window (`--hop`); the last window is aligned with the end of the clip so the end is covered; a
clip shorter than a window gives one window, zero-padded as in training. Each window is prepared
exactly as the preprocessing prepares a RAVDESS clip (`fer_lib.data.video` decoding, 16 kHz mono
audio, T frames uniformly spaced in the window, `fer_lib.data.faces` MTCNN tracking and crops), then
classified.

Modality per window (`--modalities auto`, the default; only among those the checkpoint was trained with):
- audio and a face: audio+visual;
- no audio track (or the window lies past the end of the audio): visual only;
- no face found in the window: audio only, with a warning naming how many windows;
- neither: the command stops with a one-line error (exit 2), as for a file with no usable stream.
`av`, `a` or `v` force one mode (an error when the clip lacks what it needs).

Output (default `<root>/predictions/<video name>/` when the checkpoint lies in a Drive layout's
`runs/`, else `predictions/<video name>/`; a new `-2`, `-3` ... folder rather than overwriting):

    windows.csv       one row per window: index, start, end (s), modalities, face frames found of T,
                      the predicted emotion and p_neutral ... p_surprised
    timeline.png      the probabilities over time and the winning emotion per window
    faces.png         the middle face crop of (up to 12 of) the windows: what the visual branch saw
    prediction.json   the overall label = argmax of the mean of the window probabilities, that mean,
                      the mode, the windows, warnings, the video's properties and the checkpoint
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from fer_lib import EMOTIONS
from fer_lib.errors import one_line
from fer_lib.evaluate import (
    MODALITY_NAMES, PROB_FIELDS, EvaluationError, load_checkpoint, new_dir, resolve_checkpoint, write_json,
)

MIN_AUDIO_SECONDS = 0.1  # a window with less real audio than this is treated as having none
MODES = ("auto", "av", "a", "v")


class PredictionError(EvaluationError):
    """Prediction cannot run on this input; the message is one line."""


@dataclass
class MediaStreams:
    duration: float  # seconds
    has_video: bool
    has_audio: bool
    fps: Optional[float]
    width: Optional[int]
    height: Optional[int]
    audio: Optional[np.ndarray]  # mono float32 at the model's sample rate, from `start`
    start: float  # container time of the media start (audio start when there is audio)


def window_starts(duration: float, window: float, hop: float) -> np.ndarray:
    """Start times of the windows: every `hop` seconds while a full window fits, then one window
    ending at the clip's end (when the regular ones leave more than 10% of a window uncovered);
    a clip no longer than one window gets a single window at 0."""
    if hop <= 0:
        raise PredictionError(f"hop must be positive, got {hop}")
    if duration <= window:
        return np.zeros(1)
    starts = list(np.arange(0.0, duration - window + 1e-9, hop))
    if duration - (starts[-1] + window) > 0.1 * window:
        starts.append(duration - window)
    return np.round(np.array(starts, np.float64), 6)


def open_media(path: str | Path, sample_rate: int) -> MediaStreams:
    """Probe `path` and decode its audio (if any). PredictionError when nothing usable is there."""
    import av

    from fer_lib.data.video import ClipError, open_container, stream_end, read_audio

    path = Path(path).expanduser()
    if not path.is_file():
        raise PredictionError(f"video not found: {path}")
    try:
        container = open_container(path)
    except ClipError as exc:
        raise PredictionError(f"{path.name}: {exc.message}") from None
    try:
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        if vstream is None and astream is None:
            raise PredictionError(f"{path.name}: no video and no audio stream: nothing to predict from")
        audio, audio_start = None, 0.0
        if astream is not None:
            try:
                audio, audio_start = read_audio(container, astream, sample_rate)
            except ClipError as exc:
                warnings.warn(f"{path.name}: audio unusable ({exc.message}); visual only")
                audio = None
            if audio is not None and audio.size < MIN_AUDIO_SECONDS * sample_rate:
                audio = None
        duration = 0.0
        if audio is not None:
            duration = audio.size / sample_rate
        fps = width = height = None
        start = audio_start
        if vstream is not None:
            fps = float(vstream.average_rate or vstream.guessed_rate or 0) or None
            width, height = vstream.codec_context.width, vstream.codec_context.height
            v_start = float(vstream.start_time * vstream.time_base) if vstream.start_time is not None else 0.0
            v_dur = stream_end(vstream, container) - v_start
            if audio is None:
                start, duration = v_start, v_dur
            else:
                duration = max(duration, v_dur - max(0.0, audio_start - v_start))
        if duration <= 0:
            raise PredictionError(f"{path.name}: the streams have no duration; is the file complete?")
        return MediaStreams(duration=float(duration), has_video=vstream is not None, has_audio=audio is not None,
                            fps=fps, width=width, height=height, audio=audio, start=float(start))
    except av.FFmpegError as exc:
        raise PredictionError(f"{path.name}: cannot decode ({one_line(exc)[:160]})") from None
    finally:
        container.close()


class WindowFaces:
    """Face crops for windows of one video: one open container, one MTCNN tracker."""

    def __init__(self, path: Path, preprocess_cfg, device="cpu"):
        from fer_lib.data.faces import FaceTracker
        from fer_lib.data.video import open_container

        self.cfg = preprocess_cfg
        self.container = open_container(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.rate = float(self.stream.average_rate or self.stream.guessed_rate or 30)
        self.tracker = FaceTracker(preprocess_cfg, device=device)

    def crops(self, targets: np.ndarray):
        """(crops uint8 [T, 3, S, S], landmarks float32 [T, 5, 2], detected bool [T]) for frame times `targets`."""
        from fer_lib.data.faces import YuvFrames, crop_faces
        from fer_lib.data.video import pick_frames

        chosen = pick_frames(self.container, self.stream, targets, self.rate)
        source = YuvFrames([frame for _, frame in chosen])
        track = self.tracker.track(source)
        crops, marks = crop_faces(source, track, self.cfg.input.image_size, self.cfg.face_margin)
        return crops, marks, track.detected

    def close(self) -> None:
        self.container.close()


def default_out_dir(checkpoint_dir: Path, video: Path) -> Path:
    """`<root>/predictions/` when the checkpoint is under `<root>/runs/` (the Drive layout), else `predictions/`."""
    from fer_lib.paths import DriveLayout

    for parent in checkpoint_dir.parents:
        if parent.name == "runs":
            return DriveLayout.at(parent.parent).predictions(video.stem).parent
    return Path("predictions")


def predict_video(video: str | Path, checkpoint: str | Path, out: Optional[str | Path] = None,
                  hop: Optional[float] = None, modalities: str = "auto", batch_size: int = 4, device=None,
                  progress: bool = True, verbose: bool = True) -> dict:
    """Per-window emotion probabilities of `video` and its overall label (module docstring).

    Returns the content of prediction.json plus "out_dir" and "windows" (list of row dicts).
    Raises PredictionError (one line) for a missing file or checkpoint, or nothing usable to predict from.
    """
    import torch
    from tqdm.auto import tqdm

    from fer_lib.config import PreprocessConfig
    from fer_lib.data.video import ClipError
    from fer_lib.plots import save_png, timeline_figure

    if modalities not in MODES:
        raise PredictionError(f"unknown modalities {modalities!r}: use auto, av, a or v")
    video = Path(video).expanduser()
    if not video.is_file():
        raise PredictionError(f"video not found: {video}")
    ckpt_dir = resolve_checkpoint(checkpoint)
    loaded = load_checkpoint(ckpt_dir, device)
    model, cfg, _, ckpt_dir = loaded
    dev = next(model.parameters()).device
    inp = cfg.input
    sr, N, T, W = inp.sample_rate, inp.num_samples, inp.num_frames, inp.num_samples / inp.sample_rate
    hop = W / 2 if hop is None else float(hop)
    media = open_media(video, sr)
    notes: list[str] = []

    trained = loaded.trained_modalities  # auto never uses a branch the checkpoint was not trained with
    want_audio = modalities in ("av", "a") or (modalities == "auto" and "a" in trained)
    want_visual = modalities in ("av", "v") or (modalities == "auto" and "v" in trained)
    if modalities in ("av", "a") and not media.has_audio:
        raise PredictionError(f"{video.name}: no usable audio track, so --modalities {modalities} cannot run; try v or auto")
    if modalities in ("av", "v") and not media.has_video:
        raise PredictionError(f"{video.name}: no video stream, so --modalities {modalities} cannot run; try a or auto")
    use_audio = want_audio and media.has_audio
    use_visual = want_visual and media.has_video
    if not use_audio and not use_visual:
        raise PredictionError(f"{video.name}: the checkpoint was trained on {MODALITY_NAMES[trained]}, "
                              "which this file does not have")
    if modalities == "auto" and want_audio and want_visual and not media.has_audio:
        notes.append("no audio track: visual-only mode")
    if modalities == "auto" and want_audio and want_visual and not media.has_video:
        notes.append("no video stream: audio-only mode")

    starts = window_starts(media.duration, W, hop)
    faces = WindowFaces(video, PreprocessConfig(input=inp), device=dev) if use_visual else None
    rows, probs = [], np.zeros((len(starts), len(EMOTIONS)))
    middle_crops = []  # the middle face crop of each window: faces.png shows what the model saw
    pending: list[tuple[int, dict, tuple[str, ...]]] = []

    def flush():
        by_mode: dict[tuple, list] = {}
        for i, item, mods in pending:
            by_mode.setdefault(mods, []).append((i, item))
        with torch.inference_mode():
            for mods, items in by_mode.items():
                batch = {k: torch.stack([torch.as_tensor(it[k]) for _, it in items]).to(dev) for k in items[0][1]}
                logits = model(batch, modalities=mods).logits
                p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                for (i, _), row in zip(items, p):
                    probs[i] = row
        pending.clear()

    t0 = time.perf_counter()
    try:
        for i, start in enumerate(tqdm(starts, desc=f"predict {video.name}", unit="window",
                                       disable=not progress or len(starts) < 3)):
            item, mods, face_frames = {}, [], 0
            if use_audio:
                a0 = int(round(start * sr))
                chunk = media.audio[a0 : a0 + N]
                if chunk.size >= MIN_AUDIO_SECONDS * sr:
                    audio = np.zeros(N, np.float32)
                    audio[: chunk.size] = chunk
                    item.update(audio=audio, audio_lengths=np.int64(chunk.size))
                    mods.append("audio")
            if use_visual:
                targets = media.start + start + (np.arange(T) + 0.5) * W / T
                crops, marks, detected = faces.crops(targets)
                face_frames = int(detected.sum())
                middle_crops.append(crops[T // 2])
                if face_frames or not mods:  # a faceless window is audio-only when there is audio
                    item.update(frames=crops, landmarks=marks.astype(np.float32))
                    mods.append("visual")
            rows.append({"window": i, "start": float(start), "end": float(min(start + W, max(media.duration, W))),
                         "modalities": "+".join(mods), "face_frames": face_frames if use_visual else "", "frames": T})
            pending.append((i, item, tuple(m for m in ("audio", "visual") if m in mods)))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    except ClipError as exc:
        raise PredictionError(f"{video.name}: {exc.message}") from None
    finally:
        if faces is not None:
            faces.close()

    faceless = [r["window"] for r in rows if use_visual and r["face_frames"] == 0]
    if use_visual and len(faceless) == len(rows):
        if use_audio:
            notes.append("no face found in any window: audio-only mode")
        else:
            raise PredictionError(f"{video.name}: no face found and no audio track: nothing to predict from")
    elif faceless:
        notes.append(f"no face found in {len(faceless)} of {len(rows)} windows"
                     + (": those are audio-only" if use_audio else ": their visual input is a centre crop"))
    for note in notes:
        warnings.warn(f"{video.name}: {note}", stacklevel=2)

    mean = probs.mean(axis=0)
    label = EMOTIONS[int(mean.argmax())]
    modes_used = sorted({r["modalities"] for r in rows})
    mode = {"audio+visual": "audio+visual", "audio": "audio only", "visual": "visual only"}.get(
        modes_used[0], modes_used[0]) if len(modes_used) == 1 else "mixed: " + ", ".join(modes_used)
    for r, p in zip(rows, probs):
        r["emotion"] = EMOTIONS[int(p.argmax())]
        r.update({f: float(v) for f, v in zip(PROB_FIELDS, p)})

    out_root = Path(out).expanduser() if out else default_out_dir(ckpt_dir, video)
    folder = new_dir(out_root, video.stem)
    fields = ["window", "start", "end", "modalities", "face_frames", "frames", "emotion", *PROB_FIELDS]
    with open(folder / "windows.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    subtitle = (f"{video.name} · {mode} · {len(rows)} windows of {W:g} s, hop {hop:g} s · "
                f"overall {label} ({100 * mean.max():.1f}%)")
    save_png(timeline_figure(np.array([r["start"] for r in rows]), np.array([r["end"] for r in rows]), probs,
                             EMOTIONS, title="Emotion over time", subtitle=subtitle), folder / "timeline.png")
    files = {"windows": "windows.csv", "timeline": "timeline.png"}
    if middle_crops:
        from PIL import Image

        from fer_lib.plots import face_strip

        strip = face_strip(np.stack(middle_crops), count=min(12, len(middle_crops)), size=112)
        Image.fromarray(strip).save(folder / "faces.png")
        files["faces"] = "faces.png"
    result = {
        "video": str(video), "label": label, "probabilities": {e: float(p) for e, p in zip(EMOTIONS, mean)},
        "aggregation": "mean of the window probabilities", "mode": mode, "windows": len(rows),
        "window_seconds": W, "hop_seconds": hop, "duration_seconds": media.duration,
        "video_info": {"has_video": media.has_video, "has_audio": media.has_audio, "fps": media.fps,
                       "width": media.width, "height": media.height},
        "warnings": notes, "checkpoint": str(ckpt_dir), "preset": cfg.preset,
        "seconds": round(time.perf_counter() - t0, 2),
        "files": files,
    }
    write_json(folder / "prediction.json", result)
    if verbose:
        print(f"{video.name}: {label} ({100 * mean.max():.1f}%), {mode}, {len(rows)} windows -> {folder}")
    return {**result, "out_dir": str(folder), "window_rows": rows}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_lib.predict", description=__doc__.split("\n")[0])
    parser.add_argument("video", help="any video file (mp4, mov, ...), with or without audio")
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (runs/<name>/checkpoints/best) or run folder")
    parser.add_argument("--out", default=None, help="parent folder of the results (default <root>/predictions)")
    parser.add_argument("--hop", type=float, default=None, help="seconds between window starts (default half a window)")
    parser.add_argument("--modalities", default="auto", help="auto (default), av, a or v")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the notes are printed once below, as one line each
            result = predict_video(args.video, args.checkpoint, args.out, hop=args.hop, modalities=args.modalities,
                                   batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
