"""The Drive layout of `drive_layout.md`, in code: every path a notebook or command uses.

One root holds everything (default `MyDrive/fer` on Google Drive; any local folder elsewhere).
`local` is the runtime's fast disk that hot data is copied to (on Colab `/content/fer_local`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_lib import colab

COLAB_DRIVE_ROOT = colab.DRIVE_MOUNT / "MyDrive" / "fer"
COLAB_LOCAL_ROOT = colab.CONTENT / "fer_local"


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
    def ravdess(self) -> Path:
        return self.root / "ravdess"

    @property
    def preprocessed(self) -> Path:
        return self.root / "cache" / "preprocessed"

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

    def cv(self, name: str) -> Path:
        return self.root / "cv" / name

    def predictions(self, video_name: str) -> Path:
        return self.root / "predictions" / video_name

    def create(self) -> "DriveLayout":
        """Make the top-level folders (never touches what is already there)."""
        for path in (self.ravdess, self.preprocessed, self.runs, self.root / "cv",
                     self.root / "predictions", self.local):
            path.mkdir(parents=True, exist_ok=True)
        return self


def default_layout(root: str | Path | None = None, local: str | Path | None = None) -> DriveLayout:
    """The notebooks' layout: Drive in Colab, `./demo_out` elsewhere, unless `root` is given (None or "": the default)."""
    if not root:
        root = COLAB_DRIVE_ROOT if colab.in_colab() else Path("demo_out")
    if not local and colab.in_colab():
        local = COLAB_LOCAL_ROOT
    return DriveLayout.at(root, local)
