"""RAVDESS file names: `MM-VV-EE-II-SS-RR-AA.mp4` parsed into typed records and back.

Fields (all two digits): modality (01 audio+video, 02 video only, 03 audio only), vocal channel
(01 speech, 02 song), emotion (01..08, see `fer_lib.EMOTIONS`), intensity (01 normal, 02 strong;
neutral has no strong), statement (01, 02), repetition (01, 02), actor (01..24; odd male, even female).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fer_lib import EMOTIONS

NAME_PATTERN = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
NUM_ACTORS = 24
MODALITY_NAMES = {1: "audio+video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNEL_NAMES = {1: "speech", 2: "song"}


class RavdessNameError(ValueError):
    """A file name is not a valid RAVDESS name; the message says which field is wrong."""


@dataclass(frozen=True)
class RavdessName:
    modality: int
    vocal_channel: int
    emotion: int  # RAVDESS code 1..8
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def label(self) -> int:
        """Class index 0..7 (emotion code - 1)."""
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
            for v in (self.modality, self.vocal_channel, self.emotion, self.intensity,
                      self.statement, self.repetition, self.actor)
        )


_RANGES = {
    "modality": (1, 3),
    "vocal_channel": (1, 2),
    "emotion": (1, 8),
    "intensity": (1, 2),
    "statement": (1, 2),
    "repetition": (1, 2),
    "actor": (1, NUM_ACTORS),
}


def parse_name(path: str | Path) -> RavdessName:
    """Parse a RAVDESS file name (any folder, any case of extension). Raises RavdessNameError."""
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
    return RavdessName(**values)
