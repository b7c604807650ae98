"""The local demo: the whole job on synthetic clips with the `tiny` preset, on a CPU.

    python -m fer_lib.demo [--out demo_out] [--actors 8]

synthetic RAVDESS-format clips -> preprocessing cache -> train `tiny` -> evaluate -> report folder,
all under one root laid out as on Google Drive (`drive_layout.md`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_lib.data import synthetic
from fer_lib.paths import DriveLayout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_lib.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_out", help="root folder, laid out as on Drive")
    parser.add_argument("--actors", type=int, default=8, help="synthetic actors (>= 6 for an actor split)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    layout = DriveLayout.at(args.out).create()
    if not any(layout.ravdess.glob("Actor_*/*.mp4")):
        synthetic.generate_dataset(layout.ravdess, actors=args.actors, seed=args.seed)
    print(f"synthetic clips: {layout.ravdess.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
