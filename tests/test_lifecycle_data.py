"""Notebook 01's rows of the lifecycle matrix: what a Colab user sees and keeps when the download meets
the events of a real network, run as Run All runs it (papermill, the simulated Colab of tests/colab_sim.py)
against the records server of tests/test_download.py.

`ROWS` is the table, one test per row: event -> what the user must read in 01's output (in order), what
must have crossed the wire, whether Run All stops with one line, and what the cache on Drive keeps (what
is lost at most). After every row: no traceback, the data step's summary is a table, the report covers
the chosen actors only. The training rows of the matrix are in tests/test_lifecycle.py; README's
lifecycle table shows both.

A notebook run costs a kernel and its imports (torch, MTCNN: most of its time), so the rows share runs:
`SCENARIOS` plays each once, every Run All in a fresh runtime folder (`/content`), each scenario on a
Drive of its own. In "network", each of three zips meets its own fault (and the file list a 503), then
a second Run All in a new runtime reads the same Drive. Small on purpose: one synthetic clip per zip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError
from colab_sim import Colab, bare_repository, text_of
from test_download import RecordServer, build_zips

from fer_lib.data import cache
from fer_lib.paths import DriveLayout

NOTEBOOK = "01_data_check"
ZIP1, ZIP2, ZIP3 = (f"Video_Speech_Actor_0{actor}.zip" for actor in (1, 2, 3))
SLOW = 150_000  # bytes per second: about 5 s for a synthetic zip


@dataclass(frozen=True)
class Scenario:
    actors: str
    faults: dict = field(default_factory=dict)  # RecordServer.faults: name -> what its next requests get
    throttle: dict = field(default_factory=dict)  # RecordServer.throttle: name -> bytes per second
    runs: int = 1  # Run All this many times, each in a fresh runtime, on the same Drive


SCENARIOS = {
    "network": Scenario(actors="1-3", faults={"record": [503], ZIP1: ["drop"], ZIP2: [503]}, throttle={ZIP3: SLOW},
                        runs=2),
    "bad md5": Scenario(actors="1,2", faults={ZIP2: ["corrupt", "corrupt"]}),
}


@dataclass(frozen=True)
class Row:
    scenario: str
    run: int  # which Run All of the scenario shows the event
    sees: tuple[str, ...]  # in that run's output, in this order
    wire: Callable[[RecordServer], bool]  # what crossed the wire
    kept: tuple[int, ...]  # the actors the cache on Drive holds after it: what is lost at most is the others
    stops: Optional[str] = None  # Run All stops at the data step with this one-line error


def resumed(server: RecordServer, name: str) -> bool:
    """The second request for `name` asked for the rest of the file (Range), not for all of it again."""
    (first, _), (start, status) = server.requests_for(name)
    return first == 0 and 0 < start < len(server.files[name]) and status == 206


ROWS = {
    "01 run twice (a new runtime, the same Drive)": Row(
        "network", 1, ("holds actors 01, 02, 03: nothing to download",),
        wire=lambda server: [name for name, _, _ in server.log].count("record") == 2, kept=(1, 2, 3)),  # the 503 + 1
    "download: the connection is cut mid-file": Row(
        "network", 0, (f"{ZIP1}: the connection dropped at", "; resuming", "| actors downloaded now | 1-3 |"),
        wire=lambda server: resumed(server, ZIP1), kept=(1, 2, 3)),
    "download: the server answers 503": Row(
        "network", 0, ("the file list of RAVDESS: the server answers 503 Service Unavailable; trying again in 1 s",
                       f"{ZIP2}: the server answers 503 Service Unavailable; trying again in 1 s",
                       "| actors downloaded now | 1-3 |"),
        wire=lambda server: server.requests_for(ZIP2) == [(0, 503), (0, 200)], kept=(1, 2, 3)),
    "download: a slow server (150 KB/s)": Row(
        "network", 0, ("to download: 01, 02, 03", "| actors downloaded now | 1-3 |"),
        wire=lambda server: server.requests_for(ZIP3) == [(0, 200)], kept=(1, 2, 3)),  # one request: no timeout
    "download: a zip's md5 is wrong twice": Row(
        "bad md5", 0, (f"{ZIP2}: its md5 is wrong; downloading it once more",),
        wire=lambda server: server.requests_for(ZIP2) == [(0, 200), (0, 200)], kept=(1,),
        stops=f"{ZIP2}: its md5 is not"),
}


@dataclass
class Played:
    colab: Colab
    server: RecordServer
    notebooks: list  # the executed notebook of each Run All
    errors: list  # the PapermillExecutionError of each Run All, or None


@pytest.fixture(scope="module")
def play(synthetic_clips, tmp_path_factory) -> Callable[[str], Played]:
    """Plays a scenario once (on first use): Run All of 01 `runs` times against a records server with its faults."""
    repo_url = bare_repository(tmp_path_factory.mktemp("repository"))
    zips = build_zips(synthetic_clips)
    played: dict[str, Played] = {}

    def scenario(name: str) -> Played:
        if name not in played:
            plan = SCENARIOS[name]
            server = RecordServer(zips)
            server.faults = {file: list(faults) for file, faults in plan.faults.items()}
            server.throttle = dict(plan.throttle)
            colab = Colab(tmp_path_factory.mktemp(name.replace(" ", "_")), repo_url, preinstalled=True)
            result = played[name] = Played(colab, server, [], [])
            try:
                for run in range(plan.runs):
                    try:
                        colab.run(NOTEBOOK, {"ACTORS": plan.actors, "SOURCE": server.url, "WORKERS": 1},
                                  runtime=f"run{run}")
                        result.errors.append(None)
                    except PapermillExecutionError as exc:
                        result.errors.append(exc)
                    result.notebooks.append(nbformat.read(colab.executed(f"run{run}"), as_version=4))
            finally:
                server.close()
        return played[name]

    return scenario


@pytest.mark.parametrize("event", list(ROWS))
def test_lifecycle_of_notebook_01(event, play):
    row = ROWS[event]
    played = play(row.scenario)
    seen, error = text_of(played.notebooks[row.run]), played.errors[row.run]
    positions = [seen.find(expected) for expected in row.sees]
    assert -1 not in positions and positions == sorted(positions), (row.sees, seen)
    assert row.wire(played.server), played.server.log
    assert "Traceback" not in seen and "{'cache_dir'" not in seen  # the summary is a table, not a dict
    if row.stops:
        assert error is not None and error.ename == "DownloadError" and row.stops in error.evalue
        assert "SOURCE in notebook 01" in error.evalue  # where to set another source
        assert len(error.traceback) == 1 and "Traceback" not in error.traceback[0]  # one line
        assert not list((played.colab.content(f"run{row.run}") / "fer_local" / "downloads").glob(f"{ZIP2}*"))
    else:
        assert error is None, error
        report = seen[seen.index("RAVDESS data check"):]  # one synthetic clip per zip, RAVDESS has 60
        chosen = len(row.kept)
        assert f"found: {chosen} of {60 * chosen} expected (actors 1-{chosen} x 60" in report
        assert "actor 04" not in report and "actors with no clip" not in report  # only the chosen actors
    on_drive = sorted({clip.actor for clip in cache.list_clips(DriveLayout.at(played.colab.fer).preprocessed)})
    assert on_drive == list(row.kept)
