"""What the notebooks show, in one place: figures and result files as PNG images and markdown.

    show.figure(fig_or_png_path, ...)     each figure once, as a PNG image (Colab, Jupyter, VS Code, papermill)
    show.LiveFigure().show(png)           one image replaced in place (the training curves, every epoch)
    show.markdown(text)                   rendered in a notebook, printed elsewhere
    show.warning(text)                    bold in a notebook, on stderr elsewhere
    show.training_plan(preset, batch)     03: the GPU it sees, the memory estimate against Colab's GPUs
    show.data_summary(summary)            01: what getting the data did, as a table
    show.data_check(index)                01: clips found per actor x emotion
    show.clip_inspection(sample)          01: one clip through the preprocessing (boxes, crops, audio)
    show.roi_tokens(model, batch)         02: the patch tokens ROI compression keeps
    show.evaluation(report)               04: the ablation table and the confusion matrix of `evaluate(...)`
    show.cross_validation(summary)        04: the summary of `fer_lib.cv.aggregate(...)`
    show.prediction(result)               05: the timeline, the faces and the overall label of `predict_video(...)`

A matplotlib Figure is always turned into PNG bytes before it is displayed: a bare Figure shows as
`<Figure size ...>` text in some front ends and twice in others. Outside a notebook kernel nothing is
drawn and markdown is printed, so the same calls work in a terminal and in tests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Union

from matplotlib.figure import Figure

from fer_lib import plots

CUDA_CONTEXT_GB = 1.0  # what `estimate_training_memory` leaves out: the CUDA context and allocator slack


def in_notebook() -> bool:
    """True inside a notebook kernel (Colab, Jupyter, VS Code, papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def figure(*items: Union[Figure, bytes, str, Path]) -> None:
    """Display each figure (a Figure, PNG bytes or a PNG file) once, as a PNG image."""
    if not in_notebook():
        return
    from IPython.display import display

    for item in items:
        display(_image(item))


class LiveFigure:
    """One figure in a notebook's output, replaced in place each time it is shown again."""

    def __init__(self):
        self.handle = None

    def show(self, item: Union[Figure, bytes, str, Path]) -> None:
        if not in_notebook():
            return
        from IPython.display import display

        if self.handle is None:
            self.handle = display(_image(item), display_id=True)
        else:
            self.handle.update(_image(item))


def _image(item: Union[Figure, bytes, str, Path]):
    from IPython.display import Image

    if isinstance(item, Figure):
        item = plots.png_bytes(item)
    return Image(data=item) if isinstance(item, bytes) else Image(filename=str(item))


def markdown(text: str) -> None:
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(text))
    else:
        print(text)


def warning(text: str) -> None:
    """Something the person must see: bold in a notebook, `warning: ...` on stderr elsewhere."""
    if in_notebook():
        markdown(f"**⚠️ {text}**")
    else:
        print(f"warning: {text}", file=sys.stderr, flush=True)


def training_plan(preset: str, batch_size: int) -> None:
    """Before training (03): the GPU this runtime has, and the training-memory estimate of `preset` at
    `batch_size` against the GPUs of Colab; a bold warning without a GPU (unless the preset is tiny) or
    when the estimate does not fit the GPU it sees."""
    from fer_lib.colab import COLAB_GPUS, describe_runtime
    from fer_lib.config import get_preset
    from fer_lib.models.sizes import estimate_training_memory
    from fer_lib.reports import markdown_table

    runtime = describe_runtime()
    if runtime["gpu"] is None and preset != "tiny":
        warning(f"This runtime has no GPU, and only `tiny` is meant for a CPU: {preset!r} would be very slow. "
                "Choose Runtime → Change runtime type → a GPU (A100 if you can), then Run all again.")
    need = estimate_training_memory(get_preset(preset), batch_size, "bf16")["total_gb"] + CUDA_CONTEXT_GB
    gpus = dict(COLAB_GPUS)
    if runtime["gpu"] is not None:
        gpus[f"this runtime: {runtime['gpu']}"] = runtime["gpu_memory_gb"]
    rows = [(name, f"{memory:g}", "yes" if memory >= need else "**no**") for name, memory in gpus.items()]
    markdown(f"Training memory of `{preset}` at batch {batch_size} (bf16, estimated, with about "
             f"{CUDA_CONTEXT_GB:g} GB for CUDA itself): **{need:.1f} GB**\n\n"
             + markdown_table(("GPU", "memory GB", "fits"), rows))
    if runtime["gpu"] is not None and runtime["gpu_memory_gb"] < need:
        warning(f"The estimate ({need:.1f} GB) exceeds this GPU's {runtime['gpu_memory_gb']:g} GB: lower BATCH_SIZE "
                "and raise GRAD_ACCUM_STEPS by the same factor (the same clips per optimizer step).")


def data_summary(summary) -> None:
    """What `fer_lib.data.download.ensure_dataset` did, as a table (nothing when the cache already held every actor)."""
    if summary is None:
        return
    from fer_lib.data.ravdess import actor_ranges
    from fer_lib.reports import markdown_table

    rows = []
    if "downloaded" in summary:
        rows += [("actors downloaded now", actor_ranges(summary["downloaded"])),
                 ("actors already cached", actor_ranges(summary["already_cached_actors"]))]
    kinds = ", ".join(f"{n} {kind}" for kind, n in summary["problem_kinds"].items())
    per_clip = summary["seconds_per_new_clip"]
    rows += [("clips in the cache", summary["cached"]), ("new this run", summary["new"]),
             ("picked up from an interrupted run", summary["resumed"]), ("already cached", summary["already_cached"]),
             ("problems", f"{summary['problems']} ({kinds}; see `{summary['problems_csv']}`)" if kinds else 0),
             ("skipped, not problems", ", ".join(f"{n} {k.replace('_', '-')}" for k, n in summary["skipped"].items()) or 0),
             ("time", f"{summary['seconds']:.0f} s" + (f" ({per_clip:.1f} s per new clip)" if per_clip else "")),
             ("report", f"`{summary['report']}`")]
    markdown(markdown_table(("getting the data", "result"), rows))


def data_check(index) -> None:
    """Clips per actor x emotion of a `DataIndex`, green where every expected clip is there."""
    from fer_lib.data.index import expected_counts

    figure(plots.counts_heatmap(index.counts(), expected_counts()))


def clip_inspection(sample) -> None:
    """A `preprocess.ClipInspection`: the tracked face on whole frames, the crops the model sees, the audio window."""
    markdown(f"window starts at {sample.window_start:.2f} s; face found on {int(sample.detected.sum())} of "
             f"{len(sample.detected)} frames")
    figure(plots.face_track_figure(sample.frames, sample.boxes, sample.landmarks, sample.detected),
           plots.landmark_strip_figure(sample.crops, sample.crop_landmarks))
    if in_notebook():
        from IPython.display import Audio, display

        display(Audio(sample.audio, rate=sample.sample_rate))


def roi_tokens(model, batch: dict) -> None:
    """The patch tokens the landmark-guided ROI compression keeps on the first frame of the batch's first clip."""
    landmarks = batch["landmarks"][:1]  # (1, T, 5, 2)
    kept = model.visual.roi.select(landmarks, 1, landmarks.shape[1])[0, 0].cpu()  # token indices of frame 0
    figure(plots.roi_tokens_figure(batch["frames"][0, 0].cpu().numpy(), landmarks[0, 0].cpu().numpy(),
                                   kept.numpy(), model.visual.tower.patch_size))


def evaluation(report: dict) -> None:
    """What `fer_lib.evaluate.evaluate` wrote: the ablation table (when there is one) and the confusion matrix."""
    files = report["files"]
    if "ablation" in files:
        markdown(Path(files["ablation"]).read_text())
    else:
        markdown(Path(files["report"]).read_text().split("\n![")[0])
    figure(files["confusion"])


def cross_validation(summary: dict) -> None:
    """summary.md and the summed confusion matrix of a cross-validation folder."""
    cv_dir = Path(summary["cv_dir"])
    markdown((cv_dir / "summary.md").read_text())
    figure(cv_dir / "confusion_summed.png")


def prediction(result: dict) -> None:
    """What `fer_lib.predict.predict_video` wrote: the timeline, the faces it saw, the overall label."""
    out_dir = Path(result["out_dir"])
    figure(*(out_dir / result["files"][name] for name in ("timeline", "faces") if name in result["files"]))
    markdown(f"**Overall: {result['label']}** ({result['mode']}, {result['windows']} windows)")
