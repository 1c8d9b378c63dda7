"""One progress bar for every long pass: a total and an ETA on a terminal, silent otherwise."""

import io
import re
import sys

from rppgedit import progress


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_on_a_terminal_shows_the_total_and_an_eta():
    stream = FakeTty()
    bar = progress.bar(4, "edit windows", True, unit="win", file=stream)
    for _ in range(4):
        bar.update(1)
    bar.close()
    text = stream.getvalue()
    assert "edit windows" in text
    assert "4/4" in text
    assert re.search(r"4/4 \[\d\d:\d\d<\d\d:\d\d", text)  # [elapsed<ETA]
    assert "win" in text


def test_wrap_counts_items_against_the_length():
    stream = FakeTty()
    got = list(progress.wrap(range(3), "steps", True, unit="step", file=stream))
    assert got == [0, 1, 2]
    assert "3/3" in stream.getvalue()


def test_disabled_bars_print_nothing(capfd):
    stream = FakeTty()
    bar = progress.bar(4, "edit windows", False, file=stream)
    bar.update(4)
    bar.set_postfix({"loss": 1.0})
    bar.close()
    assert list(progress.wrap(range(3), "steps", False, file=stream)) == [0, 1, 2]
    assert stream.getvalue() == ""
    progress.bar(4, "default stream", False).close()
    assert capfd.readouterr().err == ""


def test_always_draws_into_a_log_and_never_overrides_noprogress(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    stream = io.StringIO()
    bar = progress.bar(2, "into a log", True, file=stream)
    bar.update(2)
    bar.close()
    assert "2/2" in stream.getvalue()
    assert not progress.shown(False, stream)


def test_a_stream_that_is_not_a_terminal_gets_no_bar(capfd, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    stream = io.StringIO()
    bar = progress.bar(4, "edit windows", True, file=stream)
    bar.update(4)
    bar.close()
    assert list(progress.wrap([1, 2], "items", True, file=stream)) == [1, 2]
    assert stream.getvalue() == ""
    bar = progress.bar(4, "stderr under pytest", True)  # captured stderr is not a terminal
    bar.update(4)
    bar.close()
    assert capfd.readouterr().err == ""


def test_a_long_pass_shows_its_total_only_when_asked(monkeypatch):
    """The training bank's pass: a bar with its total on a terminal, nothing under progress=False."""
    from rppgedit import train

    cfg = train.TrainConfig(bank_clips=2, bank_frames=32, num_frames=32)
    shown = FakeTty()
    monkeypatch.setattr(sys, "stderr", shown)
    bank = train.make_bank(cfg, progress=True)
    silent = FakeTty()
    monkeypatch.setattr(sys, "stderr", silent)
    again = train.make_bank(cfg, progress=False)
    assert re.search(r"synthetic clips: .*2/2 \[\d\d:\d\d<\d\d:\d\d", shown.getvalue())
    assert silent.getvalue() == ""
    assert (bank["clips"] == again["clips"]).all()


def test_reading_a_video_shows_its_decode_and_its_readings(tmp_path, monkeypatch, capfd):
    """`rppgedit.read_heart_rate` (what `rppgedit evaluate` runs): one bar for the decode (and the
    face tracking it feeds) in frames, one for the readings in estimators; an array has no decode,
    only the tracking; progress=False prints nothing even when bars are asked for."""
    import rppgedit

    monkeypatch.setenv(progress.PROGRESS_ENV, "always")
    path = rppgedit.demo_video(tmp_path / "face.mkv", seconds=5, size=96)
    capfd.readouterr()
    from_file = rppgedit.read_heart_rate(path, estimators=["pos", "chrom"], progress=True)
    err = capfd.readouterr().err
    assert re.search(r"decode \+ track face: .*150/150 \[\d\d:\d\d<\d\d:\d\d", err), err
    assert re.search(r"readings: .*2/2 \[", err), err
    frames, fps = rppgedit.demo_frames(seconds=5, size=96)
    from_frames = rppgedit.read_heart_rate(frames, fps, estimators=["pos", "chrom"], progress=True)
    err = capfd.readouterr().err
    assert re.search(r"track face: .*150/150 \[", err) and "decode" not in err, err
    assert [r["hr_bpm"] for r in from_file] == [r["hr_bpm"] for r in from_frames]
    rppgedit.read_heart_rate(path, estimators=["pos", "chrom"], progress=False)
    assert capfd.readouterr().err == ""
