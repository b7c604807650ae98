"""RAVDESS-format synthetic clips with a real face, for tests, CI and the local demo.

    python -m fer_lib.data.synthetic --out DIR [--actors N] [--signal av|a|v] [--repeats K] [--seed S]
                                     [--workers W] [--overwrite]

writes `DIR/Actor_AA/01-01-EE-II-SS-RR-AA.mp4` exactly as the real download unpacks: H.264 video at
30 fps and 1280x720 showing the face of `skimage.data.astronaut()` (MTCNN finds it), and AAC audio
at 48 kHz stereo. Clips already in DIR are never written over without `--overwrite`.

Each emotion class carries a learnable cue, so that training on these clips proves the pipeline
learns (and learns from the right modality):
- audio cue: a voiced harmonic tone whose pitch is set by the class, with a syllable rhythm;
- face cue: an expression-like change: the mouth opens (a dark ellipse) while "speaking", with a
  class-specific width and opening amplitude, and the brow band is raised or not. Three binary
  factors give the 8 classes.
`--signal` picks which modality carries the label: `av` both, `a` audio only, `v` face only. The
other modality then shows the cue of a random class, so it looks the same but says nothing.

Clips last 3.2-4.0 s with silence before and after the speech, as in RAVDESS, so the window
placement on speech activity has something to find. Output is deterministic for a given seed.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image
from skimage.data import astronaut
from tqdm.auto import tqdm

from fer_lib import EMOTIONS, cli
from fer_lib.config import ConfigError
from fer_lib.fileio import check_writable

WIDTH, HEIGHT, FPS, AUDIO_RATE = 1280, 720, 30, 48000
SIGNALS = ("av", "a", "v")

# Where MTCNN finds the astronaut's face in the 512x512 image (measured once):
# box (181, 62)-(268, 172); eyes at y~102, mouth corners (202, 139) and (245, 142).
FACE_PATCH = (100, 0, 350, 300)  # x0, y0, x1, y1 of the region of the image we paste
PATCH_SCALE = 2.2  # the face becomes ~190x240 px in the 720p frame, as in RAVDESS
MOUTH_CENTRE = (224.0, 151.0)  # image coordinates: between the lips
BROW_BAND = (172, 72, 282, 112)  # x0, y0, x1, y1 in image coordinates: eyebrows and eyes

PITCHES_HZ = (150.0, 200.0, 265.0, 350.0, 465.0, 620.0, 825.0, 1100.0)  # one per class, ~1/3 apart: a few mel bins


@dataclass(frozen=True)
class FaceCue:
    """The three binary expression factors that encode one class in the face."""

    mouth_half_width: int  # px in the frame
    mouth_open_amplitude: int  # px: half-height of the open mouth at the peak of a syllable
    brow_raise: int  # px the brow band is lifted

    @classmethod
    def for_class(cls, label: int) -> "FaceCue":
        wide, open_, raised = (label >> 2) & 1, (label >> 1) & 1, label & 1
        return cls(mouth_half_width=(30, 66)[wide], mouth_open_amplitude=(10, 30)[open_], brow_raise=(0, 24)[raised])


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides one clip's content; drawn from the seed."""

    label: int
    actor: int
    audio_class: int  # the class whose pitch is heard (== label when audio carries the signal)
    face_class: int  # the class whose expression is shown (== label when the face carries it)
    seconds: float
    speech_start: float
    speech_end: float
    offset: tuple[int, int]  # where the face sits in the frame (actor-specific)
    background: tuple[int, int, int]
    seed: int


def draw_spec(label: int, actor: int, signal: str, rng: np.random.Generator, seconds: float | None = None) -> ClipSpec:
    if signal not in SIGNALS:
        raise ConfigError(f"signal must be one of {SIGNALS}, got {signal!r}")
    actor_rng = np.random.default_rng(1000 + actor)  # actors differ in framing and background only
    duration = float(seconds if seconds is not None else rng.uniform(3.2, 4.0))
    start = float(min(rng.uniform(0.5, 0.9), duration * 0.2))
    end = float(max(start + 0.5, duration - rng.uniform(0.3, 0.5)))
    return ClipSpec(
        label=label,
        actor=actor,
        audio_class=label if "a" in signal else int(rng.integers(len(EMOTIONS))),
        face_class=label if "v" in signal else int(rng.integers(len(EMOTIONS))),
        seconds=duration,
        speech_start=start,
        speech_end=end,
        offset=(int(actor_rng.integers(-120, 121)), int(actor_rng.integers(-30, 31))),
        background=tuple(int(v) for v in actor_rng.integers(40, 200, size=3)),
        seed=int(rng.integers(2**31)),
    )


def syllable_envelope(t: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """0 outside the speech, a 4 Hz syllable rhythm inside it; shared by voice and mouth."""
    inside = (t >= spec.speech_start) & (t < spec.speech_end)
    return inside * np.abs(np.sin(np.pi * 4.0 * (t - spec.speech_start)))


def render_audio(spec: ClipSpec) -> np.ndarray:
    """Stereo int16 [N, 2] at 48 kHz: a harmonic 'voice' at the class pitch plus room noise."""
    rng = np.random.default_rng(spec.seed)
    t = np.arange(int(spec.seconds * AUDIO_RATE)) / AUDIO_RATE
    f0 = PITCHES_HZ[spec.audio_class] * (1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t))  # light vibrato
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 7))
    envelope = 0.2 + 0.8 * syllable_envelope(t, spec)
    inside = (t >= spec.speech_start) & (t < spec.speech_end)
    mono = 0.25 * voice * envelope * inside + 0.003 * rng.standard_normal(t.size)
    stereo = np.stack([mono, 0.9 * mono], axis=1)
    return (np.clip(stereo, -1, 1) * 32767).astype(np.int16)


class FaceRenderer:
    """Composes 1280x720 frames: actor background, the astronaut's face, the class expression."""

    def __init__(self):
        x0, y0, x1, y1 = FACE_PATCH
        patch = Image.fromarray(astronaut()[y0:y1, x0:x1])
        size = (round((x1 - x0) * PATCH_SCALE), round((y1 - y0) * PATCH_SCALE))
        self.patch = np.asarray(patch.resize(size, Image.BILINEAR))
        self.mouth = self._to_patch(MOUTH_CENTRE)
        bx0, by0 = self._to_patch(BROW_BAND[:2])
        bx1, by1 = self._to_patch(BROW_BAND[2:])
        self.brow_band = (bx0, by0, bx1, by1)

    @staticmethod
    def _to_patch(point) -> tuple[int, int]:
        return (round((point[0] - FACE_PATCH[0]) * PATCH_SCALE), round((point[1] - FACE_PATCH[1]) * PATCH_SCALE))

    def face(self, cue: FaceCue, opening: float) -> np.ndarray:
        """The face patch with the brow band lifted and the mouth open by `opening` in [0, 1]."""
        face = self.patch.copy()
        if cue.brow_raise:
            x0, y0, x1, y1 = self.brow_band
            face[y0 - cue.brow_raise : y1 - cue.brow_raise, x0:x1] = self.patch[y0:y1, x0:x1]
        half_height = cue.mouth_open_amplitude * opening
        if half_height >= 1:
            cx, cy = self.mouth
            w, h = cue.mouth_half_width, int(np.ceil(half_height))
            yy, xx = np.mgrid[-h : h + 1, -w : w + 1]
            inside = (xx / w) ** 2 + (yy / half_height) ** 2 <= 1.0
            region = face[cy - h : cy + h + 1, cx - w : cx + w + 1]
            region[inside] = (60, 20, 25)
        return face

    def frames(self, spec: ClipSpec):
        """Yield the clip's RGB frames [720, 1280, 3] uint8."""
        rng = np.random.default_rng(spec.seed + 1)
        cue = FaceCue.for_class(spec.face_class)
        ph, pw = self.patch.shape[:2]
        sway = rng.uniform(0, 2 * np.pi)
        background = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        background[:] = spec.background  # broadcasting the colour costs ~5 ms a frame, a copy of it ~0.3 ms
        canvas = np.empty_like(background)
        n_frames = int(round(spec.seconds * FPS))
        t = np.arange(n_frames) / FPS
        speaking = (t >= spec.speech_start) & (t < spec.speech_end)
        # the mouth stays half open between syllables while speaking, so its shape shows on most frames
        openings = speaking * (0.4 + 0.6 * syllable_envelope(t, spec))
        for i in range(n_frames):
            np.copyto(canvas, background)
            dx = int(round(6 * np.sin(sway + i / 9.0)))  # a gentle head sway, the same for all classes
            x = (WIDTH - pw) // 2 + spec.offset[0] + dx
            y = (HEIGHT - ph) // 2 + spec.offset[1]
            canvas[y : y + ph, x : x + pw] = self.face(cue, openings[i])
            yield canvas


def write_clip(path: str | Path, spec: ClipSpec, renderer: FaceRenderer | None = None, with_audio: bool = True) -> Path:
    """Encode one clip (H.264 + AAC 48 kHz stereo) to `path`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    renderer = renderer or FaceRenderer()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_video = Path(tmp) / path.name
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-"]
        if with_audio:
            wav = write_wav(Path(tmp) / "audio.wav", spec)
            cmd += ["-i", str(wav), "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_RATE), "-ac", "2"]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
                "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                "-flags:a", "+bitexact", "-movflags", "+faststart", str(tmp_video)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        for frame in renderer.frames(spec):
            proc.stdin.write(memoryview(frame))  # the frame is C-contiguous: no copy
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed writing {path.name}: {err.decode(errors='replace').strip()}")
        tmp_video.replace(path)
    return path


def write_wav(path: str | Path, spec: ClipSpec) -> Path:
    """The clip's sound alone (`render_audio`) as a 16-bit stereo WAV file at 48 kHz."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes(render_audio(spec).tobytes())
    return Path(path)


def clip_name(label: int, actor: int, take: int) -> str:
    """RAVDESS name of the `take`-th recording of a class: takes walk intensity, statement, repetition."""
    intensity = 1 + (take // 4 if label else 0)  # neutral has no strong intensity
    statement, repetition = 1 + (take // 2) % 2, 1 + take % 2
    return f"01-01-{label + 1:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.mp4"


def _write_job(job: tuple[Path, ClipSpec]) -> Path:
    path, spec = job
    return write_clip(path, spec, _worker_renderer())


_RENDERER: FaceRenderer | None = None


def _worker_renderer() -> FaceRenderer:
    """One FaceRenderer per process (building it resizes the face image)."""
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = FaceRenderer()
    return _RENDERER


def generate_dataset(out: str | Path, actors: int = 2, signal: str = "av", repeats: int = 1, seed: int = 0,
                     first_actor: int = 1, workers: int | None = None, overwrite: bool = False) -> list[Path]:
    """Write `repeats` clips per emotion for each actor; returns the paths written.

    `repeats` is at most 4 (neutral has 4 distinct names per actor in RAVDESS, the others 8).
    Every clip's content is drawn from `seed` up front, so `workers` (default: one per core) changes
    the speed, never the files. Clips that already exist under `out` are never written over unless
    `overwrite=True`: ConfigError, before anything is written (so are an `out` that is a file, or on a
    full disk: an OSError naming the path).
    """
    if not 1 <= repeats <= 4:
        raise ConfigError(f"repeats must be between 1 and 4, got {repeats}")
    if not 1 <= first_actor <= first_actor + actors - 1 <= 24:
        raise ConfigError(f"actors must lie in 1..24, got {first_actor}..{first_actor + actors - 1}")
    out = check_writable(out)
    rng = np.random.default_rng(seed)
    jobs = [(out / f"Actor_{actor:02d}" / clip_name(label, actor, take), draw_spec(label, actor, signal, rng))
            for actor in range(first_actor, first_actor + actors)
            for label in range(len(EMOTIONS)) for take in range(repeats)]
    existing = [path for path, _ in jobs if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} of the {len(jobs)} clips already exist in {out} (e.g. "
                          f"{existing[0].relative_to(out)}); choose another --out, or pass --overwrite to replace them")
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    progress = dict(total=len(jobs), desc="synthetic clips", unit="clip")
    if workers <= 1:
        return [_write_job(job) for job in tqdm(jobs, **progress)]
    # fork where there is one: the workers only run numpy and ffmpeg, and a script without a
    # `__main__` guard still works; spawn elsewhere.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        return list(tqdm(pool.map(_write_job, jobs), **progress))


@cli.command()
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write Actor_XX/ folders into")
    parser.add_argument("--actors", type=cli.int_range(1, 24), default=2, help="number of actors (1-24)")
    parser.add_argument("--signal", choices=SIGNALS, default="av", help="which modality carries the label")
    parser.add_argument("--repeats", type=cli.int_range(1, 4), default=1, help="clips per emotion per actor (1-4)")
    parser.add_argument("--seed", type=cli.SEED, default=0)
    parser.add_argument("--workers", type=cli.POSITIVE_INT, default=None,
                        help="parallel processes (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="replace clips that already exist in --out")
    args = parser.parse_args(argv)
    paths = generate_dataset(args.out, args.actors, args.signal, args.repeats, args.seed, workers=args.workers,
                             overwrite=args.overwrite)
    print(f"wrote {len(paths)} clips under {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
