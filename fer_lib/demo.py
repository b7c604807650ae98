"""The local demo: the whole job on synthetic clips with the `tiny` preset, on a CPU.

    python -m fer_lib.demo [--out demo_out] [--actors 8] [--epochs 40] [--notebooks]

synthetic RAVDESS-format clips -> preprocessing cache -> train `tiny` -> evaluate (with the modality
ablation) -> a report folder, all under one root laid out as on Google Drive (`drive_layout.md`).
Every step resumes: run it again and finished steps are skipped. `--notebooks` then also executes
the numbered notebooks headless against the same root, in smoke mode, into `<out>/notebooks/`.

The `ensure_*` steps are also what the notebooks call in smoke mode (`SMOKE = True`), so each
notebook runs alone in a fresh runtime on synthetic data. Smoke mode works in a scratch root
(`paths.default_layout(..., smoke=True)`: `MyDrive/fer/smoke/` in Colab): synthetic clips, their
cache and the smoke runs never go into the user's ravdess/, cache/ or runs/ on Drive, and
`ensure_clips` refuses any other root on Drive.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_lib import cli
from fer_lib.config import TrainConfig
from fer_lib.data import synthetic
from fer_lib.data.index import DataError
from fer_lib.paths import DriveLayout

SMOKE_RUN = "smoke"


def ensure_clips(layout: DriveLayout, actors: int = 8, repeats: int = 1, seed: int = 0) -> Path:
    """Synthetic RAVDESS-format clips in `ravdess/` of a scratch root, unless clips are already there."""
    if not layout.is_scratch:
        raise DataError(f"synthetic clips go into a scratch root, not into {layout.ravdess} on Google Drive, where "
                        "they would mix with RAVDESS: use default_layout(ROOT, LOCAL, smoke=True)")
    if not any(layout.ravdess.rglob("*.mp4")):
        synthetic.generate_dataset(layout.ravdess, actors=actors, repeats=repeats, seed=seed)
    return layout.ravdess


def ensure_cache(layout: DriveLayout, workers: int = 1) -> Path:
    """The preprocessing cache of `ravdess/` (resumable: finished clips are skipped); clips first if none."""
    from fer_lib import preprocess

    ensure_clips(layout)
    return preprocess.ensure_cache(layout.ravdess, layout.preprocessed, workers=workers)


def ensure_fold_cache(layout: DriveLayout, actors: int = 6) -> Path:
    """The smallest input of the 6-fold split: one synthetic clip per actor 1..`actors` and their cache, in
    `cv_smoke/` under the root (notebook 06's smoke mode); made only where missing."""
    import numpy as np

    from fer_lib import preprocess

    smoke = DriveLayout.at(layout.root / "cv_smoke", layout.local / "cv_smoke")
    if not any(smoke.ravdess.rglob("*.mp4")):
        rng = np.random.default_rng(0)
        for actor in range(1, actors + 1):
            label = actor % 8
            synthetic.write_clip(smoke.ravdess / f"Actor_{actor:02d}" / synthetic.clip_name(label, actor, 0),
                                 synthetic.draw_spec(label, actor, "av", rng))
    return preprocess.ensure_cache(smoke.ravdess, smoke.preprocessed)


def ensure_long_clip(layout: DriveLayout, seconds: float = 9.0) -> Path:
    """A synthetic clip longer than a window (`local/long_clip.mp4`), for prediction over time."""
    import numpy as np

    path = layout.local / "long_clip.mp4"
    if not path.is_file():
        synthetic.write_clip(path, synthetic.draw_spec(3, 1, "av", np.random.default_rng(0), seconds=seconds))
    return path


def smoke_train_config(epochs: int = 40, seed: int = 42) -> TrainConfig:
    """How the demo and the notebooks' smoke mode train `tiny` on a CPU.

    Batch 4 without augmentation, as the learnability tests train: on the demo's 8 actors, 40 epochs
    gave test accuracy 0.875 (av), 0.625 (audio only), 0.75 (visual only); batch 8 with augmentation
    was still near chance after 20 epochs (frame augmentation slows the visual branch down this early).
    """
    return TrainConfig(max_epochs=epochs, batch_size=4, grad_accum_steps=1, lr=3e-4, seed=seed, augment=False,
                       early_stopping_patience=epochs, num_workers=0)


def ensure_run(layout: DriveLayout, name: str = SMOKE_RUN, epochs: int = 40, seed: int = 42):
    """A trained `tiny` run in `runs/<name>/`: trains (or resumes) it; returns at once when it is complete."""
    from fer_lib.train import train

    ensure_cache(layout)
    return train(layout.preprocessed, layout.root / "runs", "tiny", smoke_train_config(epochs, seed), run_name=name)


@cli.command(interrupted="run the same command again: finished steps are skipped, training resumes")
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_out", help="root folder, laid out as on Drive")
    parser.add_argument("--actors", type=cli.int_range(3, 24), default=8, help="synthetic actors (3-24, for an actor split)")
    parser.add_argument("--epochs", type=cli.POSITIVE_INT, default=40)
    parser.add_argument("--seed", type=cli.SEED, default=42)
    parser.add_argument("--notebooks", action="store_true", help="also execute notebooks 00-05 headless")
    args = parser.parse_args(argv)

    from fer_lib.evaluate import evaluate

    layout = DriveLayout.at(args.out).create()
    print(f"1/4 synthetic clips   -> {ensure_clips(layout, args.actors, seed=args.seed).resolve()}")
    print(f"2/4 preprocessing     -> {ensure_cache(layout).resolve()}")
    result = ensure_run(layout, SMOKE_RUN, args.epochs, args.seed)
    print(f"3/4 training (tiny)   -> {result.run_dir.resolve()}  (best val {result.metric} "
          f"{result.best_metric:.3f} at epoch {result.best_epoch})")
    report = evaluate(result.best_checkpoint, layout.preprocessed, ablation=True, verbose=False)
    print(f"4/4 evaluation (test) -> {Path(report['out_dir']).resolve()}")
    for mode, metrics in report["results"].items():
        print(f"      {mode:>2}: accuracy (WAR) {metrics['war']:.3f}  UAR {metrics['uar']:.3f}  "
              f"macro-F1 {metrics['macro_f1']:.3f}")
    if args.notebooks:
        from fer_lib import notebook_tools

        for _, ipynb in notebook_tools.pairs():
            executed = layout.root / "notebooks" / ipynb.name
            notebook_tools.execute(ipynb, executed, {"ROOT": str(layout.root.resolve()), "SMOKE": True})
            print(f"      notebook ran     -> {executed.resolve()}")
    print(f"\nreport folder: {result.run_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
