"""RAVDESS file names: `MM-VV-EE-II-SS-RR-AA.mp4` parsed into the one clip record of fer_lib, `RavdessClip`.

Fields (all two digits): media type (01 audio+video, 02 video only, 03 audio only; RAVDESS calls it
"modality", a word fer_lib keeps for the model's inputs, see `fer_lib.modalities`), vocal channel
(01 speech, 02 song), emotion (01..08, see `fer_lib.EMOTIONS`), intensity (01 normal, 02 strong;
neutral has no strong), statement (01, 02), repetition (01, 02), actor (01..24; odd male, even female).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fer_lib import EMOTIONS
from fer_lib.errors import FerError

NAME_PATTERN = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
NUM_ACTORS = 24
ALL_ACTORS = tuple(range(1, NUM_ACTORS + 1))
MEDIA_TYPE_NAMES = {1: "audio+video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNEL_NAMES = {1: "speech", 2: "song"}


class RavdessNameError(FerError):
    """A file name is not a valid RAVDESS name; the message says which field is wrong."""


@dataclass(frozen=True)
class RavdessClip:
    """One clip: where it is (a video, or its preprocessing-cache entry) and the 7 fields of its name."""

    path: Path
    media_type: int  # 1 audio+video, 2 video only, 3 audio only
    vocal_channel: int  # 1 speech, 2 song
    emotion: int  # RAVDESS code 1..8
    intensity: int  # 1 normal, 2 strong
    statement: int  # 1 "Kids are talking by the door", 2 "Dogs are sitting by the door"
    repetition: int
    actor: int  # 1..24

    @property
    def label(self) -> int:
        """Class index 0..7 (emotion code - 1), order of `fer_lib.EMOTIONS`."""
        return self.emotion - 1

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.label]

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def stem(self) -> str:
        return "-".join(
            f"{v:02d}"
            for v in (self.media_type, self.vocal_channel, self.emotion, self.intensity,
                      self.statement, self.repetition, self.actor)
        )


_RANGES = {
    "media_type": (1, 3),
    "vocal_channel": (1, 2),
    "emotion": (1, 8),
    "intensity": (1, 2),
    "statement": (1, 2),
    "repetition": (1, 2),
    "actor": (1, NUM_ACTORS),
}


def parse_name(path: str | Path) -> RavdessClip:
    """The clip record of a RAVDESS file name (any folder, any case of extension). Raises RavdessNameError."""
    stem = Path(path).stem
    match = NAME_PATTERN.match(stem)
    if not match:
        raise RavdessNameError(f"not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA): {Path(path).name}")
    values = dict(zip(_RANGES, (int(g) for g in match.groups())))
    for name, (low, high) in _RANGES.items():
        if not low <= values[name] <= high:
            raise RavdessNameError(f"{name} {values[name]:02d} out of range {low:02d}-{high:02d}: {Path(path).name}")
    if values["emotion"] == 1 and values["intensity"] == 2:
        raise RavdessNameError(f"neutral has no strong intensity: {Path(path).name}")
    return RavdessClip(path=Path(path), **values)


def actor_ranges(actors: Iterable[int]) -> str:
    """[1, 2, 3, 4, 9] -> '1-4, 9'."""
    actors = sorted(set(int(a) for a in actors))
    if not actors:
        return "none"
    parts, start, prev = [], actors[0], actors[0]
    for a in actors[1:] + [None]:
        if a is not None and a == prev + 1:
            prev = a
            continue
        parts.append(f"{start}-{prev}" if prev > start else f"{start}")
        if a is not None:
            start = prev = a
    return ", ".join(parts)
