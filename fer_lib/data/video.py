"""Decoding one clip: probe, audio, the shared time window, and only the video frames it needs.

One clip becomes one time window of `InputConfig.clip_seconds` (default 3.0 s) shared by both
modalities, so that audio segment i and video segment i cover the same stretch of time:

1. `read_audio` demuxes and decodes the audio stream once, resampling on the fly with PyAV's
   `AudioResampler` to mono float32 at `InputConfig.sample_rate` (16 kHz).
2. `choose_window` places the window on the speech: short-time energy (25 ms frames, 10 ms hop),
   a threshold between the noise floor and the loudest frames, the span from the first to the
   last active frame; the window is centred on that span (clamped to the clip), or, when the
   speech is longer than the window, put where it covers the most active frames (ties: the most
   central). A clip with no clear speech gets the centred window. A clip shorter than the window
   starts at 0 and is zero-padded at the end; `audio_length` counts the valid samples.
3. `decode_clip` then seeks the video to the window start and decodes forward, keeping only the
   T frames nearest to T uniformly spaced times in the window (the centres of T equal bins), and
   stops after the last one. Frames stay YUV: `fer_lib.data.faces.YuvFrames` converts only the
   face crops (and a few downscaled keyframes) to RGB. When the clip is shorter
   than the window the times past its end reuse the last frame (the audio there is padding).

Errors are `ClipError` with a `kind` (empty, undecodable, truncated, no_audio, no_video) and a
one-line reason, so the index and the preprocessing report can record them and go on.
Rotation metadata is ignored (RAVDESS has none).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import av
import numpy as np

from fer_lib.config import InputConfig
from fer_lib.errors import FerError

# A decoded stream may end this much before its declared duration and still count as complete.
TRUNCATION_TOLERANCE_S = 0.25


class ClipError(FerError):
    """A clip cannot be used. `kind` is a short code for reports, the message one line."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class MediaInfo:
    duration: float  # seconds, as declared by the container
    width: int
    height: int
    fps: float
    audio_rate: int
    audio_channels: int


def open_container(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ClipError("unreadable", f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise ClipError("empty", "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ClipError("undecodable", f"not a readable video file ({_short(exc)}); truncated or corrupt download?") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _streams(container) -> tuple:
    if not container.streams.video:
        raise ClipError("no_video", "no video stream")
    if not container.streams.audio:
        raise ClipError("no_audio", "no audio track (is this a video-only file renamed as 01?)")
    return container.streams.video[0], container.streams.audio[0]


def stream_end(stream, container) -> float:
    if stream.duration is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        return start + float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return 0.0


def check_ends(container, streams, what_to_do: str) -> None:
    """ClipError("truncated") unless each of `streams` has data near the end its container declares.

    Seeks each stream to 0.3 s before its declared end and reads one packet: a truncated file (a
    partial download, a copy cut short) has its index but not its last bytes, and yields no packet
    there. Preprocessing (`probe`) and prediction (`fer_lib.data.media.open_media`) both check this."""
    for stream in streams:
        end = stream_end(stream, container)
        target = max(0.0, end - 0.3)
        try:
            container.seek(int(target / stream.time_base), stream=stream, any_frame=True, backward=True)
            packet = next(iter(container.demux(stream)), None)
        except av.FFmpegError as exc:
            raise ClipError("undecodable", f"{stream.type} stream unreadable near its end ({_short(exc)})") from None
        if packet is None or packet.pts is None or not packet.size:
            raise ClipError("truncated", f"file ends early: no {stream.type} data near its declared end "
                                         f"({end:.2f} s); {what_to_do}")


def probe(path: str | Path) -> MediaInfo:
    """Cheap integrity check: opens, both streams present, and the last packets are really there.

    A truncated file is found by `check_ends`. Raises ClipError.
    """
    container = open_container(path)
    try:
        video, audio = _streams(container)
        duration = container.duration / 1e6 if container.duration else stream_end(video, container)
        if duration <= 0:
            raise ClipError("undecodable", "duration is zero")
        check_ends(container, (audio, video), "re-download or re-unpack it")
        rate = video.average_rate or video.guessed_rate or 30
        return MediaInfo(duration=duration, width=video.codec_context.width, height=video.codec_context.height,
                         fps=float(rate), audio_rate=audio.codec_context.sample_rate or 0,
                         audio_channels=audio.codec_context.channels or 0)
    finally:
        container.close()


# --------------------------------------------------------------------------------------------
# Audio and the window
# --------------------------------------------------------------------------------------------


def read_audio(container, stream, sample_rate: int) -> tuple[np.ndarray, float]:
    """Decode `stream` once into mono float32 at `sample_rate`. Returns (samples, start time in s)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks, start = [], None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if start is None:
                    start = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise ClipError("truncated" if chunks else "undecodable",
                        f"audio stops decoding after {sum(map(len, chunks)) / sample_rate:.2f} s ({_short(exc)})") from None
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return audio, start or 0.0


def frame_energy_db(audio: np.ndarray, sample_rate: int, frame_s: float = 0.025, hop_s: float = 0.010) -> np.ndarray:
    """Short-time energy in dB, one value per hop (frame starting at hop * i)."""
    hop, win = int(round(hop_s * sample_rate)), int(round(frame_s * sample_rate))
    if audio.size < win:
        return np.full(1, 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-10)) if audio.size else np.zeros(0)
    n = 1 + (audio.size - win) // hop
    power = audio.astype(np.float64) ** 2
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(n) * hop
    mean = (csum[starts + win] - csum[starts]) / win
    return 10 * np.log10(mean + 1e-10)


def speech_activity(audio: np.ndarray, sample_rate: int, hop_s: float = 0.010) -> np.ndarray:
    """Boolean activity per 10 ms hop; all False when there is no clear speech."""
    energy = frame_energy_db(audio, sample_rate, hop_s=hop_s)
    if energy.size == 0:
        return np.zeros(0, bool)
    floor, peak = np.percentile(energy, 10), np.percentile(energy, 99)
    if peak - floor < 10.0:  # no frame clearly louder than the background: no speech to find
        return np.zeros(energy.size, bool)
    active = energy > floor + 0.4 * (peak - floor)
    # drop blips shorter than 30 ms (clicks)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start < 3:
            active[start:end] = False
    return active


@dataclass
class Window:
    start_sample: int  # first sample of the window in the decoded audio
    valid_samples: int  # samples of real audio in the window (the rest is zero padding)
    speech: Optional[tuple[float, float]]  # detected speech span in seconds of the decoded audio


def choose_window(audio: np.ndarray, sample_rate: int, num_samples: int) -> Window:
    """Place one window of `num_samples` on the speech (see the module docstring)."""
    n = int(audio.size)
    hop = int(round(0.010 * sample_rate))
    active = speech_activity(audio, sample_rate)
    speech = None
    if active.any():
        idx = np.flatnonzero(active)
        speech = (idx[0] * hop / sample_rate, min(n, (idx[-1] * hop + int(0.025 * sample_rate))) / sample_rate)
    if n <= num_samples:
        return Window(0, n, speech)
    last_start = n - num_samples
    if speech is None:
        return Window(last_start // 2, num_samples, None)
    s0, s1 = int(speech[0] * sample_rate), int(speech[1] * sample_rate)
    if s1 - s0 <= num_samples:
        start = (s0 + s1) // 2 - num_samples // 2
    else:  # speech longer than the window: cover the most active hops, the most central on ties
        win_hops = num_samples // hop
        csum = np.concatenate([[0], np.cumsum(active)])
        counts = csum[win_hops:] - csum[:-win_hops] if csum.size > win_hops else np.array([csum[-1]])
        best = np.flatnonzero(counts == counts.max())
        centre_hop = ((s0 + s1) / 2 - num_samples / 2) / hop
        start = int(best[np.argmin(np.abs(best - centre_hop))]) * hop
    start = int(min(max(start, 0), last_start))
    return Window(start, num_samples, speech)


# --------------------------------------------------------------------------------------------
# The whole clip
# --------------------------------------------------------------------------------------------


@dataclass
class DecodedClip:
    audio: np.ndarray  # float32 [num_samples], zero-padded after audio_length
    audio_length: int
    window_start: float  # seconds on the container timeline
    window_seconds: float
    duration: float  # seconds of audio decoded (the clip's length)
    speech: Optional[tuple[float, float]]
    frame_times: np.ndarray  # float64 [T]: the time of the decoded frame used for each target
    frames: list  # [T] av.VideoFrame, still YUV (the same object repeated past the end of a short clip)


def decode_clip(path: str | Path, input_cfg: InputConfig, threads: int = 0) -> DecodedClip:
    """Audio window + the T frames of the same window (see the module docstring). Raises ClipError.

    `threads`: video decoder threads (0 = FFmpeg's choice); use 1 when several workers share the CPU.
    """
    container = open_container(path)
    try:
        video, audio_stream = _streams(container)
        sr, num_samples, T = input_cfg.sample_rate, input_cfg.num_samples, input_cfg.num_frames
        audio, audio_start = read_audio(container, audio_stream, sr)
        declared_audio = stream_end(audio_stream, container) - audio_start
        if audio.size == 0:
            raise ClipError("undecodable", "the audio track decodes to nothing")
        if audio.size / sr < declared_audio - TRUNCATION_TOLERANCE_S:
            raise ClipError("truncated", f"audio ends at {audio.size / sr:.2f} s of a declared {declared_audio:.2f} s; "
                                         "the file is incomplete")
        window = choose_window(audio, sr, num_samples)
        out = np.zeros(num_samples, np.float32)
        valid = audio[window.start_sample : window.start_sample + num_samples]
        out[: valid.size] = valid
        window_start = audio_start + window.start_sample / sr
        window_seconds = num_samples / sr
        targets = window_start + (np.arange(T) + 0.5) * window_seconds / T

        video.thread_type = "AUTO"
        if threads:
            video.thread_count = threads
        video_end = stream_end(video, container)
        rate = float(video.average_rate or video.guessed_rate or 30)
        chosen = pick_frames(container, video, targets, rate)
        last_time = chosen[-1][0]
        # targets past the last decoded frame: fine at the real end of the clip, truncation otherwise
        needed_end = min(targets[-1], video_end - 1.5 / rate)
        if last_time < needed_end - TRUNCATION_TOLERANCE_S:
            raise ClipError("truncated", f"video ends at {last_time:.2f} s of a declared {video_end:.2f} s; "
                                         "the file is incomplete")
        return DecodedClip(
            audio=out, audio_length=int(valid.size), window_start=float(window_start),
            window_seconds=float(window_seconds), duration=audio.size / sr, speech=window.speech,
            frame_times=np.array([t for t, _ in chosen]), frames=[f for _, f in chosen],
        )
    finally:
        container.close()


def pick_frames(container, video, targets: np.ndarray, rate: float) -> list:
    """[(time, frame)] for each target time: the decoded frame nearest to it (last frame past the end)."""
    seek_to = max(0.0, float(targets[0]) - 1.0 / rate)
    try:
        container.seek(int(seek_to / video.time_base), stream=video, backward=True)
    except av.FFmpegError:
        container.seek(0, stream=video, backward=True)
    chosen: list = []
    prev = None  # (time, frame)
    j, index = 0, 0
    try:
        for frame in container.decode(video):
            t = float(frame.time) if frame.time is not None else index / rate
            index += 1
            while j < len(targets) and t >= targets[j]:
                if prev is not None and (targets[j] - prev[0]) < (t - targets[j]):
                    chosen.append(prev)
                else:
                    chosen.append((t, frame))
                j += 1
            if j == len(targets):
                break
            prev = (t, frame)
    except av.FFmpegError as exc:
        if prev is None:
            raise ClipError("undecodable", f"video does not decode ({_short(exc)})") from None
        # decoding stopped early: fall through, the truncation check in decode_clip decides
    if prev is None and not chosen:
        raise ClipError("undecodable", "the video stream decodes to no frame")
    while len(chosen) < len(targets):
        chosen.append(prev if prev is not None else chosen[-1])
    return chosen


def upright(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame as a player shows it. Phones store portrait video sideways plus a display matrix;
    `frame.rotation` reads its angle (degrees counter-clockwise, as `np.rot90` turns)."""
    quarter_turns = round(frame.rotation / 90) % 4
    if not quarter_turns:
        return frame
    rgb = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), quarter_turns))
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def default_threads(workers: int) -> int:
    """Decoder threads per worker: all cores for one worker, one each when workers share the CPU."""
    return 0 if workers <= 1 else max(1, (os.cpu_count() or 1) // workers)
