"""Emotions over time for any video: sliding windows, one prediction each, and an overall label.

    python -m fer_lib.predict VIDEO --checkpoint PATH|hf://USER/NAME [--out DIR] [--hop SECONDS] [--modalities auto|av|a|v]
                              [--max_windows 5000]

or, in a notebook, `predict_video(video, checkpoint, ...) -> dict`; with a model already loaded (the web app,
`fer_lib.app`), `predict_windows(trained, video) -> Timeline`, then `write_prediction`.

Any file PyAV opens, any length, any frame rate, with or without audio (`fer_lib.data.media` opens
it and cuts the windows). Windows of the model's `input.clip_seconds` (3.0 s by default) slide over
the clip with a hop of half a window (`--hop`); the last window is aligned with the end of the clip
so the end is covered; a clip shorter than a window gives one window, zero-padded as in training.
A file whose streams end before the duration its container claims (cut short) is refused, as
preprocessing refuses it, and so is a hop that would plan more than `--max_windows` windows; so are
outputs that are nan or inf (a broken checkpoint), rather than reported as a label.
Each window is prepared exactly as the preprocessing prepares a RAVDESS clip, then classified.

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
                      (for a model from the hub: hf://USER/NAME@<commit>, `TrainedModel.provenance`)
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from fer_lib import EMOTIONS, cli, devices
from fer_lib import modalities as modality_names
from fer_lib.data.media import MAX_WINDOWS, MediaStreams, VideoWindows, Window, open_media
from fer_lib.errors import FerError
from fer_lib.fileio import check_writable
from fer_lib.predictions import PROB_FIELDS, check_finite
from fer_lib.reports import new_dir, write_csv, write_json

MODES = ("auto", "av", "a", "v")
# The inputs of each set of modalities a window may hold (a window keeps audio_lengths with its audio).
INPUT_KEYS = {("audio",): ("audio", "audio_lengths"), ("visual",): ("frames", "landmarks"),
              ("audio", "visual"): ("audio", "audio_lengths", "frames", "landmarks")}
WINDOW_FIELDS = ("window", "start", "end", "modalities", "face_frames", "frames", "emotion", *PROB_FIELDS)


class PredictionError(FerError):
    """Prediction cannot run on this input; the message is one line."""


def default_out_dir(checkpoint_dir: Path, video: Path) -> Path:
    """`<root>/predictions/` when the checkpoint is under `<root>/runs/` (the Drive layout), else `predictions/`."""
    from fer_lib.paths import DriveLayout

    for parent in checkpoint_dir.parents:
        if parent.name == "runs":
            return DriveLayout.at(parent.parent).predictions(video.stem).parent
    return Path("predictions")


def choose_inputs(mode: str, trained: str, media: MediaStreams, name: str) -> tuple[bool, bool, list[str]]:
    """(use audio, use visual, notes) for `--modalities mode`, a checkpoint trained on `trained`, this media.

    auto never uses a modality the checkpoint was not trained with; a forced mode the file cannot
    serve is a PredictionError.
    """
    want_audio = mode in ("av", "a") or (mode == "auto" and "a" in trained)
    want_visual = mode in ("av", "v") or (mode == "auto" and "v" in trained)
    if mode in ("av", "a") and not media.has_audio:
        raise PredictionError(f"{name}: no usable audio track, so --modalities {mode} cannot run; try v or auto")
    if mode in ("av", "v") and not media.has_video:
        raise PredictionError(f"{name}: no video stream, so --modalities {mode} cannot run; try a or auto")
    use_audio, use_visual = want_audio and media.has_audio, want_visual and media.has_video
    if not use_audio and not use_visual:
        raise PredictionError(f"{name}: the checkpoint was trained on {modality_names.display_name(trained)}, "
                              "which this file does not have")
    notes = []
    if mode == "auto" and want_audio and want_visual and not media.has_audio:
        notes.append("no audio track: visual-only mode")
    if mode == "auto" and want_audio and want_visual and not media.has_video:
        notes.append("no video stream: audio-only mode")
    return use_audio, use_visual, notes


def window_logits(model, windows: list[Window], modalities: Optional[tuple[str, ...]] = None) -> np.ndarray:
    """Logits [N, C] of `windows`, batched by the modalities each holds (only those of `modalities` when given;
    every window must keep one)."""
    import torch

    device = next(model.parameters()).device
    used = [tuple(m for m in w.modalities if modalities is None or m in modalities) for w in windows]
    logits = np.zeros((len(windows), len(EMOTIONS)), np.float32)
    for group_modalities in set(used):
        rows = [i for i, m in enumerate(used) if m == group_modalities]
        keys = [k for k in windows[rows[0]].inputs if k in INPUT_KEYS[group_modalities]]
        batch = {k: torch.stack([torch.as_tensor(windows[i].inputs[k]) for i in rows]).to(device) for k in keys}
        with torch.inference_mode():
            logits[rows] = model(batch, modalities=group_modalities).logits.float().cpu().numpy()
    return logits


def classify_windows(model, windows: VideoWindows, batch_size: int, progress: bool = True
                     ) -> tuple[list[Window], np.ndarray]:
    """Every window and its class probabilities [N, C]; windows using the same modalities share batches."""
    import torch
    from tqdm.auto import tqdm

    done: list[Window] = []
    probs = np.zeros((len(windows), len(EMOTIONS)))
    pending: list[Window] = []

    def flush():
        probs[[w.index for w in pending]] = torch.from_numpy(window_logits(model, pending)).softmax(dim=-1).numpy()
        pending.clear()

    for window in tqdm(windows, total=len(windows), desc=f"predict {windows.path.name}", unit="window",
                       disable=not progress or len(windows) < 3):
        done.append(window)
        pending.append(window)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return done, probs


def face_notes(windows: list[Window], use_audio: bool, name: str) -> list[str]:
    """What the windows without a face mean (which ones, what was done); a PredictionError when nothing is
    left to predict from."""
    faceless = [w for w in windows if w.face_frames == 0]
    if not faceless:
        return []
    if len(faceless) == len(windows):
        if not use_audio:
            raise PredictionError(f"{name}: no face found and no audio track: nothing to predict from")
        return ["no face found in any window: audio-only mode"]
    which = ", ".join(f"{w.index} ({w.start:.1f}-{w.end:.1f} s)" for w in faceless)
    return [f"no face found in {len(faceless)} of {len(windows)} windows, {which}"
            + (": those are audio-only" if use_audio else ": their visual input is a centre crop")]


def checked_video(video: str | Path, modalities: str) -> Path:
    """The video's path; a PredictionError for a missing file or an unknown --modalities, before any work."""
    if modalities not in MODES:
        raise PredictionError(f"unknown modalities {modalities!r}: use auto, av, a or v")
    video = Path(video).expanduser()
    if not video.is_file():
        raise PredictionError(f"video not found: {video}")
    return video


@dataclass
class Timeline:
    """One video's windows and their probabilities, before anything is written."""

    video: Path
    media: MediaStreams
    windows: list[Window]  # with their model inputs
    probs: np.ndarray  # [N, C] class probabilities per window
    rows: list[dict]  # the rows of windows.csv (WINDOW_FIELDS)
    mean: np.ndarray  # [C] the overall probabilities: the mean over the windows
    label: str  # the overall emotion: argmax of `mean`
    mode: str  # "audio+visual", "audio only", "visual only" or "mixed: ..."
    notes: list[str]  # what the page or the command warns about (no audio track, windows without a face, ...)
    seconds: float  # window length
    hop: float  # seconds between window starts
    elapsed: float  # seconds taken, model loading excluded


def predict_windows(trained, video: str | Path, hop: Optional[float] = None, modalities: str = "auto",
                    batch_size: int = 4, progress: bool = True, max_seconds: Optional[float] = None,
                    max_windows: int = MAX_WINDOWS) -> Timeline:
    """The Timeline of `video` with a loaded model (`checkpoint.load_model`); nothing is written.

    `max_seconds`: a longer video is a PredictionError before any window is cut.
    """
    video = checked_video(video, modalities)
    inp = trained.config.input
    seconds = inp.num_samples / inp.sample_rate
    hop = seconds / 2 if hop is None else float(hop)
    media = open_media(video, inp.sample_rate)
    if max_seconds is not None and media.duration > max_seconds:
        raise PredictionError(f"{video.name} is {media.duration:.0f} s long, over the limit of {max_seconds:g} s: "
                              "cut it shorter (or raise --max_seconds)")
    use_audio, use_visual, notes = choose_inputs(modalities, trained.trained_modalities, media, video.name)

    t0 = time.perf_counter()
    windows = VideoWindows(video, media, inp, hop, use_audio, use_visual, device=next(trained.model.parameters()).device,
                           max_windows=max_windows)
    done, probs = classify_windows(trained.model, windows, batch_size, progress)
    check_finite(probs, "windows", trained.path)
    notes += face_notes(done, use_audio, video.name) if use_visual else []
    mean = probs.mean(axis=0)
    used = sorted({w.modalities for w in done})
    mode = modality_names.display_name(used[0]) if len(used) == 1 else "mixed: " + ", ".join(map(modality_names.joined, used))
    rows = [{"window": w.index, "start": w.start, "end": w.end, "modalities": modality_names.joined(w.modalities),
             "face_frames": "" if w.face_frames is None else w.face_frames, "frames": inp.num_frames,
             "emotion": EMOTIONS[int(p.argmax())], **{f: float(v) for f, v in zip(PROB_FIELDS, p)}}
            for w, p in zip(done, probs)]
    return Timeline(video, media, done, probs, rows, mean, EMOTIONS[int(mean.argmax())], mode, notes, seconds, hop,
                    round(time.perf_counter() - t0, 2))


def write_prediction(timeline: Timeline, trained, out_root: Path) -> dict:
    """windows.csv, timeline.png, faces.png and prediction.json in a new folder under `out_root` (module
    docstring); returns the content of prediction.json plus "out_dir" and "window_rows"."""
    t, media = timeline, timeline.media
    folder = new_dir(out_root, t.video.stem)
    write_csv(folder / "windows.csv", WINDOW_FIELDS, [[r[k] for k in WINDOW_FIELDS] for r in t.rows])
    files = {"windows": "windows.csv", **_figures(folder, t)}
    result = {
        "video": str(t.video), "label": t.label, "probabilities": {e: float(p) for e, p in zip(EMOTIONS, t.mean)},
        "aggregation": "mean of the window probabilities", "mode": t.mode, "windows": len(t.rows),
        "window_seconds": t.seconds, "hop_seconds": t.hop, "duration_seconds": media.duration,
        "video_info": {"has_video": media.has_video, "has_audio": media.has_audio, "fps": media.fps,
                       "width": media.width, "height": media.height},
        "warnings": t.notes, **trained.provenance(), "preset": trained.config.preset,
        "seconds": t.elapsed, "files": files,
    }
    write_json(folder / "prediction.json", result)
    return {**result, "out_dir": str(folder), "window_rows": t.rows}


def predict_video(video: str | Path, checkpoint: str | Path, out: Optional[str | Path] = None,
                  hop: Optional[float] = None, modalities: str = "auto", batch_size: int = 4, device=None,
                  progress: bool = True, verbose: bool = True, allow_other_frozen_weights: bool = False,
                  allow_incomplete: bool = False, max_windows: int = MAX_WINDOWS) -> dict:
    """Per-window emotion probabilities of `video` and its overall label (module docstring).

    Returns the content of prediction.json plus "out_dir" and "window_rows" (the rows of windows.csv).
    Raises a FerError (one line) for a missing file or checkpoint, a device this machine lacks, or nothing
    usable to predict from; an OSError naming the path, before any work, for an output folder that cannot
    be written or whose disk is full. A run that its folder holds only in part (run_folder.sync_note):
    IncompleteRunError unless `allow_incomplete`; then the note is one of the warnings, in prediction.json too.
    """
    from fer_lib.training import checkpoint as checkpoints
    from fer_lib.training import run_folder

    video = checked_video(video, modalities)
    device = devices.resolve(device)
    ckpt_dir = checkpoints.resolve(checkpoint)
    sync_note = run_folder.check_synced(ckpt_dir, allow_incomplete)
    out_root = check_writable(Path(out) if out else default_out_dir(ckpt_dir, video))
    trained = checkpoints.load_model(ckpt_dir, device, allow_other_frozen_weights)
    timeline = predict_windows(trained, video, hop, modalities, batch_size, progress, max_windows=max_windows)
    timeline.notes += [sync_note.line] if sync_note is not None else []
    for note in timeline.notes:
        warnings.warn(f"{video.name}: {note}", stacklevel=2)
    result = write_prediction(timeline, trained, out_root)
    if verbose:
        print(f"{video.name}: {timeline.label} ({100 * timeline.mean.max():.1f}%), {timeline.mode}, "
              f"{len(timeline.rows)} windows -> {result['out_dir']}")
    return result


def _figures(folder: Path, t: Timeline) -> dict[str, str]:
    """timeline.png (and faces.png when the visual branch saw faces); returns {name: file}."""
    from fer_lib.plots import face_strip, save_png, strips_figure

    save_png(timeline_figure(t), folder / "timeline.png")
    files = {"timeline": "timeline.png"}
    seen = [w for w in t.windows if w.middle_crop is not None]
    if seen:
        strip = face_strip(np.stack([w.middle_crop for w in seen]), count=min(12, len(seen)), size=112)
        caption = (f"the middle frame of {min(12, len(seen))} of the {len(seen)} windows with a face, "
                   f"{seen[0].start:.1f} s to {seen[-1].end:.1f} s, left to right")
        save_png(strips_figure([strip], [caption], title=f"The faces the visual branch saw\n{t.video.name}"),
                 folder / "faces.png")
        files["faces"] = "faces.png"
    return files


def timeline_figure(t: Timeline):
    """The probabilities over time and the winning emotion per window (timeline.png), titled with the video."""
    from fer_lib import plots

    subtitle = (f"{t.video.name} · {t.mode} · {len(t.windows)} window{'s' if len(t.windows) != 1 else ''} of {t.seconds:g} s, hop {t.hop:g} s · "
                f"overall {t.label} ({100 * t.mean.max():.1f}%)")
    return plots.timeline_figure(np.array([w.start for w in t.windows]), np.array([w.end for w in t.windows]),
                                 t.probs, EMOTIONS, title="Emotion over time", subtitle=subtitle)


@cli.command()
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.predict", description=__doc__.split("\n")[0])
    parser.add_argument("video", help="any video file (mp4, mov, ...), with or without audio")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (runs/<name>/checkpoints/best), run folder or hf://USER/NAME[@REVISION]")
    parser.add_argument("--out", default=None, help="parent folder of the results (default <root>/predictions)")
    parser.add_argument("--hop", type=cli.POSITIVE_FLOAT, default=None,
                        help="seconds between window starts (default half a window)")
    parser.add_argument("--modalities", default="auto", help="auto (default), av, a or v")
    parser.add_argument("--max_windows", type=cli.POSITIVE_INT, default=MAX_WINDOWS,
                        help="the most windows to cut the video into (a larger count stops before any work)")
    parser.add_argument("--batch_size", type=cli.POSITIVE_INT, default=4)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no_progress", action="store_true")
    parser.add_argument("--allow_other_frozen_weights", action="store_true",
                        help="predict although the pretrained weights differ from those the checkpoint was trained with")
    cli.add_allow_incomplete(parser)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are printed once below, as one line each
        result = predict_video(args.video, args.checkpoint, args.out, hop=args.hop, modalities=args.modalities,
                               batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                               allow_other_frozen_weights=args.allow_other_frozen_weights,
                               allow_incomplete=args.allow_incomplete, max_windows=args.max_windows)
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
