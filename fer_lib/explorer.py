"""The per-emotion confusion explorer: which emotions are confused with which, and the clips behind it.

Three layers, so that the logic is tested without a browser and the story survives where widgets
cannot render:

1. Data functions on per-clip predictions (`fer_lib.predictions.Predictions`, a predictions.csv or an
   evaluation folder): `class_view` (an emotion's row and column of the confusion matrix, recall,
   precision, its most frequent confusions, its misclassified clips), `misclassified` (clips of an
   emotion predicted as something else; every error with no emotion given), `false_alarms` (clips
   of other emotions predicted as it), `pair_clips` (exactly the clips with a given true and
   predicted class) and `top_confusions`.
2. `ConfusionExplorer(...).widget()`: an ipywidgets UI (core widgets only, works in Colab). Pick an
   emotion -> the confusion matrix with its row and column outlined, the row/column table, its top
   confusions and its misclassified clips; pick a true -> predicted pair -> exactly those clips.
   Each clip shows its face-crop strip (from the preprocessing cache), an audio player (the cached
   16 kHz window) and, on request, the original video when it is under `video_dir` (the RAVDESS
   folder) and small enough to embed (`VIDEO_EMBED_MAX_MB`).
3. `show_static(...)`: the same information as markdown tables and images (display()ed in a
   notebook, printed elsewhere), for GitHub's notebook view and headless runs, where widgets show
   nothing. It returns the markdown it produced.

`explore(...)` is the notebook's one call: the widget where widgets can work (in Colab, Colab's widget
manager is turned on by the setup cell: `fer_lib.colab.enable_widgets`), then the static view, which
leaves out the overall confusion matrix that the notebook showed just before (each figure once).
"""

from __future__ import annotations

import functools
import io
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer_lib import EMOTIONS, show
from fer_lib.errors import FerError
from fer_lib.fileio import atomic_write_bytes, atomic_write_text
from fer_lib.data.ravdess import actor_ranges
from fer_lib.predictions import Predictions, load_predictions
from fer_lib.reports import fmt, markdown_table

VIDEO_EMBED_MAX_MB = 8.0  # larger originals are not embedded (notebook size, browser memory)


def emotion_index(emotion) -> int:
    """0..7 for a class index or an emotion name (any case)."""
    if isinstance(emotion, (int, np.integer)):
        if not 0 <= int(emotion) < len(EMOTIONS):
            raise ValueError(f"class index must be 0..{len(EMOTIONS) - 1}, got {emotion}")
        return int(emotion)
    name = str(emotion).strip().lower()
    if name not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(name)


# --------------------------------------------------------------------------------------------
# 1. Data functions
# --------------------------------------------------------------------------------------------


def misclassified(predictions, emotion=None) -> np.ndarray:
    """Indices of the clips of `emotion` predicted as another class (every wrong clip when None),
    most confident mistakes first."""
    pred = load_predictions(predictions)
    mask = pred.labels != pred.preds
    if emotion is not None:
        mask &= pred.labels == emotion_index(emotion)
    return _by_confidence(pred, np.flatnonzero(mask))


def false_alarms(predictions, emotion) -> np.ndarray:
    """Indices of clips of other classes predicted as `emotion`, most confident first."""
    pred = load_predictions(predictions)
    k = emotion_index(emotion)
    return _by_confidence(pred, np.flatnonzero((pred.preds == k) & (pred.labels != k)))


def pair_clips(predictions, true, predicted) -> np.ndarray:
    """Indices of exactly the clips whose true class is `true` and predicted class `predicted`."""
    pred = load_predictions(predictions)
    t, p = emotion_index(true), emotion_index(predicted)
    return _by_confidence(pred, np.flatnonzero((pred.labels == t) & (pred.preds == p)))


def _by_confidence(pred: Predictions, idx: np.ndarray) -> np.ndarray:
    if idx.size == 0:
        return idx.astype(np.int64)
    conf = pred.probs[idx, pred.preds[idx]]
    return idx[np.lexsort((idx, -conf))].astype(np.int64)  # most confident first, then file order


def top_confusions(predictions, emotion=None, k: int = 5) -> list[dict]:
    """The most frequent off-diagonal cells: [{"true", "pred", "count", "share"}], `share` = count /
    clips of the true class. With `emotion`: only cells in its row or column."""
    cm = load_predictions(predictions).confusion()
    c = None if emotion is None else emotion_index(emotion)
    cells = []
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            if i == j or cm[i, j] == 0 or (c is not None and c not in (i, j)):
                continue
            cells.append({"true": EMOTIONS[i], "pred": EMOTIONS[j], "count": int(cm[i, j]),
                          "share": float(cm[i, j] / cm[i].sum())})
    cells.sort(key=lambda d: (-d["count"], EMOTIONS.index(d["true"]), EMOTIONS.index(d["pred"])))
    return cells[:k]


@dataclass
class ClassView:
    """Everything the explorer shows for one emotion."""

    emotion: str
    index: int
    row: dict[str, int]  # clips of this emotion by predicted class
    column: dict[str, int]  # clips predicted as this emotion by true class
    clips: int  # clips of this emotion
    correct: int
    recall: float
    precision: float
    top: list[dict]  # top_confusions in its row or column
    missed: np.ndarray  # misclassified(emotion)
    false_alarms: np.ndarray  # false_alarms(emotion)
    pairs: list[tuple[str, str, int]] = field(default_factory=list)  # non-empty off-diagonal cells of row/column


def class_view(predictions, emotion, k: int = 5) -> ClassView:
    pred = load_predictions(predictions)
    c = emotion_index(emotion)
    cm = pred.confusion()
    row = {EMOTIONS[j]: int(cm[c, j]) for j in range(len(EMOTIONS))}
    column = {EMOTIONS[i]: int(cm[i, c]) for i in range(len(EMOTIONS))}
    clips, predicted = int(cm[c].sum()), int(cm[:, c].sum())
    pairs = [(EMOTIONS[c], EMOTIONS[j], int(cm[c, j])) for j in range(len(EMOTIONS)) if j != c and cm[c, j]]
    pairs += [(EMOTIONS[i], EMOTIONS[c], int(cm[i, c])) for i in range(len(EMOTIONS)) if i != c and cm[i, c]]
    pairs.sort(key=lambda p: -p[2])
    return ClassView(
        emotion=EMOTIONS[c], index=c, row=row, column=column, clips=clips, correct=int(cm[c, c]),
        recall=cm[c, c] / clips if clips else 0.0, precision=cm[c, c] / predicted if predicted else 0.0,
        top=top_confusions(pred, c, k), missed=misclassified(pred, c), false_alarms=false_alarms(pred, c), pairs=pairs,
    )


def row_column_markdown(view: ClassView) -> str:
    """The emotion's row (true = it) and column (predicted = it) of the confusion matrix as one table."""
    rows = [(f"**{name}**" if name == view.emotion else name, view.row[name], view.column[name]) for name in EMOTIONS]
    return markdown_table(("class", f"true {view.emotion} → predicted as class", f"true class → predicted {view.emotion}"),
                          rows)


def clips_markdown(pred: Predictions, indices, limit: Optional[int] = None) -> str:
    idx = list(indices)[:limit] if limit else list(indices)
    rows = [(Path(r["path"]).stem, r["actor"], r["true_name"], r["pred_name"], fmt(r["p_pred"]), fmt(r["p_true"]))
            for r in pred.rows(idx)]
    return markdown_table(("clip", "actor", "true", "predicted", "p(predicted) %", "p(true) %"), rows)


# --------------------------------------------------------------------------------------------
# Clip media from the preprocessing cache
# --------------------------------------------------------------------------------------------


def load_media(cache_dir: Optional[str | Path], clip_path: str) -> Optional[dict]:
    """{"frames" uint8 [T, 3, S, S], "audio" float32 [valid samples], "sample_rate"} of a cached clip, or None.

    Looks in `cache_dir` by the clip's stem first (the Drive cache: the path in predictions.csv may be a
    runtime-local copy that is gone), then at `clip_path` itself when it is a cache entry.
    """
    from fer_lib.data import cache

    stem = Path(clip_path).stem
    candidates = [cache.entry_path(cache_dir, stem)] if cache_dir is not None else []
    candidates.append(Path(clip_path))
    for path in candidates:
        try:
            entry = cache.read_entry(path)
            rate = cache.manifest_config(cache.cache_dir_of(path)).input.sample_rate
        except (FerError, OSError, KeyError, ValueError):
            continue
        return {"frames": entry["frames"], "audio": entry["audio"][: int(entry["audio_length"])].astype(np.float32),
                "sample_rate": int(rate)}
    return None


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV of float audio in [-1, 1] (peak-normalised when quiet, so it can be heard)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if 0 < peak < 0.5:
        audio = audio * (0.9 / peak)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def png_of_array(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm")


def video_index(video_dir: Optional[str | Path]) -> dict[str, Path]:
    """{clip stem: video path} of every video under `video_dir` (the RAVDESS folder), searched once."""
    if video_dir is None or not Path(video_dir).is_dir():
        return {}
    return {p.stem: p for p in sorted(Path(video_dir).rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES}


def video_file(clip_path: str, videos: Optional[dict[str, Path]] = None,
               max_mb: float = VIDEO_EMBED_MAX_MB) -> Optional[Path]:
    """The original video of a clip (the path itself when it is a video, else by stem in `videos`) when
    it exists and is small enough to embed; None otherwise."""
    path = Path(clip_path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        path = (videos or {}).get(path.stem)
    try:
        return path if path is not None and path.is_file() and path.stat().st_size <= max_mb * 2**20 else None
    except OSError:
        return None


def _n(count: int, word: str, with_count: bool = True) -> str:
    """'1 clip', '3 clips'; without the count: 'actor', 'actors'."""
    noun = word if count == 1 else word + "s"
    return f"{count} {noun}" if with_count else noun


def _caption(row: dict) -> str:
    return (f"{Path(row['path']).stem} · actor {row['actor']} · true {row['true_name']} → predicted "
            f"{row['pred_name']} ({fmt(row['p_pred'])}%; p(true) {fmt(row['p_true'])}%)")


# --------------------------------------------------------------------------------------------
# 3. Static view (GitHub, headless runs)
# --------------------------------------------------------------------------------------------


def _show(markdown: Optional[str] = None, png: Optional[bytes] = None, display: bool = True) -> None:
    if display:
        show.markdown(markdown)
        if png:
            show.figure(png)


def show_static(predictions, cache_dir: Optional[str | Path] = None, emotions: Optional[Sequence] = None,
                max_clips: int = 4, subtitle: str = "", display: bool = True, out_dir: Optional[str | Path] = None,
                matrix: bool = True) -> str:
    """The explorer as markdown tables and images, for every emotion (or `emotions`).

    Overall: the confusion matrix (unless `matrix=False`) and the most frequent confusions. Per emotion: its
    row and column of the confusion matrix, recall and precision, its most frequent confusions, and
    its `max_clips` most confident mistakes (with their face strips when `cache_dir` holds them).
    In a notebook each part is display()ed (markdown + PNG); elsewhere the markdown is printed.
    `out_dir`: also save the markdown (`explorer.md`) and the images there. Returns the markdown.
    """
    from fer_lib.plots import confusion_figure, face_strip, png_bytes, strips_figure

    pred = load_predictions(predictions)
    names = [EMOTIONS[emotion_index(e)] for e in (emotions if emotions is not None else EMOTIONS)]
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    cm = pred.confusion()
    overall = top_confusions(pred, k=8)
    head = [f"## Confusion explorer{': ' + subtitle if subtitle else ''}", "",
            f"{_n(len(pred), 'clip')} of {_n(len(set(pred.actors.tolist())), 'actor', False)} "
            f"{actor_ranges(pred.actors)}; {int(np.trace(cm))} correct, {len(misclassified(pred))} misclassified.", "", "Most frequent confusions overall:", "",
            markdown_table(("true", "predicted as", "clips", "share of the true class %"),
                           [(c["true"], c["pred"], c["count"], fmt(c["share"])) for c in overall]) if overall else "none"]
    parts = ["\n".join(head)]
    matrix_png = png_bytes(confusion_figure(cm, subtitle=subtitle)) if matrix else None
    _show(parts[0], matrix_png, display)
    if out and matrix_png:
        atomic_write_bytes(out / "confusion.png", matrix_png)
    for name in names:
        view = class_view(pred, name)
        text = [f"### {name}", "",
                f"{_n(view.clips, 'clip')}, {view.correct} correct: recall {fmt(view.recall)}%, precision {fmt(view.precision)}%; "
                f"{len(view.missed)} misclassified, {len(view.false_alarms)} clips of other emotions predicted as {name}.",
                "", row_column_markdown(view), ""]
        if view.top:
            text += ["Most frequent confusions:", "",
                     markdown_table(("true", "predicted as", "clips"), [(c["true"], c["pred"], c["count"]) for c in view.top]),
                     ""]
        if len(view.missed):
            shown = view.missed[:max_clips]
            text += [f"Misclassified {name} clips ({len(shown)} of {len(view.missed)}, most confident first):", "",
                     clips_markdown(pred, shown), ""]
        else:
            text += [f"No misclassified {name} clip.", ""]
        md = "\n".join(text)
        strips, captions = [], []
        for row in pred.rows(view.missed[:max_clips]):
            media = load_media(cache_dir, row["path"])
            if media is not None:
                strips.append(face_strip(media["frames"]))
                captions.append(_caption(row))
        png = png_bytes(strips_figure(strips, captions, title=f"misclassified {name}")) if strips else None
        if png and out:
            atomic_write_bytes(out / f"misclassified_{name}.png", png)
        _show(md, png, display)
        parts.append(md)
    markdown = "\n\n".join(parts)
    if out:
        atomic_write_text(out / "explorer.md", markdown)
    return markdown


# --------------------------------------------------------------------------------------------
# 2. The widget
# --------------------------------------------------------------------------------------------


class ConfusionExplorer:
    """ipywidgets UI over one evaluation (see the module docstring). Build it, then `.widget()`."""

    PAGE = 6  # clips per page

    def __init__(self, predictions, cache_dir: Optional[str | Path] = None, subtitle: str = "",
                 video_dir: Optional[str | Path] = None, video_max_mb: float = VIDEO_EMBED_MAX_MB):
        self.pred = load_predictions(predictions)
        self.cache_dir = cache_dir
        self.videos = video_index(video_dir)
        self.subtitle = subtitle
        self.video_max_mb = video_max_mb
        self.cm = self.pred.confusion()
        self._ui = None
        self._pairs: list = []
        self._indices = np.zeros(0, np.int64)
        self._updating = False

    # selection -> clip indices (the widget's only logic, testable without a browser)
    def selection(self, emotion, pair: Optional[tuple[str, str]] = None) -> np.ndarray:
        if pair is not None:
            return pair_clips(self.pred, *pair)
        return misclassified(self.pred, emotion)

    def pair_options(self, emotion) -> list[tuple[str, Optional[tuple[str, str]]]]:
        view = class_view(self.pred, emotion)
        options = [(f"all misclassified {view.emotion} ({len(view.missed)})", None)]
        options += [(f"{t} → {p} ({n})", (t, p)) for t, p, n in view.pairs]
        options += [(f"{view.emotion} → {view.emotion}, correct ({view.correct})", (view.emotion, view.emotion))]
        return options

    def widget(self):
        import ipywidgets as w

        counts = self.cm.sum(axis=1)
        wrong = counts - np.diag(self.cm)
        self.emotion = w.Dropdown(options=[(f"{e} ({int(counts[k])} clips, {int(wrong[k])} wrong)", e)
                                           for k, e in enumerate(EMOTIONS)],
                                  value=EMOTIONS[int(np.argmax(wrong))], description="emotion")
        self.pair = w.Dropdown(description="clips", layout=w.Layout(width="420px"))
        self.page = w.BoundedIntText(value=1, min=1, max=1, description="page", layout=w.Layout(width="160px"))
        self.matrix = w.Image(format="png", layout=w.Layout(max_width="520px"))
        self.tables = w.HTML()
        self.clips = w.VBox()
        self.status = w.HTML()
        actors = len(set(self.pred.actors.tolist()))
        header = w.HTML(f"<b>Confusion explorer</b>{': ' + self.subtitle if self.subtitle else ''} "
                        f"({_n(len(self.pred), 'clip')}, {_n(actors, 'actor', False)} {actor_ranges(self.pred.actors)})")
        controls = w.HBox([self.emotion, self.pair, self.page])
        self._ui = _explorer_box_class()([header, controls, w.HBox([self.matrix, self.tables]), self.status, self.clips])
        self._on_emotion()
        self.emotion.observe(lambda change: self._on_emotion(), names="value")
        self.pair.observe(lambda change: self._on_pair(), names="value")
        self.page.observe(lambda change: None if self._updating else self._render_clips(), names="value")
        return self._ui

    def _on_emotion(self) -> None:
        from fer_lib.plots import confusion_figure, png_bytes

        view = class_view(self.pred, self.emotion.value)
        self.matrix.value = png_bytes(confusion_figure(self.cm, subtitle=self.subtitle, highlight=view.index), dpi=80)
        self.tables.value = _html_tables(view)
        options = self.pair_options(view.emotion)
        self._pairs = [pair for _, pair in options]
        self._updating = True  # the pair observer stays quiet while the options change
        self.pair.options = [(label, i) for i, (label, _) in enumerate(options)]
        self.pair.value = 0
        self._updating = False
        self._on_pair()

    def _on_pair(self) -> None:
        if self.pair.value is None or self._updating:
            return
        self._indices = self.selection(self.emotion.value, self._pairs[self.pair.value])
        self._updating = True
        self.page.value = 1
        self.page.max = max(1, -(-len(self._indices) // self.PAGE))
        self._updating = False
        self._render_clips()

    def _render_clips(self) -> None:
        import ipywidgets as w

        start = (self.page.value - 1) * self.PAGE
        shown = self._indices[start : start + self.PAGE]
        self.status.value = (f"{len(self._indices)} clips; showing {start + 1}-{start + len(shown)}"
                             if len(shown) else "no clip")
        self.clips.children = [self._clip_box(row, w) for row in self.pred.rows(shown)]

    def _clip_box(self, row: dict, w):
        from fer_lib.plots import face_strip

        parts = [w.HTML(f"<code>{_caption(row)}</code>")]
        media = load_media(self.cache_dir, row["path"])
        if media is not None:
            parts.append(w.Image(value=png_of_array(face_strip(media["frames"])), format="png"))
            parts.append(w.Audio(value=wav_bytes(media["audio"], media["sample_rate"]), format="wav", autoplay=False,
                                 controls=True, loop=False))
        else:
            parts.append(w.HTML("<i>not in the cache: no face strip or audio</i>"))
        video = video_file(row["path"], self.videos, self.video_max_mb)
        if video is not None:
            slot = w.VBox()
            button = w.Button(description="show video", icon="play")

            def load(_, slot=slot, video=video, button=button):
                slot.children = [w.Video(value=video.read_bytes(), format=video.suffix.lstrip(".").lower() or "mp4",
                                         autoplay=False, controls=True, layout=w.Layout(max_width="480px"))]
                button.disabled = True

            button.on_click(load)
            parts += [button, slot]
        return w.VBox(parts, layout=w.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))


@functools.lru_cache(maxsize=None)
def _explorer_box_class():
    """Built on first use, so that importing this module does not import ipywidgets."""
    import ipywidgets as w

    class ExplorerBox(w.VBox):
        """A VBox whose plain-text form (what GitHub shows in place of a widget) says where to look."""

        def __repr__(self) -> str:
            return "[interactive confusion explorer: open in Colab or Jupyter; the static view below has the same content]"

    return ExplorerBox


def _html_tables(view: ClassView) -> str:
    rows = "".join(f"<tr><td>{'<b>' + n + '</b>' if n == view.emotion else n}</td><td>{view.row[n]}</td>"
                   f"<td>{view.column[n]}</td></tr>" for n in EMOTIONS)
    top = "".join(f"<li>{c['true']} → {c['pred']}: {c['count']}</li>" for c in view.top) or "<li>none</li>"
    return (f"<div style='padding-left:12px'><b>{view.emotion}</b>: {_n(view.clips, 'clip')}, recall {fmt(view.recall)}%, "
            f"precision {fmt(view.precision)}%<br><table><tr><th>class</th><th>true {view.emotion} → predicted as</th>"
            f"<th>true → predicted {view.emotion}</th></tr>{rows}</table>"
            f"<b>most frequent confusions</b><ul>{top}</ul></div>")


def _run_state(predictions) -> Optional[str]:
    """The `run_state` note that evaluate wrote beside a predictions.csv (None: none, or not a path)."""
    if not isinstance(predictions, (str, Path)):
        return None
    folder = Path(predictions) if Path(predictions).is_dir() else Path(predictions).parent
    try:
        return json.loads((folder / "metrics.json").read_text()).get("run_state")
    except (OSError, ValueError, AttributeError):
        return None


def widgets_available() -> bool:
    """True in a notebook kernel with ipywidgets importable (Colab, Jupyter); False in a terminal or test."""
    if not show.in_notebook():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def explore(predictions, cache_dir: Optional[str | Path] = None, subtitle: str = "", static=True,
            max_clips: int = 4, video_dir: Optional[str | Path] = None) -> ConfusionExplorer:
    """Show the explorer: the widget where widgets work, then the static view without the overall matrix.

    `static=True` (default) always adds the static view: a notebook saved after a Colab run still
    tells the story on GitHub and in headless runs, where no widget renders (nothing in the kernel
    can tell that the output will be read there). `"auto"`: the static view only where widgets
    cannot work at all (no notebook kernel or no ipywidgets); `False`: never. `video_dir`: the
    RAVDESS folder, for playing the original clips; when it holds none, the explorer says so. Predictions
    of an evaluation of an incomplete run (its metrics.json's `run_state`: run_folder.sync_note) say so
    first. Returns the ConfusionExplorer.
    """
    explorer = ConfusionExplorer(predictions, cache_dir, subtitle, video_dir=video_dir)
    run_state = _run_state(predictions)
    if run_state:
        show.warning(run_state)
    if not explorer.videos:
        show.markdown(f"The original videos are not available{f' under {video_dir}' if video_dir else ''}: "
                      "the explorer shows each clip's face crops and audio from the cache, without its video.")
    has_widgets = widgets_available()
    if has_widgets:
        from IPython.display import display

        display(explorer.widget())
    if static is True or (static == "auto" and not has_widgets):
        show_static(explorer.pred, cache_dir, max_clips=max_clips, subtitle=subtitle, matrix=False)
    return explorer
