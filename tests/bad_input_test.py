"""Bad, hostile and unlucky inputs through the command line (issue 21).

Every case runs `rppgedit.main.main` in this process (absl flag parsing included; interrupts run in
a subprocess) on tiny generated clips and asserts:

- the exit code: non-zero for a refusal, 0 for an input that must be edited/read;
- a refusal prints ONE line ``rppgedit: error: ...`` (or absl's one-line flag error) naming the
  flag or file, and no Python traceback;
- no file in the test folder was created, changed or removed (a success creates only its
  outputs), no scratch folder is left in the temp folder, and every input keeps its sha256.

The table (case | exit | message | files touched) is written to `$RPPGEDIT_BAD_INPUT_TABLE`
(default /tmp/rppgedit_bad_inputs.md) with a JSON twin, for the issue's report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io as pyio
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib

import imageio_ffmpeg
import numpy as np
import pytest
from absl import flags
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rppgedit import main, safe_write
from rppgedit import settings as run_settings
from rppgedit.data import synthetic
from rppgedit.modes import common
from rppgedit.video import decode, encode

FAST = [
    "--surrogates=pos",
    "--steps=2",
    "--estimators=green",
    "--window=64",
    "--overlap=8",
    "--work_size=32",
]
BOX = "--face_box=8,8,56,56"
TABLE: list[dict] = []


# --------------------------------------------------------------------------------------------
# The folder of inputs.


def _ffmpeg(*args):
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _png_bytes(width: int, height: int) -> bytes:
    """A valid 8x8 grey PNG whose IHDR claims width x height (CRC fixed up)."""
    raw = b"".join(b"\x00" + b"\x80" * 24 for _ in range(8))

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _patch_mkv_size(data: bytes, old: int, new: int) -> bytes:
    """Rewrites Matroska PixelWidth/PixelHeight (IDs B0, BA, two-byte values) from old to new."""
    for element in (b"\xb0", b"\xba"):
        needle = element + b"\x82" + struct.pack(">H", old)
        assert needle in data
        data = data.replace(needle, element + b"\x82" + struct.pack(">H", new), 1)
    return data


@dataclasses.dataclass
class World:
    root: pathlib.Path
    p: dict[str, pathlib.Path]
    inputs: dict[str, str]  # path -> sha256 at the start


def _sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    d = root / "in"
    d.mkdir()
    p = {}
    clip = synthetic.make_clip(3, hr_bpm=70.0, num_frames=64, height=64, width=64)
    p["mkv"] = d / "in.mkv"
    encode.write_video(p["mkv"], clip.frames, 30.0)
    p["mp4"] = d / "h.mp4"
    _ffmpeg(
        "-i",
        str(p["mkv"]),
        "-c:v",
        "libx264",
        "-g",
        "16",
        "-bf",
        "2",
        "-pix_fmt",
        "yuv420p",
        str(p["mp4"]),
    )
    # An edit list that starts after the first packets: the header lists 64 packets, the decoder
    # gives 55 frames (the "10.94 s clip decodes to 547 frames, header says 597" case).
    p["cut"] = d / "cut.mp4"
    _ffmpeg("-ss", "0.3", "-i", str(p["mp4"]), "-c", "copy", str(p["cut"]))
    # Variable frame rate with intervals of 4 and 62 ms (colliding on a 1/fps time base).
    p["vfr"] = d / "vfr.mkv"
    _ffmpeg(
        "-i",
        str(p["mkv"]),
        "-vf",
        "setpts='(floor(N/2)*0.066+mod(N,2)*0.004)/TB'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "ffv1",
        "-enc_time_base",
        "1/1000",
        str(p["vfr"]),
    )
    p["one_frame"] = d / "one.mkv"
    encode.write_video(p["one_frame"], clip.frames[:1], 30.0)
    p["short"] = d / "short.mkv"
    encode.write_video(p["short"], clip.frames[:20], 30.0)
    p["tiny"] = d / "tiny8.mkv"
    encode.write_video(p["tiny"], clip.frames[:, 28:36, 28:36], 30.0)
    no_skin = np.zeros((64, 64, 64, 3), np.uint8)
    no_skin[..., 2] = 200  # blue: no pixel passes the fixed YCrCb skin rule
    no_skin[..., 0] = np.random.default_rng(0).integers(0, 40, (64, 64, 64))
    p["blue"] = d / "blue.mkv"
    encode.write_video(p["blue"], no_skin, 30.0)
    p["odd"] = d / "odd.mkv"
    encode.write_video(p["odd"], clip.frames[:, :33, :33], 30.0)
    p["fps1"] = d / "fps1.mkv"
    encode.write_video(p["fps1"], clip.frames, 1.0)
    p["empty"] = d / "empty.mp4"
    p["empty"].write_bytes(b"")
    p["text"] = d / "notes.mkv"
    p["text"].write_text("hello, not a video\n")
    p["fifo"] = d / "fifo.mkv"
    os.mkfifo(p["fifo"])
    p["random"] = d / "random.mp4"
    p["random"].write_bytes(np.random.default_rng(1).bytes(5000))
    p["truncated"] = d / "truncated.mkv"
    p["truncated"].write_bytes(p["mkv"].read_bytes()[:400])
    p["playlist"] = d / "playlist.mp4"
    p["playlist"].write_text(f"ffconcat version 1.0\nfile '{p['mkv']}'\n")
    p["concat_url"] = d / "concat.mkv"
    p["concat_url"].write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{p['mkv']}\n")
    # Headers that lie about the frame size: 16000x16000.
    big = clip.frames[:2, :, :]
    p["mkv256"] = d / "huge.mkv"
    encode.write_video(p["mkv256"], np.tile(big, (1, 4, 4, 1)), 30.0)
    p["mkv256"].write_bytes(_patch_mkv_size(p["mkv256"].read_bytes(), 256, 16000))
    p["y4m"] = d / "huge.y4m"
    p["y4m"].write_bytes(b"YUV4MPEG2 W16000 H16000 F30:1 Ip A1:1 C444\nFRAME\n" + b"\x00" * 1000)
    p["png_huge"] = d / "png_huge"
    p["png_huge"].mkdir()
    for i in range(2):
        (p["png_huge"] / f"{i:06d}.png").write_bytes(_png_bytes(60000, 60000))
    p["png_empty"] = d / "png_empty"
    p["png_empty"].mkdir()
    (p["png_empty"] / "readme.txt").write_text("no frames")
    p["npy_rgba"] = d / "rgba.npy"
    np.save(p["npy_rgba"], np.zeros((40, 32, 32, 4), np.uint8))
    p["npy_float"] = d / "float.npy"
    np.save(p["npy_float"], np.zeros((40, 32, 32, 3), np.float32))
    p["npy_empty"] = d / "empty.npy"
    np.save(p["npy_empty"], np.zeros((0, 32, 32, 3), np.uint8))
    p["npy_huge"] = d / "huge.npy"
    header = {"descr": "|u1", "fortran_order": False, "shape": (10, 60000, 60000, 3)}
    with open(p["npy_huge"], "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\x00" * 100)
    p["npy_pickle"] = d / "pickle.npy"
    np.save(p["npy_pickle"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    p["pngdir"] = d / "frames"
    encode.write_video(str(p["pngdir"]) + "/", clip.frames[:40], 30.0)
    p["npy"] = d / "clip.npy"
    np.save(p["npy"], clip.frames)
    # Targets.
    p["t_empty_npy"] = d / "t_empty.npy"
    np.save(p["t_empty_npy"], np.zeros(0, np.float32))
    p["t_empty_csv"] = d / "t_empty.csv"
    p["t_empty_csv"].write_text("")
    p["t_nan"] = d / "t_nan.csv"
    p["t_nan"].write_text("0,1\n0.1,nan\n0.2,3\n")
    p["t_short"] = d / "t_short.csv"
    p["t_short"].write_text("0,1\n0.1,2\n0.2,3\n")
    p["t_3col"] = d / "t_3col.npy"
    np.save(p["t_3col"], np.zeros((100, 3)))
    p["t_good"] = d / "t_good.npy"
    np.save(p["t_good"], np.sin(np.arange(64) / 3.0).astype(np.float32))
    # Links to the input: a symlink and a hard link.
    p["link"] = d / "link.mkv"
    os.symlink(p["mkv"], p["link"])
    p["hard"] = d / "hard.mkv"
    os.link(p["mkv"], p["hard"])
    # Outputs that exist already, a folder named like a video, an unwritable place.
    out = root / "out"
    out.mkdir()
    p["out"] = out
    p["exists"] = out / "exists.mkv"
    p["exists"].write_bytes(b"precious")
    p["exists_report"] = out / "fresh.report.json"
    p["exists_report"].write_text('{"precious": true}')
    p["exists_json"] = out / "result.json"
    p["exists_json"].write_text('{"precious": true}')
    p["dir_mkv"] = out / "dir.mkv"
    p["dir_mkv"].mkdir()
    p["file_as_dir"] = d / "in.mkv" / "sub" / "o.mkv"
    p["sweep_file"] = out / "sweep_file"
    p["sweep_file"].write_text("not a folder")
    # A damaged checkpoint folder.
    ck = root / "ck"
    (ck / "physnet_pure").mkdir(parents=True)
    (ck / "physnet_pure" / "_CHECKPOINT_METADATA").write_text("{not json")
    p["ck"] = ck
    inputs = {
        str(path): _sha(path)
        for path in sorted(d.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    # A private system temp folder: scratch folders of other processes never show up in it.
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("scratch"))
    try:
        yield World(root, p, inputs)
    finally:
        tempfile.tempdir = old_tempdir


# --------------------------------------------------------------------------------------------
# Running the command line in this process.


def _snapshot(root: pathlib.Path) -> dict[str, tuple]:
    state = {}
    for path in root.rglob("*"):
        st_ = path.lstat()
        if path.is_dir() and not path.is_symlink():  # a folder's mtime changes with its entries
            state[str(path.relative_to(root))] = ("dir", st_.st_mode)
        else:
            state[str(path.relative_to(root))] = (st_.st_size, st_.st_mtime_ns, st_.st_mode)
    tmp = pathlib.Path(tempfile.gettempdir())
    for path in tmp.iterdir():
        state[f"TMP/{path.name}"] = ("scratch",)
    return state


@dataclasses.dataclass
class Result:
    code: int | str
    stderr: str
    stdout: str
    touched: list[str]
    warnings: list[str]


def run_cli(world: World, args: list[str]) -> Result:
    before = _snapshot(world.root)
    env = os.environ.get("RPPGEDIT_CHECKPOINTS")
    err, out = pyio.StringIO(), pyio.StringIO()
    code: int | str = 0
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(out),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            rest = main.FLAGS(["rppgedit", "--noprogress", *args])
            main.main(rest)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except flags.Error as e:  # what absl's app.run prints for a flag it cannot parse
            code = 1
            print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
        except Exception:
            code = "traceback"
            print(traceback.format_exc(), file=sys.stderr)
        finally:
            main.FLAGS.unparse_flags()
            if env is None:
                os.environ.pop("RPPGEDIT_CHECKPOINTS", None)
            else:
                os.environ["RPPGEDIT_CHECKPOINTS"] = env
    after = _snapshot(world.root)
    touched = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    texts = [str(w.message) for w in caught]
    return Result(code, err.getvalue(), out.getvalue(), touched, texts)


def _error_lines(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(("rppgedit: error", "FATAL Flags parsing error"))
    ]


def _record(name: str, result: Result, ok: bool) -> None:
    lines = _error_lines(result.stderr)
    message = lines[0] if lines else (result.stdout.strip().splitlines() or [""])[-1]
    TABLE.append(
        {
            "case": name,
            "exit": result.code,
            "message": message[:160],
            "files_touched": result.touched,
            "pass": ok,
        }
    )


def expect_error(world: World, name: str, args: list[str], *needles: str) -> Result:
    result = run_cli(world, args)
    lines = _error_lines(result.stderr)
    ok = (
        isinstance(result.code, int)
        and result.code != 0
        and "Traceback" not in result.stderr
        and len(lines) == 1
        and all(n in lines[0] for n in needles)
        and not result.touched
    )
    _record(name, result, ok)
    assert result.code not in (0, "traceback"), (name, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, (name, result.stderr)
    for needle in needles:
        assert needle in lines[0], (name, needle, lines[0])
    assert not result.touched, (name, result.touched)
    return result


def expect_ok(world: World, name: str, args: list[str], creates: list[pathlib.Path]) -> Result:
    result = run_cli(world, args)
    want = sorted(str(c.relative_to(world.root)) for c in creates)
    ok = result.code == 0 and "Traceback" not in result.stderr and result.touched == want
    _record(name, result, ok)
    assert result.code == 0, (name, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.touched == want, (name, result.touched)
    return result


# --------------------------------------------------------------------------------------------
# The table: flags (checked before any file is opened).


def _flag_cases():
    """(name, extra args, needle) of flags that must be refused whatever the input."""
    bad = {
        "learning_rate": ["nan", "inf", "-inf", "0", "-0.1", "1e9"],
        "fidelity_weight": ["nan", "inf", "-1", "1e30"],
        "stop_pearson": ["nan", "inf", "-1", "1.5"],
        "removal_loss": ["kl", ""],
        "init_scale": ["nan", "inf", "-0.5", "101"],
        "target_phase": ["nan", "inf", "-inf"],
        "target_hr": ["nan", "inf", "0", "-60", "1000", "29.9"],
        "target_hr_end": ["nan", "inf", "0", "1000"],
        "target_hrv": ["nan", "inf", "-0.1", "0.5"],
        "lossy_strength": ["nan", "inf", "0", "-1", "11"],
        "window": ["-1", "8", "31", "100000"],  # 0 is the default: the target's window
        "overlap": ["-5", "-1", "128", "1000"],
        "batch_windows": ["-1", "100000"],  # 0 is the default: the platform's
        "work_size": ["0", "-8", "4", "100000"],
        "param_size": ["-2", "65", "1000000000"],
        "steps": ["0", "-5", "10000000000"],
        "extra_steps": ["-1", "10000000000"],
        "deep_every": ["0", "-1", "10000000000"],
        "seed": ["-1", "99999999999"],
        "mask_method": ["foo", "", "YCRCB"],
        "estimators": ["foo", "pos,nosuch", "''"],
        "surrogates": ["pos:nan", "pos:inf", "pos:-1", "pos:0", "pos:x", "nosuch:1"],
        "method": ["foo", "PRIVACY_PHYS"],
        "crf": ["-1", "64", "1000"],
        "verify_reencode": ["-1", "99"],
        "face_box": [
            "nan,0,10,10",
            "0,0,inf,10",
            "-1e9,-1e9,1e9,1e9",
            "1,2,3",
            "5,5,1,1",
            "a,b,c,d",
            "0,0,10,10,10",
        ],
        "bit_depth": ["12", "nan"],
        "target": ["sine"],
        "quantize": ["floor"],
    }
    for flag, values in bad.items():
        for value in values:
            needle = f"--{flag}" if flag not in ("bit_depth", "target", "quantize") else flag
            if flag == "surrogates" and value == "nosuch:1":
                needle = "nosuch"
            if flag == "estimators":
                needle = "estimator"
            if flag == "target_hr":
                needle = "heart rate" if value in ("0", "-60", "1000", "29.9") else "--target_hr"
            if flag == "target_hr_end" and value in ("0", "1000"):
                needle = "end heart rate"
            yield f"--{flag}={value}", [f"--{flag}={value}"], needle


FLAG_CASES = list(_flag_cases())


@pytest.mark.parametrize("name,extra,needle", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flag_is_refused_before_reading(world, name, extra, needle):
    out = world.p["out"] / "o.mkv"
    args = ["--mode=edit", f"--input={world.p['mkv']}", f"--output={out}", *extra]
    expect_error(world, f"edit {name}", args, needle)


CONFLICTS = [
    ("target none + target_hr", ["--target=none", "--target_hr=90"], "--target_hr"),
    ("target none + target_phase", ["--target=none", "--target_phase=1"], "--target_phase"),
    ("target none + target_hr_end", ["--target=none", "--target_hr_end=80"], "--target_hr_end"),
    ("target_hrv with sinusoid", ["--target_hrv=0.05"], "--target_hrv"),
    (
        "target file + target_hrv",
        ["--target=file", "--target_hrv=0.05", "--target_file=x"],
        "--target_hrv",
    ),
    ("target_file with sinusoid", ["--target_file=x.npy"], "--target_file"),
    ("target_file with pulse", ["--target=pulse", "--target_file=x.npy"], "--target_file"),
    ("target file without file", ["--target=file"], "--target_file"),
    (
        "target file + target_hr",
        ["--target=file", "--target_hr=90", "--target_file=x"],
        "target_hr",
    ),
    ("share + codec vp9", ["--share", "--codec=vp9"], "--share"),
    ("bit_depth 16 + h264", ["--bit_depth=16", "--codec=h264"], "--bit_depth"),
    ("bit_depth 16 + share", ["--bit_depth=16", "--share"], "--bit_depth"),
    ("physiolatent removal", ["--method=physiolatent", "--target=none"], "cannot remove"),
    ("unexpected argument", ["extra_positional"], "unexpected arguments"),
]


@pytest.mark.parametrize("name,extra,needle", CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_conflicting_flags_are_refused(world, name, extra, needle):
    out = world.p["out"] / "o.mkv"
    args = ["--mode=edit", f"--input={world.p['mkv']}", f"--output={out}", *extra]
    expect_error(world, f"edit {name}", args, needle)


def test_shipped_flagfiles_pass_validation():
    """The checks refuse nothing that the project's own flagfiles set."""
    root = pathlib.Path(__file__).resolve().parents[1] / "experiments"
    for path in sorted(root.glob("*.flags")):
        main.FLAGS.unparse_flags()
        try:
            main.FLAGS(["rppgedit", f"--flagfile={path}"])
            common.check_settings(run_settings.resolve(main.FLAGS))
        finally:
            main.FLAGS.unparse_flags()


# Random flag values (hypothesis, derandomised): a value outside the flag's range must be
# refused naming the flag; a value inside it passes validation and the run stops at the input,
# which does not exist (so nothing is decoded either way).
RANGES = {
    "learning_rate": (0.0, 255.0, True),
    "fidelity_weight": (0.0, 1e6, False),
    "lossy_strength": (0.0, 10.0, True),
    "window": (32, 4096, False),
    "work_size": (8, 512, False),
    "edit_margin": (0.0, 1.0, False),
    "batch_windows": (0, 256, False),  # 0: the platform's (engine.windows_per_device)
}


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flag=st.sampled_from(sorted(RANGES)),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([0, 1, -1, 8, 31, 32, 255, 256, 512, 513, 4096, 4097]),
    ),
)
def test_random_flag_values(world, flag, value):
    low, high, low_open = RANGES[flag]
    is_int = isinstance(low, int)
    if is_int and isinstance(value, float):
        if not np.isfinite(value):
            value = 0
        value = int(max(min(value, 2**40), -(2**40)))
    valid = (
        np.isfinite(float(value)) and (value > low if low_open else value >= low) and value <= high
    ) or (flag == "window" and value == 0)  # 0: the default window of the target
    missing = world.p["out"] / "missing_input.mkv"
    out = world.p["out"] / "o.mkv"
    args = ["--mode=edit", f"--input={missing}", f"--output={out}", f"--{flag}={value!r}"]
    if flag == "window" and valid and value != 0:
        args.append(f"--overlap={min(8, int(value) - 1)}")
    needle = str(missing) if valid else f"--{flag}"
    expect_error(world, f"random --{flag}={value!r}", args, needle)


# --------------------------------------------------------------------------------------------
# The table: inputs and outputs.


def _file_cases(p):
    o = p["out"]
    edit = ["--mode=edit", *FAST]
    ev = ["--mode=evaluate", "--estimators=green"]

    def edit_in(key, *extra):  # an edit of the input p[key] into the scratch output
        return edit + [f"--input={p[key]}", f"--output={o}/o.mkv", *extra]

    return [
        # Files destroyed (issue 1).
        (
            "evaluate json_out = input",
            ev + [f"--input={p['mkv']}", f"--json_out={p['mkv']}"],
            "is the input",
        ),
        (
            "evaluate json_out = symlink of input",
            ev + [f"--input={p['mkv']}", f"--json_out={p['link']}"],
            "is the input",
        ),
        (
            "evaluate json_out = hard link of input",
            ev + [f"--input={p['mkv']}", f"--json_out={p['hard']}"],
            "is the input",
        ),
        (
            "evaluate json_out exists",
            ev + [f"--input={p['mkv']}", f"--json_out={p['exists_json']}"],
            "exists",
        ),
        (
            "evaluate json_out in missing folder",
            ev + [f"--input={p['mkv']}", f"--json_out={o}/no/such/r.json"],
            "no/such",
        ),
        ("edit output = input", edit + [f"--input={p['mkv']}", f"--output={p['mkv']}"], "input"),
        (
            "edit output = input --overwrite",
            edit + [f"--input={p['mkv']}", f"--output={p['mkv']}", "--overwrite"],
            "input",
        ),
        (
            "edit output = symlink to input",
            edit + [f"--input={p['mkv']}", f"--output={p['link']}", "--overwrite"],
            "input",
        ),
        (
            "edit output = hard link to input",
            edit + [f"--input={p['mkv']}", f"--output={p['hard']}", "--overwrite"],
            "input",
        ),
        (
            "edit input = symlink, output = target",
            edit + [f"--input={p['link']}", f"--output={p['mkv']}", "--overwrite"],
            "input",
        ),
        (
            "edit output inside the input PNG folder",
            edit + [f"--input={p['pngdir']}", f"--output={p['pngdir']}/o.mkv", BOX],
            "input folder",
        ),
        (
            "edit output = input PNG folder",
            edit + [f"--input={p['pngdir']}", f"--output={p['pngdir']}", "--overwrite", BOX],
            "frames",
        ),
        (
            "evaluate json_out = a frame of the input folder",
            ev + [f"--input={p['pngdir']}", f"--json_out={p['pngdir']}/000001.png", "--overwrite"],
            "input folder",
        ),
        ("edit output exists", edit + [f"--input={p['mkv']}", f"--output={p['exists']}"], "exists"),
        (
            "edit report exists",
            edit + [f"--input={p['mkv']}", f"--output={o}/fresh.mkv", BOX],
            "fresh.report.json",
        ),
        (
            "edit output is a folder",
            edit + [f"--input={p['mkv']}", f"--output={p['dir_mkv']}"],
            "dir.mkv",
        ),
        (
            "edit output under a file",
            edit + [f"--input={p['mkv']}", f"--output={p['file_as_dir']}"],
            "sub",
        ),
        ("edit output .txt", edit + [f"--input={p['mkv']}", f"--output={o}/o.txt"], "o.txt"),
        (
            "edit ffconcat playlist input",
            edit + [f"--input={p['playlist']}", f"--output={p['mkv']}", "--overwrite"],
            "input",
        ),
        ("edit ffconcat playlist input, other output", edit_in("playlist"), "playlist.mp4"),
        ("evaluate ffconcat playlist", ev + [f"--input={p['playlist']}"], "playlist.mp4"),
        ("evaluate hls playlist named .mkv", ev + [f"--input={p['concat_url']}"], "concat.mkv"),
        # Memory without bounds (issue 2).
        ("evaluate mkv header 16000x16000", ev + [f"--input={p['mkv256']}"], "16000x16000"),
        ("edit mkv header 16000x16000", edit_in("mkv256", BOX), "16000x16000"),
        ("evaluate y4m header 16000x16000", ev + [f"--input={p['y4m']}"], "16000x16000"),
        ("evaluate PNG header 60000x60000", ev + [f"--input={p['png_huge']}"], "60000x60000"),
        ("edit PNG header 60000x60000", edit_in("png_huge", BOX), "60000x60000"),
        ("evaluate npy header 10x60000x60000", ev + [f"--input={p['npy_huge']}"], "huge.npy"),
        # Success that edits nothing (issue 3).
        (
            "edit face box outside the frame",
            edit_in("mkv", "--face_box=1000,1000,2000,2000"),
            "--face_box",
        ),
        ("edit sub-pixel face box", edit_in("mkv", "--face_box=10,10,10.5,10.5"), "--face_box"),
        ("edit face box mostly outside", edit_in("mkv", "--face_box=40,40,200,200"), "--face_box"),
        (
            "edit box with no skin pixels (ycrcb)",
            edit_in("blue", BOX, "--mask_method=ycrcb"),
            "no skin pixels",
        ),
        (
            "evaluate face box outside",
            ev + [f"--input={p['mkv']}", "--face_box=1000,1000,2000,2000"],
            "--face_box",
        ),
        # Checks after the work (issue 5).
        ("edit estimator foo", edit_in("mkv", "--estimators=foo"), "foo"),
        (
            "edit damaged checkpoint",
            [
                "--mode=edit",
                "--surrogates=physnet_pure",
                "--steps=2",
                "--estimators=green",
                f"--checkpoint_dir={p['ck']}",
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
            ],
            "physnet_pure",
        ),
        (
            "evaluate damaged checkpoint",
            [
                "--mode=evaluate",
                "--estimators=physnet_pure",
                f"--checkpoint_dir={p['ck']}",
                f"--input={p['mkv']}",
            ],
            "physnet_pure",
        ),
        (
            "edit h264 odd size",
            edit
            + [
                f"--input={p['odd']}",
                f"--output={o}/o.mp4",
                "--codec=h264",
                "--face_box=0,0,32,32",
            ],
            "o.mp4",
        ),
        (
            "edit bit_depth 16 into mp4",
            edit + [f"--input={p['mkv']}", f"--output={o}/o.mp4", "--bit_depth=16", BOX],
            "o.mp4",
        ),
        (
            "edit ffv1 into mp4",
            edit + [f"--input={p['mkv']}", f"--output={o}/o.mp4", "--codec=ffv1", BOX],
            "o.mp4",
        ),
        (
            "edit vp9 into mp4",
            edit + [f"--input={p['mkv']}", f"--output={o}/o.mp4", "--codec=vp9", BOX],
            "o.mp4",
        ),
        ("edit unknown codec", edit_in("mkv", "--codec=divx", BOX), "divx"),
        ("edit crf with ffv1", edit_in("mkv", "--crf=20", BOX), "crf"),
        # Broken inputs.
        ("edit missing input", edit + [f"--input={o}/nope.mkv", f"--output={o}/o.mkv"], "nope.mkv"),
        ("evaluate a device", ev + ["--input=/dev/zero"], "/dev/zero"),
        ("edit a fifo", edit_in("fifo"), "fifo.mkv"),
        ("edit empty file", edit_in("empty"), "empty.mp4"),
        ("edit text file .mkv", edit_in("text"), "notes.mkv"),
        ("edit random bytes", edit_in("random"), "random.mp4"),
        ("edit truncated", edit_in("truncated", BOX), "truncated.mkv"),
        ("edit folder without PNGs", edit_in("png_empty"), "png_empty"),
        ("edit rgba npy", edit_in("npy_rgba"), "rgba.npy"),
        ("edit float npy", edit_in("npy_float"), "float.npy"),
        ("edit empty npy", edit_in("npy_empty"), "empty.npy"),
        ("edit pickle npy", edit_in("npy_pickle"), "pickle.npy"),
        ("edit 1-frame video", edit_in("one_frame", BOX), "one.mkv"),
        ("edit 20-frame video", edit_in("short", BOX), "20 frames"),
        ("evaluate 1-frame video", ev + [f"--input={p['one_frame']}", BOX], "one.mkv"),
        ("evaluate 20-frame video", ev + [f"--input={p['short']}", BOX], "short.mkv"),
        (
            "evaluate 8x8 allow_no_face",
            ev + [f"--input={p['tiny']}", "--allow_no_face"],
            "tiny8.mkv",
        ),
        ("edit 8x8 allow_no_face", edit_in("tiny", "--allow_no_face"), "tiny8.mkv"),
        ("evaluate 1 fps video", ev + [f"--input={p['fps1']}", BOX], "fps1.mkv"),
        ("edit 1 fps video", edit_in("fps1", BOX), "fps1.mkv"),
        # Targets.
        (
            "edit empty npy target",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['t_empty_npy']}",
            ],
            "t_empty.npy",
        ),
        (
            "edit empty csv target",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['t_empty_csv']}",
            ],
            "t_empty.csv",
        ),
        (
            "edit NaN target",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['t_nan']}",
            ],
            "t_nan.csv",
        ),
        (
            "edit 3-column target",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['t_3col']}",
            ],
            "t_3col.npy",
        ),
        (
            "edit target shorter than video",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['t_short']}",
            ],
            "t_short.csv",
        ),
        (
            "edit missing target",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={o}/none.npy",
            ],
            "none.npy",
        ),
        (
            "edit target file = video",
            edit
            + [
                f"--input={p['mkv']}",
                f"--output={o}/o.mkv",
                BOX,
                "--target=file",
                f"--target_file={p['mkv']}",
            ],
            "in.mkv",
        ),
        # Sweeps.
        ("out_dir is a file", ["--mode=sweep", f"--out_dir={p['sweep_file']}"], "sweep_file"),
        (
            "sweep bad seeds",
            ["--mode=sweep", f"--out_dir={o}/sw", "--synthetic_seeds=a,b"],
            "--synthetic_seeds",
        ),
        (
            "sweep nan target hrs",
            ["--mode=sweep", f"--out_dir={o}/sw", "--target_hrs=nan"],
            "--target_hrs",
        ),
        (
            "sweep 0 batch_windows",
            ["--mode=sweep", f"--out_dir={o}/sw", "--batch_windows=0"],
            "--batch_windows",
        ),
        (
            "sweep 8 frames",
            ["--mode=sweep", f"--out_dir={o}/sw", "--synthetic_frames=8"],
            "--synthetic_frames",
        ),
        ("bench bad sizes", ["--mode=bench", "--bench_sizes=0"], "--bench_sizes"),
        (
            "experiment nan lambdas",
            [
                "--mode=experiment",
                "--experiment=lambda_sweep",
                f"--out_dir={o}/exp",
                "--fidelity_weights=nan",
            ],
            "--fidelity_weights",
        ),
        ("evaluate without input", ["--mode=evaluate"], "--input"),
        ("edit without output", ["--mode=edit", f"--input={p['mkv']}"], "--output"),
    ]


@pytest.fixture(scope="module")
def file_cases(world):
    return {c[0]: c for c in _file_cases(world.p)}


def _names():
    dummy = {
        k: pathlib.Path("/x")
        for k in (
            "out blue fifo pngdir odd mkv mp4 cut vfr one_frame short tiny fps1 empty text random truncated playlist "
            "concat_url mkv256 y4m png_huge png_empty npy_rgba npy_float npy_empty npy_huge "
            "npy_pickle npy t_empty_npy t_empty_csv t_nan t_short t_3col t_good link hard exists "
            "exists_report exists_json dir_mkv file_as_dir sweep_file ck"
        ).split()
    }
    return [c[0] for c in _file_cases(dummy)]


@pytest.mark.parametrize("name", _names())
def test_bad_file_is_refused(world, file_cases, name):
    _, args, needle = file_cases[name]
    expect_error(world, name, args, needle)


# Random damage to a file's first bytes (seeded): refused with the file named, or read.
@pytest.mark.parametrize("seed", range(16))
def test_damaged_headers(world, seed):
    rng = np.random.default_rng(seed)
    source = world.p["mkv"] if seed % 2 else world.p["mp4"]
    data = bytearray(source.read_bytes())
    if seed % 4 < 2:
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(0, 300))] = int(rng.integers(0, 256))
    else:
        data = data[: int(rng.integers(1, len(data) // 3))]
    path = world.p["out"] / f"damaged{seed}{source.suffix}"
    path.write_bytes(bytes(data))
    try:
        args = ["--mode=evaluate", "--estimators=green", f"--input={path}", BOX]
        result = run_cli(world, args)
        lines = _error_lines(result.stderr)
        ok = "Traceback" not in result.stderr and not result.touched
        if result.code == 0:
            ok = ok and "green" in result.stdout
        else:
            ok = ok and isinstance(result.code, int) and len(lines) == 1 and path.name in lines[0]
        _record(f"evaluate damaged header seed {seed}", result, ok)
        assert ok, (seed, result.code, result.stderr[-2000:])
    finally:
        path.unlink()


# --------------------------------------------------------------------------------------------
# What must succeed: lying headers, variable frame rate, distinct reports, same bytes.


def test_edit_succeeds_on_variable_frame_rate_and_lying_header(world):
    o = world.p["out"]
    for name, key in (("vfr", "vfr"), ("lying header", "cut")):
        out = o / f"ok_{key}.mkv"
        report = o / f"ok_{key}.report.json"
        figure = o / f"ok_{key}.report.png"
        args = ["--mode=edit", *FAST, f"--input={world.p[key]}", f"--output={out}", BOX]
        expect_ok(world, f"edit {name}", args, [out, report, figure])
        video_in, video_out = decode.read_video(world.p[key]), decode.read_video(out)
        frames_in, frames_out = video_in.frames, video_out.frames
        assert frames_out.shape == frames_in.shape  # the decoded frames are the truth
        assert (frames_out != frames_in).any()  # and they were edited
        if key == "vfr":  # every frame keeps its timestamp (to the millisecond of Matroska)
            assert video_in.timestamps is not None and video_out.timestamps is not None
            np.testing.assert_allclose(video_out.timestamps, video_in.timestamps, atol=1e-3)
        info = json.loads(report.read_text())
        assert info["frames"] == len(frames_in)
        for path in (out, report, figure):
            path.unlink()


def test_reports_do_not_collide_and_bytes_are_reproducible(world):
    o = world.p["out"]
    a1, a2 = o / "a.v1.mkv", o / "a.v2.mkv"
    r1, r2 = o / "a.v1.report.json", o / "a.v2.report.json"
    base = ["--mode=edit", *FAST, f"--input={world.p['mkv']}", BOX, "--noplots"]
    expect_ok(world, "edit a.v1.mkv", base + [f"--output={a1}"], [a1, r1])
    expect_ok(world, "edit a.v2.mkv (own report)", base + [f"--output={a2}"], [a2, r2])
    assert _sha(a1) == _sha(a2)  # same input and seed: same bytes
    assert json.loads(r1.read_text())["output"] == str(a1)
    assert json.loads(r2.read_text())["output"] == str(a2)
    # The edit changed the face box and nothing outside it.
    before, after = decode.read_video(world.p["mkv"]).frames, decode.read_video(a1).frames
    changed = np.argwhere((before != after).any(axis=(0, 3)))
    assert len(changed) > 0
    assert changed.min() >= 8 and changed.max() < 56
    for path in (a1, a2, r1, r2):
        path.unlink()


def test_npy_input_warns_once_and_json_out_is_written(world):
    o = world.p["out"]
    out = o / "npy_edit.mkv"
    args = ["--mode=edit", *FAST, f"--input={world.p['npy']}", f"--output={out}", BOX, "--noplots"]
    result = expect_ok(
        world, "edit .npy (one fps warning)", args, [out, o / "npy_edit.report.json"]
    )
    fps_warnings = [w for w in result.warnings if "frame rate" in w]
    assert len(fps_warnings) == 1, result.warnings
    assert "pass fps=" not in fps_warnings[0]
    out.unlink()
    (o / "npy_edit.report.json").unlink()
    js = o / "eval.json"
    args = ["--mode=evaluate", "--estimators=green", f"--input={world.p['mkv']}", BOX]
    expect_ok(world, "evaluate --json_out new file", args + [f"--json_out={js}"], [js])
    assert json.loads(js.read_text())["frames"] == 64
    js.unlink()


# --------------------------------------------------------------------------------------------
# Temporaries: a later run removes what a killed one left; the sweep lock.


def test_stale_temporaries_are_cleaned_and_live_ones_kept(world):
    o = world.p["out"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = o / f".x.mkv.{safe_write.TEMP_TAG}.{safe_write._HOST}.{dead.pid}.abcd.mkv"
    live = o / f".y.mkv.{safe_write.TEMP_TAG}.{safe_write._HOST}.{os.getpid()}.abcd.mkv"
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    safe_write._cleaned.clear()  # a later run is a new process
    js = o / "eval2.json"
    args = ["--mode=evaluate", "--estimators=green", f"--input={world.p['mkv']}", BOX]
    result = run_cli(world, args + [f"--json_out={js}"])
    ok = result.code == 0 and not stale.exists() and live.exists() and js.exists()
    _record("later run cleans a killed run's temporary", result, ok)
    assert ok, result.stderr
    live.unlink()
    js.unlink()


def test_second_sweep_on_one_folder_stops_at_once(world):
    from rppgedit import runner

    folder = world.p["out"] / "locked_sweep"
    folder.mkdir()
    lock = runner.lock_folder(folder, 0)
    try:
        args = ["--mode=sweep", f"--out_dir={folder}", "--synthetic_seeds=0", "--steps=1"]
        expect_error(world, "second sweep on a locked folder", args, "another run")
    finally:
        os.close(lock)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def test_first_use_conversion_writes_to_the_user_cache_not_the_checkout(tmp_path, monkeypatch):
    from rppgedit import checkpoints

    checkout = tmp_path / "checkout" / "checkpoints"
    checkout.mkdir(parents=True)
    monkeypatch.setattr(checkpoints, "default_checkpoint_dir", lambda: checkout)
    monkeypatch.delenv("RPPGEDIT_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    checkpoints._load_cached.cache_clear()
    try:
        variables = checkpoints.load_physnet("rlap")
    finally:
        checkpoints._load_cached.cache_clear()
    assert "params" in variables
    assert list(checkout.iterdir()) == []  # the source checkout is never written
    cached = tmp_path / "cache" / "rppgedit" / "checkpoints" / "physnet_rlap"
    assert (cached / "_CHECKPOINT_METADATA").is_file()


def test_input_hashes_unchanged(world):
    """Runs last in this module: no case changed any input."""
    for path, digest in world.inputs.items():
        assert _sha(pathlib.Path(path)) == digest, path


# --------------------------------------------------------------------------------------------
# Interrupts (subprocesses): Ctrl-C and SIGTERM during the optimisation, SIGKILL.


def _start_edit(world, tag: str, tmpdir: pathlib.Path, log: pathlib.Path):
    """An edit of 200000 optimiser steps (minutes) in a subprocess; stderr (with the progress
    bar, which appears when the optimisation starts) goes to `log`."""
    out = world.p["out"] / f"{tag}.mkv"
    env = dict(os.environ, TMPDIR=str(tmpdir), JAX_PLATFORMS="cpu", RPPGEDIT_PROGRESS="always")
    cmd = [
        sys.executable,
        "-m",
        "rppgedit.main",
        "--progress",
        "--mode=edit",
        "--surrogates=pos",
        "--steps=200000",
        "--stop_pearson=1",  # every step, no early stop: the optimisation really takes minutes
        "--estimators=green",
        "--window=64",
        "--overlap=8",
        "--work_size=32",
        f"--input={world.p['mkv']}",
        f"--output={out}",
        BOX,
    ]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stderr=err, stdout=subprocess.DEVNULL, env=env)
    return proc, out


def _wait_for(predicate, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _wait_for_temp(folder: pathlib.Path, proc, timeout=120.0):
    return _wait_for(lambda: bool(_temps(folder)), proc, timeout)


def _temps(folder: pathlib.Path) -> list[str]:
    return [p.name for p in folder.iterdir() if safe_write.TEMP_TAG in p.name]


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_during_optimisation(world, tmp_path, signum, code):
    before = _snapshot(world.root)
    scratch, log = tmp_path / "tmp", tmp_path / "stderr.txt"
    scratch.mkdir()
    proc, out = _start_edit(world, f"sig{signum}", scratch, log)
    try:
        started = _wait_for(lambda: "edit windows" in log.read_text(), proc)
        assert started and _temps(world.p["out"]), log.read_text()[-2000:]
        time.sleep(3.0)  # compiled and optimising (200000 steps take minutes)
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log.read_text()
    lines = [line for line in stderr.strip().splitlines() if line.startswith("rppgedit:")]
    after = _snapshot(world.root)
    touched = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    leftovers = list(scratch.iterdir())
    ok = (
        proc.returncode == code
        and len(lines) == 1
        and "interrupted" in lines[0]
        and "Traceback" not in stderr
        and not touched
        and not leftovers
        and not out.exists()
    )
    TABLE.append(
        {
            "case": f"{signal.Signals(signum).name} during the optimisation",
            "exit": proc.returncode,
            "message": lines[0] if lines else stderr[-160:],
            "files_touched": touched + [str(p) for p in leftovers],
            "pass": ok,
        }
    )
    assert ok, (proc.returncode, stderr[-3000:], touched, leftovers)


def test_sigkill_leaves_a_temporary_that_the_next_run_removes(world, tmp_path):
    proc, out = _start_edit(world, "killed", tmp_path, tmp_path / "stderr.txt")
    try:
        assert _wait_for_temp(world.p["out"], proc)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.5)  # the orphaned ffmpeg writer sees its input close and exits
    left = _temps(world.p["out"])
    assert left  # what SIGKILL leaves...
    safe_write._cleaned.clear()  # a later run is a new process
    js = world.p["out"] / "after_kill.json"
    args = ["--mode=evaluate", "--estimators=green", f"--input={world.p['mkv']}", BOX]
    result = run_cli(world, args + [f"--json_out={js}"])
    ok = result.code == 0 and not _temps(world.p["out"]) and not out.exists()
    _record("SIGKILL, then a later run in the folder", result, ok)
    assert ok, (left, _temps(world.p["out"]), result.stderr)  # ...the next run removes
    js.unlink()
    for path in tmp_path.iterdir():  # the killed run's scratch (its own TMPDIR)
        if path.name != "stderr.txt":
            safe_write.remove(str(path))


# --------------------------------------------------------------------------------------------
# The table for the report.


def test_write_table():
    """Runs last: writes the table and checks the totals."""
    path = pathlib.Path(os.environ.get("RPPGEDIT_BAD_INPUT_TABLE", "/tmp/rppgedit_bad_inputs.md"))
    rows = ["| case | exit | message | files touched | pass |", "|---|---|---|---|---|"]
    for r in TABLE:
        message = r["message"].replace("|", "\\|")
        touched = ", ".join(r["files_touched"]) or "none"
        rows.append(f"| {r['case']} | {r['exit']} | {message} | {touched} | {r['pass']} |")
    passed = sum(r["pass"] for r in TABLE)
    tracebacks = sum(r["exit"] == "traceback" for r in TABLE)
    rows.append(f"\n{len(TABLE)} cases, {passed} pass, {tracebacks} tracebacks")
    try:
        path.write_text("\n".join(rows) + "\n")
        path.with_suffix(".json").write_text(json.dumps(TABLE, indent=1))
    except OSError:
        pass
    assert tracebacks == 0
    if len(TABLE) >= 150:  # the whole module ran
        assert passed == len(TABLE)


def test_stop_pearson_and_removal_loss_reach_the_editor_config():
    """`--stop_pearson=1` runs every step (None in the config); other values and `--removal_loss`
    pass through; unset, the editor's defaults hold."""
    from rppgedit import pipeline

    try:
        main.FLAGS(
            ["rppgedit", "--stop_pearson=1", "--init_scale=0",
             "--extra_steps=5", "--removal_loss=flatness", "--deep_every=1"]
        )  # fmt: skip
        cfg = pipeline.editor_config(common.job(run_settings.resolve(main.FLAGS)), 30.0)
        assert (cfg.stop_pearson, cfg.init_scale) == (None, 0.0)
        assert (cfg.extra_steps, cfg.removal_loss, cfg.deep_every) == (5, "flatness", 1)
        main.FLAGS.unparse_flags()
        main.FLAGS(["rppgedit", "--stop_pearson=0.6"])
        assert (
            pipeline.editor_config(common.job(run_settings.resolve(main.FLAGS)), 30.0).stop_pearson
            == 0.6
        )
        main.FLAGS.unparse_flags()
        main.FLAGS(["rppgedit"])
        cfg = pipeline.editor_config(common.job(run_settings.resolve(main.FLAGS)), 30.0)
        assert (cfg.stop_pearson, cfg.notch_weight, cfg.init_scale) == (0.8, 1.0, 0.7)
        assert (cfg.extra_steps, cfg.removal_loss, cfg.deep_every) == (20, "notched_flat", 4)
    finally:
        main.FLAGS.unparse_flags()
