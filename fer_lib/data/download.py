"""RAVDESS from its canonical home, Zenodo record 1188976, verified and cached actor by actor.

    python -m fer_lib.data.download --root ROOT [--actors 1-24] [--source URL] [--keep_zips]
                                    [--workers N] [--device auto] [--local DIR]

    ensure_dataset(layout, actors=actor_list("1-4"), source=URL)   # notebook 01: the cache of a Drive layout

Where bytes go (`fer_lib.paths.DriveLayout`): the 24 `Video_Speech_Actor_XX.zip` files (502-596 MB,
about 13.4 GB in all) are downloaded to the runtime's local disk (`local/downloads`), never to
Drive; from each only the 60 audio-visual speech clips (media type 01) are extracted, also locally
(`local/ravdess`; the 60 video-only clips of the zip are not); they are preprocessed into the
cache's shard for that actor (`cache/preprocessed` under `root`, on Drive), and the zip and its
clips are deleted once the shard is written (unless `keep_zips`). The work is pipelined: up to
`DOWNLOADS` zips download at once while the actors already downloaded are preprocessed, and at most
`DOWNLOADS + 1` actors are on local disk at a time (downloading, or waiting to be preprocessed). Before
any of it, the licence and the citation are printed, and the expected cache size and the free space of both disks (`fer_lib.data.cache.check_space`).

The file list (names, sizes, md5 checksums, links) comes from the records API
(`https://zenodo.org/api/records/1188976`); `--source` (notebook 01: `SOURCE`, which the errors about
the source name) takes another records-API URL (a mirror, a local server in the tests). Both shapes Zenodo has served are read: `files` as a list of
{key|filename, size|filesize, checksum "md5:..." or bare md5, links {self|download|content}}, and
`files` as {"entries": {name: {...}}} (InvenioRDM, where `links.content` is the download).

Downloading (`Fetcher`) uses pooch for what it does well: the md5 check, the atomic move into place,
and no work for a file that is there and verified. pooch 1.9's own limits are worked around here:
- its HTTP downloader restarts an interrupted file from zero, so the download callable it is given
  keeps a `<name>.part` file and resumes it with an HTTP Range request (a server that ignores Range
  sends the whole file again);
- it hashes a complete file again on every call (seconds per 550 MB zip), so a file verified once
  gets a `.<name>.done` record (md5, size, mtime) and is not hashed again;
- one Unzip processor per archive and no choice of members: extraction is `fer_lib.data.index.unpack_zip`
  instead (only the audio-visual clips, atomically, with the zip entry's time as file time, so the
  cache keys of a re-extracted clip do not change).
Dropped connections, timeouts and server errors (5xx, 429) are retried `RETRIES` times with
exponential back-off, resuming where the file stopped; a file whose md5 is wrong is deleted and
fetched once more, then the command stops with one line naming the file.

Killed at any point and run again, it skips every actor whose shard records this zip (name and md5)
as its origin, re-downloads no file that was complete, and resumes a partial one. Faults of the
machine (a full local disk, a lost Drive mount) stop it with one line (`MachineFault`); nothing
complete is lost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Iterable, Optional

import pooch
import requests
from tqdm.auto import tqdm

from fer_lib import cli
from fer_lib.config import PreprocessConfig
from fer_lib.data import cache
from fer_lib.data.index import CLIPS_PER_ACTOR, SPEECH_ZIP, DataError, DataIndex, unpack_zip
from fer_lib.data.preprocessing import ClipInspection, Preprocessor, inspect_cached, inspect_clip, preprocess
from fer_lib.data.ravdess import ALL_ACTORS, NUM_ACTORS, parse_name
from fer_lib.errors import FerError, MachineFault, environment_fault
from fer_lib.fileio import atomic_write_text, check_writable
from fer_lib.paths import DriveLayout, default_layout

RECORD_URL = "https://zenodo.org/api/records/1188976"  # DOI 10.5281/zenodo.1188976
SOURCE = "the source (SOURCE in notebook 01, --source of the command)"
LICENCE = ("RAVDESS is licensed CC BY-NC-SA 4.0: non-commercial use only, share alike "
           "(https://creativecommons.org/licenses/by-nc-sa/4.0/).")
CITATION = ("Cite: Livingstone SR, Russo FA (2018). The Ryerson Audio-Visual Database of Emotional Speech and Song "
            "(RAVDESS). PLoS ONE 13(5): e0196391. https://doi.org/10.1371/journal.pone.0196391")
DOWNLOADS = 4  # zips downloading at once
RETRIES = 5  # per file, for dropped connections and server errors
BACKOFF_S = 1.0  # first wait; doubled after each failed attempt
TIMEOUT_S = 60
MD5_ATTEMPTS = 2
CHUNK = 1 << 16  # a dropped connection loses at most this much of the file
EXTRACTED_SHARE = 0.55  # the audio-visual clips are about half of a zip (the other half is video-only)


class DownloadError(FerError):
    """RAVDESS could not be downloaded (the source, the network or a file's checksum); one line naming the file."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    md5: str
    url: str


# --------------------------------------------------------------------------------------------
# The records API
# --------------------------------------------------------------------------------------------


def list_files(source: str = RECORD_URL) -> list[RemoteFile]:
    """The files of a Zenodo record, from its records-API JSON (both shapes, module docstring)."""
    url = urllib.parse.urlsplit(source)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise DownloadError(f"--source {source!r} is not an http(s) URL; it takes a records-API URL like {RECORD_URL}")
    response = _get(source, "the file list of RAVDESS")
    try:
        record = response.json()
        files = record["files"]
        entries = list(files["entries"].values()) if isinstance(files, dict) else files
        return [_remote_file(entry) for entry in entries]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DownloadError(f"{source} is not a Zenodo records-API answer with a file list ({type(exc).__name__}: "
                            f"{exc}); {SOURCE} takes a URL like {RECORD_URL}") from None


def _remote_file(entry: dict) -> RemoteFile:
    links = entry.get("links", {})
    url = links.get("content") or links.get("download") or links["self"]
    checksum = entry["checksum"]
    algorithm, _, digest = checksum.rpartition(":")
    if algorithm not in ("", "md5"):
        raise KeyError(f"checksum {checksum!r} is not md5")
    return RemoteFile(name=entry.get("key") or entry["filename"], size=int(entry.get("size", entry.get("filesize"))),
                      md5=digest.lower(), url=url)


def speech_zips(files: list[RemoteFile], actors: Iterable[int]) -> dict[int, RemoteFile]:
    """actor -> its Video_Speech_Actor_XX.zip; DownloadError naming the ones the record lacks."""
    by_name = {f.name: f for f in files}
    wanted = {a: SPEECH_ZIP.format(actor=a) for a in actors}
    missing = [name for name in wanted.values() if name not in by_name]
    if missing:
        raise DownloadError(f"the record lists no {', '.join(missing)} (it lists {len(files)} files); "
                            f"is {SOURCE} a RAVDESS record like {RECORD_URL}?")
    return {a: by_name[name] for a, name in wanted.items()}


def _get(url: str, what: str, stream: bool = False, headers: Optional[dict] = None,
         stop: Optional[threading.Event] = None) -> requests.Response:
    """GET with `RETRIES` retries and exponential back-off on dropped connections and server errors."""
    for attempt in range(RETRIES + 1):
        try:
            response = requests.get(url, stream=stream, headers=headers, timeout=TIMEOUT_S)
            if response.status_code < 500 and response.status_code != 429:
                if response.status_code >= 400 and response.status_code != 416:
                    raise DownloadError(f"{what}: the server answers {response.status_code} {response.reason} for {url}")
                return response
            failure = f"the server answers {response.status_code} {response.reason}"
            response.close()
        except (requests.ConnectionError, requests.Timeout) as exc:
            failure = f"no connection ({type(exc).__name__})"
        if attempt == RETRIES:
            break
        tqdm.write(f"{what}: {failure}; trying again in {BACKOFF_S * 2 ** attempt:g} s")
        if (stop or threading.Event()).wait(BACKOFF_S * 2 ** attempt):  # sleeps, unless the run stops meanwhile
            break
    raise DownloadError(f"{what}: {failure} after {RETRIES + 1} attempts ({url}); check the connection and run "
                        "the same command again: finished files are kept and a partial one resumes")


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


class Stopped(Exception):
    """Another download of the same run failed or the run was interrupted: this one stops too."""


class Fetcher:
    """Downloads files into `folder` with pooch (md5, atomic move) and a resuming download (module docstring)."""

    def __init__(self, folder: Path, bar: Optional[tqdm] = None, stop: Optional[threading.Event] = None):
        self.folder, self.bar, self.stop = Path(folder), bar, stop or threading.Event()
        self._lock = threading.Lock()
        pooch.get_logger().setLevel("WARNING")  # its "Downloading ..." lines would interleave with the bars

    def done_record(self, remote: RemoteFile) -> Path:
        return self.folder / f".{remote.name}.done"

    def is_complete(self, remote: RemoteFile) -> bool:
        """True when `remote` was downloaded and verified before and is unchanged since (no hashing)."""
        target = self.folder / remote.name
        try:
            record = json.loads(self.done_record(remote).read_text())
            st = target.stat()
        except (OSError, ValueError):
            return False
        return record == {"md5": remote.md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def fetch(self, remote: RemoteFile) -> Path:
        """The verified file, downloaded when needed. DownloadError after a second wrong md5."""
        target = self.folder / remote.name
        if self.is_complete(remote):
            self._advance(remote.size)
            return target
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, MD5_ATTEMPTS + 1):
            try:
                pooch.retrieve(remote.url, known_hash=f"md5:{remote.md5}", fname=remote.name, path=self.folder,
                               downloader=lambda url, output, _: self._download(remote, output))
                break
            except ValueError as exc:  # pooch: the md5 does not match; it deleted the file
                if "hash" not in str(exc) or attempt == MD5_ATTEMPTS:
                    raise DownloadError(f"{remote.name}: its md5 is not {remote.md5} after {MD5_ATTEMPTS} downloads "
                                        "(the file on the server or the record is damaged); nothing was kept of it, "
                                        f"try again later or use another {SOURCE}") from None
                tqdm.write(f"{remote.name}: its md5 is wrong; downloading it once more")
                self._advance(-remote.size)  # counted once more
        st = target.stat()
        atomic_write_text(self.done_record(remote), json.dumps({"md5": remote.md5, "size": st.st_size,
                                                                "mtime_ns": st.st_mtime_ns}))
        return target

    def _download(self, remote: RemoteFile, output: str) -> None:
        """pooch's download callable: resume `<name>.part` with a Range request, then hand it to pooch."""
        part = self.folder / f"{remote.name}.part"
        self._advance(part.stat().st_size if part.exists() else 0)  # downloaded by an earlier, interrupted run
        for attempt in range(RETRIES + 1):
            offset = part.stat().st_size if part.exists() else 0
            if offset == remote.size:
                break
            headers = {"Range": f"bytes={offset}-"} if offset else None
            with _get(remote.url, remote.name, stream=True, headers=headers, stop=self.stop) as response:
                if response.status_code == 416 or offset > remote.size:  # the part is not a prefix of this file
                    part.unlink(missing_ok=True)
                    self._advance(-offset)
                    continue
                if offset and response.status_code != 206:  # Range ignored: the whole file comes again
                    self._advance(-offset)
                    offset = 0
                try:
                    with open(part, "ab" if offset else "wb") as out:
                        for chunk in response.iter_content(CHUNK):
                            if self.stop.is_set():
                                raise Stopped(remote.name)
                            out.write(chunk)
                            self._advance(len(chunk))
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout):
                    tqdm.write(f"{remote.name}: the connection dropped at {part.stat().st_size} of {remote.size} "
                               "bytes; resuming")
            if part.stat().st_size == remote.size:
                break
            if attempt == RETRIES:
                raise DownloadError(f"{remote.name}: the connection kept dropping ({part.stat().st_size} of "
                                    f"{remote.size} bytes after {RETRIES + 1} attempts); run the same command again "
                                    "to resume it")
            if self.stop.wait(BACKOFF_S * 2 ** attempt):
                raise Stopped(remote.name)
        os.replace(part, output)

    def _advance(self, n: int) -> None:
        if self.bar is not None:
            with self._lock:
                self.bar.update(n)


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def download(layout: DriveLayout, actors: Iterable[int] = ALL_ACTORS, source: str = RECORD_URL,
             keep_zips: bool = False, workers: Optional[int] = None, device: str = "auto",
             config: Optional[PreprocessConfig] = None, progress: bool = True, verbose: bool = True) -> dict:
    """Download, extract and preprocess RAVDESS actor by actor into `layout.preprocessed` (module docstring).

    Prints what it will download and write, and the free space; `verbose`: also the report at the end.
    Returns the summary of `Preprocessor.finish` plus `downloaded` (actors this run) and
    `already_cached_actors`. Raises DownloadError, DataError (not enough space), MachineFault,
    FolderInUseError (another run holds the cache) with one line each.
    """
    actors = sorted(set(actors))
    config = config or PreprocessConfig()
    preprocessor = Preprocessor(layout.preprocessed, config, workers, device, layout.staging, progress=progress)
    print(LICENCE)
    print(CITATION)
    zips = speech_zips(list_files(source), actors)
    stop = threading.Event()
    with preprocessor as run:
        try:
            done = [a for a in actors if _cached_from(run, a, zips[a])]
            todo = [a for a in actors if a not in done]
            print(f"actors already cached: {_actor_list(done)}; to download: {_actor_list(todo)} "
                  f"({cache.gigabytes(sum(zips[a].size for a in todo))})")
            index = DataIndex(root=layout.local_ravdess, clips=cache.list_clips(layout.preprocessed, done) if done else [],
                              actors=tuple(actors))
            if todo:
                _check_budget(layout, config, [zips[a] for a in todo])
                _remove_leftovers(layout.downloads)
                run.bar.total = CLIPS_PER_ACTOR * len(todo)  # until each zip tells how many clips it holds
                _pipeline(layout, run, {a: zips[a] for a in todo}, index, keep_zips, stop, progress)
        except Exception as exc:
            stop.set()
            fault = environment_fault(exc)
            if fault is not None and not isinstance(exc, FerError):
                raise MachineFault("the download", fault, "fix it, then run the same command again: cached actors "
                                   "and complete zips are kept, a partial zip resumes") from exc
            raise
        summary = run.finish(index, verbose=verbose)
    return {**summary, "downloaded": todo, "already_cached_actors": done}


def _cached_from(run: Preprocessor, actor: int, remote: RemoteFile) -> bool:
    index = cache.shard_index(run.cache_dir, actor)
    return bool(index) and index.get("hash") == run.manifest["hash"] and index.get("origin") == _origin(remote)


def _origin(remote: RemoteFile) -> dict:
    return {"zip": remote.name, "md5": remote.md5}


def _actor_list(actors: list[int]) -> str:
    return ", ".join(f"{a:02d}" for a in actors) or "none"


def _check_budget(layout: DriveLayout, config: PreprocessConfig, remotes: list[RemoteFile]) -> None:
    """The cache on Drive and the downloads on the local disk must fit (printed, then checked)."""
    cache.check_space(layout.preprocessed, cache.estimated_bytes(CLIPS_PER_ACTOR * len(remotes), config),
                      f"the preprocessing cache of {len(remotes)} actors")
    in_flight = sorted((r.size for r in remotes), reverse=True)[: DOWNLOADS + 1]
    cache.check_space(layout.downloads, int(sum(in_flight) * (1 + EXTRACTED_SHARE)),
                      f"up to {len(in_flight)} zips and their clips at a time (deleted once cached)")


def _remove_leftovers(folder: Path) -> None:
    """pooch's temporary files of a run killed while it checked a file (its `.part` files are resumed)."""
    for stray in folder.glob("tmp*"):
        stray.unlink(missing_ok=True)


def _pipeline(layout: DriveLayout, run: Preprocessor, zips: dict[int, RemoteFile], index: DataIndex,
              keep_zips: bool, stop: threading.Event, progress: bool) -> None:
    """Download and extract in threads, preprocess each actor in this thread as soon as it is there. The clip
    bar counts 60 clips for each actor still downloading and, once its zip is unpacked, the clips of it left to do:
    it ends at 100% whatever the zips hold."""
    bar = tqdm(total=sum(r.size for r in zips.values()), desc="download", unit="B", unit_scale=True,
               disable=not progress)
    fetcher = Fetcher(layout.downloads, bar, stop)
    slots = threading.Semaphore(DOWNLOADS + 1)  # actors downloaded and not yet cached, at most

    def fetch(actor: int):
        while not slots.acquire(timeout=0.2):
            if stop.is_set():
                raise Stopped(actor)
        zip_path = fetcher.fetch(zips[actor])
        clips, skipped, problems = unpack_zip(zip_path, layout.local_ravdess, run.config, progress=False)
        return actor, zip_path, clips, skipped, problems

    try:
        with ThreadPoolExecutor(DOWNLOADS, thread_name_prefix="download") as pool:
            futures = [pool.submit(fetch, actor) for actor in zips]
            try:
                for left, future in enumerate(as_completed(futures), 1):
                    actor, zip_path, clips, skipped, problems = future.result()
                    records = [parse_name(p) for p in clips]
                    run.process(records, layout.local_ravdess, origin={actor: _origin(zips[actor])},
                                later=CLIPS_PER_ACTOR * (len(futures) - left))
                    index.clips += records
                    index.problems += problems
                    for category, stems in skipped.items():
                        index.skipped[category] = index.skipped.get(category, 0) + len(stems)
                    if not keep_zips:
                        zip_path.unlink()
                        fetcher.done_record(zips[actor]).unlink(missing_ok=True)
                        shutil.rmtree(layout.local_ravdess / f"Actor_{actor:02d}", ignore_errors=True)
                    slots.release()
            finally:
                stop.set()  # a failure or Ctrl-C here: the other downloads stop at their next chunk
                for future in futures:
                    future.cancel()
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# Notebook 01
# --------------------------------------------------------------------------------------------


def ensure_dataset(layout: DriveLayout, download_missing: bool = True, actors: Iterable[int] = ALL_ACTORS,
                   workers: Optional[int] = None, device: str = "auto", source: str = RECORD_URL,
                   progress: bool = True) -> Optional[dict]:
    """The preprocessing cache of `layout`, built from what there is. Returns the run's summary (None
    when the cache already held every actor).

    - RAVDESS files under `ravdess/` (the zips or Actor_XX folders a user put on Drive): preprocessed
      from there, zips unpacked to the local disk, not beside them on Drive;
    - else a cache holding every actor of `actors`: nothing to do;
    - else, with `download_missing`: the missing actors are downloaded (`download`);
    - else a one-line DataError saying what to put where.
    """
    actors = sorted(set(actors))
    if any(p.suffix.lower() in (".mp4", ".zip") for p in layout.ravdess.rglob("*") if p.is_file()):
        return preprocess(layout.ravdess, layout.preprocessed, unpack_dir=layout.local_ravdess, workers=workers,
                          device=device, staging_dir=layout.staging, progress=progress, verbose=False)
    if cache.is_cache(layout.preprocessed):
        cached = {c.actor for c in cache.list_clips(layout.preprocessed)}
        if cached >= set(actors):
            print(f"the cache {layout.preprocessed} holds actors {_actor_list(sorted(cached))}: nothing to download")
            return None
    if not download_missing:
        raise DataError(f"no RAVDESS in {layout.ravdess} and the cache is incomplete: set DOWNLOAD = True to fetch it "
                        "from Zenodo, or put the Video_Speech_Actor_XX.zip files there")
    return download(layout, actors, source, workers=workers, device=device, progress=progress, verbose=False)


def inspect_example(layout: DriveLayout) -> ClipInspection:
    """One clip through the preprocessing, for notebook 01: a raw clip when one is on disk, else a cached one
    (downloaded clips are deleted once cached)."""
    for folder in (layout.ravdess, layout.local_ravdess):
        raw = sorted(folder.rglob("01-01-*.mp4")) if folder.is_dir() else []
        if raw:
            return inspect_clip(raw[0])
    return inspect_cached(cache.list_clips(layout.preprocessed)[0].path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


class ActorsError(FerError, argparse.ArgumentTypeError):
    """ACTORS (notebook 01) or --actors is not a selection of actors; one line (argparse shows it as the flag's error)."""


def actor_list(value: str | int) -> list[int]:
    """ACTORS / --actors: "1-24", "1-4", "1,3,5", "1-4,9,21-24", "all", or one actor as a number (papermill's
    `-p ACTORS 3` passes an int) -> sorted actors in 1..24."""
    text = str(value).strip()
    if text.lower() == "all":
        return list(ALL_ACTORS)
    actors = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ActorsError(f"expected actors like 1-24, 1-4, 1,3,5 or all, got {value!r}") from None
        if first > last:
            raise ActorsError(f"the range {part.strip()} is reversed: write {last}-{first}")
        actors.update(range(first, last + 1))
    if not actors or min(actors) < 1 or max(actors) > NUM_ACTORS:
        raise ActorsError(f"actors must lie in 1..{NUM_ACTORS}, got {value!r}")
    return sorted(actors)


@cli.command(interrupted="cached actors and complete zips are kept; run the same command again to resume")
def main(argv: Optional[list[str]] = None) -> int:
    parser = cli.ArgumentParser(prog="python -m fer_lib.data.download", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the layout's root (drive_layout.md): the cache goes to "
                                                      "ROOT/cache/preprocessed")
    parser.add_argument("--actors", type=actor_list, default=list(ALL_ACTORS), help="e.g. 1-24 (default), 1-4,9, all")
    parser.add_argument("--source", default=RECORD_URL, help=f"a Zenodo records-API URL (default {RECORD_URL})")
    parser.add_argument("--keep_zips", action="store_true", help="keep the zips and their clips on the local disk")
    parser.add_argument("--local", default=None, help="the runtime's local disk for zips and clips (default: "
                                                      "/content/fer_local in Colab, else ROOT/local)")
    parser.add_argument("--workers", type=cli.POSITIVE_INT, default=None, help="preprocessing processes "
                                                                              "(default: one per core)")
    parser.add_argument("--device", default="auto", help="torch device for MTCNN (default auto: the GPU when there is one)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    for folder in (args.root, args.local):
        if folder:
            check_writable(folder)
    layout = default_layout(args.root, args.local)  # the folders download() needs are made once the device is known
    summary = download(layout, args.actors, args.source, args.keep_zips, args.workers, args.device,
                       progress=not args.no_progress)
    print(f"cache ready: {layout.preprocessed} ({summary['cached']} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
