"""The worker end of the open-rppg attackers: runs open-rppg's deep models on face crops.

`rppgedit.open_rppg` (the client end) starts this module with ``python -m`` in a separate Python
process because ``import rppg`` changes process-wide state (Keras global dtype policy
``mixed_float16``, environment variables, a global ``UserWarning`` filter). It can also be run by
hand::

    python -m rppgedit.open_rppg.worker --frames crops.npy --fps 30 --models tscan,physnet_keras
    python -m rppgedit.open_rppg.worker --request request.json

A request file holds ``{"clips": [{"frames": "a.npy", "fps": 30.0}, ...], "models": [...],
"out": "result.json", "return_bvp": false}``; each .npy is a (T, H, W, 3) uint8 RGB array of face
crops of any size. The answer (written to ``out`` after every model, atomically, or printed to
stdout when there is no ``out``) is ``{"open_rppg_version", "backend", "clips": [{name: result}]}``
with the fields listed in `rppgedit.open_rppg.RESULT_KEYS` (plus ``"bvp"`` and ``"bvp_fps"`` when
asked).

How a clip is read, per model (read from open-rppg 0.1.1's ``rppg/main.py`` and ``rppg/models.py``):
  1. ``rppg.Model("<Family>.<weights>")`` loads the Keras model (JAX backend) and compiles it.
  2. Inside ``with model:`` every crop goes to ``model.update_face(crop, t)`` with ``t = i / fps``:
     open-rppg resizes it to the model input with ``cv2.INTER_AREA``, resamples the stream to the
     model's 30 fps by nearest neighbour, runs full chunks (128 or 160 frames; one frame for the
     streaming FacePhys) on a background thread and, on exit, a last chunk padded with the last crop.
  3. ``model.bvp(raw=True)`` gives the BVP at the model's rate (models that predict the BVP's
     derivative, TS-CAN and EfficientPhys, are integrated and detrended by open-rppg). rppgedit reads
     it with `signals.heart_rate` and `signals.pulse_snr`, the same functions as for every other
     estimator; ``model.hr(return_hrv=False)`` gives open-rppg's own HR (Welch peak of its band-passed,
     peak-normalised BVP) and SQI (autocorrelation peak in the pulse band), recorded beside them.

TS-CAN under float16: open-rppg builds every model under Keras' ``mixed_float16`` policy. TS-CAN
normalises frame differences as ``d / (std(d) + 1e-6)`` over each frame; a chunk that contains two
identical consecutive crops (always the padded last chunk, and every chunk of a clip whose rate is
below 30 fps, where nearest-neighbour resampling repeats frames) has ``std = 0`` and the float16
``1e-6`` is flushed to zero on XLA CPU, so the chunk's output is NaN, and integrating and detrending
the BVP spreads the NaN over the whole clip (measured: all 602 samples NaN on a 602-frame clip). This
worker therefore builds and runs TS-CAN under the ``float32`` policy: same weights, no NaN in the
padded chunk, and on full chunks the same output as the float16 model to within float16 rounding
(measured on the physrecorder face crop, three 160-frame chunks: max |difference| 0.005 for an output
RMS of 0.18, Pearson r 0.99997). Trimming the clip to whole chunks would also avoid the padded chunk,
but not the repeated frames of clips below 30 fps, and it drops up to 5.3 s. The other models run
exactly as shipped.

A model that fails, or a clip it cannot read (shorter than 2 s, non-finite output, an exception on
open-rppg's inference thread) gets a one-line ``"error"`` and None values; the worker goes on.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

from rppgedit import open_rppg, signals
from rppgedit.errors import one_line


def _set_env() -> None:
    """Environment open-rppg needs, set before Keras is imported."""
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _finite(x) -> float | None:
    """`x` as a Python float, None when missing or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _error_text(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")[:400]


class _ThreadErrors:
    """Records exceptions open-rppg reports with ``sys.excepthook`` from its worker threads."""

    def __init__(self):
        self.last: str | None = None
        self._saved = None

    def __enter__(self):
        self._saved = sys.excepthook

        def hook(exc_type, exc, tb):
            self.last = _error_text(exc if exc is not None else exc_type())

        sys.excepthook = hook
        return self

    def __exit__(self, *exc):
        sys.excepthook = self._saved
        return False


def read_clip(model, frames: np.ndarray, fps: float, return_bvp: bool) -> dict[str, Any]:
    """One clip through a loaded ``rppg.Model``: open-rppg's BVP, read by rppgedit and by open-rppg.

    Args:
      model: an ``rppg.Model``.
      frames: face crops (T, H, W, 3) uint8 RGB.
      fps: frame rate of the crops in Hz.
      return_bvp: include the BVP (list of floats) and its rate.

    Returns:
      Partial result: hr_bpm, snr_db, hr_open_rppg_bpm, sqi, num_samples, run_s, error (and bvp,
      bvp_fps).
    """
    out: dict[str, Any] = {"error": None}
    start = time.perf_counter()
    with _ThreadErrors() as thread_errors:
        with model:
            for i in range(len(frames)):
                model.update_face(frames[i], i / fps)
        expected = model.n_frame
        raw, _ = model.bvp(raw=True)
        package = model.hr(return_hrv=False) or {}
    out["run_s"] = time.perf_counter() - start
    bvp = np.asarray(raw, np.float64).reshape(-1)
    rate = float(model.fps)
    out["num_samples"] = int(bvp.size)
    out["hr_open_rppg_bpm"] = _finite(package.get("hr"))
    out["sqi"] = _finite(package.get("SQI"))
    if thread_errors.last is not None:
        out["error"] = f"open-rppg inference failed: {thread_errors.last}"
    elif bvp.size == 0:
        out["error"] = (
            f"no BVP: open-rppg needs at least 2 s of frames, got {len(frames)} at {fps:g} fps"
        )
    elif bvp.size < expected:
        out["error"] = f"open-rppg returned {bvp.size} BVP samples for {expected} frames"
    elif not np.all(np.isfinite(bvp)):
        out["error"] = f"{int(np.sum(~np.isfinite(bvp)))} of {bvp.size} BVP samples are not finite"
    else:
        hr = float(signals.heart_rate(bvp, rate))
        out["hr_bpm"] = _finite(hr)
        out["snr_db"] = _finite(signals.pulse_snr(bvp, rate, hr))
    if return_bvp and bvp.size:
        out["bvp"] = [v if math.isfinite(v) else None for v in bvp.tolist()]
        out["bvp_fps"] = rate
    return out


def _free_models(rppg_models) -> None:
    """Drops open-rppg's cached models (each loader is an ``lru_cache``) and JAX's compiled code."""
    import jax

    for fn in list(vars(rppg_models).values()):
        if callable(getattr(fn, "cache_clear", None)) and getattr(fn, "__module__", "") == (
            rppg_models.__name__
        ):
            fn.cache_clear()
    gc.collect()
    jax.clear_caches()


def run_model(rppg, keras, name: str, clips, return_bvp: bool) -> list[dict[str, Any]]:
    """All clips through one attacker; returns one result dict per clip (never raises)."""
    base = open_rppg.empty_result()
    try:
        model_name, spec = open_rppg.resolve(name)
    except ValueError as e:
        return [{**base, "error": one_line(e)} for _ in clips]
    saved = keras.mixed_precision.global_policy()
    policy = "float32" if spec.float32 else saved.name
    base.update(model=model_name, precision=policy)
    results = []
    try:
        keras.mixed_precision.set_global_policy(policy)
        start = time.perf_counter()
        try:
            model = rppg.Model(model_name)
        except BaseException as e:  # noqa: BLE001 - any failure becomes this model's error entry
            if isinstance(e, KeyboardInterrupt):
                raise
            return [{**base, "error": f"loading {model_name}: {_error_text(e)}"} for _ in clips]
        base["load_s"] = time.perf_counter() - start
        for frames, fps in clips:
            entry = dict(base)
            try:
                entry.update(read_clip(model, frames, fps, return_bvp))
            except Exception as e:  # noqa: BLE001
                entry["error"] = f"running {model_name}: {_error_text(e)}"
            if entry.get("run_s") is not None:
                entry["seconds"] = entry["load_s"] + entry["run_s"]
            results.append(entry)
        del model
    finally:
        keras.mixed_precision.set_global_policy(saved)
        _free_models(sys.modules["rppg.models"])
    return results


def _write(path: str | None, answer: dict) -> None:
    text = json.dumps(answer)
    if path is None:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run(request: dict) -> dict:
    """Runs a request (see the module docstring) and returns the answer."""
    _set_env()
    clips = []
    for clip in request["clips"]:
        frames = np.load(clip["frames"])
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"{clip['frames']}: need (T, H, W, 3) uint8, got {frames.shape}")
        clips.append((np.ascontiguousarray(frames), float(clip["fps"])))
    names = list(dict.fromkeys(request["models"]))
    return_bvp = bool(request.get("return_bvp", False))
    out = request.get("out")
    answer: dict[str, Any] = {"clips": [{} for _ in clips]}
    try:
        import keras
        import rppg

        answer["open_rppg_version"] = importlib.metadata.version("open-rppg")
        answer["backend"] = keras.backend.backend()
    except Exception as e:  # noqa: BLE001 - reported per model
        error = f"import rppg failed: {_error_text(e)}"
        for res in answer["clips"]:
            for name in names:
                res[name] = open_rppg.empty_result(error)
        _write(out, answer)
        return answer
    for name in names:
        for res, entry in zip(
            answer["clips"], run_model(rppg, keras, name, clips, return_bvp), strict=True
        ):
            res[name] = entry
        _write(out, answer)
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rppgedit.open_rppg.worker",
        description="Read heart rates of face crops with open-rppg's deep models.",
    )
    parser.add_argument("--request", help="JSON request file (see the module docstring)")
    parser.add_argument("--frames", help=".npy of face crops (T, H, W, 3) uint8 RGB")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of --frames in Hz")
    parser.add_argument(
        "--models", default=",".join(open_rppg.OPEN_RPPG_MODELS), help="comma-separated names"
    )
    parser.add_argument("--out", help="result JSON path (default: print to stdout)")
    parser.add_argument("--return-bvp", action="store_true", help="include each BVP")
    args = parser.parse_args(argv)
    if args.request:
        with open(args.request) as f:
            request = json.load(f)
        if args.out:
            request["out"] = args.out
    elif args.frames:
        request = {
            "clips": [{"frames": args.frames, "fps": args.fps}],
            "models": [m for m in args.models.split(",") if m.strip()],
            "out": args.out,
            "return_bvp": args.return_bvp,
        }
    else:
        parser.error("give --request or --frames")
    answer = run(request)
    if not request.get("out"):
        print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
