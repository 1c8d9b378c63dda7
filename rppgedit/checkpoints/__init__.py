"""Checkpoints: the shipped weights, orbax save/restore of pytrees, and PhysNet converters.

This package folder is the one home of rppgedit's weights (`README.md` here is the inventory): the
converted PhysNet checkpoints `physnet_pure/` and `physnet_rlap/`, PhysioLatent's `physiolatent/`
and the BlazeFace face detector `blaze_face.onnx` ship inside the wheel as package data. `SHA256SUMS`
records the sha256 of every shipped weight file; `restore_pytree` and `shipped_file` check a shipped
folder or file against it before reading (once per process) and refuse a changed, missing or extra
file with a one-line error.

Where weights are read from (`default_checkpoint_dir`): `$RPPGEDIT_CHECKPOINTS` if set, else this
folder. Weights converted by `run_convert` without a folder go to the user's cache
(`cache_checkpoint_dir`), never into the installed package.

Sources of PhysNet weights (Yu et al., BMVC 2019):
- open-rppg 0.1.1 (Kegang Wang, MIT) ships `rppg/weights/physnet.{pure,rlap}.weights.h5`, Keras-3
  weight files (float16) of PhysNet trained on PURE or RLAP. They are read with h5py, without importing
  `rppg` (whose import changes process-wide Keras and logging settings), converted to float32 Flax
  variables and saved as an orbax checkpoint `physnet_<variant>` (`--mode=convert`; the shipped
  `physnet_pure/` and `physnet_rlap/` were made so). open-rppg is the optional `[attackers]` extra.
- rPPG-Toolbox-style PyTorch state dicts (`PhysNet_padding_Encoder_Decoder_MAX`), if torch is
  installed. Their BatchNorm epsilon is 1e-5 (`TORCH_BN_EPSILON`), stored in the checkpoint's metadata.

EfficientPhys weights (Liu et al., WACV 2023) come from the same wheel,
`rppg/weights/EfficientPhys.{pure,rlap}.weights.h5`, read the same way (h5py, float16 -> float32)
onto `rppgedit.models.efficientphys.EfficientPhys` and saved as `efficientphys_<variant>`
(`load_efficientphys`, converted on first use like PhysNet's).

PhysFormer weights (Yu et al., CVPR 2022) likewise: `rppg/weights/PhysFormer.{pure,rlap}.weights.h5`
onto `rppgedit.models.physformer.PhysFormer`, saved as `physformer_<variant>` (`load_physformer`).

FacePhys weights (open-rppg's own model, by Kegang Wang; RLAP only): `rppg/weights/
FacePhys.rlap.weights.h5` onto `rppgedit.models.facephys.FacePhys`, saved as `facephys_rlap`
(`load_facephys`, converted on first use; there is no PURE variant).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np

from rppgedit.errors import RppgEditError, one_line
from rppgedit.models import efficientphys, facephys, physformer, physnet

_log = logging.getLogger(__name__)

Variant = Literal["pure", "rlap"]
VARIANTS: tuple[str, ...] = ("pure", "rlap")

# Looked up through this alias so tests can pretend open-rppg is not installed.
_find_spec = importlib.util.find_spec

_ENCODER_BLOCKS = tuple(f"ConvBlock{i}" for i in range(1, 10))
_DECODER_BLOCKS = ("upsample", "upsample2")


# The shipped weights live beside this module; SHA256SUMS records every weight file among them.
PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
RECORDS_NAME = "SHA256SUMS"
_UNRECORDED = (
    "__init__.py",
    "blazeface_convert.py",
    "README.md",
    RECORDS_NAME,
    "LICENSES",
    "__pycache__",
)


def cache_checkpoint_dir() -> pathlib.Path:
    """Where weights converted without a named folder go: the user's cache
    (`$XDG_CACHE_HOME/rppgedit/checkpoints`, default `~/.cache/...`), never the installed package."""
    cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache) / "rppgedit" / "checkpoints"


def _reason(err: BaseException) -> str:
    """A short one-line reason from a third-party exception (its type and first words)."""
    text = one_line(err)
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def default_checkpoint_dir() -> pathlib.Path:
    """Folder holding checkpoints: `$RPPGEDIT_CHECKPOINTS`, else the shipped `PACKAGE_DIR`."""
    env = os.environ.get("RPPGEDIT_CHECKPOINTS")
    if env:
        return pathlib.Path(env).expanduser()
    return PACKAGE_DIR


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weight_files(root: pathlib.Path) -> list[str]:
    """Relative POSIX paths of every shipped weight file under `root` (sorted)."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] not in _UNRECORDED
        and path.name != "README.md"
        and "__pycache__" not in path.parts
    )


def read_records(root: pathlib.Path = PACKAGE_DIR) -> dict[str, str]:
    """{relative path: sha256} from `root/SHA256SUMS` (the `sha256sum` format)."""
    path = root / RECORDS_NAME
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise RppgEditError(f"{path}: cannot read the weight records ({e.strerror or e})") from None
    records = {}
    for number, line in enumerate(lines, 1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            raise RppgEditError(f"{path}:{number}: not a '<sha256>  <path>' line")
        records[name] = digest
    return records


def write_records(root: pathlib.Path = PACKAGE_DIR) -> pathlib.Path:
    """Rewrites `root/SHA256SUMS` from the weight files now under `root` (after retraining)."""
    lines = [f"{_sha256(root / name)}  {name}\n" for name in _weight_files(root)]
    path = root / RECORDS_NAME
    tmp = path.with_name(f".{RECORDS_NAME}.tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
    _verified.cache_clear()
    return path


@functools.lru_cache(maxsize=32)
def _verified(root: str, name: str) -> None:
    """Checks shipped file or folder `name` under `root` against its records (cached when good)."""
    base = pathlib.Path(root)
    records = read_records(base)
    target = base / name
    if target.is_file():
        want = {name: records.get(name)}
        have = [name]
    else:
        want = {k: v for k, v in records.items() if k.startswith(name + "/")}
        have = [k for k in _weight_files(base) if k.startswith(name + "/")]
    hint = (
        "reinstall rppgedit, or after changing the weights on purpose record them with "
        "`python -c 'import rppgedit.checkpoints as c; c.write_records()'`"
    )
    for file in sorted(set(want) | set(have)):
        if want.get(file) is None:
            raise RppgEditError(f"{base / file}: shipped weight file has no sha256 record; {hint}")
        if not (base / file).is_file():
            raise RppgEditError(f"{base / file}: shipped weight file missing; {hint}")
        if _sha256(base / file) != want[file]:
            raise RppgEditError(f"{base / file}: sha256 differs from {base / RECORDS_NAME}; {hint}")


def verify_shipped(path: str | os.PathLike) -> None:
    """Checks `path` against `SHA256SUMS` when it lies inside the shipped `PACKAGE_DIR`.

    Paths elsewhere (your own checkpoints, `--checkpoint_dir`) are not checked.

    Raises:
      RppgEditError: a shipped file differs from its record, is missing, or has no record.
    """
    path = pathlib.Path(path).expanduser().resolve()
    if path == PACKAGE_DIR or not path.is_relative_to(PACKAGE_DIR):
        return
    _verified(str(PACKAGE_DIR), path.relative_to(PACKAGE_DIR).as_posix())


def shipped_file(name: str) -> pathlib.Path:
    """Path of a shipped weight file (e.g. `blaze_face.onnx`), checked against its sha256 record.

    Raises:
      RppgEditError: the file is missing or differs from its record.
    """
    path = PACKAGE_DIR / name
    if not path.is_file():
        raise RppgEditError(f"{path}: shipped weight file missing; reinstall rppgedit")
    verify_shipped(path)
    return path


def save_pytree(
    directory: str | os.PathLike,
    tree: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    force: bool = False,
) -> pathlib.Path:
    """Saves a pytree of arrays as an orbax checkpoint at `directory`.

    Orbax writes into `<directory>.orbax-checkpoint-tmp` and renames it when complete, so a reader
    never sees a half-written checkpoint.

    Args:
      directory: the checkpoint folder to create (its parent is created if needed).
      tree: nested dicts of arrays.
      metadata: small JSON-able dict stored with it (provenance, BatchNorm epsilon, ...).
      force: overwrite an existing checkpoint.

    Returns:
      The absolute checkpoint path.
    """
    import orbax.checkpoint as ocp

    path = pathlib.Path(directory).expanduser().resolve()
    if path.exists() and not force:
        raise RppgEditError(f"{path}: checkpoint already exists (pass force=True to overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(path, tree, force=force, custom_metadata=dict(metadata or {}))
            checkpointer.wait_until_finished()
    except OSError as e:
        raise RppgEditError(f"{path}: cannot write checkpoint ({e.strerror or e})") from None
    return path


def _open_checkpoint(path: pathlib.Path):
    import orbax.checkpoint as ocp

    if not (path / "_CHECKPOINT_METADATA").is_file():
        raise RppgEditError(f"{path}: not an orbax checkpoint (missing or incomplete)")
    checkpointer = ocp.StandardCheckpointer()
    try:
        meta = checkpointer.metadata(path)
        if meta is None or meta.item_metadata is None or meta.item_metadata.tree is None:
            raise ValueError("no item metadata")
        return checkpointer, meta
    except Exception as e:  # orbax raises several types (or returns None) for damaged folders
        checkpointer.close()
        raise RppgEditError(f"{path}: unreadable checkpoint ({_reason(e)})") from None


def restore_pytree(directory: str | os.PathLike) -> Any:
    """Restores the pytree saved by `save_pytree`, as arrays on the default device.

    Args:
      directory: the checkpoint folder.

    A checkpoint inside the shipped `PACKAGE_DIR` is first checked against `SHA256SUMS`.

    Returns:
      Nested dicts of `jax.Array` with the stored shapes and dtypes, bit-exact.
    """
    path = pathlib.Path(directory).expanduser().resolve()
    verify_shipped(path)
    checkpointer, meta = _open_checkpoint(path)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
        meta.item_metadata.tree,
    )
    with checkpointer:
        try:
            return checkpointer.restore(path, target)
        except Exception as e:
            raise RppgEditError(f"{path}: unreadable checkpoint ({_reason(e)})") from None


def pytree_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The `metadata` dict stored by `save_pytree` (empty if none); shipped ones checked first."""
    path = pathlib.Path(directory).expanduser().resolve()
    verify_shipped(path)
    checkpointer, meta = _open_checkpoint(path)
    checkpointer.close()
    return dict(meta.custom_metadata or {})


def _check_variant(variant: str, model: str = "PhysNet") -> None:
    if variant not in VARIANTS:
        raise RppgEditError(f"unknown {model} variant {variant!r}; known: {', '.join(VARIANTS)}")


def _open_rppg_file(name: str, model: str) -> pathlib.Path:
    """Path of `rppg/weights/<name>` in the open-rppg install, found without importing `rppg`."""
    spec = _find_spec("rppg")
    if spec is None or not spec.submodule_search_locations:
        raise RppgEditError(
            f"{model} weights {name} not found: open-rppg is not installed; "
            "`pip install open-rppg` (or rppgedit[attackers]) and rerun"
        )
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "weights" / name
    if not path.is_file():
        raise RppgEditError(f"{path}: {model} weight file missing from the open-rppg install")
    return path


def open_rppg_weight_file(variant: Variant) -> pathlib.Path:
    """Path of open-rppg's `physnet.<variant>.weights.h5`, found without importing `rppg`.

    Raises:
      RppgEditError: open-rppg is not installed or the file is missing.
    """
    _check_variant(variant)
    return _open_rppg_file(f"physnet.{variant}.weights.h5", "PhysNet")


def open_rppg_efficientphys_file(variant: Variant) -> pathlib.Path:
    """Path of open-rppg's `EfficientPhys.<variant>.weights.h5`, found without importing `rppg`.

    Raises:
      RppgEditError: open-rppg is not installed or the file is missing.
    """
    _check_variant(variant, "EfficientPhys")
    return _open_rppg_file(f"EfficientPhys.{variant}.weights.h5", "EfficientPhys")


def open_rppg_physformer_file(variant: Variant) -> pathlib.Path:
    """Path of open-rppg's `PhysFormer.<variant>.weights.h5`, found without importing `rppg`.

    Raises:
      RppgEditError: open-rppg is not installed or the file is missing.
    """
    _check_variant(variant, "PhysFormer")
    return _open_rppg_file(f"PhysFormer.{variant}.weights.h5", "PhysFormer")


FACEPHYS_VARIANTS: tuple[str, ...] = ("rlap",)  # open-rppg 0.1.1 ships FacePhys for RLAP only


def _check_facephys_variant(variant: str) -> None:
    if variant == "pure":
        raise RppgEditError(
            "FacePhys variant 'pure' is not available: open-rppg 0.1.1 ships FacePhys weights "
            "trained on RLAP only; use 'rlap'"
        )
    if variant not in FACEPHYS_VARIANTS:
        raise RppgEditError(f"unknown FacePhys variant {variant!r}; known: rlap")


def open_rppg_facephys_file() -> pathlib.Path:
    """Path of open-rppg's `FacePhys.rlap.weights.h5`, found without importing `rppg`.

    Raises:
      RppgEditError: open-rppg is not installed or the file is missing.
    """
    return _open_rppg_file("FacePhys.rlap.weights.h5", "FacePhys")


def _check_layout(variables: Any, expected: Any, source: str, model: str) -> dict[str, Any]:
    """Float32 jax arrays; raises if the tree or any shape differs from `expected`'s."""
    got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), variables)
    want = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, np.float32), expected)
    if jax.tree.structure(got) != jax.tree.structure(want) or jax.tree.leaves(got) != (
        jax.tree.leaves(want)
    ):
        raise RppgEditError(f"{source}: weights do not match the {model} layout")
    return jax.tree.map(lambda a: jax.numpy.asarray(a, np.float32), variables)


def _check_shapes(variables: Any, source: str) -> dict[str, Any]:
    """Float32 jax arrays; raises if the tree or any shape differs from `PhysNet`'s."""
    expected = jax.eval_shape(physnet.init_variables, jax.random.PRNGKey(0))
    return _check_layout(variables, expected, source, "PhysNet")


def _read_keras_h5(path: pathlib.Path, model: str, read) -> dict[str, Any]:
    """`read(f, arr)` on the Keras-3 `.weights.h5` file `path` of open-rppg's `model`, opened with
    h5py: `f` the file, `arr(key)` a dataset as float32 (the files store float16), a missing one a
    one-line error naming the file. Returns what `read` returns."""
    try:
        import h5py
    except ImportError:
        raise RppgEditError(
            f"{path}: reading Keras weights needs h5py: pip install 'rppgedit[convert]'"
        ) from None
    try:
        with h5py.File(path, "r") as f:

            def arr(key):
                if key not in f:
                    raise RppgEditError(
                        f"{path}: no dataset {key!r}; not an open-rppg {model} weight file"
                    )
                return np.asarray(f[key], np.float32)

            return read(f, arr)
    except OSError as e:
        raise RppgEditError(f"{path}: cannot read HDF5 weights ({e})") from None


def _read_keras_layout(path: pathlib.Path, model: str, read, init_variables) -> dict[str, Any]:
    """`_read_keras_h5(path, model, read)`, checked against the tree and shapes of
    `init_variables(key)` (the Flax model's); float32 jax arrays."""
    expected = jax.eval_shape(init_variables, jax.random.PRNGKey(0))
    return _check_layout(_read_keras_h5(path, model, read), expected, str(path), model)


def _read_open_rppg_h5(path: pathlib.Path) -> dict[str, Any]:
    """Flax variables from a Keras-3 `.weights.h5` of open-rppg's PhysNet (float16 -> float32)."""

    def read(f, arr):
        params: dict[str, Any] = {}
        stats: dict[str, Any] = {}

        def block(name, prefix, conv_layer):
            conv = f"{prefix}/layers/{conv_layer}/vars"
            bn = f"{prefix}/layers/batch_normalization/vars"
            params[name] = {
                "conv": {"kernel": arr(f"{conv}/0"), "bias": arr(f"{conv}/1")},
                "bn": {"scale": arr(f"{bn}/0"), "bias": arr(f"{bn}/1")},
            }
            stats[name] = {"bn": {"mean": arr(f"{bn}/2"), "var": arr(f"{bn}/3")}}

        for name in _ENCODER_BLOCKS:
            block(name, name, "conv3d")
        # Keras named the two decoder Sequentials at training time (sequential_9, _10): the
        # lower number is `upsample` (checked numerically against open-rppg's model).
        seq = sorted(
            (k for k in f.get("layers", {}) if re.fullmatch(r"sequential_\d+", k)),
            key=lambda k: int(k.rsplit("_", 1)[1]),
        )
        if len(seq) != 2:
            raise RppgEditError(f"{path}: expected 2 decoder groups under layers/, got {seq}")
        for name, group in zip(_DECODER_BLOCKS, seq, strict=True):
            block(name, f"layers/{group}", "conv3d_transpose")
        params["ConvBlock10"] = {
            "kernel": arr("convBlock10/vars/0"),
            "bias": arr("convBlock10/vars/1"),
        }
        return {"params": params, "batch_stats": stats}

    return _check_shapes(_read_keras_h5(path, "PhysNet", read), str(path))


def convert_open_rppg_physnet(variant: Variant, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Converts open-rppg's PhysNet weights to Flax variables and saves them at `out_dir`.

    Args:
      variant: "pure" (trained on PURE) or "rlap" (trained on RLAP).
      out_dir: the orbax checkpoint folder to write (overwritten if present).

    Returns:
      `{'params', 'batch_stats'}` float32, for `PhysNet(bn_epsilon=KERAS_BN_EPSILON)`.
    """
    path = open_rppg_weight_file(variant)
    variables = _read_open_rppg_h5(path)
    return _save_open_rppg("PhysNet", path, variables, variant, physnet.KERAS_BN_EPSILON, out_dir)


def _save_open_rppg(model: str, path, variables, variant: str, bn_epsilon: float | None, out_dir):
    """Saves `variables` converted from open-rppg's weight file `path` at `out_dir`, with where
    they came from in the checkpoint's metadata (`bn_epsilon` None: a model without BatchNorm);
    returns them."""
    try:
        version = importlib.metadata.version("open-rppg")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    metadata = {
        "model": model,
        "source": f"open-rppg {version}: rppg/weights/{path.name}",
        "sha256": _sha256(path),
        "license": "MIT (open-rppg, Kegang Wang)",
        "trained_on": variant.upper(),
        "bn_epsilon": bn_epsilon,
    }
    save_pytree(out_dir, variables, metadata=metadata, force=True)
    return variables


# Keras layer of each EfficientPhys parameter group in the .weights.h5 files. Keras named the four
# 3x3 convolutions in creation order (mc1..mc4 = conv2d, conv2d_1, conv2d_2, conv2d_3; shapes and
# the parity with open-rppg's model confirm it); the other layers keep their attribute names.
_EFFICIENTPHYS_H5 = {
    "mc1": "layers/conv2d",
    "mc2": "layers/conv2d_1",
    "mc3": "layers/conv2d_2",
    "mc4": "layers/conv2d_3",
    "attc1": "attc1",
    "attc2": "attc2",
    "dense1": "dense1",
    "dense2": "dense2",
}


def _read_open_rppg_efficientphys_h5(path: pathlib.Path) -> dict[str, Any]:
    """Flax variables from a Keras-3 `.weights.h5` of open-rppg's EfficientPhys (float16 -> f32).

    Kernels keep their Keras layout (Conv2D (kh, kw, in, out), Dense (in, out)), which is Flax's.
    The BatchNorm over the 72*72 pixel positions stores gamma, beta, moving mean, moving variance.
    """

    def read(f, arr):
        params: dict[str, Any] = {
            name: {"kernel": arr(f"{layer}/vars/0"), "bias": arr(f"{layer}/vars/1")}
            for name, layer in _EFFICIENTPHYS_H5.items()
        }
        params["bn"] = {"scale": arr("bn/vars/0"), "bias": arr("bn/vars/1")}
        stats = {"bn": {"mean": arr("bn/vars/2"), "var": arr("bn/vars/3")}}
        return {"params": params, "batch_stats": stats}

    return _read_keras_layout(path, "EfficientPhys", read, efficientphys.init_variables)


def convert_open_rppg_efficientphys(variant: Variant, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Converts open-rppg's EfficientPhys weights to Flax variables and saves them at `out_dir`.

    Args:
      variant: "pure" (trained on PURE) or "rlap" (trained on RLAP).
      out_dir: the orbax checkpoint folder to write (overwritten if present).

    Returns:
      `{'params', 'batch_stats'}` float32, for `EfficientPhys(bn_epsilon=KERAS_BN_EPSILON)`.
    """
    path = open_rppg_efficientphys_file(variant)
    variables = _read_open_rppg_efficientphys_h5(path)
    return _save_open_rppg(
        "EfficientPhys", path, variables, variant, efficientphys.KERAS_BN_EPSILON, out_dir
    )


def _keras_numbered(f, parent: str, base: str, count: int) -> list[str]:
    """The `count` groups `base`, `base_1`, `base_2`, ... under `parent` in h5 file `f`, in Keras's
    creation order (the number); raises if there are not exactly `count` of them."""
    group = f.get(parent, {})
    names = [k for k in group if re.fullmatch(rf"{base}(_\d+)?", k)]
    names.sort(key=lambda k: int(k[len(base) + 1 :] or 0))
    if len(names) != count:
        raise RppgEditError(f"{f.filename}: expected {count} {base} groups under {parent}/")
    return [f"{parent}/{k}" for k in names]


def _read_open_rppg_physformer_h5(path: pathlib.Path) -> dict[str, Any]:
    """Flax variables from a Keras-3 `.weights.h5` of open-rppg's PhysFormer (float16 -> f32).

    Keras named the five top-level Sequentials in creation order (`sequential`, `sequential_1`, ...
    = stem0, stem1, stem2, upsample1, upsample2), the three transformers and each one's four blocks
    likewise (blocks 0-3, 4-7, 8-11 here); kernels keep their Keras layout, which is Flax's. The
    final Conv1D kernel (1, 48, 1) becomes a Dense kernel (48, 1).
    """

    def read(f, arr):
        params: dict[str, Any] = {}
        stats: dict[str, Any] = {}

        def bn(prefix):
            stat = {"mean": arr(f"{prefix}/vars/2"), "var": arr(f"{prefix}/vars/3")}
            return {"scale": arr(f"{prefix}/vars/0"), "bias": arr(f"{prefix}/vars/1")}, stat

        def conv_bn(conv, norm):  # a (conv, BatchNorm) pair: params and batch_stats
            p, s = bn(norm)
            return {"kernel": arr(f"{conv}/vars/0")}, p, s

        groups = ("stem0", "stem1", "stem2", "upsample1", "upsample2")
        for name, prefix in zip(groups, _keras_numbered(f, "layers", "sequential", 5), strict=True):
            p, s = bn(f"{prefix}/layers/batch_normalization")
            conv = f"{prefix}/layers/conv3d/vars"
            params[name] = {"conv": {"kernel": arr(f"{conv}/0"), "bias": arr(f"{conv}/1")}, "bn": p}
            stats[name] = {"bn": s}
        params["patch_embedding"] = {
            "kernel": arr("layers/conv3d/vars/0"),
            "bias": arr("layers/conv3d/vars/1"),
        }
        blocks = [
            block
            for group in _keras_numbered(f, "layers", "transformer_st_tdc_gra_sharp", 3)
            for block in _keras_numbered(f, f"{group}/blocks", "block_st_tdc_gra_sharp", 4)
        ]
        for i, prefix in enumerate(blocks):
            block: dict[str, Any] = {"attn": {}, "pwff": {}}
            stat: dict[str, Any] = {"attn": {}, "pwff": {}}
            for qk in ("q", "k"):
                seq = f"{prefix}/attn/proj_{qk}/layers"
                conv, p, s = conv_bn(f"{seq}/cdc", f"{seq}/batch_normalization")
                block["attn"][f"proj_{qk}"], block["attn"][f"bn_{qk}"] = conv, p
                stat["attn"][f"bn_{qk}"] = s
            block["attn"]["proj_v"] = {"kernel": arr(f"{prefix}/attn/proj_v/layers/conv3d/vars/0")}
            for part in ("fc1", "stconv", "fc2"):
                seq = f"{prefix}/pwff/{'STConv' if part == 'stconv' else part}/layers"
                conv, p, s = conv_bn(f"{seq}/conv3d", f"{seq}/batch_normalization")
                block["pwff"][part], block["pwff"][f"{part}_bn"] = conv, p
                stat["pwff"][f"{part}_bn"] = s
            for layer in ("norm1", "norm2", "proj"):
                names = ("kernel", "bias") if layer == "proj" else ("scale", "bias")
                block[layer] = {n: arr(f"{prefix}/{layer}/vars/{j}") for j, n in enumerate(names)}
            params[f"block{i}"], stats[f"block{i}"] = block, stat
        params["last"] = {
            "kernel": arr("ConvBlockLast/vars/0").reshape(-1, 1),
            "bias": arr("ConvBlockLast/vars/1"),
        }
        return {"params": params, "batch_stats": stats}

    return _read_keras_layout(path, "PhysFormer", read, physformer.init_variables)


def convert_open_rppg_physformer(variant: Variant, out_dir: str | os.PathLike) -> dict[str, Any]:
    """`convert_open_rppg_efficientphys` for PhysFormer: `{'params', 'batch_stats'}` float32, for
    `PhysFormer(bn_epsilon=KERAS_BN_EPSILON)`."""
    path = open_rppg_physformer_file(variant)
    variables = _read_open_rppg_physformer_h5(path)
    return _save_open_rppg(
        "PhysFormer", path, variables, variant, physformer.KERAS_BN_EPSILON, out_dir
    )


def _read_open_rppg_facephys_h5(path: pathlib.Path) -> dict[str, Any]:
    """Flax variables from the Keras-3 `.weights.h5` of open-rppg's FacePhys (float16 -> f32).

    Keras named the four blocks `ssc_block`, `ssc_block_1`, ... and each block's two layers
    `ss_conv`, `ss_conv_1` in creation order (the block order); the head's SSMs likewise
    (`ss_mr_ppg`, `ss_mr_ppg_1`). Kernels and the SSMs' own variables keep their Keras shapes; an
    SSM's unnamed `vars/0`..`vars/4` are, in creation order, A_log, dt_bias, D, init_conv_state and
    init_ssm_state, a TNM's lbd, gamma, beta, xmean and x2mean.
    """

    def read(f, arr):
        def dense(prefix, bias=True):
            out = {"kernel": arr(f"{prefix}/vars/0")}
            return {**out, "bias": arr(f"{prefix}/vars/1")} if bias else out

        def ssm(prefix):
            names = ("A_log", "dt_bias", "D", "init_conv_state", "init_ssm_state")
            out = {name: arr(f"{prefix}/vars/{i}") for i, name in enumerate(names)}
            out["conv1d_kernel"] = arr(f"{prefix}/conv1d/vars/0")
            out["conv1d_bias"] = arr(f"{prefix}/conv1d/vars/1")
            for name in ("in_proj", "norm", "out_proj"):
                out[name] = arr(f"{prefix}/{name}/vars/0")
            return out

        def ssconv(prefix):
            tn = ("lbd", "gamma", "beta", "xmean", "x2mean")
            return {
                "tn": {name: arr(f"{prefix}/tn/vars/{i}") for i, name in enumerate(tn)},
                "conv1": dense(f"{prefix}/conv1/layers/conv2d"),
                "dense": dense(f"{prefix}/conv1/layers/dense"),
                "ssm": ssm(f"{prefix}/ssm"),
                "proj": dense(f"{prefix}/proj", bias=False),
                "conv2": dense(f"{prefix}/conv2"),
            }

        params: dict[str, Any] = {}
        blocks = _keras_numbered(f, "layers/sequential/layers", "ssc_block", facephys.NUM_BLOCKS)
        for i, prefix in enumerate(blocks):
            layers = _keras_numbered(
                f, f"{prefix}/ssc/layers", "ss_conv", facephys.LAYERS_PER_BLOCK
            )
            params[f"block{i}"] = {
                "in_proj": dense(f"{prefix}/in_proj", bias=False),
                **{f"ssconv{j}": ssconv(layer) for j, layer in enumerate(layers)},
                "ds_kernel": arr(f"{prefix}/ds/vars/0"),
                "ds_bias": arr(f"{prefix}/ds/vars/1"),
            }
        params["out_proj"] = dense("layers/sequential_1/layers/dense", bias=False)
        for i, prefix in enumerate(_keras_numbered(f, "head/layers", "ss_mr_ppg", 2)):
            params[f"head_ssm{i}"] = ssm(prefix)
        params["head_dense"] = dense("head/layers/dense")
        return {"params": params}

    return _read_keras_layout(path, "FacePhys", read, facephys.init_variables)


def convert_open_rppg_facephys(variant: str, out_dir: str | os.PathLike) -> dict[str, Any]:
    """`convert_open_rppg_efficientphys` for FacePhys ("rlap", the only variant open-rppg ships):
    `{'params'}` float32, for `rppgedit.models.facephys.FacePhys`."""
    _check_facephys_variant(variant)
    path = open_rppg_facephys_file()
    variables = _read_open_rppg_facephys_h5(path)
    return _save_open_rppg("FacePhys", path, variables, variant, None, out_dir)


def _torch_state_dict_to_variables(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Flax variables from a PyTorch `PhysNet_padding_Encoder_Decoder_MAX` state dict (numpy)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}

    def arr(key):
        if key not in state:
            raise RppgEditError(f"{source}: no tensor {key!r}; not a PhysNet state dict")
        return np.asarray(state[key], np.float32)

    params: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for name in _ENCODER_BLOCKS + _DECODER_BLOCKS:
        # One permutation serves both: Conv3d (out,in,D,H,W) -> (D,H,W,in,out) and
        # ConvTranspose3d (in,out,D,H,W) -> (D,H,W,out,in).
        kernel = arr(f"{name}.0.weight").transpose(2, 3, 4, 1, 0)
        params[name] = {
            "conv": {"kernel": kernel, "bias": arr(f"{name}.0.bias")},
            "bn": {"scale": arr(f"{name}.1.weight"), "bias": arr(f"{name}.1.bias")},
        }
        stats[name] = {
            "bn": {"mean": arr(f"{name}.1.running_mean"), "var": arr(f"{name}.1.running_var")}
        }
    params["ConvBlock10"] = {
        "kernel": arr("ConvBlock10.weight").transpose(2, 3, 4, 1, 0),
        "bias": arr("ConvBlock10.bias"),
    }
    return _check_shapes({"params": params, "batch_stats": stats}, source)


def convert_torch_physnet(
    pth_path: str | os.PathLike, out_dir: str | os.PathLike
) -> dict[str, Any]:
    """Converts an rPPG-Toolbox-style PyTorch PhysNet state dict and saves it at `out_dir`.

    Conv3d weights (out,in,D,H,W) become (D,H,W,in,out); ConvTranspose3d weights (in,out,D,H,W)
    become (D,H,W,out,in) for `transpose_kernel=True`. A `module.` prefix (DataParallel) is dropped.
    Use the result with `bn_epsilon=TORCH_BN_EPSILON` (recorded in the checkpoint metadata), and with
    the input normalisation the weights were trained with.

    Args:
      pth_path: a `.pth` file holding a state dict (or `{'state_dict': ...}`).
      out_dir: the orbax checkpoint folder to write (overwritten if present).

    Returns:
      `{'params', 'batch_stats'}` float32.
    """
    try:
        import torch
    except ImportError:
        raise RppgEditError("converting PyTorch weights needs torch: `pip install torch`") from None
    path = pathlib.Path(pth_path).expanduser()
    if not path.is_file():
        raise RppgEditError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise RppgEditError(
            f"{path}: cannot load a PyTorch state dict ({type(e).__name__})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise RppgEditError(f"{path}: not a PyTorch state dict")
    numpy_state = {
        k: v.detach().float().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")
    }
    variables = _torch_state_dict_to_variables(numpy_state, str(path))
    metadata = {
        "model": "PhysNet",
        "source": f"PyTorch state dict {path.name}",
        "sha256": _sha256(path),
        "bn_epsilon": physnet.TORCH_BN_EPSILON,
    }
    save_pytree(out_dir, variables, metadata=metadata, force=True)
    return variables


def _checkpoint_root(checkpoint_dir: str | os.PathLike | None) -> pathlib.Path:
    root = default_checkpoint_dir() if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
    return root.expanduser().resolve()


def load_physnet(
    variant: Variant, checkpoint_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """PhysNet variables `{'params', 'batch_stats'}` from `checkpoint_dir/physnet_<variant>`.

    Without a named folder the shipped checkpoint is read (checked against `SHA256SUMS`). A
    checkpoint missing from the folder is looked for in the user's cache and, failing that,
    converted there from open-rppg's weights when open-rppg is installed (logged). Cached per
    process.

    Args:
      variant: "pure" or "rlap".
      checkpoint_dir: folder of checkpoints; `default_checkpoint_dir()` when None.

    Raises:
      RppgEditError: the checkpoint is missing (and open-rppg is not installed), or a shipped one
        differs from its record.
    """
    return _load_open_rppg("physnet", variant, checkpoint_dir)


def load_efficientphys(
    variant: Variant, checkpoint_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """EfficientPhys `{'params', 'batch_stats'}` from `checkpoint_dir/efficientphys_<variant>`.

    As `load_physnet`: without a named folder the shipped checkpoint is read if there is one
    (checked against `SHA256SUMS`); a missing checkpoint is looked for in the user's cache and,
    failing that, converted there from open-rppg's weights when open-rppg is installed (logged).
    Cached per process.

    Args:
      variant: "pure" or "rlap".
      checkpoint_dir: folder of checkpoints; `default_checkpoint_dir()` when None.

    Raises:
      RppgEditError: the checkpoint is missing (and open-rppg is not installed), or a shipped one
        differs from its record.
    """
    return _load_open_rppg("efficientphys", variant, checkpoint_dir)


def load_physformer(
    variant: Variant, checkpoint_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """PhysFormer `{'params', 'batch_stats'}` from `checkpoint_dir/physformer_<variant>`, as
    `load_efficientphys` (not shipped: converted from open-rppg's weights on first use)."""
    return _load_open_rppg("physformer", variant, checkpoint_dir)


def load_facephys(
    variant: str = "rlap", checkpoint_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """FacePhys `{'params'}` from `checkpoint_dir/facephys_rlap`.

    As `load_efficientphys`: not shipped; converted into the user's cache from open-rppg's weights
    on first use (logged) when the folder has no such checkpoint. Cached per process.

    Args:
      variant: "rlap", the only FacePhys weights open-rppg ships ("pure" is refused).
      checkpoint_dir: folder of checkpoints; `default_checkpoint_dir()` when None.

    Raises:
      RppgEditError: an unknown variant, the checkpoint is missing (and open-rppg is not
        installed), or a shipped one differs from its record.
    """
    _check_facephys_variant(variant)
    return _load_open_rppg("facephys", variant, checkpoint_dir)


# What to do when a model's weights, converted on first use, are missing without open-rppg.
_FIRST_USE_HINT = (
    "they are converted from open-rppg's on first use: `pip install open-rppg` (or "
    "rppgedit[attackers]) and rerun"
)

# Folder prefix of each model converted from open-rppg: its name, converter, and what to do when
# its weights are missing and open-rppg is not installed.
_OPEN_RPPG_MODELS = {
    "physnet": (
        "PhysNet",
        convert_open_rppg_physnet,
        "convert them with `python -m rppgedit.main --mode=convert --source=open_rppg:{variant}` "
        "after `pip install open-rppg`",
    ),
    "efficientphys": ("EfficientPhys", convert_open_rppg_efficientphys, _FIRST_USE_HINT),
    "physformer": ("PhysFormer", convert_open_rppg_physformer, _FIRST_USE_HINT),
    "facephys": ("FacePhys", convert_open_rppg_facephys, _FIRST_USE_HINT),
}


def _load_open_rppg(model: str, variant: str, checkpoint_dir) -> dict[str, Any]:
    """`load_physnet` / `load_efficientphys` for `model`, a key of `_OPEN_RPPG_MODELS`."""
    _check_variant(variant, _OPEN_RPPG_MODELS[model][0])
    named = checkpoint_dir is not None or bool(os.environ.get("RPPGEDIT_CHECKPOINTS"))
    return _load_cached(model, variant, str(_checkpoint_root(checkpoint_dir)), named)


@functools.lru_cache(maxsize=16)
def _load_cached(model: str, variant: str, root: str, named: bool = True) -> dict[str, Any]:
    """`_load_open_rppg`'s checkpoint, read once per process (converted first when missing)."""
    title, convert, hint = _OPEN_RPPG_MODELS[model]
    path = pathlib.Path(root) / f"{model}_{variant}"
    if path.exists():
        return restore_pytree(path)
    if not named:  # convert into the user's cache, never into the installed package
        path = cache_checkpoint_dir().expanduser().resolve() / f"{model}_{variant}"
        if path.exists():
            return restore_pytree(path)
    if _find_spec("rppg") is None:
        raise RppgEditError(f"{title} weights not found at {path}; {hint.format(variant=variant)}")
    _log.info("converting open-rppg %s (%s) weights to %s", title, variant, path)
    convert(variant, path)
    return restore_pytree(path)


def run_convert(source: str, checkpoint_dir: str | os.PathLike | None) -> pathlib.Path:
    """Converts third-party PhysNet weights into `checkpoint_dir` (the `--mode=convert` entry).

    Args:
      source: `open_rppg:pure`, `open_rppg:rlap` or `torch:/path/model.pth`.
      checkpoint_dir: folder to write into; None: `$RPPGEDIT_CHECKPOINTS`, else the user's cache
        (`cache_checkpoint_dir`), never the installed package's shipped weights.

    Returns:
      The written checkpoint: `physnet_<variant>` or `physnet_torch_<file stem>`.
    """
    kind, sep, arg = source.partition(":")
    if checkpoint_dir is None and not os.environ.get("RPPGEDIT_CHECKPOINTS"):
        checkpoint_dir = cache_checkpoint_dir()
    root = _checkpoint_root(checkpoint_dir)
    if sep and kind == "open_rppg":
        _check_variant(arg)
        out = root / f"physnet_{arg}"
        convert_open_rppg_physnet(arg, out)  # type: ignore[arg-type]
    elif sep and kind == "torch" and arg:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", pathlib.Path(arg).stem)
        out = root / f"physnet_torch_{stem}"
        convert_torch_physnet(arg, out)
    else:
        raise RppgEditError(
            f"unknown weight source {source!r}; use open_rppg:pure, open_rppg:rlap or "
            "torch:/path/model.pth"
        )
    _load_cached.cache_clear()
    return out
