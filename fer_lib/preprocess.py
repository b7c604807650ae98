"""Command: raw RAVDESS clips -> the preprocessing cache (one shard per actor); resumable.

    python -m fer_lib.preprocess --data_dir RAW --cache_dir CACHE [--workers N] [--device auto]
                                 [--staging_dir DIR] [--overwrite] [--retry_problems] [--check]

`ensure_cache(data_dir, cache_dir)` is what training, evaluation and cross-validation call to find
or build the cache. The work itself (per clip, per actor, freshness, faults, workers) is
`fer_lib.data.preprocessing`'s, the cache's format `fer_lib.data.cache`'s.

Exit status 2 with one line: no clip found, a cache built with other parameters, the cache held by
another preprocessing run (named), or a fault of the machine (a full disk, a lost Drive mount),
which is recorded against no clip: fix it and run the same command again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from fer_lib import cli
from fer_lib.config import PreprocessConfig
from fer_lib.data import cache
from fer_lib.data.index import DataError, check_data
from fer_lib.data.preprocessing import preprocess


def default_cache_dir(data_dir: str | Path) -> Path:
    """Where the cache of raw clips in `data_dir` goes by default: `cache/preprocessed/` beside it, as in
    the Drive layout (`MyDrive/fer/ravdess` -> `MyDrive/fer/cache/preprocessed`)."""
    return Path(data_dir).expanduser().parent / "cache" / "preprocessed"


def ensure_cache(data_dir: Optional[str | Path] = None, cache_dir: Optional[str | Path] = None,
                 config: Optional[PreprocessConfig] = None, **preprocess_kwargs) -> Path:
    """The preprocessing cache a command reads, built first when raw clips are given.

    - `cache_dir` alone: it must be a cache, and not one a preprocessing run is still writing.
    - `data_dir` (raw clips): preprocessed into `cache_dir` (default `default_cache_dir(data_dir)`);
      resumable, so a cache that is complete costs seconds.
    `data_dir` is always raw clips: a cache passed as data_dir is a one-line DataError saying so.
    """
    if data_dir is None:
        if cache_dir is None:
            raise DataError("no data: give --cache_dir (the preprocessing cache) or --data_dir (the raw RAVDESS clips)")
        cache_dir = Path(cache_dir).expanduser()
        cache.read_manifest(cache_dir)  # a one-line DataError when it is not a cache
        cache.check_not_building(cache_dir)
        return cache_dir
    data_dir = Path(data_dir).expanduser()
    if cache.is_cache(data_dir):
        raise DataError(f"{data_dir} is a preprocessing cache, not raw clips: pass it as --cache_dir "
                        "(--data_dir is always the raw RAVDESS folder)")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(data_dir)
    summary = preprocess(data_dir, cache_dir, config, verbose=False, **preprocess_kwargs)
    print(f"preprocessing cache {cache_dir}: {summary['cached']} clips ({summary['new']} new this run, "
          f"{summary['problems']} problems: {summary['report']})")
    return cache_dir


@cli.command(interrupted="finished clips are kept; run the same command again to resume")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.preprocess",
                                description="Preprocess RAVDESS clips into the cache (resumable).")
    parser.add_argument("--data_dir", required=True, help="RAVDESS folder: Actor_XX/*.mp4 and/or Video_Speech_Actor_XX.zip")
    parser.add_argument("--cache_dir", required=True, help="where the cache goes (fer_lib.data.cache)")
    parser.add_argument("--workers", type=cli.POSITIVE_INT, default=None,
                        help="parallel processes (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="delete a cache built with other parameters and rebuild")
    parser.add_argument("--unpack_dir", default=None, help="unpack zips here instead of beside them")
    parser.add_argument("--device", default="auto", help="torch device for MTCNN (default auto: the GPU when there is one)")
    parser.add_argument("--staging_dir", default=None,
                        help="finished clips of unfinished actors (default: the runtime's local disk in Colab, "
                             "else CACHE/.staging)")
    parser.add_argument("--retry_problems", action="store_true", help="try again the clips an earlier run reported")
    parser.add_argument("--check", action="store_true", help="only check the data (open every clip), save the report in cache_dir")
    parser.add_argument("--include_song", action="store_true", help="also keep the song clips (vocal channel 02)")
    parser.add_argument("--clip_seconds", type=cli.POSITIVE_FLOAT, default=None, help="window length (default 3.0)")
    parser.add_argument("--num_frames", type=cli.POSITIVE_INT, default=None, help="frames per clip (default 16)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    config = PreprocessConfig(include_song=args.include_song)
    if args.clip_seconds is not None:
        config.input.clip_seconds = args.clip_seconds
    if args.num_frames is not None:
        config.input.num_frames = args.num_frames
    if args.check:
        check_data(args.data_dir, out_dir=args.cache_dir, config=config, unpack_dir=args.unpack_dir,
                   progress=not args.no_progress)
    else:
        preprocess(args.data_dir, args.cache_dir, config, workers=args.workers, overwrite=args.overwrite,
                   unpack_dir=args.unpack_dir, device=args.device, staging_dir=args.staging_dir,
                   progress=not args.no_progress, retry_problems=args.retry_problems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
