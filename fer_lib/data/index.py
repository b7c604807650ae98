"""The RAVDESS index: which clips there are, which are usable, and a check that says so plainly.

    index = build_index("MyDrive/fer/ravdess")              # fast: names only
    index = check_data("MyDrive/fer/ravdess", out_dir=...)   # + opens every clip, prints, saves the report

Accepted layouts (mixed freely, searched recursively): the unpacked download
`Actor_01/01-01-01-01-01-01-01.mp4` (any nesting, `.mp4` or `.MP4`), and the zips
`Video_Speech_Actor_01.zip` ... `_24.zip` (also `Video_Song_Actor_XX.zip`), which are unpacked once
into `Actor_XX/` folders beside the zip (or into `unpack_dir`, e.g. the runtime's local disk, to keep
Drive for what must persist); only the clips the index keeps are extracted (`unpack_zip`), a clip
already there with the right size is not extracted again.

Kept by default: audio-visual (media type 01) speech (vocal channel 01); song (02) when
`PreprocessConfig.include_song`. Video-only (02) and audio-only (03) files are the same
performances without one of the two media: they are counted and skipped, not problems. Every other file
that looks like a clip (`.mp4`, `.wav`) but cannot be used becomes a `Problem` with a kind and a
one-line reason:

    bad_name      the name is not MM-VV-EE-II-SS-RR-AA
    out_of_range  a field outside its range (emotion 09, actor 25, strong neutral ...)
    duplicate     the same clip twice (another folder or copy); the first path in sorted order is kept
    empty         a 0-byte file
    undecodable   PyAV cannot open or decode it
    truncated     the file ends before its declared duration (an interrupted download or unzip)
    no_audio      no audio track;  no_video: no video stream
    bad_zip       a zip that cannot be read;  unpack_failed: its folder is not writable (use unpack_dir)
    wrong_zip     a zip with no audio-visual speech clip (audio-only, song): the message names the zips needed
  (preprocessing adds: faceless - MTCNN finds no face in any frame)

Expected (the full download): 60 audio-visual speech clips per actor (neutral 4, the seven other
emotions 8 each), 24 actors, 1440 clips; song 44 per actor for 6 emotions, none for actor 18.
The check prints found vs expected per actor x emotion, the missing clip names and the problems,
and saves `report.json` + `problems.csv`; it covers the expected actors (`DataIndex.actors`: all 24, or
a selection such as notebook 01's `ACTORS = "1-4"`, whose other actors are then not missing).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from tqdm.auto import tqdm

from fer_lib import EMOTIONS
from fer_lib.config import PreprocessConfig
from fer_lib.data.ravdess import ALL_ACTORS, NAME_PATTERN, NUM_ACTORS, RavdessClip, RavdessNameError, actor_ranges, parse_name
from fer_lib.errors import FerError, describe_os_error, environment_fault
from fer_lib.fileio import atomic_file, atomic_write_text

LAYOUT_HINT = ("it should hold the RAVDESS download: Actor_01/01-01-01-01-01-01-01.mp4 ... "
               "(unpacked Video_Speech_Actor_XX.zip) or the Video_Speech_Actor_XX.zip files themselves")
SPEECH_ZIP = "Video_Speech_Actor_{actor:02d}.zip"  # RAVDESS's audio-visual speech clips of one actor
CLIPS_PER_ACTOR = 60  # audio-visual speech clips of one actor (one Video_Speech_Actor_XX.zip)
SPEECH_ZIPS_HINT = ("fer_lib needs the audio-visual speech clips: Video_Speech_Actor_01.zip ... Video_Speech_Actor_24.zip "
                    "from zenodo.org/records/1188976 (or `python -m fer_lib.data.download` fetches them)")
CLIP_SUFFIXES = (".mp4", ".wav")
REPORT_JSON = "report.json"
PROBLEMS_CSV = "problems.csv"
EMOTION_ABBREV = tuple(e[:3] for e in EMOTIONS)
SONG_EMOTIONS = (1, 2, 3, 4, 5, 6)  # RAVDESS codes: neutral .. fearful
ACTORS_WITHOUT_SONG = (18,)


class DataError(FerError):
    """The data (or cache) folder is not what it should be; the message is one line a person can act on."""


@dataclass
class Problem:
    """A file that cannot be used, and why."""

    path: str
    kind: str
    reason: str
    stage: str = "index"  # index | preprocess


@dataclass
class DataIndex:
    root: Path
    clips: list[RavdessClip]
    problems: list[Problem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # video_only, audio_only, song, ... -> count
    include_song: bool = False
    actors: tuple[int, ...] = ALL_ACTORS  # the actors expected (a selection such as 1-4): what the report covers

    def __post_init__(self):
        self.actors = tuple(sorted(set(self.actors)))

    def counts(self, vocal_channel: int = 1) -> dict[int, list[int]]:
        """actor -> clips per emotion (8 counts), for the expected actors."""
        out = {a: [0] * len(EMOTIONS) for a in self.actors}
        for c in self.clips:
            if c.vocal_channel == vocal_channel and c.actor in out:
                out[c.actor][c.label] += 1
        return out

    def others(self) -> list[int]:
        """Actors with clips here that are not among the expected ones."""
        return sorted({c.actor for c in self.clips} - set(self.actors))

    def missing(self, vocal_channel: int = 1) -> dict[int, list[str]]:
        """actor -> expected audio-visual clip names not found (actors with none found: all 60)."""
        have = {c.stem for c in self.clips}
        out = {}
        for actor in self.actors:
            names = [s for s in expected_stems(actor, vocal_channel) if s not in have]
            if names:
                out[actor] = names
        return out

    def to_dict(self) -> dict:
        speech = self.counts(1)
        result = {
            "data_dir": str(self.root),
            "expected": {
                "actors": list(self.actors),
                "audio_visual_speech_per_actor": CLIPS_PER_ACTOR,
                "audio_visual_speech_total": CLIPS_PER_ACTOR * len(self.actors),
                "per_actor_per_emotion": dict(zip(EMOTIONS, (4,) + (8,) * 7)),
            },
            "found": {
                "audio_visual_speech_total": sum(map(sum, speech.values())),
                "actors_with_clips": sorted(a for a, c in speech.items() if sum(c)),
                "per_actor": {f"{a:02d}": dict(zip(EMOTIONS, c)) for a, c in speech.items()},
            },
            "missing": {f"{a:02d}": names for a, names in self.missing(1).items()},
            "skipped_not_problems": dict(self.skipped),
            "problems": [asdict(p) for p in self.problems],
        }
        if self.include_song:
            song = self.counts(2)
            result["found"]["song_total"] = sum(map(sum, song.values()))
            result["found"]["song_per_actor"] = {f"{a:02d}": dict(zip(EMOTIONS, c)) for a, c in song.items()}
            result["expected"]["song_total"] = 44 * len(set(self.actors) - set(ACTORS_WITHOUT_SONG))
        return result

    def summary(self) -> str:
        return format_report(self)


def expected_stems(actor: int, vocal_channel: int = 1) -> list[str]:
    """The names (stems) of the audio-visual clips RAVDESS has for one actor."""
    if vocal_channel == 2 and actor in ACTORS_WITHOUT_SONG:
        return []
    emotions = range(1, 9) if vocal_channel == 1 else SONG_EMOTIONS
    stems = []
    for e in emotions:
        for i in ((1,) if e == 1 else (1, 2)):
            for s in (1, 2):
                for r in (1, 2):
                    stems.append(f"01-{vocal_channel:02d}-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{actor:02d}")
    return stems


def expected_counts(vocal_channel: int = 1) -> list[int]:
    """Clips RAVDESS has per emotion for one actor (speech: 4 neutral, 8 of every other emotion)."""
    counts = [0] * len(EMOTIONS)
    for stem in expected_stems(1, vocal_channel):
        counts[int(stem.split("-")[2]) - 1] += 1
    return counts


# --------------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------------


def _classify(path_like: str, config: PreprocessConfig):
    """-> ("keep", RavdessClip) | ("skip", category) | ("problem", kind, reason) | ("ignore",)"""
    name = Path(path_like).name
    if name.startswith("._") or "__MACOSX" in Path(path_like).parts:
        return ("ignore",)
    if Path(name).suffix.lower() not in CLIP_SUFFIXES:
        return ("ignore",)
    stem = Path(name).stem
    try:
        record = parse_name(path_like)
    except RavdessNameError as exc:
        kind = "out_of_range" if NAME_PATTERN.match(stem) else "bad_name"
        return ("problem", kind, str(exc))
    if record.media_type == 2 and "02" not in config.media_types:
        return ("skip", "video_only")
    if record.media_type == 3 and "03" not in config.media_types:
        return ("skip", "audio_only")
    if f"{record.media_type:02d}" not in config.media_types:
        return ("skip", f"media_type_{record.media_type:02d}")
    if record.vocal_channel == 2 and not config.include_song:
        return ("skip", "song")
    if Path(name).suffix.lower() != ".mp4":
        return ("problem", "bad_name", f"an audio-visual clip must be an .mp4 file: {name}")
    return ("keep", record)


def _walk(root: Path, problems: Optional[list] = None) -> Iterable[Path]:
    """Every file below `root`; a folder that cannot be listed (no permission, an I/O error) is appended to
    `problems` (never silently taken for an empty one)."""
    def unreadable(exc: OSError) -> None:
        if problems is not None:
            problems.append(Problem(_display(Path(exc.filename), root), "unreadable_folder",
                                    f"cannot list this folder ({exc.strerror}): give this user read access "
                                    "(e.g. chmod -R u+rX), then run again"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def unpack_zip(zpath: Path, dest: Path, config: PreprocessConfig, shown: str = "", progress: bool = True):
    """Extract the clips the index keeps from one zip into `dest/Actor_XX/`. Returns (extracted or already
    there, skipped stems by category, problems).

    Each clip is written atomically (a temporary file, then a rename) and gets its zip entry's time as
    its modification time, so the same zip unpacked again (another runtime) gives the same cache keys
    (`fer_lib.data.cache.source_key`). A clip already there with the same size is not extracted again.
    A zip with no clip to keep (audio-only, song) is a `wrong_zip` problem naming the zips needed.
    Raises zipfile.BadZipFile / OSError when the zip itself cannot be read.
    """
    shown = shown or zpath.name
    kept, todo, skipped, problems = [], [], {}, []
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            kind = _classify(info.filename, config)
            if kind[0] == "skip":
                skipped.setdefault(kind[1], set()).add(Path(info.filename).stem)
            elif kind[0] == "problem":
                problems.append(Problem(f"{shown}:{info.filename}", kind[1], kind[2]))
            elif kind[0] == "keep":
                target = dest / f"Actor_{kind[1].actor:02d}" / Path(info.filename).name
                kept.append(target)
                if not (target.is_file() and target.stat().st_size == info.file_size):
                    todo.append((info, target))
        if not kept and not problems:
            found = ", ".join(f"{len(v)} {k.replace('_', '-')}" for k, v in sorted(skipped.items())) or "no clip"
            problems.append(Problem(shown, "wrong_zip", f"holds no audio-visual speech clip ({found}); {SPEECH_ZIPS_HINT}"))
        for info, target in tqdm(todo, desc=f"unpack {zpath.name}", unit="clip", disable=not progress or not todo):
            try:
                with zf.open(info) as src, atomic_file(target) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                stamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(target, (stamp, stamp))
            except (zipfile.BadZipFile, EOFError) as exc:
                problems.append(Problem(f"{shown}:{info.filename}", "bad_zip",
                                        f"cannot extract ({exc}); re-download {zpath.name}"))
                kept.remove(target)
    return kept, skipped, problems


def unpack_zips(data_dir: str | Path, unpack_dir: Optional[str | Path] = None,
                config: Optional[PreprocessConfig] = None, progress: bool = True):
    """Unpack the RAVDESS zips under `data_dir` (idempotent, `unpack_zip`). Returns (destinations, skipped
    stems, problems); `dest` is the zip's folder or `unpack_dir`."""
    config = config or PreprocessConfig()
    data_dir = Path(data_dir)
    zips = sorted(p for p in _walk(data_dir) if p.suffix.lower() == ".zip")
    dests, skipped, problems = [], {}, []
    for zpath in zips:
        dest = Path(unpack_dir) if unpack_dir is not None else zpath.parent
        try:
            _, zip_skipped, zip_problems = unpack_zip(zpath, dest, config, _display(zpath, data_dir), progress)
        except (zipfile.BadZipFile, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                problems.append(Problem(_display(zpath, data_dir), "unpack_failed", f"cannot unpack it ({exc}); pass "
                                        "unpack_dir (--unpack_dir) to unpack somewhere writable"))
                continue
            if environment_fault(exc) is not None:
                raise  # the machine (a full disk, a lost Drive mount), not the zip: stop
            problems.append(Problem(_display(zpath, data_dir), "bad_zip",
                                    f"not a readable zip ({exc}); an interrupted download? re-download it"))
            continue
        for category, stems in zip_skipped.items():
            skipped.setdefault(category, set()).update(stems)
        problems += zip_problems
        if dest not in dests:
            dests.append(dest)
    return dests, skipped, problems


def build_index(data_dir: str | Path, config: Optional[PreprocessConfig] = None, probe_media: bool = False,
                unpack_dir: Optional[str | Path] = None, progress: bool = True) -> DataIndex:
    """Find the RAVDESS clips under `data_dir` (unpacking zips first). Raises DataError when there is none.

    `probe_media`: also open every kept clip with PyAV (streams present, file complete); a clip that
    fails becomes a Problem. Without it the index looks at names only (preprocessing finds broken
    files anyway, while decoding them).
    """
    config = config or PreprocessConfig()
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}; {LAYOUT_HINT}")
    dests, skipped_sets, problems = unpack_zips(root, unpack_dir, config, progress=progress)
    roots = [root] + [d for d in dests if not _inside(d, root)]
    seen: dict[str, Path] = {}
    clips: list[RavdessClip] = []
    n_files = 0
    for base in roots:
        for path in _walk(base, problems):
            kind = _classify(str(path), config)
            if kind[0] == "ignore":
                continue
            n_files += 1
            shown = _display(path, root)
            if kind[0] == "skip":
                skipped_sets.setdefault(kind[1], set()).add(path.stem)
            elif kind[0] == "problem":
                problems.append(Problem(shown, kind[1], kind[2]))
            else:
                record = kind[1]
                try:
                    path.stat()
                except OSError as exc:  # a link that loops or leads nowhere: stop before a cache file is written
                    raise DataError(f"clip {shown} cannot be read ({describe_os_error(exc)}); remove it, or make "
                                    "it the clip itself") from None
                if record.stem in seen:
                    problems.append(Problem(shown, "duplicate", f"same clip as {_display(seen[record.stem], root)} (kept that one)"))
                    continue
                seen[record.stem] = path
                clips.append(record)
    if probe_media and clips:
        from fer_lib.data.video import ClipError, probe

        usable = []
        for record in tqdm(clips, desc="checking clips", unit="clip", disable=not progress):
            try:
                probe(record.path)
                usable.append(record)
            except ClipError as exc:
                problems.append(Problem(_display(record.path, root), exc.kind, exc.message))
        clips = usable
    skipped = {k: len(v) for k, v in sorted(skipped_sets.items())}
    index = DataIndex(root=root, clips=sorted(clips, key=lambda c: (c.actor, c.stem)), problems=problems,
                      skipped=skipped, include_song=config.include_song)
    if not index.clips:
        raise DataError(_nothing_found(root, n_files, skipped, problems))
    return index


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _nothing_found(root: Path, n_files: int, skipped: dict, problems: list) -> str:
    wrong = [p.path for p in problems if p.kind == "wrong_zip"]
    if wrong:
        verb = "holds" if len(wrong) == 1 else "hold"
        return f"no usable RAVDESS clip in {root}: {', '.join(wrong)} {verb} no audio-visual speech clip; {SPEECH_ZIPS_HINT}"
    if skipped.get("video_only") and not problems:
        return (f"no usable RAVDESS clip in {root}: only {skipped['video_only']} video-only (02-...) files, which have "
                f"no audio; the audio-visual clips are the 01-01-... files of Video_Speech_Actor_XX.zip")
    what = f"{n_files} clip-like files, {len(problems)} with problems" if n_files else "no .mp4 file"
    first = f" (first: {problems[0].path}: {problems[0].reason})" if problems else ""
    return f"no usable RAVDESS clip in {root}: {what}{first}; {LAYOUT_HINT}"


# --------------------------------------------------------------------------------------------
# The check: print and save
# --------------------------------------------------------------------------------------------


def format_report(index: DataIndex, cached: Optional[dict[int, list[int]]] = None, max_missing: int = 12) -> str:
    """The human-readable check of the expected actors (`index.actors`): found vs expected per actor x emotion,
    missing names, problems."""
    speech = index.counts(1)
    total = sum(map(sum, speech.values()))
    expected = CLIPS_PER_ACTOR * len(index.actors)
    which = f"{NUM_ACTORS} actors" if index.actors == ALL_ACTORS else f"actors {actor_ranges(index.actors)}"
    lines = [f"RAVDESS data check: {index.root}",
             f"  audio-visual speech clips found: {total} of {expected} expected ({which} x {CLIPS_PER_ACTOR}: "
             "neutral 4, other emotions 8 each)"]
    skipped = ", ".join(f"{n} {k.replace('_', '-')}" for k, n in index.skipped.items()) or "none"
    lines.append(f"  skipped (not problems): {skipped}")
    lines.append(f"  problems: {len(index.problems)}" + (" (listed below, and in problems.csv)" if index.problems else ""))
    if index.others():
        lines.append(f"  not checked: the clips of actors {actor_ranges(index.others())}, which are not among those expected")
    header = "  actor sex " + " ".join(f"{a:>4}" for a in EMOTION_ABBREV) + "   total"
    lines += ["", header]
    for actor, counts in speech.items():
        n = sum(counts)
        note = "" if n == CLIPS_PER_ACTOR else ("  <- none found" if n == 0 else f"  <- {CLIPS_PER_ACTOR - n} missing")
        cells = " ".join(f"{c:>4}" for c in counts)
        lines.append(f"  {actor:>5} {'m' if actor % 2 else 'f':>3} {cells}  {n:>3}/{CLIPS_PER_ACTOR}{note}")
    lines.append(f"  {'expect':>9} " + " ".join(f"{c:>4}" for c in expected_counts()) + f" {CLIPS_PER_ACTOR:>4}")
    per_emotion = [sum(c[e] for c in speech.values()) for e in range(len(EMOTIONS))]
    lines.append(f"  {'total':>9} " + " ".join(f"{c:>4}" for c in per_emotion) + f" {total:>4}/{expected}")
    if index.include_song:
        song = sum(map(sum, index.counts(2).values()))
        song_expected = 44 * len(set(index.actors) - set(ACTORS_WITHOUT_SONG))
        lines.append(f"  song clips found: {song} of {song_expected} expected (44 per actor, none for actor 18)")
    if cached is not None:
        n_cached = sum(c for actor, counts in cached.items() if actor in index.actors for c in counts)
        lines.append(f"  preprocessed into the cache: {n_cached}")
    missing = index.missing(1)
    absent = [a for a, names in missing.items() if len(names) == CLIPS_PER_ACTOR]
    partial = {a: names for a, names in missing.items() if len(names) < CLIPS_PER_ACTOR}
    if absent:
        lines.append(f"\n  actors with no clip (download/unpack Video_Speech_Actor_XX.zip): {', '.join(f'{a:02d}' for a in absent)}")
    if partial:
        lines.append("  missing clips of the other actors:")
        for actor, names in partial.items():
            shown = ", ".join(names[:max_missing]) + (f" ... and {len(names) - max_missing} more" if len(names) > max_missing else "")
            lines.append(f"    actor {actor:02d} ({len(names)}): {shown}")
    if index.problems:
        lines.append("\n  problems (file: kind: reason):")
        for p in index.problems:
            lines.append(f"    {p.path}: {p.kind}: {p.reason}")
    return "\n".join(lines)


def save_report(out_dir: str | Path, report: dict, problems: list[Problem]) -> tuple[Path, Path]:
    """Write `report.json` and `problems.csv` (stage, kind, path, reason) into out_dir, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / REPORT_JSON, out_dir / PROBLEMS_CSV
    atomic_write_text(json_path, json.dumps(report, indent=2, default=str))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["stage", "kind", "path", "reason"])
    for p in problems:
        writer.writerow([p.stage, p.kind, p.path, p.reason])
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path


def check_data(data_dir: str | Path, out_dir: Optional[str | Path] = None, config: Optional[PreprocessConfig] = None,
               unpack_dir: Optional[str | Path] = None, verbose: bool = True, progress: bool = True) -> DataIndex:
    """The integrity check: index + open every clip, print found vs expected, save report.json/problems.csv.
    When `out_dir` is a preprocessing cache, its damaged shards are problems too.

    Raises DataError (one line) when the folder is missing or holds no usable clip; the report is
    saved first when `out_dir` is given.
    """
    try:
        index = build_index(data_dir, config, probe_media=True, unpack_dir=unpack_dir, progress=progress)
    except DataError as exc:
        if out_dir is not None:
            save_report(out_dir, {"data_dir": str(data_dir), "error": str(exc)}, [])
        raise
    if out_dir is not None:
        from fer_lib.data import cache  # cache.py builds on this module

        if cache.is_cache(out_dir):  # the shards already written there are checked too (every member's CRC-32)
            index.problems += cache.shard_problems(out_dir, crc=True)
    if verbose:
        print(format_report(index))
    if out_dir is not None:
        json_path, _ = save_report(out_dir, {"stage": "check", **index.to_dict()}, index.problems)
        if verbose:
            print(f"\n  saved {json_path} and {json_path.with_name(PROBLEMS_CSV).name}")
    return index


def problem_counts(problems: list[Problem]) -> dict[str, int]:
    return dict(sorted(Counter(p.kind for p in problems).items()))
