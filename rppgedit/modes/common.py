"""What the modes share: the edit job, the output spec and the face box built from settings, the
checks every setting gets before any file is decoded, and the printed report."""

from __future__ import annotations

import sys

from rppgedit.errors import RppgEditError


def surrogates(text: str) -> tuple[tuple[str, float], ...]:
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


def method_options(s) -> tuple[tuple[str, object], ...]:
    options = {
        "steps": s.steps,
        "learning_rate": s.learning_rate,
        "fidelity_weight": s.fidelity_weight,
        "balance": s.balance,
        "colour": s.colour,
        "removal_loss": s.removal_loss,
        "init_scale": s.init_scale,
        "extra_steps": s.extra_steps,
        "deep_every": s.deep_every,
        "surrogates": surrogates(s.surrogates) if s.surrogates else None,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if s.stop_pearson is not None:  # 1: never stop early (None in the config)
        options["stop_pearson"] = None if s.stop_pearson >= 1 else s.stop_pearson
    if s.param_size >= 0:
        options["param_size"] = s.param_size or None
    return tuple(options.items())


def job(s):
    from rppgedit import pipeline, targets

    target = targets.TargetSpec(
        kind=s.target,
        hr_bpm=s.target_hr,
        phase=None if s.target_phase < 0 else s.target_phase,
        path=s.target_file,
        seed=s.seed,
        hrv=s.target_hrv,
        hr_end_bpm=s.target_hr_end,
    )
    return pipeline.EditJob(
        method=s.method,
        target=target,
        work_size=s.work_size,
        window=s.window,
        overlap=s.overlap,
        batch_windows=s.batch_windows,
        mask_method=s.mask_method,
        margin=s.edit_margin,
        quantize=s.quantize,
        bit_depth=int(s.bit_depth),
        seed=s.seed,
        method_options=method_options(s),
        estimators=tuple(s.estimators),
    )


def face_box(s):
    import math

    if s.face_box is None:
        return None
    try:
        box = [float(v) for v in s.face_box]
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
            f"got {','.join(s.face_box)}"
        )
    return box


def plots(s) -> bool:
    """--plots resolved: when not given, on if matplotlib is installed (else a one-line note on
    stderr); given without matplotlib, a one-line error (`report.plots_wanted`)."""
    from rppgedit import report

    if s.present("plots"):
        return report.plots_wanted(s.plots)
    if s.plots and not report.can_plot():
        print(f"rppgedit: plots skipped: matplotlib is not installed ({report.PLOTS_INSTALL})",
              file=sys.stderr)  # fmt: skip
        return False
    return bool(s.plots)


def check_settings(s) -> None:
    """Every setting checked before any file is decoded: finite, in range, consistent."""
    from rppgedit import editors, validate
    from rppgedit.estimators import registry
    from rppgedit.video import skin

    v = validate
    v.finite("--learning_rate", s.learning_rate, low=0, high=255, low_open=True)
    v.finite("--fidelity_weight", s.fidelity_weight, low=0, high=1e6)
    v.finite("--stop_pearson", s.stop_pearson, low=-1, high=1, low_open=True)
    v.finite("--init_scale", s.init_scale, low=0, high=100)
    v.finite("--target_hr", s.target_hr)
    v.finite("--target_phase", s.target_phase)
    v.finite("--target_hrv", s.target_hrv, low=0, high=0.2)
    v.finite("--target_hr_end", s.target_hr_end)
    v.finite("--lossy_strength", s.lossy_strength, low=0, high=10, low_open=True)
    v.integer("--steps", s.steps, 1, v.MAX_STEPS)
    v.integer("--extra_steps", s.extra_steps, 0, v.MAX_STEPS)
    v.integer("--deep_every", s.deep_every, 1, v.MAX_STEPS)
    v.integer("--seed", s.seed, 0, 2**31 - 1)
    v.windows(s.window, s.overlap, s.batch_windows, s.work_size)
    v.integer("--param_size", s.param_size, -1, s.work_size)
    v.integer("--crf", s.crf, 0, 63)
    v.integer("--verify_reencode", s.verify_reencode, 0, 63)
    v.one_of("--mask_method", s.mask_method, tuple(skin.SKIN_METHODS))
    v.finite("--edit_margin", s.edit_margin, low=0, high=1)
    if s.method not in editors.METHODS:
        raise RppgEditError(
            f"--method: unknown editor {s.method!r}; choose one of {', '.join(editors.METHODS)}"
        )
    if not s.estimators:
        raise RppgEditError("--estimators: needs at least one estimator")
    for name in s.estimators:
        try:
            registry.get(name)
        except RppgEditError as err:
            raise RppgEditError(f"--estimators: {err}") from None
    if s.surrogates:
        surrogates(s.surrogates)
    # Conflicting flags: a value that the chosen target would silently ignore.
    kind = s.target
    for name in ("target_hr", "target_phase", "target_hr_end", "target_hrv"):
        if kind in ("none", "file") and s.present(name):
            raise RppgEditError(
                f"--{name} does not apply to --target={kind} (drop it, or the flagfile line "
                "that sets it)"
            )
    if s.present("target_hrv") and kind != "pulse":
        raise RppgEditError(f"--target_hrv needs --target=pulse (got --target={kind})")
    if s.target_file and kind != "file":
        raise RppgEditError(f"--target_file needs --target=file (got --target={kind})")
    if kind == "file":
        check_target_file(s)
    if s.share and s.codec not in (None, "h264"):
        raise RppgEditError(f"--share writes H.264; it cannot be combined with --codec={s.codec}")
    if s.bit_depth == "16" and (s.share or s.codec in ("h264", "h265", "vp9")):
        raise RppgEditError("--bit_depth=16 needs a lossless codec (ffv1 in .mkv/.avi, .npy, PNG)")


# The smallest frames an edit or a reading makes sense on (SSIM's window is 11 pixels).
MIN_FRAME_SIDE = 16


def check_input(path: str) -> None:
    """The input's header (not its frames): enough frames, big enough, a usable frame rate,
    and a size whose edit fits the memory budget (`rppgedit.video.probe.probe` checks those two)."""
    from rppgedit import pipeline
    from rppgedit.video import probe

    info = probe.probe(path)
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


def check_target_file(s) -> None:
    """The waveform file is readable (its length is checked against the video later)."""
    from rppgedit import targets

    if not s.target_file:
        raise RppgEditError("--target=file needs --target_file")
    try:
        targets.from_file(s.target_file, 2, 30.0)
    except RppgEditError as err:
        if "covers" not in str(err):
            raise
    except (TypeError, IndexError, ValueError) as err:
        raise RppgEditError(
            f"{s.target_file}: not a readable waveform ({type(err).__name__})"
        ) from None


def check_weights(s, fps: float = 30.0) -> None:
    """Loads (and caches) the weights of every deep estimator and surrogate the run will use, so
    a missing or damaged checkpoint is reported before any decoding."""
    from rppgedit import pipeline
    from rppgedit.estimators import registry

    cfg = pipeline.editor_config(job(s), fps) if s.mode == "edit" else None
    names = list(s.estimators) + [n for n, _ in getattr(cfg, "surrogates", ())]
    for name in dict.fromkeys(names):
        est = registry.get(name)
        if est.input == "video":
            est.load_params()


def require(s, *names):
    """A one-line error unless every setting in `names` is given."""
    missing = [n for n in names if not getattr(s, n)]
    if missing:
        raise RppgEditError(f"--mode={s.mode} needs --{' and --'.join(missing)}")


def print_report(summary: dict) -> None:
    from rppgedit import report as reporting
    from rppgedit.readings import format_table

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
            if "regions" in f:
                print(reporting.regions_lines(f["regions"]))
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
    if summary.get("snr_explanation"):
        print(f"SNR: {summary['snr_explanation']}")
    if summary.get("verdict"):
        print(f"verdict: {summary['verdict']}")
    if summary.get("report_png"):
        print(f"figure: {summary['report_png']}")
    print(
        f"wrote {summary['output']} ({summary['frames']} frames, "
        f"{summary['fps_end_to_end']:.1f} frames/s end to end)"
    )


def output_spec(s):
    """The output's codec and share settings as a `pipeline.OutputSpec`."""
    from rppgedit import pipeline

    codec, crf = s.codec, s.crf
    if s.share:  # check_settings has refused --share with another codec
        codec, crf = "h264", 23 if crf is None else crf
    return pipeline.OutputSpec(
        codec=codec,
        crf=crf,
        verify_reencode=s.verify_reencode,
        keep_streams=s.keep_streams,
        lossy_strength=s.lossy_strength,
    )
