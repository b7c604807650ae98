"""A user's video, for prediction: its streams and audio, the sliding windows, and each window's model inputs.

Any file PyAV opens (mp4, mov, mkv, webm, ...), any length, any frame rate, with or without audio;
a phone's portrait video (stored sideways with a rotation flag) is turned upright first.

    media = open_media(path, sample_rate)                 # probe + the whole audio track, decoded once
    starts = window_starts(media.duration, 3.0, 1.5)      # where the windows go
    for window in VideoWindows(path, media, input_cfg, use_audio=True, use_visual=True):
        window.inputs, window.modalities                  # what the model takes, as in training

Each window is prepared exactly as preprocessing prepares a RAVDESS clip: 16 kHz mono audio
(zero-padded), T frames uniformly spaced in the window, MTCNN-tracked face crops and landmarks
(`fer_lib.data.faces`). A window without a face is audio-only when there is audio; a window with
less than MIN_AUDIO_SECONDS of audio (past the end of the track) is visual-only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from fer_lib.config import InputConfig, PreprocessConfig
from fer_lib.data.video import ClipError
from fer_lib.errors import FerError, one_line

MIN_AUDIO_SECONDS = 0.1  # a window with less real audio than this is treated as having none
# The most windows one video is cut into unless asked for more (`max_windows`, predict's --max_windows):
# 5000 windows of the default hop (1.5 s) cover 2 hours; a tiny --hop would otherwise plan millions.
MAX_WINDOWS = 5000


class MediaError(FerError):
    """The video cannot be used as asked; the message is one line naming the file."""


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


def window_starts(duration: float, window: float, hop: float, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Start times of the windows: every `hop` seconds while a full window fits, then one window
    ending at the clip's end (when the regular ones leave more than 10% of a window uncovered);
    a clip no longer than one window gets a single window at 0. MediaError, before any work, when
    that is more than `max_windows`."""
    if hop <= 0:
        raise MediaError(f"hop must be positive, got {hop}")
    if duration <= window:
        return np.zeros(1)
    planned = math.floor((duration - window + 1e-9) / hop) + 2  # the regular ones and, at most, one at the end
    if planned > max_windows:
        raise MediaError(f"a hop of {hop:g} s over {duration:.1f} s plans {planned:,} windows, more than the "
                         f"{max_windows:,} allowed (--max_windows): use a larger --hop (e.g. {window / 2:g}, "
                         f"half a window) or raise --max_windows")
    starts = list(np.arange(0.0, duration - window + 1e-9, hop))
    if duration - (starts[-1] + window) > 0.1 * window:
        starts.append(duration - window)
    return np.round(np.array(starts, np.float64), 6)


def open_media(path: str | Path, sample_rate: int) -> MediaStreams:
    """Probe `path` and decode its audio (if any). MediaError when nothing usable is there."""
    import av

    from fer_lib.data.video import check_ends, open_container, read_audio, stream_end

    path = Path(path).expanduser()
    if not path.is_file():
        raise MediaError(f"video not found: {path}")
    try:
        container = open_container(path)
    except ClipError as exc:
        raise MediaError(f"{path.name}: {exc.message}") from None
    try:
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        if vstream is None and astream is None:
            raise MediaError(f"{path.name}: no video and no audio stream: nothing to predict from")
        try:  # what the container claims is what decodes: a file cut short is refused, as preprocessing does
            check_ends(container, [s for s in (astream, vstream) if s is not None], "is the file complete?")
        except ClipError as exc:
            raise MediaError(f"{path.name}: {exc.message}") from None
        container.seek(0)
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
            raise MediaError(f"{path.name}: the streams have no duration; is the file complete?")
        return MediaStreams(duration=float(duration), has_video=vstream is not None, has_audio=audio is not None,
                            fps=fps, width=width, height=height, audio=audio, start=float(start))
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: cannot decode ({one_line(exc)[:160]})") from None
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
        """(crops uint8 [T, 3, S, S], landmarks float32 [T, 5, 2], detected bool [T], boxes float [T, 4]) for
        frame times `targets`; `boxes`: the tracked face box of each frame in its crop's pixels."""
        from fer_lib.data.faces import YuvFrames, crop_faces, crop_regions
        from fer_lib.data.video import pick_frames

        chosen = pick_frames(self.container, self.stream, targets, self.rate)
        source = YuvFrames([frame for _, frame in chosen])
        track = self.tracker.track(source)
        size = self.cfg.input.image_size
        crops, marks = crop_faces(source, track, size, self.cfg.face_margin)
        origins, side = crop_regions(track, self.cfg.face_margin)
        boxes = (track.boxes - np.tile(np.asarray(origins, np.float64), 2)) * (size / side)
        return crops, marks, track.detected, boxes

    def close(self) -> None:
        self.container.close()


@dataclass
class Window:
    """One window's model inputs (numpy, unbatched) and what they hold."""

    index: int
    start: float  # seconds
    end: float
    inputs: dict  # audio, audio_lengths and/or frames, landmarks
    modalities: tuple[str, ...]  # what `inputs` holds, in fer_lib.modalities order
    face_frames: Optional[int]  # frames of T where a face was found (None: no visual input asked for)
    middle_crop: Optional[np.ndarray]  # uint8 [3, S, S]: the middle face crop (what the visual branch saw)
    middle_box: Optional[np.ndarray] = None  # float [4] x0, y0, x1, y1: the face box in that crop (None: not found)


class VideoWindows:
    """The windows of a video, one `Window` at a time (`use_audio` / `use_visual`: which inputs to cut)."""

    def __init__(self, path: str | Path, media: MediaStreams, input_cfg: InputConfig, hop: float,
                 use_audio: bool, use_visual: bool, device="cpu", max_windows: int = MAX_WINDOWS):
        self.path, self.media, self.input_cfg = Path(path), media, input_cfg
        self.use_audio, self.use_visual, self.device = use_audio, use_visual, device
        self.seconds = input_cfg.num_samples / input_cfg.sample_rate
        try:
            self.starts = window_starts(media.duration, self.seconds, hop, max_windows)
        except MediaError as exc:
            raise MediaError(f"{self.path.name}: {exc}") from None

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[Window]:
        faces = WindowFaces(self.path, PreprocessConfig(input=self.input_cfg), self.device) if self.use_visual else None
        try:
            for i, start in enumerate(self.starts):
                yield self._window(i, float(start), faces)
        except ClipError as exc:
            raise MediaError(f"{self.path.name}: {exc.message}") from None
        finally:
            if faces is not None:
                faces.close()

    def _window(self, i: int, start: float, faces: Optional[WindowFaces]) -> Window:
        cfg, media = self.input_cfg, self.media
        sr, n, T = cfg.sample_rate, cfg.num_samples, cfg.num_frames
        inputs, modalities, face_frames, middle, box = {}, [], None, None, None
        if self.use_audio:
            chunk = media.audio[int(round(start * sr)) : int(round(start * sr)) + n]
            if chunk.size >= MIN_AUDIO_SECONDS * sr:
                audio = np.zeros(n, np.float32)
                audio[: chunk.size] = chunk
                inputs.update(audio=audio, audio_lengths=np.int64(chunk.size))
                modalities.append("audio")
        if faces is not None:
            targets = media.start + start + (np.arange(T) + 0.5) * self.seconds / T
            crops, marks, detected, boxes = faces.crops(targets)
            face_frames, middle = int(detected.sum()), crops[T // 2]
            box = boxes[T // 2] if detected[T // 2] else None
            if face_frames or not modalities:  # a faceless window is audio-only when there is audio
                inputs.update(frames=crops, landmarks=marks.astype(np.float32))
                modalities.append("visual")
        end = min(start + self.seconds, max(media.duration, self.seconds))
        return Window(i, start, float(end), inputs, tuple(modalities), face_frames, middle, box)
