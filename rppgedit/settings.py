"""Every setting of the command line, declared once, as data.

Each `Setting` has one name (its flag, `--steps`), one place in the resolved tree (`editor.steps`),
a type, a default (optionally one per mode), a help line and the modes that use it. From this table
`rppgedit.main` defines the flags, prints the help of one mode, refuses a setting the chosen mode
does not use (naming it), and builds the `Settings` a mode runs on; `Settings.tree()` is the resolved
configuration written into every report and results file.

Values come, lowest precedence first, from the defaults, a config file (``--config=FILE.py`` whose
``get_config()`` returns ``{name or dotted path: value}``), a flagfile, and the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterable, Mapping

from rppgedit.errors import RppgEditError
from rppgedit.windows import default_window

# The modes, in the order the help lists them.
MODES = ("demo", "edit", "live", "evaluate", "bench", "sweep", "experiment", "train", "convert")

# Groups of modes that share settings.
_ALL = MODES
_JOB = ("demo", "edit", "live", "bench", "sweep", "experiment")  # build an edit job
_EDITOR = _JOB  # the editor's options
_READ = ("demo", "edit", "evaluate", "bench", "sweep", "experiment")  # read heart rates
_GRID = ("sweep", "experiment")
_FACES = ("edit", "evaluate", "bench", "sweep", "experiment")
_OUTPUT = ("edit", "bench")
_TARGET = ("demo", "edit", "live", "bench", "experiment")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: flag name, tree path, kind, default, help, and the modes that use it.

    kind: "str", "int", "float", "bool", "list" (comma-separated strings), "floats", "ints" (lists
    of numbers), or a tuple of choices (an enum)."""

    name: str
    path: str
    kind: object
    default: object
    help: str
    modes: tuple[str, ...]
    mode_defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    common: bool = False  # listed first in a mode's help

    def default_for(self, mode: str):
        return self.mode_defaults.get(mode, self.default)


def _s(name, path, kind, default, help, modes, **kw) -> Setting:
    return Setting(name, path, kind, default, help, tuple(modes), **kw)


# Each entry: name, tree path, kind, default; help; the modes that use it.
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    _s("mode", "mode", MODES, "demo", "What to run (or give it first: `rppgedit edit ...`).", _ALL),
    _s("config", "config", "str", None, "A config file (FILE.py with get_config()).", _ALL),
    _s("progress", "progress", "bool", True, "Show progress bars (only on a terminal).", _ALL),
    _s("checkpoint_dir", "checkpoint_dir", "str", None,
       "Checkpoint folder (default: shipped).", _ALL),
    # Input / output.
    _s("input", "io.input", "str", None,
       "Input video: any file ffmpeg reads, a PNG folder or a .npy; live: - (raw rgb24 frames "
       "on stdin), a file (paced), or a camera device (/dev/video0, or see --live_format).",
       _FACES + ("live",), common=True),
    _s("output", "io.output", "str", None,
       "Output video (.mkv FFV1 lossless by default, .mp4 with --share) or folder; live: - "
       "(raw rgb24 frames on stdout), a file, or a v4l2loopback device (/dev/video2).",
       ("edit", "live"), common=True),
    _s("overwrite", "io.overwrite", "bool", False,
       "Replace an existing output (never the input).", ("edit", "live", "evaluate")),
    _s("json_out", "io.json_out", "str", None,
       "Also write the results as JSON here.", ("evaluate", "bench")),
    _s("codec", "output.codec", "str", None,
       "Output codec: default lossless by extension (ffv1, or libx264rgb: lossless and the fastest at "
       "large frame sizes); h264, h265, vp9 to share.", _OUTPUT),
    _s("share", "output.share", "bool", False,
       "Write a file that plays everywhere: H.264 High, yuv420p, BT.709, +faststart, CRF 23 "
       "unless --crf; the report reads the decoded file.",
       _OUTPUT, common=True),
    _s("crf", "output.crf", "int", None,
       "CRF of a lossy codec (default h264 23, h265 28, vp9 32).", _OUTPUT),
    _s("verify_reencode", "output.verify_reencode", "int", None,
       "Also read the faces after one more re-encode at this CRF.", _OUTPUT),
    _s("lossy_strength", "output.lossy_strength", "float", None,
       "Multiple of the edit pasted into a lossy output so it survives re-encodes (default 4).",
       _OUTPUT),
    _s("keep_streams", "output.keep_streams", "bool", True,
       "Carry the input's audio, subtitles and metadata over.", _OUTPUT),
    _s("bit_depth", "output.bit_depth", ("8", "16"), "8",
       "Bits per channel of the output video.", _OUTPUT),
    _s("plots", "report.plots", "bool", True,
       "Draw the figures: OUT.report.png; evaluate: the spectra beside --json_out; experiments' plots.",
       ("edit", "demo", "evaluate", "experiment"),
       mode_defaults={"evaluate": False}),
    # What to embed.
    _s("target", "target.kind", ("sinusoid", "pulse", "file", "none"), "sinusoid",
       "Target: a sinusoid or pulse at --target_hr, a waveform file, or none (remove the pulse).",
       ("demo", "edit", "live", "bench", "sweep"), common=True),
    _s("target_hr", "target.hr_bpm", "float", 120.0,
       "Target heart rate in bpm.", _TARGET, common=True),
    _s("target_file", "target.file", "str", None,
       "Target waveform (.npy or .csv), --target=file.", ("edit", "bench")),
    _s("target_phase", "target.phase", "float", 0.0,
       "Target phase in radians; negative draws it from --seed.",
       ("demo", "edit", "live", "bench")),
    _s("target_hrv", "target.hrv", "float", 0.01,
       "--target=pulse: relative standard deviation of its beat-to-beat rate (0-0.2).",
       ("demo", "edit", "bench")),
    _s("target_hr_end", "target.hr_end_bpm", "float", None,
       "The target rate at the last frame: the rate glides from --target_hr to it.",
       ("demo", "edit", "bench")),
    # The editor.
    _s("method", "editor.method", "str", "privacy_phys",
       "Editor: privacy_phys, pulseedit, physiolatent, smooth_remove.", _EDITOR, common=True),
    _s("surrogates", "editor.surrogates", "str", None,
       "Surrogate ensemble as name:weight,... (default: the method's).", _EDITOR),
    _s("steps", "editor.steps", "int", None, "Optimiser steps (default: the method's).", _EDITOR),
    _s("learning_rate", "editor.learning_rate", "float", None,
       "Learning rate in grey levels per step.", _EDITOR),
    _s("fidelity_weight", "editor.fidelity_weight", "float", None,
       "Lambda, the weight of the MSE fidelity term.", _EDITOR),
    _s("balance", "editor.balance", ("mean", "softmax"), None,
       "Privacy-Phys: how the surrogates' terms are combined.", _EDITOR),
    _s("colour", "editor.colour", ("free", "pulse"), None,
       "Privacy-Phys: the colour the edit may take.", _EDITOR),
    _s("stop_pearson", "editor.stop_pearson", "float", None,
       "Privacy-Phys: stop a window's edit once every surrogate's Pearson with the target "
       "reaches this (default 0.8); 1 runs every step, as the paper does.",
       _EDITOR),
    _s("extra_steps", "editor.extra_steps", "int", None,
       "Privacy-Phys: with --stop_pearson, up to this many more steps for a window whose "
       "surrogates have not all reached it (default 20; 0: --steps at most).",
       _EDITOR),
    _s("deep_every", "editor.deep_every", "int", None,
       "Privacy-Phys: run the deep surrogates on every k-th step and their first-order "
       "expansion in between (default 4, a removal's 1; 1: the exact gradient, as the paper).",
       _EDITOR),
    _s("init_scale", "editor.init_scale", "float", None,
       "Privacy-Phys: start the edit from the target waveform at this many times the clip's own "
       "pulse strength (0 starts from zero, as the paper does).",
       _EDITOR),
    _s("removal_loss", "editor.removal_loss", ("notched_flat", "flatness"), None,
       "Privacy-Phys removal: notched_flat (default: a flat pulse band notched at the original "
       "rate, its double and half) or flatness (the older objective: flatness plus an overlap "
       "with the original pulse).",
       _EDITOR),
    _s("param_size", "editor.param_size", "int", -1,
       "Perturbation grid side; 0 optimises every pixel; -1 the method default.", _EDITOR),
    # Face crops and windows.
    _s("work_size", "crop.work_size", "int", 64,
       "Side of the face crop the editor works on.", _JOB + ("evaluate",)),
    _s("mask_method", "crop.mask_method", "str", "ycrcb_adaptive",
       "Skin mask rule (ycrcb_adaptive, ycrcb, all).", _JOB + ("evaluate",)),
    _s("edit_margin", "crop.margin", "float", 0.0,
       "Also edit the skin in a ring this fraction of the face box's side wide around it (the "
       "face's mean change), for readers that crop wider (e.g. 0.15); 0: inside the box only.",
       _JOB),
    _s("face_box", "crop.face_box", "list", None,
       "Fixed face box x0,y0,x1,y1 in pixels (skips detection).",
       ("edit", "live", "evaluate", "bench")),
    _s("allow_no_face", "crop.allow_no_face", "bool", False,
       "Edit a centred box when no face is found.", _FACES),
    _s("window", "windows.window", "int", 0,
       "Frames per editing window; 0: 128 for a target, 256 for a removal.", _JOB),
    _s("overlap", "windows.overlap", "int", 32,
       "Minimum overlap of consecutive windows (frames).", _JOB),
    _s("batch_windows", "windows.batch_windows", "int", 0,
       "Windows each device edits in one vmapped call; 0 (edit, demo, bench): 1 per CPU device "
       "(one per core), 2 per GPU.",
       ("demo", "edit", "bench", "sweep", "experiment"),
       mode_defaults={"sweep": 4, "experiment": 2}),
    _s("quantize", "paste.quantize", ("stochastic", "round"), "stochastic",
       "8-bit rounding of the edit.", ("demo", "edit", "live", "bench", "sweep")),
    _s("seed", "seed", "int", 0, "Seed of stochastic rounding and random phases.", _JOB),
    # Readings.
    _s("estimators", "report.estimators", "list", ["green", "pos", "chrom", "physnet_pure"],
       "Estimators that read the heart rate (live: the trace estimators, at the end).",
       _READ + ("live",)),
    _s("ground_truth", "report.ground_truth", "str", None,
       "Ground-truth file (UBFC ground_truth.txt or time,BVP CSV).", ("evaluate",)),
    _s("attackers", "report.attackers", "list", [],
       "Black-box attackers read too: open_rppg (slow, a subprocess).", ("experiment",)),
    _s("attacker_models", "report.attacker_models", "list", [],
       "open-rppg models; empty: all of open_rppg.OPEN_RPPG_MODELS.", ("experiment",)),
    # Live.
    _s("live_size", "live.size", "str", None,
       "Frame size WxH of --input=- raw frames (required) or of the camera (default 640x480).",
       ("live",), common=True),
    _s("live_fps", "live.fps", "float", 30.0,
       "Frame rate of --input=- raw frames or of the camera.", ("live",)),
    _s("live_format", "live.format", "str", None,
       "ffmpeg capture format of --input (v4l2, avfoundation, dshow); default v4l2 for /dev/video*.",
       ("live",)),
    _s("live_pace", "live.pace", "bool", True,
       "Read a file --input at its frame rate (ffmpeg -re), as a camera would deliver it.",
       ("live",)),
    _s("live_max_lag", "live.max_lag", "int", 0,
       "Camera/paced input: frames that may wait before the oldest is dropped; 0: one second.",
       ("live",)),
    _s("detect_every", "live.detect_every", "int", 5,
       "Run the face detector every this many frames (the box is smoothed and held between).",
       ("live",)),
    # Convert and bench.
    _s("source", "convert.source", "str", "open_rppg:pure",
       "Weights to convert: open_rppg:pure|rlap, torch:PATH.", ("convert",)),
    _s("bench_sizes", "bench.sizes", "ints", [32, 64, 128], "Working sizes to time.", ("bench",)),
    # Clips of a sweep or an experiment.
    _s("dataset", "clips.dataset", "str", "synthetic",
       "Clips: synthetic, or ubfc_rppg, pure, mmpd, mmse_hr, folder.", _GRID),
    _s("data_dir", "clips.data_dir", "str", None,
       "Dataset root folder (folder: any videos, <stem>.csv ground truth).", _GRID),
    _s("clip_seconds", "clips.clip_seconds", "float", 15.0,
       "Dataset clip length in seconds.", _GRID),
    _s("max_clips", "clips.max_clips", "int", 0,
       "At most this many clips; 0: all (experiment's synthetic: 6).", ("experiment",)),
    _s("clips_per_sample", "clips.clips_per_sample", "int", 0,
       "At most this many clips per recording; 0: all.", ("sweep",)),
    _s("synthetic_seeds", "clips.synthetic_seeds", "ints", [0, 1, 2],
       "Synthetic clip seeds (one clip each).", ("sweep",)),
    _s("synthetic_frames", "clips.synthetic_frames", "int", 128,
       "Frames per synthetic clip.", ("sweep",)),
    _s("synthetic_size", "clips.synthetic_size", "int", 64,
       "Side of the synthetic frames in pixels.", _GRID, mode_defaults={"experiment": 128}),
    _s("synthetic_hr", "clips.synthetic_hr", "float", 72.0,
       "Heart rate of the synthetic clips in bpm.", ("sweep",)),
    _s("synthetic_motion", "clips.synthetic_motion", "bool", False,
       "Head motion in the synthetic clips.", ("sweep",)),
    # Grid axes (sweep and experiments).
    _s("target_hrs", "grid.target_hrs", "floats", [120.0],
       "Target heart rates in bpm.",
       _GRID, mode_defaults={"experiment": [60.0, 80.0, 100.0, 120.0]}),
    _s("fidelity_weights", "grid.fidelity_weights", "floats", [],
       "Lambdas; empty: --fidelity_weight.",
       _GRID, mode_defaults={"experiment": [0.01, 0.1, 1.0, 10.0, 100.0]}),
    _s("learning_rates", "grid.learning_rates", "floats", [0.05, 0.1, 0.2, 0.4],
       "mae_vs_psnr: Privacy-Phys learning rates.", ("experiment",)),
    _s("pulseedit_fidelity_weights", "grid.pulseedit_fidelity_weights", "floats",
       [2.0, 0.3, 0.05, 0.01],
       "mae_vs_psnr: PulseEdit lambdas.", ("experiment",)),
    _s("methods", "grid.methods", "list", [],
       "Editors; empty: --method (experiments: their own).", _GRID),
    _s("steps_grid", "grid.steps", "ints", [], "Optimiser steps; empty: --steps.", ("sweep",)),
    # Sweep.
    _s("out_dir", "grid.out_dir", "str", None,
       "Results folder, shared by all hosts; default results/sweep or "
       "results/experiments/<experiment>.", _GRID),
    _s("clips_per_chunk", "grid.clips_per_chunk", "int", 4,
       "Clips loaded and edited together (memory bound).", _GRID,
       mode_defaults={"sweep": 64}),
    _s("sweep_save", "sweep.save", ("npy", "mkv", "none"), "npy",
       "Edited crop per item: format.", ("sweep",)),
    _s("merge_only", "sweep.merge_only", "bool", False,
       "Only rebuild results.csv/.md from the results files.", ("sweep",)),
    _s("coordinator_address", "distributed.coordinator_address", "str", None,
       "jax.distributed coordinator host:port.", _GRID),
    _s("num_processes", "distributed.num_processes", "int", None,
       "jax.distributed: number of processes.", _GRID),
    _s("process_id", "distributed.process_id", "int", None,
       "jax.distributed: this process.", _GRID),
    _s("distributed", "distributed.auto", "bool", False,
       "Start jax.distributed with cluster auto-detection.", _GRID),
    # Experiments.
    _s("experiment", "experiment.name", ("lambda_sweep", "mae_vs_psnr", "table1_crops", "target_hrs"),
       None,
       "Which of the papers' experiments to run.", ("experiment",), common=True),
    # Training PhysioLatent.
    _s("train_stage", "train.stage", ("vae", "editor", "all"), "all", "What to train.", ("train",)),
    _s("train_dir", "train.dir", "str", "outputs/train/physiolatent",
       "Train states (orbax CheckpointManager).", ("train",)),
    _s("train_export_dir", "train.export_dir", "str", None,
       "Trained params; default rppgedit/checkpoints/physiolatent.", ("train",)),
    _s("train_vae_steps", "train.vae.steps", "int", 700, "VAE stage steps.", ("train",)),
    _s("train_editor_steps", "train.editor.steps", "int", 600, "Editor stage steps.", ("train",)),
    _s("train_batch", "train.batch", "int", 4, "Clips per training step.", ("train",)),
    _s("train_vae_frames", "train.vae.frames", "int", 64,
       "Frames per VAE training clip.", ("train",)),
    _s("train_editor_frames", "train.editor.frames", "int", 128,
       "Frames per editor training clip.", ("train",)),
    _s("train_vae_lr", "train.vae.learning_rate", "float", 3e-3,
       "VAE peak learning rate (one-cycle).", ("train",)),
    _s("train_editor_lr", "train.editor.learning_rate", "float", 2e-3,
       "Editor peak learning rate (one-cycle).", ("train",)),
    _s("train_bank_clips", "train.bank_clips", "int", 160, "Synthetic training clips.", ("train",)),
    _s("train_physnet_weight", "train.editor.physnet_weight", "float", 0.5,
       "Editor waveform-loss weight of PhysNet.", ("train",)),
    _s("train_fidelity_weight", "train.editor.fidelity_weight", "float", 0.3,
       "Editor MSE weight (0-255 scale).", ("train",)),
    _s("train_compositing", "train.editor.compositing", ("residual", "paste"), "residual",
       "What the loss sees.", ("train",)),
    _s("train_seed", "train.seed", "int", 0, "Seed of initialisation and sampling.", ("train",)),
    # Demo.
    _s("demo_dir", "demo.dir", "str", "outputs/demo",
       "Where the demo writes its clip and result.", ("demo",), common=True),
)
# fmt: on

BY_NAME = {s.name: s for s in SETTINGS}
BY_PATH = {s.path: s for s in SETTINGS}
assert len(BY_NAME) == len(SETTINGS) and len(BY_PATH) == len(SETTINGS), "a setting declared twice"


def for_mode(mode: str) -> tuple[Setting, ...]:
    """The settings `mode` uses, common ones first."""
    used = [s for s in SETTINGS if mode in s.modes]
    return tuple(sorted(used, key=lambda s: not s.common))


def define_flags(flag_values) -> None:
    """Defines one absl flag per setting (the flags' defaults are the settings' defaults)."""
    from absl import flags

    for s in SETTINGS:
        args = (s.name, s.default, s.help)
        if isinstance(s.kind, tuple):
            flags.DEFINE_enum(s.name, s.default, list(s.kind), s.help, flag_values=flag_values)
            continue
        define = {
            "str": flags.DEFINE_string,
            "int": flags.DEFINE_integer,
            "float": flags.DEFINE_float,
            "bool": flags.DEFINE_bool,
            "list": flags.DEFINE_list,
            "floats": flags.DEFINE_list,
            "ints": flags.DEFINE_list,
        }[s.kind]
        if s.kind in ("floats", "ints") and s.default is not None:
            args = (s.name, [str(v) for v in s.default], s.help)
        define(*args, flag_values=flag_values)


def _number_list(s: Setting, values) -> list:
    import math

    kind = int if s.kind == "ints" else float
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    try:
        out = [kind(v) for v in values]
    except (TypeError, ValueError):
        raise RppgEditError(f"--{s.name}: not a list of numbers: {values}") from None
    if not all(math.isfinite(v) for v in out):
        raise RppgEditError(f"--{s.name}: numbers must be finite: {values}")
    return out


def _coerce(s: Setting, value, origin: str):
    """A config file's value as the setting's type, or a one-line error naming it."""
    if value is None:
        return None
    kind = s.kind
    try:
        if isinstance(kind, tuple):
            if str(value) not in kind:
                raise ValueError(f"{value!r} is not one of {', '.join(kind)}")
            return str(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{value!r} is not True or False")
            return value
        if kind == "int":
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(f"{value!r} is not an integer")
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
        if kind == "list":
            return (
                [v.strip() for v in value.split(",")]
                if isinstance(value, str)
                else [str(v) for v in value]
            )
    except (TypeError, ValueError) as err:
        raise RppgEditError(f"{origin}: setting {s.name!r}: {err}") from None
    return _number_list(s, value)


def load_config_file(path: str) -> dict[str, object]:
    """``{setting name: value}`` from a config file's ``get_config()`` (keys may be setting names
    or dotted tree paths); a one-line error naming the file and any key that is not a setting."""
    if not os.path.isfile(path):
        raise RppgEditError(f"{path}: config file not found")
    if not path.endswith(".py"):
        raise RppgEditError(f"{path}: a config file is a .py file with get_config()")
    spec = importlib.util.spec_from_file_location("rppgedit_config", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        get_config = getattr(module, "get_config", None)
        raw = get_config() if callable(get_config) else None
    except Exception as err:  # the user's file: any error is its problem, said in one line
        raise RppgEditError(f"{path}: cannot run it: {type(err).__name__}: {err}") from None
    if not callable(get_config):
        raise RppgEditError(f"{path}: defines no get_config()")
    if not isinstance(raw, Mapping):
        raise RppgEditError(f"{path}: get_config() must return a dict of settings")
    out = {}
    for key, value in _flatten(raw):
        s = BY_NAME.get(key) or BY_PATH.get(key)
        if s is None:
            raise RppgEditError(f"{path}: unknown setting {key!r}")
        if s.name == "config":
            raise RppgEditError(f"{path}: a config file cannot name another config")
        out[s.name] = _coerce(s, value, path)
    return out


def _flatten(tree: Mapping, prefix: str = "") -> Iterable[tuple[str, object]]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, path + ".")
        else:
            yield path, value


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved settings of one run: attribute access by setting name (``s.steps``), the
    set of names given explicitly (config file, flagfile, command line) and, from the command
    line, when the command started (``time.perf_counter()``: the edit counts its start-up in the
    rate it reports)."""

    mode: str
    values: Mapping[str, object]
    given: frozenset[str]
    started: float | None = None

    def __getattr__(self, name):
        values = self.__dict__.get("values")
        if values is None or name not in values:
            raise AttributeError(name)
        return values[name]

    def present(self, name: str) -> bool:
        return name in self.given

    def tree(self) -> dict:
        """The mode's settings as a nested dict by tree path: the resolved configuration."""
        out: dict = {}
        for s in for_mode(self.mode):
            if s.name in ("config",):
                continue
            node = out
            *parents, leaf = s.path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = self.values[s.name]
        return out


def resolve(flag_values, mode: str | None = None, started: float | None = None) -> Settings:
    """The run's `Settings` from parsed absl flags (and the config file they name): refuses, in one
    line, a setting the mode does not use. `started`: `Settings.started`."""
    config = load_config_file(flag_values.config) if flag_values.config else {}
    given = {s.name for s in SETTINGS if flag_values[s.name].present}
    if mode is None:
        mode = flag_values.mode if "mode" in given or "mode" not in config else config["mode"]
    values = {}
    for s in SETTINGS:
        if s.name in given:
            value = flag_values[s.name].value
            if s.kind in ("floats", "ints") and value is not None:
                value = _number_list(s, value)
        elif s.name in config:
            value = config[s.name]
        else:
            value = s.default_for(mode)
            if isinstance(value, list):
                value = list(value)
        values[s.name] = value
    given |= set(config)
    values["mode"] = mode
    if values.get("window") == 0:  # the default: the target's window, shown as such in the tree
        values["window"] = default_window(values.get("target") == "none")
    unused = sorted(n for n in given if mode not in BY_NAME[n].modes)
    if unused:
        names = ", ".join(f"--{n}" for n in unused)
        raise RppgEditError(
            f"{names} {'is' if len(unused) == 1 else 'are'} not used by --mode={mode} (drop "
            f"{'it' if len(unused) == 1 else 'them'}, or the flagfile/config line that sets "
            f"{'it' if len(unused) == 1 else 'them'})"
        )
    return Settings(mode, values, frozenset(given), started)


def help_text(mode: str | None) -> str:
    """The help of one mode (its settings, common first), or the overview of the modes."""
    if mode is None:
        lines = [
            "usage: rppgedit MODE [--setting=value ...] [--flagfile=FILE] [--config=FILE.py]",
            "",
            "modes (`rppgedit MODE --help` lists a mode's settings):",
        ]
        lines += [f"  {m:<11} {_MODE_HELP[m]}" for m in MODES]
        return "\n".join(lines)
    lines = [f"usage: rppgedit {mode} [--setting=value ...]   ({_MODE_HELP[mode]})", ""]
    for s in for_mode(mode):
        if s.name == "mode":
            continue
        default = s.default_for(mode)
        if isinstance(default, list):
            default = ",".join(str(v) for v in default)
        kind = "|".join(s.kind) if isinstance(s.kind, tuple) else s.kind
        shown = "" if default in (None, "", []) else f" (default {default})"
        lines.append(f"  --{s.name}: {kind}{shown}\n      {s.help}")
    return "\n".join(lines)


_MODE_HELP = {
    "demo": "edit the embedded demo clip (no download) and print the table",
    "edit": "edit a video's pulse to a target rate, or remove it",
    "live": "edit a stream while it plays: a pipe, a camera or a paced file, one window late",
    "evaluate": "read the heart rate of a video with every estimator",
    "bench": "time the editor (or, with --input, the whole edit command)",
    "sweep": "a grid of edits over clips, resumable, sharded over devices and hosts",
    "experiment": "run one of the papers' experiments (tables and figures)",
    "train": "train PhysioLatent's VAE and editor",
    "convert": "convert open-rppg or torch weights into the project's format",
}
