"""Every plot fer_lib writes, in one place: confusion matrices, the prediction timeline, face strips.

All figures are built with `matplotlib.figure.Figure` (no pyplot state, no GUI backend), so they
work the same in a Colab cell, a headless papermill run and a test. `save_png` writes a figure to a
file atomically and closes nothing global. Each function takes the fold/split description as a
`subtitle` so that every figure names the actors it was measured on.

Every figure has a title, a label on each axis that has tick labels, and a legend or colour bar
wherever colour means something; digits drawn on coloured cells are black or white, whichever reads
better on that cell (`text_colour`); lines that may coincide differ in style, not only in colour.
tests/test_figures.py checks all of it for every figure here, and that no other module draws one.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from fer_lib import EMOTIONS
from fer_lib.fileio import atomic_file


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` to `path` (PNG) via a temporary file, so a disconnect never leaves half a PNG."""
    with atomic_file(path) as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def row_normalize(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall on the diagonal); rows without clips stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def text_colour(rgba) -> str:
    """"black" or "white", whichever contrasts more with a cell of colour `rgba` (WCAG relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"


def confusion_figure(cm: np.ndarray, classes: Sequence[str] = EMOTIONS, title: str = "Confusion matrix",
                     subtitle: str = "", highlight: Optional[int] = None) -> Figure:
    """Rows = true class, columns = predicted class. Each cell shows its clips and their share of the row
    (on the diagonal: the class's recall), coloured by that share, so that classes with fewer clips
    compare fairly. `highlight`: index of a class whose row and column are outlined (the explorer's choice).
    """
    cm = np.asarray(cm)
    share = row_normalize(cm)
    n = len(classes)
    fig = Figure(figsize=(1.4 + 0.8 * n, 0.9 + 0.75 * n))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(classes), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (clips)")
    for (i, j), count in np.ndenumerate(cm):
        text = f"{int(count)}\n{100 * share[i, j]:.0f}%" if count else "0"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=text_colour(image.cmap(image.norm(share[i, j]))))
    if highlight is not None:
        from matplotlib.patches import Rectangle

        for xy, w, h in (((-0.5, highlight - 0.5), n, 1), ((highlight - 0.5, -0.5), 1, n)):
            ax.add_patch(Rectangle(xy, w, h, fill=False, edgecolor="crimson", linewidth=2))
    ax.set_title(title + " (clips, % of the row)" + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(rows: Sequence[dict]) -> Figure:
    """Loss and accuracy per epoch of a run's metrics rows (training/logging.py); whole epochs on the x axis."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    for key, label, style in (("train_loss", "train", "-o"), ("val_loss", "val", "--s")):
        loss.plot(epochs, [row[key] for row in rows], style, markersize=4, label=label)
    # Validation WAR, UAR and macro-F1 are often equal (balanced classes): each has its own line style and
    # marker, so that none hides another.
    for key, label, style in (("train_acc", "train acc", "-o"), ("val_acc", "val acc (WAR)", "-s"),
                              ("val_uar", "val UAR", "--^"), ("val_macro_f1", "val macro-F1", ":x")):
        acc.plot(epochs, [row[key] for row in rows], style, markersize=5, fillstyle="none", label=label)
    loss.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    acc.set(title="accuracy", xlabel="epoch", ylabel="share of clips (WAR) / score", ylim=(0, 1))
    for ax in (loss, acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def timeline_figure(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray, classes: Sequence[str] = EMOTIONS,
                    title: str = "Emotion over time", subtitle: str = "") -> Figure:
    """Per-window class probabilities over time (lines at window centres) and the winning class per window."""
    starts, ends, probs = np.asarray(starts, float), np.asarray(ends, float), np.asarray(probs, float)
    centres = (starts + ends) / 2
    fig = Figure(figsize=(10, 5))
    ax, band = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=[4, 1]))
    colors = [f"C{i}" for i in range(len(classes))]
    for k, name in enumerate(classes):
        ax.plot(centres, probs[:, k], marker="o" if len(centres) < 40 else None, color=colors[k], label=name)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    top = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
    hop = np.diff(centres).min() if len(centres) > 1 else (ends - starts).max(initial=1.0)
    for c, k in zip(centres, top):  # the winner of each window, drawn over its share of the timeline
        band.axvspan(c - hop / 2, c + hop / 2, color=colors[k], alpha=0.8)
    for k in sorted(set(top.tolist())):
        band.text(centres[top == k][0], 0.5, classes[k], ha="center", va="center", fontsize=8)
    band.set_yticks([])
    if len(starts):
        band.set_xlim(float(starts.min()), float(ends.max()))
    band.set_xlabel("time in the video (s); points at window centres")
    fig.tight_layout()
    return fig


def _spread(n: int, count: int) -> np.ndarray:
    """`count` (at most n) indices spread evenly over range(n), first and last included."""
    return np.linspace(0, n - 1, num=min(count, n)).round().astype(int)


def _frame_row(picks: np.ndarray, panel_size: tuple[float, float]) -> tuple[Figure, list]:
    """A figure with one row of panels, one per picked frame: (figure, [(axis, frame index)])."""
    fig = Figure(figsize=(panel_size[0] * len(picks), panel_size[1]), layout="constrained")
    return fig, list(zip(np.atleast_1d(fig.subplots(1, len(picks))), picks))


def _finish(fig: Figure, title: str, fontsize: int = 9) -> Figure:
    """The figure's overall title (if any), and a tight layout unless it has a constrained one."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    return fig


def face_strip(frames: np.ndarray, count: int = 8, size: int = 96) -> np.ndarray:
    """`count` evenly spaced face crops side by side, each `size` px: uint8 [size, count*size, 3].

    `frames`: uint8 [T, 3, H, W] (the cache's layout) or [T, H, W, 3].
    """
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected frames [T, C, H, W] or [T, H, W, C], got shape {frames.shape}")
    if frames.shape[1] == 3 and frames.shape[-1] != 3:
        frames = frames.transpose(0, 2, 3, 1)
    picks = _spread(len(frames), count)
    tiles = [np.asarray(Image.fromarray(np.ascontiguousarray(frames[i]).astype(np.uint8)).resize((size, size)))
             for i in picks]
    return np.concatenate(tiles, axis=1)


def strips_figure(strips: Sequence[np.ndarray], captions: Sequence[str], title: str) -> Figure:
    """Face strips stacked vertically, one caption each (the static explorer's clip gallery)."""
    rows = max(1, len(strips))
    aspect = max((strip.shape[1] / strip.shape[0] for strip in strips), default=8)
    fig = Figure(figsize=(min(10, max(5, 1.3 * aspect)), 1.3 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, 1))
    for ax, strip, caption in zip(axes, strips, captions):
        ax.imshow(strip)
        ax.set_anchor("W")  # left-aligned, under their captions and the title
        ax.set_title(caption, fontsize=8, loc="left")
        ax.axis("off")
    for ax in axes[len(strips):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def bars_figure(table: dict[str, dict[str, float]], metrics: Sequence[str], title: str = "", subtitle: str = "",
                errors: Optional[dict[str, dict[str, float]]] = None, ylabel: str = "score (1 = every clip right)") -> Figure:
    """Grouped bars: one group per metric, one bar per row of `table` (e.g. modality or fold)."""
    rows = list(table)
    fig = Figure(figsize=(3.0 + 1.6 * len(metrics), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(rows))
    for r, row in enumerate(rows):
        xs = np.arange(len(metrics)) + (r - (len(rows) - 1) / 2) * width
        ys = [table[row][m] for m in metrics]
        yerr = [errors[row][m] for m in metrics] if errors else None
        ax.bar(xs, ys, width, yerr=yerr, capsize=3, label=row)
        for x, y in zip(xs, ys):
            ax.text(x, y + 0.01, f"{y:.3f}", ha="center", va="bottom", fontsize=7)
    pretty = {"war": "WAR", "uar": "UAR", "macro_f1": "macro-F1"}
    ax.set_xticks(range(len(metrics)), labels=[pretty.get(m, m) for m in metrics])
    ax.set(xlabel="metric", ylabel=ylabel, ylim=(0, 1.1))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars: never over a value
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    fig.tight_layout()
    return fig


def counts_heatmap(counts: dict[int, Sequence[int]], expected: Sequence[int], title: str = "") -> Figure:
    """Clips found per actor x emotion (the digits), each cell coloured by how complete it is (found / expected)."""
    actors = sorted(counts)
    found = np.array([counts[a] for a in actors], dtype=float).reshape(len(actors), len(EMOTIONS))  # (A, 8)
    share = found / np.maximum(np.asarray(expected, dtype=float), 1)
    fig = Figure(figsize=(8, 0.28 * len(actors) + 2.0), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02, label="share of the expected clips found")
    for (i, j), value in np.ndenumerate(found):
        ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                color=text_colour(image.cmap(image.norm(share[i, j]))))
    ax.set_xticks(range(len(EMOTIONS)), [f"{e} ({n})" for e, n in zip(EMOTIONS, expected)], rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(actors)), [f"{a:02d}" for a in actors], fontsize=7)
    ax.set(xlabel="emotion (clips expected per actor)", ylabel="actor")
    ax.set_title(title or "Clips found per actor and emotion (green: all expected clips, red: none)", fontsize=9)
    return fig


LANDMARKS = (("eyes", "cyan"), ("nose", "yellow"), ("mouth corners", "magenta"))  # MTCNN's 5 points, by part
LANDMARK_COLOURS = ["cyan", "cyan", "yellow", "magenta", "magenta"]


def _draw_landmarks(ax, landmarks: np.ndarray, size: float = 12) -> None:
    ax.scatter(landmarks[:, 0], landmarks[:, 1], s=size, c=LANDMARK_COLOURS)


def _legend(fig: Figure, *extra) -> None:
    """The landmark colours (and `extra` handles) as one row under the panels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="o", color=colour, markeredgecolor="grey", label=part)
               for part, colour in LANDMARKS]
    fig.legend(handles=[*handles, *extra], loc="outside lower center", ncol=len(handles) + len(extra), fontsize=7,
               frameon=False)


def face_track_figure(frames: Sequence[np.ndarray], boxes: np.ndarray, landmarks: np.ndarray,
                      detected: np.ndarray, count: int = 4,
                      title: str = "The face as preprocessing tracks it: its box and 5 landmarks") -> Figure:
    """Whole frames with the tracked face box and the 5 landmarks (dashed box: not detected, filled in)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig, panels = _frame_row(_spread(len(frames), count), panel_size=(3.2, 2.5))
    for ax, i in panels:
        ax.imshow(frames[i])
        x0, y0, x1, y1 = boxes[i]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime",
                               linestyle="-" if detected[i] else "--"))
        _draw_landmarks(ax, landmarks[i], size=6)
        ax.set_title(f"frame {i}", fontsize=8)
        ax.axis("off")
    _legend(fig, Line2D([], [], color="lime", label="face box (found)"),
            Line2D([], [], color="lime", linestyle="--", label="face box (filled in from its neighbours)"))
    return _finish(fig, title)


def landmark_strip_figure(crops: np.ndarray, landmarks: np.ndarray, count: int = 8,
                          title: str = "The face crops the model sees, with their landmarks") -> Figure:
    """The face crops the model sees ([T, 3, H, W] uint8) with their landmarks (crop pixels)."""
    fig, panels = _frame_row(_spread(len(crops), count), panel_size=(1.6, 2.1))
    for ax, i in panels:
        ax.imshow(np.asarray(crops[i]).transpose(1, 2, 0))
        _draw_landmarks(ax, landmarks[i], size=5)
        ax.set_title(f"t={i}", fontsize=7)
        ax.axis("off")
    _legend(fig)
    return _finish(fig, title)


def roi_tokens_figure(crop: np.ndarray, landmarks: np.ndarray, token_indices: np.ndarray, patch_size: int,
                      title: str = "") -> Figure:
    """One face crop ([3, H, W] uint8) with the patch tokens ROI compression keeps, outlined."""
    from matplotlib.patches import Rectangle

    grid = crop.shape[-1] // patch_size
    fig = Figure(figsize=(4.4, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.imshow(np.asarray(crop).transpose(1, 2, 0))
    kept = np.zeros((grid, grid), dtype=float)
    kept.flat[np.asarray(token_indices)] = 1
    ax.imshow(np.kron(kept, np.ones((patch_size, patch_size))), cmap="gray", alpha=0.45, vmin=0, vmax=1)  # dropped: dark
    for index in np.asarray(token_indices):
        row, col = divmod(int(index), grid)
        ax.add_patch(Rectangle((col * patch_size, row * patch_size), patch_size, patch_size,
                               fill=False, color="lime", linewidth=0.6))
    _draw_landmarks(ax, landmarks, size=14)
    ax.set_title(title or f"{len(token_indices)} of {grid * grid} patch tokens kept by ROI compression", fontsize=9)
    ax.axis("off")
    _legend(fig, Rectangle((0, 0), 1, 1, fill=False, color="lime", label="kept"),
            Rectangle((0, 0), 1, 1, color="black", alpha=0.45, label="dropped"))
    return fig


def layer_weights_figure(mixes: dict[str, tuple[Sequence[int], np.ndarray]], title: str = "Which encoder layers the model uses",
                         subtitle: str = "") -> Figure:
    """One bar chart per branch: the learned layer-mix weight of each encoder layer it reads.

    `mixes`: {branch name: (encoder layer numbers, softmax weights)}; the dashed line is the uniform start.
    """
    fig = Figure(figsize=(4.5 * len(mixes), 3.4))
    for ax, (name, (layers, weights)) in zip(np.atleast_1d(fig.subplots(1, len(mixes))), mixes.items()):
        ax.bar([str(layer) for layer in layers], weights, color="C0")
        ax.axhline(1 / len(layers), color="grey", linestyle="--", linewidth=1, label="uniform (start)")
        ax.set(xlabel="encoder layer", ylabel="weight", title=name)
        ax.legend(fontsize=8)
    return _finish(fig, title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
