"""The deep rPPG models of the `open-rppg` package as black-box attackers (evaluation only): the
client end, which runs them in a worker process (`rppgedit.open_rppg.worker`).

An edited video should fool estimators that played no part in the edit. Besides rppgedit's own
registry (`rppgedit.estimators`), results are checked against the pre-trained deep models shipped in
open-rppg (Kegang Wang, MIT licence, https://github.com/KegangWangCCNU/open-rppg), run exactly as
that package runs them. open-rppg is an optional install, the ``attackers`` extra
(``pip install 'rppgedit[attackers]'``); nothing else in rppgedit needs it. They are never used as editing surrogates: only their heart-rate reading of
a finished clip is asked for.

Models (``OPEN_RPPG_MODELS`` lists the defaults; the open-rppg names and inputs are in ``MODELS``):
  - PhysNet: Z. Yu, X. Li, G. Zhao, "Remote photoplethysmograph signal measurement from facial
    videos using spatio-temporal networks", BMVC 2019 (open-rppg's own Keras code: an independent
    cross-check of rppgedit's Flax port).
  - TS-CAN: X. Liu, J. Fromm, S. Patel, D. McDuff, "Multi-task temporal shift attention networks
    for on-device contactless vitals measurement", NeurIPS 2020.
  - EfficientPhys: X. Liu, B. Hill, Z. Jiang, S. Patel, D. McDuff, "EfficientPhys: enabling simple,
    fast and accurate camera-based cardiac measurement", WACV 2023.
  - PhysFormer: Z. Yu, Y. Shen, J. Shi, H. Zhao, P. Torr, G. Zhao, "PhysFormer: facial video-based
    physiological measurement with temporal difference transformer", CVPR 2022.
  - PhysMamba: C. Luo, Y. Xie, Z. Yu, "PhysMamba: efficient remote physiological measurement with
    SlowFast temporal difference Mamba", CCBR 2024 (slow on CPU: off by default).
  - RhythmMamba: B. Zou, Z. Guo, X. Hu, H. Ma, "RhythmMamba: fast, lightweight, and accurate remote
    physiological measurement", AAAI 2025.
  - ME (ME-chunk, run here on 160-frame chunks with its state carried over) and FacePhys (one frame
    at a time): streaming models by open-rppg's author, Kegang Wang (the installed package names no
    paper for them, and none was checked here).

Every model is open-rppg's ``.rlap`` weights (trained on RLAP) unless the name carries ``.pure``
(trained on PURE), e.g. ``"physnet_keras.pure"``; FacePhys ships RLAP weights only.

``import rppg`` changes process-wide state (it sets the Keras global dtype policy to
``mixed_float16``, sets environment variables and silences every ``UserWarning``), so the models run
in a separate Python process, `rppgedit.open_rppg.worker`, which receives the face crops as .npy
files and answers with JSON. Nothing is cached in this process; the worker loads each requested model
once per call and frees it before the next. See that module for how each model is run, how heart
rate and SNR are read (with `rppgedit.signals`, the same functions as for every other estimator) and
how TS-CAN's float16 NaN problem is avoided.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rppgedit import progress as progress_bars
from rppgedit.errors import RppgEditError, one_line

# Attackers read by `read_open_rppg` unless told otherwise (PhysMamba is slow: ask for it by name).
OPEN_RPPG_MODELS: tuple[str, ...] = (
    "physformer",
    "efficientphys",
    "rhythmmamba",
    "facephys",
    "me",
    "tscan",
    "physnet_keras",
)

# Fields of every per-model result (see `read_open_rppg`).
RESULT_KEYS: tuple[str, ...] = (
    "hr_bpm",
    "snr_db",
    "hr_open_rppg_bpm",
    "sqi",
    "model",
    "precision",
    "num_samples",
    "load_s",
    "run_s",
    "seconds",
    "error",
)


@dataclasses.dataclass(frozen=True)
class OpenRppgModel:
    """How one open-rppg model is called.

    Attributes:
      family: open-rppg model name without the weight suffix (``"TSCAN"``, ``"ME-chunk"``, ...).
      variants: weight sets open-rppg ships for it (``"rlap"``, ``"pure"``).
      input_shape: (frames per chunk, H, W, 3) the package feeds it (crops are resized to H x W with
        ``cv2.INTER_AREA`` inside open-rppg; a chunk of 1 is a streaming model).
      float32: build the model under Keras' ``float32`` policy instead of open-rppg's
        ``mixed_float16`` (see the worker module for why TS-CAN needs it).
    """

    family: str
    variants: tuple[str, ...]
    input_shape: tuple[int, int, int, int]
    float32: bool = False


MODELS: dict[str, OpenRppgModel] = {
    "physformer": OpenRppgModel("PhysFormer", ("rlap", "pure"), (160, 128, 128, 3)),
    "efficientphys": OpenRppgModel("EfficientPhys", ("rlap", "pure"), (160, 72, 72, 3)),
    "rhythmmamba": OpenRppgModel("RhythmMamba", ("rlap", "pure"), (160, 128, 128, 3)),
    "physmamba": OpenRppgModel("PhysMamba", ("rlap", "pure"), (128, 128, 128, 3)),
    "facephys": OpenRppgModel("FacePhys", ("rlap",), (1, 36, 36, 3)),
    "me": OpenRppgModel("ME-chunk", ("rlap", "pure"), (160, 36, 36, 3)),
    "tscan": OpenRppgModel("TSCAN", ("rlap", "pure"), (160, 36, 36, 3), float32=True),
    "physnet_keras": OpenRppgModel("PhysNet", ("rlap", "pure"), (128, 32, 32, 3)),
}


def resolve(name: str) -> tuple[str, OpenRppgModel]:
    """open-rppg's model name for an attacker name.

    Args:
      name: a key of `MODELS`, optionally followed by ``.rlap`` (the default) or ``.pure``.

    Returns:
      (open-rppg name such as ``"TSCAN.rlap"``, the model's `OpenRppgModel`).

    Raises:
      ValueError: unknown model or weight set.
    """
    base, _, variant = str(name).strip().lower().partition(".")
    spec = MODELS.get(base)
    if spec is None:
        raise ValueError(f"unknown open-rppg attacker {name!r}; known: {', '.join(MODELS)}")
    variant = variant or spec.variants[0]
    if variant not in spec.variants:
        raise ValueError(
            f"open-rppg attacker {base!r} has no {variant!r} weights; it has: "
            f"{', '.join(spec.variants)}"
        )
    return f"{spec.family}.{variant}", spec


# What to install for the attackers: open-rppg is the optional `attackers` extra.
INSTALL_HINT = "pip install 'rppgedit[attackers]' (or: pip install open-rppg)"


def available() -> bool:
    """True when open-rppg (module ``rppg``) is installed; does not import it."""
    try:
        return importlib.util.find_spec("rppg") is not None
    except (ImportError, ValueError):
        return False


def require_installed(flag: str = "--attackers=open_rppg") -> None:
    """Raises a one-line `RppgEditError` naming `flag` when open-rppg is not installed.

    Call it before any decoding when a run asks for the open-rppg attackers.
    """
    if not available():
        raise RppgEditError(f"{flag} needs open-rppg, not installed: {INSTALL_HINT}")


def empty_result(error: str | None = None) -> dict[str, Any]:
    """A result dict with every field of `RESULT_KEYS` None except ``error``."""
    out: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    out["error"] = error
    return out


def read_open_rppg(
    frames_uint8,
    fps: float,
    models: Iterable[str] = OPEN_RPPG_MODELS,
    *,
    timeout_s: float = 1800.0,
    return_bvp: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Heart rate of one face clip as read by open-rppg's deep models.

    Each model sees the crops the way open-rppg's own face pipeline feeds it: every crop resized to
    the model's input size with ``cv2.INTER_AREA``, frames resampled to the model's 30 fps by
    nearest neighbour when ``fps`` differs, cut into the model's chunks, the last chunk padded with
    the last frame. The model's BVP (integrated for models that predict its derivative) is read
    with rppgedit's own `signals.heart_rate` and `signals.pulse_snr` at the model's rate; open-rppg's
    own HR (Welch peak of its filtered, peak-normalised BVP) and SQI are kept beside them.

    Args:
      frames_uint8: face crops (T, H, W, 3) uint8 RGB (the tracker's face box, any size).
      fps: frame rate of the crops in Hz.
      models: attacker names (see `resolve`); duplicates are read once.
      timeout_s: wall-clock limit for the whole worker process; models not finished by then get an
        error entry.
      return_bvp: also return each model's BVP as ``"bvp"``, a float64 (N,) array at
        ``"bvp_fps"`` Hz.
      progress: show a bar of the models read (total, ETA) on stderr.

    Returns:
      {name: {"hr_bpm", "snr_db", "hr_open_rppg_bpm", "sqi", "model", "precision",
      "num_samples", "load_s", "run_s", "seconds", "error"}}: HR in bpm and SNR in dB from
      rppgedit's functions; open-rppg's HR and its SQI in [0, 1]; the open-rppg model name and
      the Keras dtype policy it ran under; the BVP length; seconds to load (weights and
      compilation), to run, and both. A model that fails has None values and a one-line
      ``"error"``; it never raises.

    Raises:
      ValueError: frames that are not (T, H, W, 3) uint8, or fps not a positive number.
    """
    return read_open_rppg_many(
        [(frames_uint8, fps)], models, timeout_s=timeout_s, return_bvp=return_bvp, progress=progress
    )[0]


def _check_clip(frames, fps) -> tuple[np.ndarray, float]:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not frames.size:
        raise ValueError(
            f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}"
        )
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return frames, fps


def _worker_env() -> dict[str, str]:
    """Environment of the worker: the JAX Keras backend, quiet logs, importable rppgedit."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"  # open-rppg's models are JAX code; keras must not look for TF
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # several models in turn on one accelerator
    # XLA runs the networks on its own thread pool; the BLAS work (detrending) is tiny.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    root = str(pathlib.Path(__file__).resolve().parents[2])  # the folder holding rppgedit/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _failure(proc_stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in (proc_stderr or "").splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    return one_line(f"open-rppg worker exited with code {returncode}: {last}")[:400]


def _models_done(out_path: str) -> int:
    """Models the worker has answered so far (it rewrites `out_path` after each model)."""
    try:
        with open(out_path) as f:
            clips = json.load(f).get("clips") or [{}]
    except (OSError, ValueError, AttributeError):
        return 0
    return len(clips[0])


def _run_worker(cmd, cwd, timeout_s: float, out_path: str, bar) -> str | None:
    """Runs the worker (killed after `timeout_s`); advances `bar` as its models finish. Returns a
    one-line failure, or None when it exited cleanly."""
    poll_s = None if isinstance(bar, progress_bars.NoBar) else 0.5
    deadline = time.monotonic() + timeout_s
    with subprocess.Popen(
        cmd,
        env=_worker_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            while True:
                wait = max(0.0, deadline - time.monotonic())
                if poll_s is not None:
                    wait = min(poll_s, wait)
                try:
                    _, stderr = proc.communicate(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    if poll_s is not None:
                        bar.update(_models_done(out_path) - bar.n)
                    if time.monotonic() >= deadline:
                        proc.kill()
                        proc.communicate()
                        return f"open-rppg worker timed out after {timeout_s:g} s"
        except BaseException:
            proc.kill()
            raise
    if poll_s is not None:
        bar.update(_models_done(out_path) - bar.n)
    return None if proc.returncode == 0 else _failure(stderr, proc.returncode)


def read_open_rppg_many(
    clips: Sequence[tuple[Any, float]],
    models: Iterable[str] = OPEN_RPPG_MODELS,
    *,
    timeout_s: float = 1800.0,
    return_bvp: bool = False,
    progress: bool = False,
) -> list[dict[str, dict[str, Any]]]:
    """`read_open_rppg` for several clips in one worker: each model is loaded and compiled once.

    Args:
      clips: sequence of (frames (T, H, W, 3) uint8 RGB, fps in Hz); sizes and lengths may differ.
      models: attacker names (see `resolve`).
      timeout_s: wall-clock limit for the whole worker process.
      return_bvp: also return each BVP (see `read_open_rppg`).
      progress: show a bar of the models read (total, ETA) on stderr.

    Returns:
      One dict per clip, as `read_open_rppg` returns.

    Raises:
      ValueError: a clip that is not (T, H, W, 3) uint8, or a non-positive fps.
    """
    checked = [_check_clip(frames, fps) for frames, fps in clips]
    names = list(dict.fromkeys(str(n) for n in models))
    results = [{n: empty_result() for n in names} for _ in checked]
    known = []
    for name in names:
        try:
            resolve(name)
            known.append(name)
        except ValueError as e:
            for res in results:
                res[name]["error"] = one_line(e)
    if not known or not checked:
        return results
    if not available():
        for res in results:
            for name in known:
                res[name]["error"] = f"open-rppg is not installed: {INSTALL_HINT}"
        return results

    with tempfile.TemporaryDirectory(prefix="rppgedit-open-rppg-") as tmp:
        request = {"clips": [], "models": known, "return_bvp": bool(return_bvp)}
        for i, (frames, fps) in enumerate(checked):
            path = os.path.join(tmp, f"clip{i}.npy")
            np.save(path, np.ascontiguousarray(frames))
            request["clips"].append({"frames": path, "fps": fps})
        out_path = os.path.join(tmp, "result.json")
        request["out"] = out_path
        request_path = os.path.join(tmp, "request.json")
        with open(request_path, "w") as f:
            json.dump(request, f)
        cmd = [sys.executable, "-m", "rppgedit.open_rppg.worker", "--request", request_path]
        with progress_bars.bar(len(known), "open-rppg models", progress, unit="model") as bar:
            failure = _run_worker(cmd, tmp, timeout_s, out_path, bar)
        answer = {}
        if os.path.exists(out_path):
            with open(out_path) as f:
                answer = json.load(f)

    for i, res in enumerate(results):
        got = answer.get("clips", [{}] * len(checked))[i] if answer else {}
        for name in known:
            entry = got.get(name)
            if entry is None:
                res[name]["error"] = failure or "open-rppg worker returned no result"
                continue
            res[name].update({k: entry.get(k) for k in RESULT_KEYS})
            if return_bvp and entry.get("bvp") is not None:
                res[name]["bvp"] = np.asarray(entry["bvp"], np.float64)
                res[name]["bvp_fps"] = entry.get("bvp_fps")
    return results
