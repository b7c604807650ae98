"""The model's input modalities: one type, one command-line spelling, one display name.

    MODALITIES           ("audio", "visual"): every modality, in the order fusion interleaves them
    Modalities           a non-empty subset of MODALITIES, in that order (what `EmotionModel(modalities=)` takes)
    FLAGS                the command-line spelling (`--modalities av|a|v`) -> Modalities
    parse("av")          -> ("audio", "visual"); ConfigError (one line) for anything else
    flag(("audio",))     -> "a"
    display_name("a")    -> "audio only"  (takes a flag or Modalities)
    joined(modalities)   -> "audio+visual": how per-window results spell the modalities a window used

"Modality" means only this. RAVDESS file names have a field of their own for the recording's media
(audio+video, video only, audio only): `media_type` in `fer_lib.data.ravdess`, a different thing.
"""

from __future__ import annotations

from typing import Iterable, Union

MODALITIES = ("audio", "visual")
Modalities = tuple[str, ...]
FLAGS: dict[str, Modalities] = {"av": ("audio", "visual"), "a": ("audio",), "v": ("visual",)}
DISPLAY_NAMES = {"av": "audio+visual", "a": "audio only", "v": "visual only"}


def parse(value: str) -> Modalities:
    """The Modalities of a command-line flag value (av | a | v)."""
    from fer_lib.config import ConfigError

    if value not in FLAGS:
        raise ConfigError(f"unknown modalities {value!r}: use av (audio+visual), a (audio only) or v (visual only)")
    return FLAGS[value]


def check(modalities: Iterable[str]) -> Modalities:
    """`modalities` as Modalities (in canonical order); ValueError when it is not a non-empty subset."""
    given = tuple(modalities)
    if not given or set(given) - set(MODALITIES):
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {given}")
    return tuple(m for m in MODALITIES if m in given)


def flag(modalities: Iterable[str]) -> str:
    return "".join(m[0] for m in check(modalities))


def display_name(value: Union[str, Iterable[str]]) -> str:
    return DISPLAY_NAMES[value if isinstance(value, str) else flag(value)]


def joined(modalities: Iterable[str]) -> str:
    return "+".join(check(modalities))
