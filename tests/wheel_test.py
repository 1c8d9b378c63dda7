"""The wheel, installed into a fresh virtual environment, runs from outside the source tree.

The wheel is built from a copy of pyproject.toml, README.md and rppgedit/ (`pip wheel --no-deps`,
with pip's usual isolated build, which fetches setuptools), then installed with `--no-deps` into a
new venv created without pip. That venv reaches the dependencies already installed for this test run
through a `.pth` file naming this interpreter's site-packages: a plain path entry, so the `.pth`
files there (the editable install's finder among them) are not run and `rppgedit` can only come
from the wheel. A second `.pth` blocks the extras' modules (`_EXTRA_MODULES`), so the runs see
what a core-only install (no extras) sees. From a temporary working folder, the test runs
`--help`, the demo flagfile with one optimiser step (Privacy-Phys on the generated demo clip; its
figure skipped, with its note, for want of matplotlib) and PulseEdit and PhysioLatent on a tiny
generated clip, and checks each output, that the checkpoints resolve inside the installed package,
and that no weights were converted into the user's cache.
"""

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

from rppgedit.data.synthetic import make_clip
from rppgedit.video.decode import read_video
from rppgedit.video.encode import write_video

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# What the extras bring: attackers (rppg, cv2, keras), live (imageio_ffmpeg), convert (onnx,
# h5py), plots (matplotlib), and the tests' onnxruntime.
_EXTRA_MODULES = (
    "rppg",
    "cv2",
    "keras",
    "imageio_ffmpeg",
    "onnx",
    "h5py",
    "matplotlib",
    "onnxruntime",
)
_BLOCK_EXTRAS = f"import sys; sys.modules.update(dict.fromkeys({_EXTRA_MODULES!r}, None))\n"


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of the fresh venv, its environment, a working folder outside the source tree)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "rppgedit", src / "rppgedit", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), "."],
        cwd=src,
        env=None,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (work / "dist").glob("rppgedit-*.whl")

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = pathlib.Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
        + [str(wheel)],
        cwd=work,
        env=None,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    parents = [p for p in site.getsitepackages() if pathlib.Path(p).is_dir()]
    (purelib / "_rppgedit_test_parent_env.pth").write_text("\n".join(parents) + "\n")
    (purelib / "_rppgedit_test_core_only.pth").write_text(_BLOCK_EXTRAS)

    run_dir = work / "run"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RPPGEDIT_CHECKPOINTS")}
    env["XDG_CACHE_HOME"] = str(work / "cache")
    return python, env, run_dir, purelib


def test_checkpoints_and_detector_resolve_inside_the_installed_package(installed):
    python, env, run_dir, purelib = installed
    code = (
        "import importlib.util, rppgedit.checkpoints as c, rppgedit.video.face as f, "
        "rppgedit.open_rppg as a; "
        "print(c.__file__); print(c.default_checkpoint_dir()); print(f.blazeface_path()); "
        "print(a.available(), importlib.util.find_spec('cv2'))"
    )
    proc = _run([str(python), "-c", code], run_dir, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module, folder, detector, extras = proc.stdout.splitlines()
    package = purelib / "rppgedit" / "checkpoints"
    assert pathlib.Path(module) == package / "__init__.py"
    assert pathlib.Path(folder) == package and pathlib.Path(detector).parent == package
    assert not pathlib.Path(module).is_relative_to(ROOT)
    assert extras == "False None"  # a core-only view: no open-rppg, no OpenCV


def test_help(installed):
    python, env, run_dir, _ = installed
    proc = _run([str(python), "-m", "rppgedit.main", "--help"], run_dir, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "edit" in proc.stdout and "Traceback" not in proc.stderr
    proc = _run([str(python), "-m", "rppgedit.main", "edit", "--help"], run_dir, env)
    assert proc.returncode == 0 and "--method" in proc.stdout, proc.stderr[-2000:]


def test_demo_and_every_method_run_from_the_wheel(installed):
    python, env, run_dir, _ = installed
    demo = run_dir / "demo"
    cmd = [str(python), "-m", "rppgedit.main", f"--flagfile={ROOT / 'experiments/demo.flags'}"]
    cmd += [f"--demo_dir={demo}", "--steps=1", "--estimators=green", "--noprogress"]
    proc = _run(cmd, run_dir, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plots skipped: matplotlib is not installed" in proc.stderr  # no [plots] extra
    assert not (demo / "demo_edited.report.png").exists()
    report = json.loads((demo / "demo_edited.report.json").read_text())
    assert [row["estimator"] for row in report["rows"]] == ["green"]
    assert read_video(demo / "demo_edited.mkv").frames.shape[0] == 300

    clip = make_clip(0, hr_bpm=72.0, num_frames=64, height=64, width=64)
    write_video(run_dir / "tiny.mkv", clip.frames, clip.fps)
    # Privacy-Phys ran above, through the shipped PhysNet (its surrogate) and face detector.
    for method, extra in (("pulseedit", ["--steps=1"]), ("physiolatent", [])):
        out = run_dir / f"tiny_{method}.mkv"
        cmd = [str(python), "-m", "rppgedit.main", "--mode=edit", "--input=tiny.mkv"]
        cmd += [f"--output={out.name}", f"--method={method}", "--estimators=green"]
        proc = _run(cmd + extra + ["--noprogress"], run_dir, env)
        assert proc.returncode == 0, f"{method}: {proc.stderr[-3000:]}"
        edited = read_video(out).frames
        assert edited.shape == clip.frames.shape and (edited != clip.frames).any(), method
    # Every weight came from the package: nothing was converted into the user's cache.
    assert not (pathlib.Path(env["XDG_CACHE_HOME"]) / "rppgedit" / "checkpoints").exists()
