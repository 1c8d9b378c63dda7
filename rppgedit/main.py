"""rppgedit command line: `python -m rppgedit.main --mode=MODE [flags]` or `--flagfile=FILE`.

Flags are defined and read only here; each mode calls one library function with explicit arguments.
Values in a flagfile can be overridden by flags given after it on the command line.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from absl import app, flags, logging

from rppgedit.errors import RppgEditError

FLAGS = flags.FLAGS

flags.DEFINE_enum(
    "mode",
    "demo",
    ["demo", "edit", "evaluate", "convert", "bench", "experiment", "sweep", "train"],
    "What to run.",
)
# Input / output.
flags.DEFINE_string("input", None, "Input video: any file ffmpeg reads, a PNG folder or a .npy.")
flags.DEFINE_string("output", None, "Output video (.mkv FFV1 lossless by default) or folder.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output (never the input).")
flags.DEFINE_string(
    "codec", None, "Output codec: default lossless by extension; h264, h265, vp9 to share."
)
flags.DEFINE_bool(
    "share",
    False,
    "Write a file that plays everywhere: H.264 High, yuv420p, BT.709, +faststart (.mp4/.mov/.mkv), "
    "CRF 23 unless --crf; the report reads the decoded file.",
)
flags.DEFINE_integer("crf", None, "CRF of a lossy codec (default h264 23, h265 28, vp9 32).")
flags.DEFINE_integer(
    "verify_reencode", None, "Also read the faces after one more re-encode at this CRF."
)
flags.DEFINE_float(
    "lossy_strength",
    None,
    "Multiple of the edit pasted into a lossy output so it survives re-encodes (default 3).",
)
flags.DEFINE_bool("keep_streams", True, "Carry the input's audio, subtitles and metadata over.")
flags.DEFINE_bool("allow_lossy", False, "No effect (lossy codecs no longer need it).")
flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "Bits per channel of the output video.")
flags.DEFINE_bool("progress", True, "Show progress bars.")
# What to embed.
flags.DEFINE_enum("target", "sinusoid", ["sinusoid", "pulse", "file", "none"], "Target kind.")
flags.DEFINE_float("target_hr", 120.0, "Target heart rate in bpm (sinusoid, pulse).")
flags.DEFINE_string("target_file", None, "Target waveform (.npy or .csv) for --target=file.")
flags.DEFINE_float("target_phase", 0.0, "Target phase in radians; negative draws it from --seed.")
# Editing.
flags.DEFINE_string(
    "method", "privacy_phys", "Editor: privacy_phys, pulseedit, physiolatent, smooth_remove."
)
flags.DEFINE_string(
    "surrogates", None, "Surrogate ensemble as name:weight,... (default: the method's default)."
)
flags.DEFINE_integer("steps", None, "Optimiser steps (default: the method's default).")
flags.DEFINE_float("learning_rate", None, "Learning rate in grey levels per step.")
flags.DEFINE_float("fidelity_weight", None, "Lambda, the weight of the MSE fidelity term.")
flags.DEFINE_enum(
    "balance", None, ["mean", "softmax"], "Privacy-Phys: how the surrogates' terms are combined."
)
flags.DEFINE_enum("colour", None, ["free", "pulse"], "Privacy-Phys: the colour the edit may take.")
flags.DEFINE_float(
    "stop_pearson",
    None,
    "Privacy-Phys: stop a window's edit once every surrogate's Pearson with the target reaches "
    "this (default 0.8); 1 runs every step, as the paper does.",
)
flags.DEFINE_float(
    "notch_weight",
    None,
    "Privacy-Phys removal: weight of keeping the edited spectrum off the original pulse "
    "(default 1; 0: spectral flatness alone).",
)
flags.DEFINE_integer(
    "param_size", -1, "Perturbation grid side; 0 optimises every pixel; -1 the method default."
)
flags.DEFINE_integer("work_size", 64, "Side of the face crop the editor works on.")
flags.DEFINE_integer("window", 128, "Frames per editing window.")
flags.DEFINE_integer("overlap", 32, "Minimum overlap of consecutive windows (frames).")
flags.DEFINE_integer("batch_windows", 2, "Windows each device edits in one vmapped call.")
flags.DEFINE_string("mask_method", "ycrcb_adaptive", "Skin mask rule (ycrcb_adaptive, ycrcb, all).")
flags.DEFINE_enum("quantize", "stochastic", ["stochastic", "round"], "8-bit rounding of the edit.")
flags.DEFINE_list("face_box", None, "Fixed face box x0,y0,x1,y1 in pixels (skips detection).")
flags.DEFINE_bool("allow_no_face", False, "Edit a centred box when no face is found.")
flags.DEFINE_integer("seed", 0, "Seed of stochastic rounding and random phases.")
# Evaluation.
flags.DEFINE_list("estimators", ["green", "pos", "chrom", "physnet_pure"], "Estimators to read.")
flags.DEFINE_string(
    "ground_truth", None, "Ground-truth file (UBFC ground_truth.txt or time,BVP CSV)."
)
flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")
# Weights.
flags.DEFINE_string("checkpoint_dir", None, "Checkpoint folder (default: checkpoints/ or cache).")
flags.DEFINE_string(
    "source", "open_rppg:pure", "--mode=convert source: open_rppg:pure|rlap, torch:PATH."
)
# Benchmark.
flags.DEFINE_list("bench_sizes", ["32", "64", "128"], "--mode=bench working sizes.")
# Sweep (--mode=sweep); see rppgedit/sweep.py for the multi-device / multi-host commands.
flags.DEFINE_string("sweep_dir", "results/sweep", "Sweep results folder (shared by all hosts).")
flags.DEFINE_string(
    "sweep_source",
    "synthetic",
    "Sweep clips: synthetic, or ubfc_rppg, pure, mmpd, mmse_hr, folder.",
)
flags.DEFINE_string("sweep_data_dir", None, "Dataset root folder for a dataset --sweep_source.")
flags.DEFINE_list("sweep_seeds", ["0", "1", "2"], "Synthetic clip seeds (one clip each).")
flags.DEFINE_integer("sweep_frames", 128, "Frames per synthetic clip.")
flags.DEFINE_integer("sweep_frame_size", 64, "Side of the synthetic frames in pixels.")
flags.DEFINE_float("sweep_true_hr", 72.0, "Heart rate of the synthetic clips in bpm.")
flags.DEFINE_bool("sweep_motion", False, "Head motion in the synthetic clips.")
flags.DEFINE_float("sweep_clip_seconds", 15.0, "Dataset clip length in seconds.")
flags.DEFINE_integer("sweep_clips_per_sample", 0, "At most this many clips per recording; 0: all.")
flags.DEFINE_list("sweep_target_hrs", ["120"], "Target heart rates in bpm (grid axis).")
flags.DEFINE_list("sweep_fidelity_weights", [], "Lambdas (grid axis); empty: --fidelity_weight.")
flags.DEFINE_list("sweep_methods", [], "Editors (grid axis); empty: --method.")
flags.DEFINE_list("sweep_steps", [], "Optimiser steps (grid axis); empty: --steps.")
flags.DEFINE_enum("sweep_save", "npy", ["npy", "mkv", "none"], "Edited crop per item: format.")
flags.DEFINE_integer("batch_per_device", 4, "Windows each device edits per call in a sweep.")
flags.DEFINE_bool("sweep_merge_only", False, "Only rebuild results.csv/.md from the results files.")
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port.")
flags.DEFINE_integer("num_processes", None, "jax.distributed: number of processes.")
flags.DEFINE_integer("process_id", None, "jax.distributed: this process's index.")
flags.DEFINE_bool("distributed", False, "Start jax.distributed with cluster auto-detection.")
# Experiments (--mode=experiment): the papers' figures and tables, rppgedit/experiments/run.py.
flags.DEFINE_enum(
    "experiment",
    None,
    ["lambda_sweep", "mae_vs_psnr", "table1_crops", "target_hrs"],
    "--mode=experiment: which of the papers' experiments to run.",
)
flags.DEFINE_string(
    "exp_dataset", "synthetic", "Clips: synthetic, ubfc_rppg, pure, mmpd, mmse_hr, folder."
)
flags.DEFINE_string(
    "exp_data_dir", None, "Dataset root folder (folder: any videos, <stem>.csv GT)."
)
flags.DEFINE_float("exp_clip_seconds", 15.0, "Clip length in seconds (the papers: 15).")
flags.DEFINE_integer("exp_max_clips", 0, "At most this many clips; 0: all (synthetic: 6).")
flags.DEFINE_integer("exp_synthetic_size", 128, "Frame side of the synthetic clips in pixels.")
flags.DEFINE_string("exp_out_dir", None, "Output folder; default results/experiments/<experiment>.")
flags.DEFINE_list("exp_methods", [], "Editors to compare; empty: the experiment's default.")
flags.DEFINE_list("exp_lambdas", ["0.01", "0.1", "1", "10", "100"], "lambda_sweep: lambdas.")
flags.DEFINE_list(
    "exp_learning_rates", ["0.05", "0.1", "0.2", "0.4"], "mae_vs_psnr: Privacy-Phys lr."
)
flags.DEFINE_list(
    "exp_pulseedit_lambdas", ["2", "0.3", "0.05", "0.01"], "mae_vs_psnr: PulseEdit lambdas."
)
flags.DEFINE_list("exp_target_hrs", ["60", "80", "100", "120"], "target_hrs: targets in bpm.")
flags.DEFINE_integer("exp_clips_per_chunk", 4, "Clips loaded and edited together (memory bound).")
flags.DEFINE_bool("exp_plots", True, "Write the PNG plots.")
flags.DEFINE_list("attackers", [], "Black-box attackers read too: open_rppg (slow, a subprocess).")
flags.DEFINE_list("attacker_models", [], "open-rppg models; empty: attackers.OPEN_RPPG_MODELS.")

# Training (--mode=train): PhysioLatent's VAE and editor, rppgedit/train.py.
flags.DEFINE_enum("train_stage", "all", ["vae", "editor", "all"], "--mode=train: what to train.")
flags.DEFINE_string(
    "train_dir", "outputs/train/physiolatent", "Train states (orbax CheckpointManager)."
)
flags.DEFINE_string(
    "train_export_dir", None, "Trained params; default rppgedit/checkpoints/physiolatent."
)
flags.DEFINE_integer("train_vae_steps", 700, "VAE stage steps.")
flags.DEFINE_integer("train_editor_steps", 600, "Editor stage steps.")
flags.DEFINE_integer("train_batch", 4, "Clips per training step.")
flags.DEFINE_integer("train_vae_frames", 64, "Frames per VAE training clip.")
flags.DEFINE_integer("train_editor_frames", 128, "Frames per editor training clip.")
flags.DEFINE_float("train_vae_lr", 3e-3, "VAE peak learning rate (one-cycle).")
flags.DEFINE_float("train_editor_lr", 2e-3, "Editor peak learning rate (one-cycle).")
flags.DEFINE_integer("train_bank_clips", 160, "Synthetic training clips (seeds 0..N-1).")
flags.DEFINE_float("train_physnet_weight", 0.5, "Editor waveform-loss weight of PhysNet.")
flags.DEFINE_float("train_fidelity_weight", 0.3, "Editor MSE weight (0-255 scale).")
flags.DEFINE_enum("train_compositing", "residual", ["residual", "paste"], "What the loss sees.")
flags.DEFINE_integer("train_seed", 0, "Seed of initialisation and sampling.")

# Demo.
flags.DEFINE_string("demo_dir", "outputs/demo", "Where --mode=demo writes its clip and result.")


def _surrogates(text: str) -> tuple[tuple[str, float], ...]:
    from rppgedit import validate
    from rppgedit.estimators import registry

    pairs = []
    for item in text.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise RppgEditError(
                f"--surrogates: bad weight in {item!r} (want name:weight)"
            ) from None
        validate.finite(f"--surrogates weight of {name.strip()!r}", value, low=0, low_open=True)
        try:
            registry.get(name.strip())
        except RppgEditError as err:
            raise RppgEditError(f"--surrogates: {err}") from None
        pairs.append((name.strip(), value))
    return tuple(pairs)


def _method_options() -> tuple[tuple[str, object], ...]:
    options = {
        "steps": FLAGS.steps,
        "learning_rate": FLAGS.learning_rate,
        "fidelity_weight": FLAGS.fidelity_weight,
        "balance": FLAGS.balance,
        "colour": FLAGS.colour,
        "notch_weight": FLAGS.notch_weight,
        "surrogates": _surrogates(FLAGS.surrogates) if FLAGS.surrogates else None,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if FLAGS.stop_pearson is not None:  # 1: never stop early (None in the config)
        options["stop_pearson"] = None if FLAGS.stop_pearson >= 1 else FLAGS.stop_pearson
    if FLAGS.param_size >= 0:
        options["param_size"] = FLAGS.param_size or None
    return tuple(options.items())


def _job():
    from rppgedit import pipeline, targets

    target = targets.TargetSpec(
        kind=FLAGS.target,
        hr_bpm=FLAGS.target_hr,
        phase=None if FLAGS.target_phase < 0 else FLAGS.target_phase,
        path=FLAGS.target_file,
        seed=FLAGS.seed,
    )
    return pipeline.EditJob(
        method=FLAGS.method,
        target=target,
        work_size=FLAGS.work_size,
        window=FLAGS.window,
        overlap=FLAGS.overlap,
        batch_windows=FLAGS.batch_windows,
        mask_method=FLAGS.mask_method,
        quantize=FLAGS.quantize,
        bit_depth=int(FLAGS.bit_depth),
        seed=FLAGS.seed,
        method_options=_method_options(),
        estimators=tuple(FLAGS.estimators),
    )


def _face_box():
    import math

    if FLAGS.face_box is None:
        return None
    try:
        box = [float(v) for v in FLAGS.face_box]
    except ValueError:
        box = []
    if (
        len(box) != 4
        or not all(math.isfinite(v) and abs(v) <= 1e6 for v in box)
        or box[2] <= box[0]
        or box[3] <= box[1]
    ):
        raise RppgEditError(
            f"--face_box wants four finite numbers x0,y0,x1,y1 with x1>x0, y1>y0; "
            f"got {','.join(FLAGS.face_box)}"
        )
    return box


def _present(name: str) -> bool:
    return FLAGS[name].present


def _check_flags() -> None:
    """Every flag checked before any file is decoded: finite, in range, consistent."""
    from rppgedit import editors, validate
    from rppgedit.estimators import registry
    from rppgedit.video import skin

    v = validate
    v.finite("--learning_rate", FLAGS.learning_rate, low=0, high=255, low_open=True)
    v.finite("--fidelity_weight", FLAGS.fidelity_weight, low=0, high=1e6)
    v.finite("--stop_pearson", FLAGS.stop_pearson, low=-1, high=1, low_open=True)
    v.finite("--notch_weight", FLAGS.notch_weight, low=0, high=1e6)
    v.finite("--target_hr", FLAGS.target_hr)
    v.finite("--target_phase", FLAGS.target_phase)
    v.finite("--lossy_strength", FLAGS.lossy_strength, low=0, high=10, low_open=True)
    v.integer("--steps", FLAGS.steps, 1, v.MAX_STEPS)
    v.integer("--seed", FLAGS.seed, 0, 2**31 - 1)
    v.windows(FLAGS.window, FLAGS.overlap, FLAGS.batch_windows, FLAGS.work_size)
    v.integer("--param_size", FLAGS.param_size, -1, FLAGS.work_size)
    v.integer("--crf", FLAGS.crf, 0, 63)
    v.integer("--verify_reencode", FLAGS.verify_reencode, 0, 63)
    v.one_of("--mask_method", FLAGS.mask_method, tuple(skin.SKIN_METHODS))
    if FLAGS.method not in editors.METHODS:
        raise RppgEditError(
            f"--method: unknown editor {FLAGS.method!r}; choose one of {', '.join(editors.METHODS)}"
        )
    if not FLAGS.estimators:
        raise RppgEditError("--estimators: needs at least one estimator")
    for name in FLAGS.estimators:
        try:
            registry.get(name)
        except RppgEditError as err:
            raise RppgEditError(f"--estimators: {err}") from None
    if FLAGS.surrogates:
        _surrogates(FLAGS.surrogates)
    # Conflicting flags: a value that the chosen target would silently ignore.
    kind = FLAGS.target
    for name in ("target_hr", "target_phase"):
        if kind in ("none", "file") and _present(name):
            raise RppgEditError(
                f"--{name} does not apply to --target={kind} (drop it, or the flagfile line "
                "that sets it)"
            )
    if FLAGS.target_file and kind != "file":
        raise RppgEditError(f"--target_file needs --target=file (got --target={kind})")
    if kind == "file":
        _check_target_file()
    if FLAGS.share and FLAGS.codec not in (None, "h264"):
        raise RppgEditError(
            f"--share writes H.264; it cannot be combined with --codec={FLAGS.codec}"
        )
    if FLAGS.bit_depth == "16" and (FLAGS.share or FLAGS.codec in ("h264", "h265", "vp9")):
        raise RppgEditError("--bit_depth=16 needs a lossless codec (ffv1 in .mkv/.avi, .npy, PNG)")


# The smallest frames an edit or a reading makes sense on (SSIM's window is 11 pixels).
MIN_FRAME_SIDE = 16


def _check_input(path: str) -> None:
    """The input's header (not its frames): enough frames, big enough, a usable frame rate,
    and a size whose edit fits the memory budget (`rppgedit.video.io.probe` checks those two)."""
    from rppgedit import pipeline
    from rppgedit.video import io

    info = io.probe(path)
    if info.num_frames < pipeline.MIN_FRAMES:
        raise RppgEditError(
            f"{path}: {info.num_frames} frames; at least {pipeline.MIN_FRAMES} are needed to "
            "carry a readable pulse"
        )
    if min(info.width, info.height) < MIN_FRAME_SIDE:
        raise RppgEditError(
            f"{path}: frames of {info.width}x{info.height} are too small (at least "
            f"{MIN_FRAME_SIDE}x{MIN_FRAME_SIDE})"
        )


def _check_target_file() -> None:
    """The waveform file is readable (its length is checked against the video later)."""
    from rppgedit import targets

    if not FLAGS.target_file:
        raise RppgEditError("--target=file needs --target_file")
    try:
        targets.from_file(FLAGS.target_file, 2, 30.0)
    except RppgEditError as err:
        if "covers" not in str(err):
            raise
    except (TypeError, IndexError, ValueError) as err:
        raise RppgEditError(
            f"{FLAGS.target_file}: not a readable waveform ({type(err).__name__})"
        ) from None


def _check_weights(fps: float = 30.0) -> None:
    """Loads (and caches) the weights of every deep estimator and surrogate the run will use, so
    a missing or damaged checkpoint is reported before any decoding."""
    from rppgedit import pipeline
    from rppgedit.estimators import registry

    cfg = pipeline.editor_config(_job(), fps) if FLAGS.mode == "edit" else None
    names = list(FLAGS.estimators) + [n for n, _ in getattr(cfg, "surrogates", ())]
    for name in dict.fromkeys(names):
        est = registry.get(name)
        if est.input == "video":
            est.load_params()


def _require(*names):
    missing = [n for n in names if not getattr(FLAGS, n)]
    if missing:
        raise RppgEditError(f"--mode={FLAGS.mode} needs --{' and --'.join(missing)}")


def _print_report(summary: dict) -> None:
    from rppgedit.evaluation import format_table

    if "rows" in summary:
        columns = [("face", "face", "d")] if len(summary["faces"]) > 1 else []
        columns += [
            ("estimator", "estimator", "s"),
            ("hr_before", "HR before", ".1f"),
            ("hr_after", "HR after", ".1f"),
            ("snr_before", "SNR before", ".1f"),
            ("snr_after", "SNR after", ".1f"),
        ]
        if "reencode" in summary:
            crf = summary["reencode"]["crf"]
            columns += [("hr_reencoded", f"HR after CRF {crf}", ".1f")]
        print(format_table(summary["rows"], columns))
        line = f"PSNR {summary['psnr_db']:.2f} dB   SSIM {summary['ssim']:.5f}"
        if "psnr_vs_same_codec_db" in summary:
            line += f"   PSNR vs the original through the same codec {summary['psnr_vs_same_codec_db']:.2f} dB"
        print(f"{line}   skin {100 * summary['skin_coverage']:.0f}% of the crop")
        print(f"measured on {summary['measured_on']}")
        for f in summary["faces"]:
            print(
                f"face {f['face']}: frames {f['first_frame']}-{f['last_frame']}"
                + ("" if f["edited"] else " (not edited)")
            )
    if summary.get("surrogates"):
        columns = [("face", "face", "d")] if len(summary["faces"]) > 1 else []
        columns += [
            ("surrogate", "surrogate", "s"),
            ("hr_after", "HR after", ".1f"),
            ("pearson_to_target", "Pearson to target", ".2f"),
            ("fooled", "fooled", ""),
        ]
        print(format_table(summary["surrogates"], columns))
    for note in summary.get("streams", []) + summary.get("notes", []):
        print(f"note: {note}")
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}")
    print(
        f"wrote {summary['output']} ({summary['frames']} frames, "
        f"{summary['fps_end_to_end']:.1f} frames/s end to end)"
    )


def run_edit_mode() -> None:
    from rppgedit import pipeline, safe_write
    from rppgedit.video import io

    _require("input", "output")
    _check_flags()
    face_box = _face_box()
    io.check_output_path(FLAGS.output, inputs=(FLAGS.input,), overwrite=FLAGS.overwrite)
    safe_write.check_destination(
        pipeline.report_path_for(FLAGS.output),
        inputs=(FLAGS.input, FLAGS.output),
        overwrite=FLAGS.overwrite,
    )
    _check_weights()
    _check_input(FLAGS.input)
    summary = pipeline.run_edit(
        FLAGS.input,
        FLAGS.output,
        _job(),
        face_box=face_box,
        allow_no_face=FLAGS.allow_no_face,
        overwrite=FLAGS.overwrite,
        output=_output_spec(),
        progress=FLAGS.progress,
    )
    _print_report(summary)


def _bench_end_to_end() -> None:
    import importlib.util

    from rppgedit import bench
    from rppgedit.evaluation import format_table
    from rppgedit.video import io

    _check_weights()
    _check_input(FLAGS.input)
    result = bench.run_end_to_end(
        FLAGS.input, _job(), face_box=_face_box(), output=_output_spec(), progress=FLAGS.progress
    )
    stages = [k for k in result["rows"][0] if k.endswith("_s") and k != "wall_s"]
    columns = [("run", "run", "d"), ("frames", "frames", "d"), ("wall_s", "wall s", ".1f")]
    columns += [(k, k[:-2].replace("_", "+") + " s", ".1f") for k in stages]
    columns += [("fps", "fps end to end", ".1f"), ("peak_rss_mb", "peak RSS MB", ".0f")]
    print(f"{FLAGS.input} on {', '.join(result['devices'])}")
    print(format_table(result["rows"], columns))
    if importlib.util.find_spec("torch") is None:
        print("PyTorch reference: torch not installed (pip install -e '.[bench]')")
    out = FLAGS.json_out or "results/bench_end_to_end.json"
    io.write_text_atomic(out, json.dumps(result, indent=2), overwrite=True)
    print(f"wrote {out}")


def _output_spec():
    from rppgedit import pipeline

    codec, crf = FLAGS.codec, FLAGS.crf
    if FLAGS.share:
        if codec not in (None, "h264"):
            raise RppgEditError(f"--share writes H.264; it cannot be combined with --codec={codec}")
        codec, crf = "h264", 23 if crf is None else crf
    return pipeline.OutputSpec(
        codec=codec,
        crf=crf,
        verify_reencode=FLAGS.verify_reencode,
        keep_streams=FLAGS.keep_streams,
        lossy_strength=FLAGS.lossy_strength,
    )


def run_demo_mode() -> None:
    from rppgedit import demo

    _check_flags()
    summary = demo.run_demo(FLAGS.demo_dir, _job(), progress=FLAGS.progress)
    _print_report(summary)


def run_evaluate_mode() -> None:
    from rppgedit import evaluate, safe_write

    _require("input")
    _check_flags()
    face_box = _face_box()
    if FLAGS.json_out:
        safe_write.check_destination(
            FLAGS.json_out, inputs=(FLAGS.input,), overwrite=FLAGS.overwrite
        )
    _check_weights()
    _check_input(FLAGS.input)
    result = evaluate.run_evaluate(
        FLAGS.input,
        tuple(FLAGS.estimators),
        face_box=face_box,
        allow_no_face=FLAGS.allow_no_face,
        mask_method=FLAGS.mask_method,
        work_size=FLAGS.work_size,
        ground_truth=FLAGS.ground_truth,
    )
    print(result["table"])
    if FLAGS.json_out:
        from rppgedit.video import io

        io.write_text_atomic(
            FLAGS.json_out,
            json.dumps(io.json_safe(result["json"]), indent=2),
            overwrite=FLAGS.overwrite,
            inputs=(FLAGS.input,),
        )


def run_convert_mode() -> None:
    from rppgedit import checkpoints

    path = checkpoints.run_convert(FLAGS.source, FLAGS.checkpoint_dir)
    print(f"wrote {path}")


def run_bench_mode() -> None:
    from rppgedit import bench, validate
    from rppgedit.evaluation import format_table
    from rppgedit.video import io

    _check_flags()
    if FLAGS.input:  # the whole command on a real video
        _bench_end_to_end()
        return
    sizes = _numbers("bench_sizes", int)
    for size in sizes:
        validate.integer("--bench_sizes", size, 8, 512)
    result = bench.run_bench(
        FLAGS.method,
        sizes,
        batch=FLAGS.batch_windows,
        options=_method_options(),
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
    out = FLAGS.json_out or "results/bench.json"
    io.write_text_atomic(out, json.dumps(result, indent=2), overwrite=True)
    print(f"wrote {out}")


def run_sweep_mode() -> None:
    from rppgedit import sweep

    if os.path.exists(FLAGS.sweep_dir) and not os.path.isdir(FLAGS.sweep_dir):
        raise RppgEditError(f"--sweep_dir={FLAGS.sweep_dir} exists and is not a folder")
    if FLAGS.sweep_merge_only:
        result = sweep.merge(FLAGS.sweep_dir)
        print(result["table"])
        print(f"wrote {result['csv_path']} and {result['md_path']}")
        return
    # jax.distributed must start before any other JAX call.
    sweep.initialize_distributed(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, auto=FLAGS.distributed
    )

    from rppgedit import validate

    numbers = _numbers
    _check_flags()
    validate.integer("--batch_per_device", FLAGS.batch_per_device, 1, 256)
    validate.integer("--sweep_frames", FLAGS.sweep_frames, 32, 100_000)
    validate.integer("--sweep_frame_size", FLAGS.sweep_frame_size, 16, 2048)
    validate.finite("--sweep_true_hr", FLAGS.sweep_true_hr, low=30, high=240)
    validate.finite("--sweep_clip_seconds", FLAGS.sweep_clip_seconds, low=1, high=3600)
    for name in ("sweep_target_hrs", "sweep_fidelity_weights"):
        for value in numbers(name, float):
            validate.finite(f"--{name}", value, low=0)
    for value in numbers("sweep_steps", int):
        validate.integer("--sweep_steps", value, 1, validate.MAX_STEPS)

    fixed = tuple((k, v) for k, v in _method_options() if k not in ("steps", "fidelity_weight"))
    spec = sweep.SweepSpec(
        source=FLAGS.sweep_source,
        data_dir=FLAGS.sweep_data_dir,
        seeds=numbers("sweep_seeds", int),
        num_frames=FLAGS.sweep_frames,
        frame_size=FLAGS.sweep_frame_size,
        true_hr_bpm=FLAGS.sweep_true_hr,
        motion=FLAGS.sweep_motion,
        clip_seconds=FLAGS.sweep_clip_seconds,
        clips_per_sample=FLAGS.sweep_clips_per_sample or None,
        allow_no_face=FLAGS.allow_no_face,
        target_hrs=numbers("sweep_target_hrs", float),
        fidelity_weights=numbers("sweep_fidelity_weights", float) or (FLAGS.fidelity_weight,),
        methods=tuple(FLAGS.sweep_methods) or (FLAGS.method,),
        steps=numbers("sweep_steps", int) or (FLAGS.steps,),
        method_options=fixed,
        target_kind=FLAGS.target,
        work_size=FLAGS.work_size,
        window=FLAGS.window,
        overlap=FLAGS.overlap,
        mask_method=FLAGS.mask_method,
        quantize=FLAGS.quantize,
        seed=FLAGS.seed,
        estimators=tuple(FLAGS.estimators),
        save=FLAGS.sweep_save,
    )
    summary = sweep.run_sweep(
        spec, FLAGS.sweep_dir, batch_per_device=FLAGS.batch_per_device, progress=FLAGS.progress
    )
    rate = summary["items_per_minute"]
    print(
        f"process {summary['process_index']}/{summary['process_count']} on "
        f"{len(summary['devices'])} device(s): edited {summary['edited']}, skipped "
        f"{summary['skipped']} of {summary['process_items']} items"
        + (f" ({rate:.1f} items/min)" if rate else "")
    )
    if "merge" in summary:
        print(summary["merge"]["table"])
        print(f"wrote {summary['merge']['csv_path']} and {summary['merge']['md_path']}")


def _numbers(name: str, kind) -> tuple:
    """A list flag's values as numbers (finite floats), or a one-line error naming the flag."""
    import math

    values = getattr(FLAGS, name)
    try:
        out = tuple(kind(v) for v in values)
    except ValueError:
        raise RppgEditError(f"--{name}: not a list of numbers: {','.join(values)}") from None
    if not all(math.isfinite(v) for v in out):
        raise RppgEditError(f"--{name}: numbers must be finite: {','.join(values)}")
    return out


def _floats(name: str) -> tuple[float, ...]:
    return _numbers(name, float)


def run_experiment_mode() -> None:
    from rppgedit.experiments import run

    _require("experiment")
    _check_flags()
    summary = run.run_experiment(
        FLAGS.experiment,
        dataset=FLAGS.exp_dataset,
        data_dir=FLAGS.exp_data_dir,
        clip_seconds=FLAGS.exp_clip_seconds,
        out_dir=FLAGS.exp_out_dir or f"results/experiments/{FLAGS.experiment}",
        methods=tuple(FLAGS.exp_methods) or None,
        lambdas=_floats("exp_lambdas"),
        learning_rates=_floats("exp_learning_rates"),
        pulseedit_lambdas=_floats("exp_pulseedit_lambdas"),
        target_hrs=_floats("exp_target_hrs"),
        target_hr_bpm=FLAGS.target_hr,
        # --surrogates/--steps/--learning_rate/--fidelity_weight/--balance/--colour/--param_size:
        # Privacy-Phys only;
        # a swept field (lambda, learning rate) overrides them.
        method_options={"privacy_phys": _method_options()},
        work_size=FLAGS.work_size,
        window=FLAGS.window,
        overlap=FLAGS.overlap,
        batch_windows=FLAGS.batch_windows,
        clips_per_chunk=FLAGS.exp_clips_per_chunk,
        mask_method=FLAGS.mask_method,
        estimators=tuple(FLAGS.estimators),
        attackers=tuple(FLAGS.attackers),
        attacker_models=tuple(FLAGS.attacker_models) or None,
        max_clips=FLAGS.exp_max_clips or None,
        seed=FLAGS.seed,
        synthetic_size=FLAGS.exp_synthetic_size,
        allow_no_face=FLAGS.allow_no_face,
        make_plots=FLAGS.exp_plots,
        progress=FLAGS.progress,
    )
    print(summary["markdown"])
    print(
        f"wrote {summary['records_path']}, {summary['tables_path']} and {len(summary['plots'])} "
        f"plots ({summary['clips']} clips, {summary['seconds']['total']:.0f} s)"
    )


def run_train_mode() -> None:
    from rppgedit import train

    common = dict(batch=FLAGS.train_batch, bank_clips=FLAGS.train_bank_clips, seed=FLAGS.train_seed)
    vae_cfg = train.TrainConfig(
        stage="vae",
        steps=FLAGS.train_vae_steps,
        num_frames=FLAGS.train_vae_frames,
        learning_rate=FLAGS.train_vae_lr,
        **common,
    )
    editor_cfg = train.TrainConfig(
        stage="editor",
        steps=FLAGS.train_editor_steps,
        num_frames=FLAGS.train_editor_frames,
        learning_rate=FLAGS.train_editor_lr,
        physnet_weight=FLAGS.train_physnet_weight,
        fidelity_weight=FLAGS.train_fidelity_weight,
        compositing=FLAGS.train_compositing,
        **common,
    )
    summary = train.run_train(
        FLAGS.train_stage,
        vae_cfg,
        editor_cfg,
        FLAGS.train_dir,
        FLAGS.train_export_dir,
        progress=FLAGS.progress,
    )
    print(json.dumps(summary, indent=1, default=str))


MODES = {
    "experiment": run_experiment_mode,
    "demo": run_demo_mode,
    "edit": run_edit_mode,
    "evaluate": run_evaluate_mode,
    "convert": run_convert_mode,
    "bench": run_bench_mode,
    "sweep": run_sweep_mode,
    "train": run_train_mode,
}


def main(argv):
    if len(argv) > 1:
        print(f"rppgedit: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        sys.exit(1)
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # library INFO logs (orbax, jax) only on request
    if FLAGS.checkpoint_dir:
        os.environ["RPPGEDIT_CHECKPOINTS"] = FLAGS.checkpoint_dir
    try:  # after the flags, so that --help does not wait for jax to import
        enable_compilation_cache(jax_cache_dir())
    except OSError as err:  # an unwritable cache folder costs speed, never the run
        logging.warning("no compilation cache: %s", err)
    try:
        MODES[FLAGS.mode]()
    except (RppgEditError, MemoryError) as err:
        from rppgedit import safe_write
        from rppgedit.errors import one_line

        if safe_write.interrupted():  # the signal watcher is removing temporaries and exiting
            threading.Event().wait(30)
        if isinstance(err, MemoryError):
            err = RppgEditError(
                f"out of memory reading {FLAGS.input or 'the input'} "
                "(lower RPPGEDIT_MEMORY_BUDGET_GB or use a shorter/smaller clip)"
            )
        print(f"rppgedit: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)


# Compiled programs kept on disk between runs: RPPGEDIT_JAX_CACHE names the folder, or "off".
JAX_CACHE_ENV = "RPPGEDIT_JAX_CACHE"
JAX_CACHE_MAX_BYTES = 2**30  # least recently used entries are dropped past this


def jax_cache_dir(environ=os.environ) -> str | None:
    """The persistent compilation cache's folder: $RPPGEDIT_JAX_CACHE, None when it is "off",
    else $XDG_CACHE_HOME/rppgedit/jax (~/.cache/rppgedit/jax)."""
    setting = environ.get(JAX_CACHE_ENV, "").strip()
    if setting.lower() in ("off", "0", "false", "no", "none"):
        return None
    if setting:
        return os.path.expanduser(setting)
    home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "rppgedit", "jax")


def enable_compilation_cache(path: str | None) -> None:
    """Turns on JAX's persistent compilation cache in `path` (before anything compiles), so a
    second run of the same shapes loads its programs instead of compiling them again."""
    if path is None:
        return
    import jax

    os.makedirs(path, mode=0o700, exist_ok=True)  # the cache runs what it holds: keep it private
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)  # needs filelock


def entry_point():
    from rppgedit import safe_write

    safe_write.install_signal_handlers()
    app.run(main)


if __name__ == "__main__":
    entry_point()
