"""Every figure fer_lib draws reads on its own: a title, axis titles, a legend or colour bar wherever colour
means something, digits that stand out from the cell under them, and no line hidden under another.

All figures come from fer_lib/plots.py (checked below: no other module draws one), so each of its figure
functions is drawn here with inputs like those of the notebooks and commands that call it, and checked.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage

from fer_lib import EMOTIONS, plots
from fer_lib.data.index import expected_counts
from fer_lib.metrics import SUMMARY_METRICS

PACKAGE = Path(plots.__file__).resolve().parent
RNG = np.random.default_rng(0)
FRAMES = [RNG.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(16)]
CROPS = RNG.integers(0, 255, (16, 3, 224, 224), dtype=np.uint8)
LANDMARKS = np.tile([[80.0, 90], [140, 90], [112, 125], [88, 160], [136, 160]], (16, 1, 1))  # (16, 5, 2)


def curve_rows() -> list[dict]:
    """Validation WAR and UAR equal at every epoch (balanced classes), as curves.png used to hide."""
    return [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "train_acc": 0.2 * e, "val_acc": 0.15 * e,
             "val_uar": 0.15 * e, "val_macro_f1": 0.1 * e} for e in (1, 2, 3, 4)]


def ablation() -> dict[str, dict[str, float]]:
    return {m: {k: v for k, v in zip(SUMMARY_METRICS, (0.5, 0.45, 0.4))} for m in ("a", "v", "av")}


# One row per figure function of plots.py: how the notebooks and commands call it (their titles).
FIGURES = {
    "confusion_figure": lambda: plots.confusion_figure(RNG.integers(0, 9, (8, 8)), subtitle="test actors 23-24",
                                                       highlight=2),
    "curves_figure": lambda: plots.curves_figure(curve_rows()),
    "timeline_figure": lambda: plots.timeline_figure(np.arange(6.0), np.arange(6.0) + 3, RNG.dirichlet(np.ones(8), 6),
                                                     subtitle="clip.mp4 · av · 6 windows"),
    "strips_figure": lambda: plots.strips_figure([plots.face_strip(CROPS)] * 2, ["clip 1", "clip 2"],
                                                 title="misclassified angry"),
    "bars_figure": lambda: plots.bars_figure(ablation(), SUMMARY_METRICS, title="Modality ablation",
                                             subtitle="test actors 23-24"),
    # 01 with ACTORS = "1-4": complete, partial and empty cells (the empty ones are dark red)
    "counts_heatmap": lambda: plots.counts_heatmap({1: expected_counts(), 2: [2, 8, 8, 0, 8, 5, 8, 8], 3: [0] * 8,
                                                    4: expected_counts()}, expected_counts()),
    "face_track_figure": lambda: plots.face_track_figure(FRAMES, np.tile([40.0, 20, 120, 110], (16, 1)),
                                                         LANDMARKS / 2, np.arange(16) % 5 > 0),
    "landmark_strip_figure": lambda: plots.landmark_strip_figure(CROPS, LANDMARKS),
    "roi_tokens_figure": lambda: plots.roi_tokens_figure(CROPS[0], LANDMARKS[0], np.arange(0, 196, 3), 16),
    "layer_weights_figure": lambda: plots.layer_weights_figure({"audio": ([1, 2], np.array([0.4, 0.6])),
                                                                "visual": ([6, 12], np.array([0.7, 0.3]))},
                                                               subtitle="smoke, best"),
}


def contrast(a, b) -> float:
    """WCAG contrast ratio of two colours (1: none, 21: black on white)."""
    def luminance(colour):
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgba(colour)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def problems(fig) -> list[str]:
    """What keeps `fig` from reading on its own (module docstring); empty when it is fine."""
    FigureCanvasAgg(fig).draw()  # lays out the ticks and legends
    found = []
    bars = {image.colorbar.ax for ax in fig.axes for image in ax.images if image.colorbar is not None}
    axes = [ax for ax in fig.axes if ax not in bars and ax.axison or ax.images]
    legend = bool(fig.legends) or any(ax.get_legend() for ax in fig.axes)
    suptitle = fig._suptitle.get_text() if fig._suptitle else ""
    if not (suptitle or any(axes[0].get_title(loc) for loc in ("left", "center", "right"))):
        found.append("no title")
    for n, ax in enumerate(axes):
        where = f"axes {n}"
        if ax.axison:
            for axis, label in ((ax.xaxis, "x"), (ax.yaxis, "y")):
                if any(t.get_visible() and t.get_text() for t in axis.get_ticklabels()) and not axis.get_label_text():
                    found.append(f"{where}: no {label} axis title")
        for image in ax.images:
            if image.get_array().ndim == 2 and image.colorbar is None and not legend:
                found.append(f"{where}: a colour map without a colour bar or legend")
        colours = {to_rgba(line.get_color()) for line in ax.lines if len(line.get_xdata())}
        colours |= {tuple(c) for coll in ax.collections for c in np.atleast_2d(coll.get_facecolor())}
        colours |= {to_rgba(p.get_facecolor() if p.get_fill() else p.get_edgecolor()) for p in ax.patches}
        if len(colours) > 1 and not legend:
            found.append(f"{where}: {len(colours)} colours and no legend")
        lines = [line for line in ax.lines if len(line.get_xdata())]
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                same = np.array_equal(a.get_xdata(), b.get_xdata()) and np.array_equal(a.get_ydata(), b.get_ydata())
                if same and (a.get_linestyle(), a.get_marker()) == (b.get_linestyle(), b.get_marker()):
                    found.append(f"{where}: {b.get_label()!r} hides {a.get_label()!r} (same data, same style)")
        for image in (image for image in ax.images if image.get_array().ndim == 2):
            cells = image.get_array()
            for text in ax.texts:
                x, y = text.get_position()
                cell = image.cmap(image.norm(cells[int(round(y)), int(round(x))]))
                if contrast(text.get_color(), cell) < 4.5:
                    found.append(f"{where}: {text.get_text()!r} hard to read on its cell "
                                 f"(contrast {contrast(text.get_color(), cell):.1f})")
                    break
    return found


def test_every_figure_function_is_checked():
    drawn = {name for name, fn in inspect.getmembers(plots, inspect.isfunction)
             if fn.__module__ == plots.__name__ and not name.startswith("_")
             and inspect.signature(fn).return_annotation in ("Figure", "'Figure'")}
    assert drawn == set(FIGURES)


def test_no_other_module_draws_a_figure():
    """Figures are made in plots.py only, so FIGURES covers every figure of the notebooks and commands."""
    drawing = re.compile(r"\bFigure\(|pyplot|\.savefig\(|\.subplots\(")
    others = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path.name != "plots.py"
              for n, line in enumerate(path.read_text().splitlines(), 1) if drawing.search(line.split("#")[0])]
    assert others == []


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_reads_on_its_own(name):
    assert problems(FIGURES[name]()) == []


def test_the_notebooks_figures_of_01(monkeypatch):
    """01's figures as show.py draws them: the report's heatmap covers only the chosen actors."""
    from fer_lib import show
    from fer_lib.data.index import DataIndex
    from fer_lib.data.preprocessing import ClipInspection
    from fer_lib.data.ravdess import parse_name

    drawn = []
    monkeypatch.setattr(show, "figure", lambda *figures: drawn.extend(figures))
    clips = [parse_name(f"01-01-0{e}-01-01-01-0{a}.mp4") for a in (1, 2, 9) for e in (1, 3)]
    show.data_check(DataIndex(root=Path("cache"), clips=clips, actors=(1, 2, 3, 4)))
    show.clip_inspection(ClipInspection(frames=FRAMES, boxes=np.tile([40.0, 20, 120, 110], (16, 1)),
                                        landmarks=LANDMARKS / 2, detected=np.ones(16, bool), crops=CROPS,
                                        crop_landmarks=LANDMARKS, audio=np.zeros(16000, np.float32),
                                        sample_rate=16000, window_start=0.0))
    assert len(drawn) == 3 and all(problems(fig) == [] for fig in drawn)
    heatmap = drawn[0].axes[0]
    assert [t.get_text() for t in heatmap.get_yticklabels()] == ["01", "02", "03", "04"]  # not 9, not 5-24
