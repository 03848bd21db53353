"""Unfinished renders: a stopped render says where its parts are, and the `parts` command lists the
`*.mp4.parts` folders under an output folder and deletes the stale ones (never a folder with other files)."""

import logging
import os
import time

import pytest
import torch

from magicinfinite_core.__main__ import main
from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.sinks import Mp4Sink
from magicinfinite_core.sampling.unfinished import remove_stale, unfinished_renders

DAY_S = 24 * 3600


def stopped_render(path, windows: int):
    """A render of `path` stopped after `windows` windows, as the MP4 sink leaves it."""
    sink = Mp4Sink(path, num_frames=40, fps=25.0, waveform=torch.zeros(1, 30000), sample_rate=16000,
                   preset="ultrafast")
    sink.start(0)
    for index in range(windows):
        sink.write(index, torch.rand(5, 16, 16, 3))
    sink.abort()
    return path.with_name(path.name + ".parts")


def age(folder, days: float) -> None:
    then = time.time() - days * DAY_S
    for item in (*folder.iterdir(), folder):
        os.utime(item, (then, then))


def test_a_stopped_render_says_where_its_finished_windows_are(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        parts = stopped_render(tmp_path / "talk.mp4", 2)
    assert [r.getMessage() for r in caplog.records] == [
        f"{parts}: the render of talk.mp4 stopped; its 2 finished window(s) are kept there. Run it again "
        "with the same inputs to continue from there, or delete that folder to free its disk space."]


def test_a_render_stopped_before_its_first_window_leaves_no_folder(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        parts = stopped_render(tmp_path / "talk.mp4", 0)
    assert not parts.exists() and caplog.records == []


def test_unfinished_renders_are_listed_and_the_stale_ones_deleted(tmp_path) -> None:
    (tmp_path / "MagicInfinite").mkdir()
    old = stopped_render(tmp_path / "MagicInfinite" / "old.mp4", 2)
    recent = stopped_render(tmp_path / "recent.mp4", 1)
    mine = tmp_path / "notes.mp4.parts"  # named like one, but holds the user's own file
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    age(old, 10)
    age(mine, 10)
    listed = {render.parts: render for render in unfinished_renders(tmp_path)}
    assert set(listed) == {old, recent}
    assert listed[old].windows_kept == 2 and listed[recent].windows_kept == 1
    assert 9.9 < listed[old].age_days(time.time()) < 10.1 and listed[old].size_bytes > 0
    removed = remove_stale(tmp_path, 7)
    assert [render.parts for render in removed] == [old]
    assert not old.exists() and recent.is_dir() and (mine / "notes.txt").is_file()
    with pytest.raises(InputError, match="days: expected a number of days of 0 or more"):
        remove_stale(tmp_path, -1)


def test_the_parts_command_lists_then_deletes(tmp_path, capsys) -> None:
    (tmp_path / "out").mkdir()
    parts = stopped_render(tmp_path / "out" / "long.mp4", 1)
    age(parts, 30)
    assert main(["parts", str(tmp_path / "out")]) == 0
    listing = capsys.readouterr().out
    assert f"{parts}  1 window(s)" in listing and "untouched for 30.0 days" in listing
    assert "1 unfinished render(s) under" in listing and parts.is_dir()
    assert main(["parts", str(tmp_path / "out"), "--delete-older-than", "14"]) == 0
    assert f"deleted {parts}" in capsys.readouterr().out and not parts.exists()
    assert main(["parts", str(tmp_path / "missing")]) == 2
    assert "error: folder:" in capsys.readouterr().err
