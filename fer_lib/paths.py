"""The Drive layout of `drive_layout.md`, in code: every path a notebook or command uses.

One root holds everything (default `MyDrive/fer` on Google Drive; any local folder elsewhere).
`local` is the runtime's fast disk (on Colab `/content/fer_local`): hot copies of what is on Drive,
and what is big and can be fetched again (the RAVDESS zips, their extracted clips, the clips of
actors whose cache shard is not written yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_lib import colab

COLAB_DRIVE_ROOT = colab.DRIVE_MOUNT / "MyDrive" / "fer"
COLAB_LOCAL_ROOT = colab.CONTENT / "fer_local"
SMOKE_FOLDER = "smoke"  # the scratch root of SMOKE mode, inside the Drive root


@dataclass(frozen=True)
class DriveLayout:
    root: Path
    local: Path

    @classmethod
    def at(cls, root: str | Path, local: str | Path | None = None) -> "DriveLayout":
        """The layout under `root`; hot copies go to `local` (default: `root/local`)."""
        root = Path(root).expanduser()
        return cls(root=root, local=Path(local).expanduser() if local else root / "local")

    @property
    def on_drive(self) -> bool:
        """True when the root lies in the Google Drive mount, where the user's own data lives."""
        return self.root.absolute().is_relative_to(colab.DRIVE_MOUNT)

    @property
    def is_scratch(self) -> bool:
        """True off Drive, or for SMOKE mode's own root on Drive: where synthetic clips may be written."""
        return not self.on_drive or self.root.name == SMOKE_FOLDER

    @property
    def ravdess(self) -> Path:
        return self.root / "ravdess"

    @property
    def preprocessed(self) -> Path:
        return self.root / "cache" / "preprocessed"

    @property
    def downloads(self) -> Path:
        """The RAVDESS zips while they are downloaded and until their actor is cached."""
        return self.local / "downloads"

    @property
    def local_ravdess(self) -> Path:
        """The audio-visual clips extracted from the zips (`Actor_XX/`), until their actor is cached."""
        return self.local / "ravdess"

    @property
    def staging(self) -> Path:
        """Finished clips of actors whose cache shard is not written yet (`fer_lib.data.cache.Staging`)."""
        return self.local / "staging"

    @property
    def local_preprocessed(self) -> Path:
        return self.local / "cache" / "preprocessed"

    @property
    def embeddings(self) -> Path:
        return self.local / "cache" / "embeddings"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def local_runs(self) -> Path:
        """Where training writes a run first; copied to `runs/` on a schedule (fer_lib/training/drive_sync.py)."""
        return self.local / "runs"

    def run(self, name: str) -> Path:
        return self.runs / name

    def checkpoint(self, name: str) -> Path | str:
        """What a notebook's RUN_NAME names: runs/<name>/, or a model on the Hugging Face Hub as it is
        (`hf://USER/NAME[@REVISION]`, loaded by fer_lib.training.checkpoint)."""
        from fer_lib.training.checkpoint import is_hub_id

        return name if is_hub_id(name) else self.run(name)

    def evaluations(self, name: str) -> Path:
        """Where evaluations of RUN_NAME go: runs/<name>/eval/, or hub/USER--NAME/eval/ for a model from the hub."""
        from fer_lib.training.checkpoint import hub_folder, is_hub_id, parse_hub_id

        return self.root / hub_folder(parse_hub_id(name)[0]) / "eval" if is_hub_id(name) else self.run(name) / "eval"

    def cv(self, name: str) -> Path:
        return self.root / "cv" / name

    @property
    def predictions_root(self) -> Path:
        return self.root / "predictions"

    def predictions(self, video_name: str) -> Path:
        return self.predictions_root / video_name

    def create(self) -> "DriveLayout":
        """Make the top-level folders (never touches what is already there)."""
        for path in (self.ravdess, self.preprocessed, self.runs, self.root / "cv",
                     self.predictions_root, self.local):
            path.mkdir(parents=True, exist_ok=True)
        return self


def default_layout(root: str | Path | None = None, local: str | Path | None = None, smoke: bool = False) -> DriveLayout:
    """The notebooks' layout: Drive in Colab, `./demo_out` elsewhere, unless `root` is given (None or "": the default).

    `smoke` (the notebooks' SMOKE mode: synthetic clips, `tiny`): without a `root`, in Colab, a scratch
    root of its own, `MyDrive/fer/smoke/` (hot copies in `<local>/smoke/`): the smoke notebooks still
    hand their results to one another across runtimes, and synthetic clips, their cache and the smoke
    runs never land in the user's ravdess/, cache/ or runs/. A given `root` is used as it is (the tests
    and the demo pass a scratch folder).
    """
    if not local and colab.in_colab():
        local = COLAB_LOCAL_ROOT
    if not root and smoke and colab.in_colab():
        return DriveLayout.at(COLAB_DRIVE_ROOT / SMOKE_FOLDER, Path(local) / SMOKE_FOLDER)
    if not root:
        root = COLAB_DRIVE_ROOT if colab.in_colab() else Path("demo_out")
    return DriveLayout.at(root, local)


def default_staging(cache_dir: str | Path) -> Path:
    """Where preprocessing stages the finished clips of unfinished actors when no folder is given: the
    runtime's local disk in Colab (not Drive), else a hidden `.staging/` folder inside the cache."""
    return COLAB_LOCAL_ROOT / "staging" if colab.in_colab() else Path(cache_dir).expanduser() / ".staging"
