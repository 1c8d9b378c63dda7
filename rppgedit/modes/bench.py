"""`rppgedit bench`: frames per second of an edit, achieved GFLOP/s, and the machine's matmul peak;
with --input, the whole edit command on a real video, stage by stage.

Times the jit-compiled editor on 128-frame windows of random face-sized crops (after compiling), at
each working size, and compares the achieved FLOP rate (XLA's own cost analysis of the compiled
program, counted on a copy with the optimisation loop unrolled, since XLA counts a loop body once)
with a measured float32 matmul peak on the same devices.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rppgedit import editors
from rppgedit.errors import RppgEditError
from rppgedit.modes import common


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best observed float32 GFLOP/s of an n x n matmul on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - tic)
    return 2.0 * n**3 / best / 1e9


def _flops(program) -> float | None:
    cost = program.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    return None if not cost or "flops" not in cost else float(cost["flops"])


def _counted_flops(module, cfg, args, program) -> float | None:
    """FLOPs of one `edit_batch` call (`program`: its lowered or compiled program for `args` and
    `cfg`).

    XLA counts a loop body once, so an editor with an optimisation loop is counted on a fully
    unrolled copy (`unroll=steps`; the timed program keeps its own setting), lowered but not
    compiled: XLA's count of the lowered program is within 0.5% of the compiled one's (Privacy-Phys,
    1-4 steps at 32x32: 9.52 / 9.55, 15.86 / 15.93, 28.55 / 28.68 GFLOP) and takes 0.3 s instead
    of the 8-13 s its compile took. Backends that cannot count a lowered program (PJRT plugins:
    jax's CUDA and TPU backends raise NotImplementedError) count the compiled copy. An editor with
    a loop but no `unroll` field gets None (not counted).
    """
    fields = {f.name for f in dataclasses.fields(cfg)}
    if "steps" not in fields or cfg.steps == getattr(cfg, "unroll", None):
        return _flops(program)  # no loop, or already unrolled
    if "unroll" not in fields:
        return None
    lowered = module.edit_batch.lower(*args, dataclasses.replace(cfg, unroll=cfg.steps))
    try:
        return _flops(lowered)
    except NotImplementedError:
        return _flops(lowered.compile())


def bench_edit(
    method: str,
    sizes: tuple[int, ...],
    *,
    window: int = 128,
    batch: int = 1,
    repeats: int = 3,
    fps: float = 30.0,
    options: tuple = (),
) -> list[dict]:
    """Frames/s of `method`'s `edit_batch` for each working size (median of `repeats` runs)."""
    module = editors.get(method)
    cfg = module.Config(fps=fps, **dict(options))
    state = module.load_state(cfg)
    rows = []
    rng = np.random.default_rng(0)
    for size in sizes:
        clips = rng.uniform(0.3, 0.7, (batch, window, size, size, 3)).astype(np.float32)
        masks = np.ones((batch, window, size, size), bool)
        waves = np.tile(np.cos(np.arange(window) / fps * 2 * np.pi * 2.0), (batch, 1))
        waves = waves.astype(np.float32)
        tic = time.perf_counter()
        compiled = module.edit_batch.lower(state, clips, masks, waves, cfg).compile()
        compile_s = time.perf_counter() - tic
        times = []
        for _ in range(repeats):
            tic = time.perf_counter()
            jax.block_until_ready(compiled(state, clips, masks, waves))
            times.append(time.perf_counter() - tic)
        seconds = statistics.median(times)
        flops = _counted_flops(module, cfg, (state, clips, masks, waves), compiled)
        rows.append(
            {
                "method": method,
                "size": size,
                "window": window,
                "batch": batch,
                "steps": getattr(cfg, "steps", None),
                "seconds_per_call": seconds,
                "compile_s": compile_s,
                "fps": batch * window / seconds,
                "gflop_per_call": None if flops is None else flops / 1e9,
                "gflops": None if flops is None else flops / seconds / 1e9,
            }
        )
    return rows


def run_bench(
    method: str, sizes: tuple[int, ...], *, batch: int = 1, repeats: int = 3, options: tuple = ()
) -> dict:
    """The bench table as a dict: rows per size, the matmul peak and the ratio."""
    peak = matmul_peak_gflops()
    rows = bench_edit(method, sizes, batch=batch, repeats=repeats, options=options)
    for row in rows:
        row["fraction_of_matmul_peak"] = None if row["gflops"] is None else row["gflops"] / peak
    return {
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "matmul_peak_gflops": peak,
        "rows": rows,
        "config": dataclasses.asdict(editors.get(method).Config(**dict(options))),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux and macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_end_to_end(
    input_path: str, job, *, runs: int = 2, face_box=None, output=None, progress=False
) -> dict:
    """The whole edit command on a video file, `runs` times in this process: wall seconds, frames
    per second, the report's per-stage seconds and the peak RSS after each run.

    The first run compiles (or loads the persistent compilation cache); the later ones show the
    steady state. Outputs go to a temporary folder and are deleted.
    """
    import tempfile

    from rppgedit import pipeline

    rows = []
    output = pipeline.OutputSpec() if output is None else output
    suffix = ".mp4" if output.codec in ("h264", "h265") else ".mkv"
    with tempfile.TemporaryDirectory(prefix="rppgedit-bench-") as folder:
        for run in range(runs):
            out = f"{folder}/edit{run}{suffix}"
            tic = time.perf_counter()
            summary = pipeline.run_edit(
                input_path, out, job, face_box=face_box, output=output, progress=progress
            )
            wall = time.perf_counter() - tic
            rows.append(
                {
                    "run": run + 1,
                    "frames": summary["frames"],
                    "wall_s": wall,
                    "fps": summary["frames"] / wall,
                    **{f"{k}_s": v for k, v in summary["seconds"].items()},
                    "peak_rss_mb": peak_rss_mb(),
                    "psnr_db": summary.get("psnr_db"),
                }
            )
    return {"input": str(input_path), "devices": [str(d) for d in jax.devices()], "rows": rows}


def run(s) -> None:
    from rppgedit import safe_write, validate
    from rppgedit.readings import format_table

    common.check_settings(s)
    if s.input:  # the whole command on a real video
        _end_to_end(s)
        return
    for size in s.bench_sizes:
        validate.integer("--bench_sizes", size, 8, 512)
    from rppgedit import engine

    batch = engine.windows_per_device(s.batch_windows, engine.local_mesh(1))
    result = run_bench(
        s.method, tuple(s.bench_sizes), batch=batch, options=common.method_options(s)
    )
    print(
        f"devices: {', '.join(result['devices'])}; "
        f"matmul peak {result['matmul_peak_gflops']:.1f} GFLOP/s"
    )
    print(
        format_table(
            result["rows"],
            [
                ("size", "size", "d"),
                ("batch", "windows", "d"),
                ("seconds_per_call", "s/call", ".2f"),
                ("fps", "frames/s", ".1f"),
                ("gflops", "GFLOP/s", ".1f"),
                ("fraction_of_matmul_peak", "of peak", ".2f"),
                ("compile_s", "compile s", ".1f"),
            ],
        )
    )
    result["config"] = s.tree()
    out = s.json_out or "results/bench.json"
    safe_write.write_text_atomic(out, json.dumps(result, indent=2), overwrite=True)
    print(f"wrote {out}")


def torch_reference_script() -> pathlib.Path | None:
    """`benchmarks/torch_reference.py` of a source checkout, or None (an installed package has no
    benchmarks folder)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "torch_reference.py"
    return path if path.is_file() else None


def run_torch_reference(script, input_path: str, target_hr: float, folder: str) -> dict:
    """The PyTorch-eager reference (`script`: `benchmarks/torch_reference.py`) end to end on the
    same file, in a subprocess so that its peak RSS is its own: the JSON line it prints (its
    "wall_s" counts from after its imports, as the in-process runs of `run_end_to_end` do)."""
    out = os.path.join(folder, "torch_reference.mkv")
    cmd = [sys.executable, str(script), input_path, out, "--target_hr", f"{target_hr:g}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RppgEditError(f"{script.name} failed on {input_path}: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_line(s, result: dict) -> str:
    """Runs the PyTorch reference when it can (adding it to `result`); the line to print."""
    import importlib.util
    import tempfile

    script = torch_reference_script()
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("cv2") is None:
        return "PyTorch reference: torch or cv2 not installed (pip install -e '.[bench,attackers]')"
    if script is None:
        return "PyTorch reference: needs a source checkout (benchmarks/torch_reference.py)"
    if s.target != "sinusoid":
        return "PyTorch reference: runs sinusoid targets only (--target_hr)"
    with tempfile.TemporaryDirectory(prefix="rppgedit-bench-") as folder:
        try:
            ref = run_torch_reference(script, s.input, s.target_hr, folder)
        except RppgEditError as e:  # rppgedit's own runs above stand; say why there is no ratio
            result["torch_reference"] = {"error": str(e)}
            return f"PyTorch reference: failed ({e})"
    result["torch_reference"] = ref
    last = result["rows"][-1]
    return (
        f"PyTorch reference ({script.name}: the paper's edit through PhysNet in eager PyTorch, end "
        f"to end, with less work than rppgedit's defaults): {ref['wall_s']:.1f} s, "
        f"{ref['fps']:.1f} fps, peak RSS {ref['peak_rss_mb']:.0f} MB, PSNR {ref['psnr_db']:.1f} dB, "
        f"PhysNet {ref['hr_before']:.1f} -> {ref['hr_after']:.1f} bpm; rppgedit's last run is "
        f"{ref['wall_s'] / last['wall_s']:.1f}x as fast with "
        f"{ref['peak_rss_mb'] / last['peak_rss_mb']:.1f}x less memory"
    )


def _end_to_end(s) -> None:
    from rppgedit import safe_write
    from rppgedit.readings import format_table

    common.check_weights(s)
    common.check_input(s.input)
    result = run_end_to_end(
        s.input,
        common.job(s),
        face_box=common.face_box(s),
        output=common.output_spec(s),
        progress=s.progress,
    )
    stages = [k for k in result["rows"][0] if k.endswith("_s") and k != "wall_s"]
    columns = [("run", "run", "d"), ("frames", "frames", "d"), ("wall_s", "wall s", ".1f")]
    columns += [(k, k[:-2].replace("_", "+") + " s", ".1f") for k in stages]
    columns += [("fps", "fps end to end", ".1f"), ("peak_rss_mb", "peak RSS MB", ".0f")]
    print(f"{s.input} on {', '.join(result['devices'])}")
    print(format_table(result["rows"], columns))
    print(_torch_line(s, result))
    result["config"] = s.tree()
    out = s.json_out or "results/bench_end_to_end.json"
    safe_write.write_text_atomic(out, json.dumps(result, indent=2), overwrite=True)
    print(f"wrote {out}")
