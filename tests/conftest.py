"""Shared test settings: strict JAX promotion, LLVM -O1, a key fixture, the shared data folder."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from rppgedit import cpu_threads

jax.config.update("jax_numpy_rank_promotion", "raise")
# XLA:CPU compiles with LLVM at -O1 instead of its default -O2, unless XLA_FLAGS names a level.
# The suite compiles about 2,900 programs, most run once on small inputs, and a third of its CPU
# time went to XLA's compiler: on a fresh clone pytest took 1474 s at -O1 against 1600-1725 s.
# The programs (the HLO, the numerics up to rounding) are those the users run. The commands the
# tests start inherit it. (-O0 was tried: privacy_phys_test's edits came out NaN.)
# XLA:CPU's elemental emitters for its fusions instead of the newer MLIR fusion emitters, unless
# XLA_FLAGS names the setting: the same HLO, compiled faster. Measured on the default removal and a
# 120 bpm edit of a 256-frame grid clip, one process at a time: their programs compiled in 8.7 and
# 6.8 s against 11.8 and 7.5 s (again: 11.3 and 6.5 s against 14.5 and 11.5 s), the edits ran no
# slower, and the outputs differed in rounding only (pixel sums 1767779449 and 1767754697 against
# 1767779445 and 1767754594). Eight of the slowest files (removal, privacy_phys, regional_pulse,
# attackers, speed_parity, ensemble_balance, synthetic_readability, editor_contract) took 1149
# worker-s with it (and with fewer removal seeds and attackers) against 1528 in a full run.
_TEST_XLA_FLAGS = (
    ("xla_backend_optimization_level", "1"),
    ("xla_cpu_use_fusion_emitters", "false"),
)
for _flag, _value in _TEST_XLA_FLAGS:
    if _flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{_flag}={_value}".strip()
# Also measured, not kept (2026-12-07, fresh clone, this 2-core machine, pytest 2054 s before the
# fusion emitters were turned off): one persistent compilation cache shared by the workers and the
# commands the tests start, 2197 s (the commands' files gained 70 worker-s; every file that compiles
# in-process lost more: with the command line's settings each compile also writes its program);
# three workers instead of two, 4 % slower on a 400 worker-s subset (the workers already keep both
# cores busy); XLA's --xla_llvm_disable_expensive_passes, 7 % slower on a 230 worker-s subset. A
# cache for the commands only (the files that start them: 766 worker-s against about 845) is not
# possible: the tests that call `main` in-process would turn it on in their worker for the tests
# after them.
# The devices the command line and the API run on: one per core (`cpu_threads.spread_over_cores`).
cpu_threads.spread_over_cores()
# Commands run by the tests (`python -m rppgedit.main`) keep no compilation cache in the user's home.
os.environ["RPPGEDIT_JAX_CACHE"] = "off"

SHARED_DATA = pathlib.Path(
    os.environ.get(
        "RPPGEDIT_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (the default, pyproject's addopts): one worker per core, at most 4 (each worker
    is a JAX process of 1-3 GB)."""
    return max(1, min(cpu_threads.cpu_devices_wanted(), 4))


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_file(*parts: str) -> pathlib.Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def run_keras_script(tmp_path: pathlib.Path, script: str, inputs: dict) -> dict:
    """Runs `script` (which imports open-rppg's Keras models: never in this process, as importing
    rppg changes Keras and XLA settings process-wide) in a subprocess on `inputs` saved as
    in.npz, and returns the arrays it saved in out.npz."""
    np.savez(tmp_path / "in.npz", **inputs)
    path = tmp_path / "keras_script.py"
    path.write_text(script)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(path), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(tmp_path / "out.npz"))


def require_open_rppg() -> None:
    """open-rppg (the attackers extra, part of the test extra) supplies the deep models' weights
    and Keras references: without it those tests fail, never skip. Found, not imported."""
    for package in ("rppg", "keras"):  # keras: a dependency of open-rppg
        if importlib.util.find_spec(package) is None:
            raise ImportError(f"{package} is not installed: pip install -e '.[test]'")


def count_values(tree) -> int:
    """The number of values in a pytree of arrays (a model's parameters)."""
    return sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(tree))


def pearson(a, b):
    """Pearson correlation of two signals "t" (traced: a loss of the deep models' gradient tests)."""
    a = a - jax.numpy.mean(a)
    b = b - jax.numpy.mean(b)
    return jax.numpy.sum(a * b) / jax.numpy.sqrt(jax.numpy.sum(a * a) * jax.numpy.sum(b * b))


def h5_datasets(group) -> list:
    """Every dataset under an h5py group (the values a Keras weight file stores)."""
    import h5py

    out = []
    group.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def check_keras_conversion(h5_path, checkpoint, fresh, checks, *, model, trained_on, bn_epsilon,
                           num_values) -> None:  # fmt: skip
    """A checkpoint converted from an open-rppg Keras weight file: each (value, h5 dataset key) of
    `checks` equals the file's dataset, every value the file stores lands in `fresh` (the converted
    variables, `num_values` of them), and the checkpoint's metadata names its source."""
    import h5py

    from rppgedit import checkpoints

    with h5py.File(h5_path, "r") as f:
        for got, key in checks:
            np.testing.assert_array_equal(
                np.asarray(got, np.float64), np.asarray(f[key], np.float64)
            )
        stored = sum(int(np.prod(d.shape)) for d in h5_datasets(f))
    assert stored == count_values(fresh) == num_values
    meta = checkpoints.pytree_metadata(checkpoint)
    assert meta["model"] == model and meta["trained_on"] == trained_on
    assert meta["sha256"] == checkpoints._sha256(h5_path)
    assert meta["bn_epsilon"] == bn_epsilon
    assert meta["license"].startswith("MIT")
