"""The command line: flagfiles with overrides, and one-line errors with a non-zero exit."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rppgedit import main, settings
from rppgedit.modes import common


@pytest.fixture
def flags_parsed():
    yield main.FLAGS
    main.FLAGS.unparse_flags()


def test_flagfile_values_are_overridden_on_the_command_line(tmp_path, flags_parsed):
    path = tmp_path / "x.flags"
    path.write_text(
        "# a comment\n--mode=edit\n--target_hr=100\n--steps=5\n--surrogates=pos:2,chrom\n"
    )
    flags_parsed(["rppgedit", f"--flagfile={path}", "--target_hr=90", "--param_size=0"])
    assert flags_parsed.mode == "edit"
    job = common.job(settings.resolve(main.FLAGS))
    assert job.target.hr_bpm == 90.0  # overridden
    options = dict(job.method_options)
    assert options["steps"] == 5  # from the file
    assert options["surrogates"] == (("pos", 2.0), ("chrom", 1.0))
    assert options["param_size"] is None  # 0 means every pixel


def test_shipped_flagfiles_parse(flags_parsed):
    root = os.path.join(os.path.dirname(__file__), "..", "experiments")
    for name in sorted(os.listdir(root)):
        if name.endswith(".flags"):
            flags_parsed.unparse_flags()
            flags_parsed(["rppgedit", f"--flagfile={os.path.join(root, name)}"])
            common.job(settings.resolve(main.FLAGS))  # builds a valid job


def _run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rppgedit.main", "--noprogress", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    lines = [
        line for line in proc.stderr.strip().splitlines() if line.startswith("rppgedit: error")
    ]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_input_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    proc = _run("--mode=evaluate", f"--input={missing}")
    _assert_one_line_error(proc, str(missing))


def test_output_equal_to_input_is_refused_and_input_untouched(tmp_path):
    from rppgedit.video import encode

    frames = np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "in.mkv"
    encode.write_video(path, frames, 30.0)
    before = path.read_bytes()
    proc = _run("--mode=edit", f"--input={path}", f"--output={path}")
    _assert_one_line_error(proc, str(path))
    assert path.read_bytes() == before


def test_unknown_estimator_and_bad_face_box(tmp_path):
    proc = _run("--mode=evaluate", "--input=x.mp4", "--estimators=pos,nosuch")
    assert proc.returncode != 0
    proc = _run("--mode=edit", "--input=a.mp4", f"--output={tmp_path}/b.mkv", "--face_box=1,2,3")
    _assert_one_line_error(proc, "--face_box")
    assert not (tmp_path / "b.mkv").exists()


def _bad_inputs(tmp_path):
    """(name, path) of inputs the command line must refuse: each a different way to be broken."""
    from rppgedit.video import encode

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = tmp_path / "good.mkv"
    encode.write_video(good, np.zeros((40, 32, 32, 3), np.uint8), 30.0)
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(good.read_bytes()[:300])
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not a frame")
    rgba = tmp_path / "rgba.npy"
    np.save(rgba, np.zeros((40, 32, 32, 4), np.uint8))
    return [("empty", empty), ("truncated", truncated), ("no_images", no_images), ("rgba", rgba)]


def test_bad_inputs_exit_non_zero_with_one_line_and_no_output(tmp_path):
    """Through the real command line: a one-line error naming the input, exit code 1, no output
    file (nor a temporary one) left in the output folder."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, path in _bad_inputs(tmp_path):
        proc = _run("--mode=edit", f"--input={path}", f"--output={out_dir}/{name}.mkv")
        _assert_one_line_error(proc, path.name)
        assert proc.returncode == 1, (name, proc.returncode)
        assert list(out_dir.iterdir()) == [], (name, list(out_dir.iterdir()))


def test_unwritable_output_folder(tmp_path):
    from rppgedit.video import encode

    path = tmp_path / "in.mkv"
    encode.write_video(path, np.zeros((40, 32, 32, 3), np.uint8), 30.0)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits: use a path under a file
            target = path / "sub" / "out.mkv"
        else:
            target = locked / "out.mkv"
        proc = _run("--mode=edit", f"--input={path}", f"--output={target}")
        _assert_one_line_error(proc, str(target.parent))
        assert proc.returncode == 1
        assert not target.exists()
    finally:
        locked.chmod(0o700)


def test_physiolatent_refuses_removal_before_any_work(tmp_path):
    from rppgedit.video import encode

    path = tmp_path / "in.mkv"
    encode.write_video(path, np.zeros((40, 32, 32, 3), np.uint8), 30.0)
    out = tmp_path / "out.mkv"
    proc = _run(
        "--mode=edit",
        "--method=physiolatent",
        "--target=none",
        f"--input={path}",
        f"--output={out}",
    )
    _assert_one_line_error(proc, "cannot remove the pulse")
    assert proc.returncode == 1 and not out.exists()


def test_a_command_that_succeeds_exits_with_its_exit_handlers_run_and_output_flushed(tmp_path):
    """`main.exit_now` skips the interpreter's teardown, not what a finished command owes."""
    mark = tmp_path / "handler_ran"
    code = (
        "import atexit, pathlib, sys\n"
        "from rppgedit import main\n"
        f"atexit.register(pathlib.Path({str(mark)!r}).write_text, 'yes')\n"
        "print('to stdout', end='')\n"
        "sys.stderr.write('to stderr')\n"
        "main.exit_now()\n"
        "print('never')\n"
    )
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=buffered
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "to stdout", "to stderr")
    assert mark.read_text() == "yes"
