"""The terminal overview from the engine's tally against the reference.

``views.Overview.add`` is the reference: every connection becomes a
``Connection`` and is counted (by ending, conn_state, anomalies) and, if it
can still be shown, rendered.  For the default view the engine counts the
same things itself (``Options.overview``, _engine.c's ``tally_add``) and
hands over records only for the connections the overview may show.  This
file requires equal overviews on every trace the suite has and on synthetic
captures, with the default page, a short page, ``--all``, and ``--jobs 2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tcplab.analyze import engine, views
from tcplab.analyze.synth import write_capture
from tcplab.cli import cli
from test_engine import TRACES


def overview(
    path: Path, options: engine.Options, page: int | None, jobs: int = 1
) -> tuple[views.Overview, str]:
    view = views.Overview(page)
    report = views.run_view(str(path), options, view, jobs)
    return view, view.text(path.name, report)


def tallied(options: engine.Options, page: int | None) -> engine.Options:
    return engine.Options(
        options.likely_server_ports,
        options.ignore_checksums,
        options.strict_checksums,
        overview=(-1 if page is None else page, views.WORST),
    )


def assert_same_overview(path: Path, options: engine.Options, page: int | None) -> None:
    ref, ref_text = overview(path, options, page)
    got, got_text = overview(path, tallied(options, page), page)
    assert got_text == ref_text
    assert (got.connections, got.shown, got.packets) == (ref.connections, ref.shown, ref.packets)
    assert (got.endings, got.states, got.anomalies) == (ref.endings, ref.states, ref.anomalies)
    assert sorted(got.worst) == sorted(ref.worst)
    assert sorted(got.rows) == sorted(ref.rows)


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_tally_equals_reference(path: Path) -> None:
    for page in (views.PAGE, 1, None):
        assert_same_overview(path, engine.Options(), page)
    assert_same_overview(path, engine.Options(strict_checksums=True), 2)
    assert_same_overview(path, engine.Options(ignore_checksums=True), 2)


@pytest.mark.parametrize("seed", [3, 5])
def test_tally_equals_reference_on_synthetic(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "synth.pcap"
    write_capture(path, 30000, 900, seed=seed, concurrency_seconds=5)
    for page in (views.PAGE, 7, None):
        assert_same_overview(path, engine.Options(), page)


def test_tally_hands_over_only_rows_that_can_be_shown(tmp_path: Path) -> None:
    """The point of the tally: no record per connection for the default view."""
    path = tmp_path / "synth.pcap"
    write_capture(path, 30000, 900, seed=4, concurrency_seconds=5)
    records = counted = 0
    for item in engine.run(path, tallied(engine.Options(), views.PAGE)):
        if isinstance(item, engine.Batch):
            assert item.tally is not None
            records += len(item.connections)
            counted += item.tally[0]
    assert counted == 900
    assert records < 200  # candidates for the first page and the worst 5, not 900


def test_tally_with_jobs_equals_one_process(tmp_path: Path) -> None:
    path = tmp_path / "synth.pcap"
    write_capture(path, 30000, 900, seed=6, concurrency_seconds=5)
    _, ref_text = overview(path, engine.Options(), views.PAGE)
    _, got_text = overview(path, tallied(engine.Options(), views.PAGE), views.PAGE, jobs=2)
    assert got_text == ref_text


def test_counts_tie_in_name_order() -> None:
    """Equal counts are listed by name, so the order does not depend on which
    connection (or shard) came first."""
    view = views.Overview()
    view.endings.update({"still open": 2, "FIN both ways": 2, "RST by client": 3})
    view.shown = view.connections = 7
    report = engine.ReadReport()
    text = view.text("x", report)
    lines = [line.split()[0:2] for line in text.splitlines()[3:6]]
    assert lines == [["RST", "by"], ["FIN", "both"], ["still", "open"]]


def test_spool_spills_by_memory_and_drains_in_order() -> None:
    """--json / --conn-log rows: sorted runs spill once the rows' memory (text
    plus Spool.ROW_COST each) passes the limit; the drain merges them in key
    order."""
    rng = __import__("random").Random(3)
    keys = list(range(5000))
    rng.shuffle(keys)
    spool = views.Spool(limit=100 * views.Spool.ROW_COST)
    for i in range(0, len(keys), 37):
        spool.add([(k, f"{k}\n") for k in keys[i : i + 37]])
    assert len(spool.runs) >= 40  # short rows spill by count, not only by text
    assert list(spool.drain()) == [f"{k}\n" for k in range(5000)]


def test_capture_set_overview_equals_one_file(tmp_path: Path) -> None:
    """A directory of one capture is a capture set (tcplab.scale): its
    overview, counted by the engine, is the file's."""
    folder = tmp_path / "set"
    folder.mkdir()
    write_capture(folder / "one.pcap", 30000, 900, seed=8, concurrency_seconds=5)
    runner = CliRunner()
    one = runner.invoke(cli, ["analyze", str(folder / "one.pcap")])
    both = runner.invoke(cli, ["analyze", str(folder)])
    assert one.exit_code == both.exit_code == 0, (one.output, both.output)
    assert "900 TCP connections" in one.output
    assert both.output.split("\n", 1)[1] == one.output.split("\n", 1)[1]
