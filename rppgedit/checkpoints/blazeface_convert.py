"""Converts the shipped `blaze_face.onnx` into `blaze_face.npz`, the weights of the Flax BlazeFace.

Run once by the maintainers (the shipped `blaze_face.npz` was made so, then recorded in
`SHA256SUMS`):

    python -c "from rppgedit.checkpoints import blazeface_convert as c; c.convert_blazeface()"

It needs the `onnx` package (the optional `[convert]` extra), imported only here. Each Conv node of
the graph is named by tf2onnx after its TensorFlow layer (`conv2d`, `depthwise_conv2d_<k>`,
`conv2d_<k>`, `classificator_8`, `regressor_16`, ...); the names are mapped onto the Flax modules of
`rppgedit.video.blazeface`, the stride, padding and group count of every node are checked against
that module, and the kernels go from ONNX's (out, in / groups, kh, kw) to Flax's
(kh, kw, in / groups, out). The .npz holds one float32 array per Flax parameter, named by its path
(`stem/kernel`, `block03/depthwise/bias`, `regressor_16/kernel`, ...), written with fixed zip
timestamps so that the same .onnx always gives the same bytes.
"""

from __future__ import annotations

import io
import pathlib
import re
import zipfile
from typing import Any

import numpy as np

from rppgedit.errors import RppgEditError
from rppgedit.video import blazeface

ONNX_NAME = "blaze_face.onnx"


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise RppgEditError(
            "converting blaze_face.onnx needs the onnx package: pip install onnx "
            "(or rppgedit[convert])"
        ) from None
    return onnx, numpy_helper


def _module_of(node_name: str) -> str | None:
    """The Flax module path of a tf2onnx Conv output name, None if it is not one of BlazeFace's."""
    if node_name == "conv2d":
        return "stem"
    if match := re.fullmatch(r"(classificator|regressor)_(8|16)", node_name):
        kind = "classifier" if match[1] == "classificator" else "regressor"
        return f"{kind}_{match[2]}"
    if match := re.fullmatch(r"depthwise_conv2d(?:_(\d+))?", node_name):
        return f"block{int(match[1] or 0) + 1:02d}/depthwise"
    if match := re.fullmatch(r"conv2d_(\d+)", node_name):
        return f"block{int(match[1]):02d}/pointwise"
    return None


def _expected_attributes(module: str) -> dict[str, list[int]]:
    """Stride, ONNX pads (top, left, bottom, right) and group count the Flax module assumes."""
    if module == "stem":
        return {"strides": [2, 2], "pads": [1, 1, 2, 2], "group": 1}
    if module.endswith("/depthwise"):
        index = int(module[len("block") : len("block") + 2]) - 1
        features, stride = blazeface.BLOCKS[index]
        channels = blazeface.BLOCKS[index - 1][0] if index else blazeface.STEM_FEATURES
        pads = [1, 1, 1, 1] if stride == 1 else [0, 0, 1, 1]
        return {"strides": [stride, stride], "pads": pads, "group": channels}
    return {"strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1}


def onnx_to_arrays(onnx_path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """{"stem/kernel": float32 array (Flax layout), ...} read from a BlazeFace short-range .onnx.

    Raises:
      RppgEditError: `onnx` is not installed, the file is unreadable, or its graph is not the
        short-range BlazeFace that `rppgedit.video.blazeface.BlazeFace` reproduces.
    """
    onnx, numpy_helper = _import_onnx()
    path = pathlib.Path(onnx_path)
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, OSError, ...
        raise RppgEditError(f"{path}: cannot read ONNX model ({type(err).__name__})") from None
    graph = model.graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    arrays: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        module = _module_of(node.output[0])
        if module is None or module + "/kernel" in arrays:
            raise RppgEditError(f"{path}: unexpected Conv node {node.output[0]!r} for BlazeFace")
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attributes.setdefault("pads", [0, 0, 0, 0])
        for key, want in _expected_attributes(module).items():
            have = attributes.get(key)
            have = list(have) if isinstance(have, list | tuple) else have
            if have != want:
                raise RppgEditError(f"{path}: {node.output[0]} has {key}={have}, expected {want}")
        kernel, bias = (initializers[name] for name in node.input[1:3])
        arrays[module + "/kernel"] = np.ascontiguousarray(
            np.transpose(kernel, (2, 3, 1, 0)), np.float32
        )
        arrays[module + "/bias"] = np.asarray(bias, np.float32)
    blazeface.params_from_arrays(arrays, str(path))  # names and shapes, or a one-line error
    return arrays


def write_npz(arrays: dict[str, Any], npz_path: str | pathlib.Path) -> pathlib.Path:
    """Writes `arrays` as an uncompressed .npz (what `np.savez` writes) with fixed timestamps."""
    path = pathlib.Path(npz_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue())
    tmp.replace(path)
    return path


def convert_blazeface(
    npz_path: str | pathlib.Path | None = None, onnx_path: str | pathlib.Path | None = None
) -> pathlib.Path:
    """Converts BlazeFace's .onnx into the .npz that `rppgedit.video.blazeface.load_params` reads.

    Args:
      npz_path: where to write; None: `blaze_face.npz` beside this module (the shipped file: record
        it afterwards with `rppgedit.checkpoints.write_records()`).
      onnx_path: the source; None: the shipped `blaze_face.onnx` (checked against its record).

    Returns:
      The written path.
    """
    from rppgedit import checkpoints

    source = pathlib.Path(onnx_path) if onnx_path else checkpoints.shipped_file(ONNX_NAME)
    target = pathlib.Path(npz_path) if npz_path else checkpoints.PACKAGE_DIR / blazeface.PARAMS_NAME
    return write_npz(onnx_to_arrays(source), target)
