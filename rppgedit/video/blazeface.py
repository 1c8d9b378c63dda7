"""BlazeFace short range in Flax: the network of the shipped `blaze_face.onnx`, run by XLA.

Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs", CVPR-W 2019.
The layers are those of MediaPipe's `face_detection_short_range.tflite` as converted to ONNX by
tf2onnx 1.16.1 (`rppgedit/checkpoints/blaze_face.onnx`), read off that graph one node at a time
(NHWC here, NCHW there):

  input (N, 128, 128, 3) float32 in [-1, 1] (the graph does no normalisation of its own)
  stem: 5x5 conv, stride 2, 3 -> 24 channels, padding (1, 2) on both axes, ReLU      -> 64x64
  16 BlazeBlocks, each ReLU(depthwise 3x3 -> pointwise 1x1 (both with bias) + shortcut):
    stride 1: depthwise padding (1, 1); shortcut = the input
    stride 2: depthwise padding (0, 1) (TensorFlow's SAME); shortcut = 2x2 max-pool, stride 2
    more output channels than input: the shortcut gets zero channels appended at the end
    channels 24,24,28 | 32,36,42 | 48,56,64,72,80,88 | 96,96,96,96,96, strides 2 at 28->32,
    42->48 and 88->96                                           -> 16x16x88 and 8x8x96 maps
  heads (1x1 convs with bias): on the 16x16x88 map `classifier_8` (2 = 2 anchors x 1 logit) and
    `regressor_8` (32 = 2 anchors x 16), on the 8x8x96 map `classifier_16` (6 x 1) and
    `regressor_16` (96 = 6 x 16)
  outputs: each head reshaped row-major from NHWC to (N, H*W*anchors, values) and the stride-8
    rows placed before the stride-16 rows: regressors (N, 896, 16), logits (N, 896) (the ONNX
    output `classificators` (1, 896, 1) without its last axis).

The weights come from `blaze_face.npz` (`load_params`), converted once from the .onnx file by
`rppgedit.checkpoints.blazeface_convert` (74 arrays, 101,390 float32 values). The ONNX file's batch
size is fixed to 1; `predict` takes any batch. `tests/blazeface_test.py` compares both outputs with
ONNX Runtime's (raw outputs and decoded boxes): equal to float32 rounding.

Two layers are written for XLA CPU rather than as `nn.Conv` (the sums are the same, the parameter
shapes those of the convolutions): the stem as a 3x3 convolution over 2x2 space-to-depth blocks
(`Stem`; XLA's direct 5x5 stride-2 convolution with 3 input channels took 2.4 of 3.6 ms a frame),
and the depthwise 3x3 convolutions as nine shifted multiply-adds (`DepthwiseConv3x3`). Grouped
convolutions (`feature_group_count`) were 5x slower on XLA CPU, and in jaxlib 0.10.2 the jitted
network with stride-2 grouped convolutions returned wrong values (regressors off by up to 57;
right when run layer by layer), which the parity test caught.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from rppgedit import program_cache
from rppgedit.errors import RppgEditError

INPUT_SIZE = 128
PARAMS_NAME = "blaze_face.npz"  # the converted weights, shipped in rppgedit/checkpoints/
STEM_FEATURES = 24
# (output channels, stride) of the 16 BlazeBlocks; the first one's input has STEM_FEATURES.
BLOCKS = (
    (24, 1),
    (28, 1),
    (32, 2),
    (36, 1),
    (42, 1),
    (48, 2),
    (56, 1),
    (64, 1),
    (72, 1),
    (80, 1),
    (88, 1),
    (96, 2),
    (96, 1),
    (96, 1),
    (96, 1),
    (96, 1),
)
STRIDE_8_BLOCKS = 11  # the first 11 blocks give the 16x16 map (stride 8) that feeds `*_8` heads
ANCHORS_PER_CELL = {8: 2, 16: 6}  # output stride -> anchors per grid cell
NUM_COORDS = 16  # per anchor: (dx, dy, w, h) and six (x, y) keypoints


class Stem(nn.Module):
    """ReLU of a 5x5 stride-2 convolution, padding (1, 2), of (N, 128, 128, 3) -> (N, 64, 64, F).

    Computed as a 3x3 stride-1 convolution of the 2x2 space-to-depth blocks (12 channels) of the
    input padded by (1, 3), with the kernel padded to 6x6 by zeros: the same products and zeros.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, height, width, channels = x.shape
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (5, 5, channels, self.features), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x = jnp.pad(x, ((0, 0), (1, 3), (1, 3), (0, 0)))
        rows, cols = (height + 4) // 2, (width + 4) // 2
        x = x.reshape(n, rows, 2, cols, 2, channels).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(n, rows, cols, 4 * channels)
        kernel = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
        kernel = kernel.reshape(3, 2, 3, 2, channels, self.features).transpose(0, 2, 1, 3, 4, 5)
        kernel = kernel.reshape(3, 3, 4 * channels, self.features)
        y = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return nn.relu(y + bias.reshape(1, 1, 1, self.features))


class DepthwiseConv3x3(nn.Module):
    """Depthwise 3x3 convolution with bias, TensorFlow SAME padding: (1, 1) at stride 1, (0, 1)
    at stride 2; computed as nine shifted multiply-adds. Kernel (3, 3, 1, C) as `nn.Conv`'s."""

    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, height, width, channels = x.shape
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (3, 3, 1, channels), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (channels,), jnp.float32)
        before = 1 if self.stride == 1 else 0
        x = jnp.pad(x, ((0, 0), (before, 1), (before, 1), (0, 0)))
        out_h, out_w = height // self.stride, width // self.stride
        taps = kernel.reshape(3, 3, 1, 1, 1, channels)  # each tap's weights as (1, 1, 1, C)
        out = bias.reshape(1, 1, 1, channels)
        for dy in range(3):
            for dx in range(3):
                tap = jax.lax.slice(
                    x,
                    (0, dy, dx, 0),
                    (
                        n,
                        dy + self.stride * (out_h - 1) + 1,
                        dx + self.stride * (out_w - 1) + 1,
                        channels,
                    ),
                    (1, self.stride, self.stride, 1),
                )
                out = out + tap * taps[dy, dx]
        return out


class BlazeBlock(nn.Module):
    """ReLU(pointwise(depthwise(x)) + shortcut(x)), the shortcut max-pooled and zero-padded."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        y = DepthwiseConv3x3(self.stride, name="depthwise")(x)
        y = nn.Conv(self.features, (1, 1), name="pointwise")(y)
        shortcut = x
        if self.stride == 2:
            shortcut = nn.max_pool(shortcut, (2, 2), strides=(2, 2))
        if self.features > channels:
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, self.features - channels)))
        return nn.relu(y + shortcut)


class BlazeFace(nn.Module):
    """The short-range BlazeFace network: (N, 128, 128, 3) in [-1, 1] -> raw outputs.

    Returns (regressors float32 (N, 896, 16), logits float32 (N, 896)), anchors in the order of
    `rppgedit.video.face.make_anchors` (stride 8 first, row-major, a cell's anchors consecutive).
    """

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = Stem(STEM_FEATURES, name="stem")(images)
        maps = {}
        for i, (features, stride) in enumerate(BLOCKS):
            x = BlazeBlock(features, stride, name=f"block{i + 1:02d}")(x)
            if i + 1 == STRIDE_8_BLOCKS:
                maps[8] = x
        maps[16] = x
        regressors, logits = [], []
        for stride, feature_map in maps.items():
            per_cell = ANCHORS_PER_CELL[stride]
            n = feature_map.shape[0]
            cls = nn.Conv(per_cell, (1, 1), name=f"classifier_{stride}")(feature_map)
            reg = nn.Conv(per_cell * NUM_COORDS, (1, 1), name=f"regressor_{stride}")(feature_map)
            logits.append(cls.reshape(n, -1))
            regressors.append(reg.reshape(n, -1, NUM_COORDS))
        return jnp.concatenate(regressors, axis=1), jnp.concatenate(logits, axis=1)


# p / 127.5 - 1 for every uint8 value p, rounded as NumPy rounds it in `face._letterbox` (XLA may
# turn a division by a constant into a multiplication, one ulp off; a table lookup is exact).
_UINT8_TO_INPUT = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def normalise(images: jax.Array) -> jax.Array:
    """The network's input: uint8 pixels p become p / 127.5 - 1 (float32, bit for bit as
    `face._letterbox` computes it); float images are taken as already in [-1, 1], cast to float32."""
    if images.dtype == jnp.uint8:
        return jnp.asarray(_UINT8_TO_INPUT)[images]
    return images.astype(jnp.float32)


@functools.partial(program_cache.cached_program, name="blazeface.predict")
@jax.jit
def predict(params: Mapping[str, Any], images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """BlazeFace's raw outputs for a batch of letterboxed 128x128 RGB images.

    Args:
      params: the network's parameters (`load_params()`), a `{"params": ...}` Flax tree.
      images: (N, 128, 128, 3), uint8 pixels or float in [-1, 1] (see `normalise`).

    Returns:
      (regressors float32 (N, 896, 16), logits float32 (N, 896)): what ONNX Runtime returns for
      `blaze_face.onnx` (`regressors`, `classificators[..., 0]`), one image at a time.
    """
    if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"BlazeFace expects (N, 128, 128, 3) images, got {images.shape}")
    return BlazeFace().apply(params, normalise(images))


def _np_conv1x1(x: np.ndarray, params: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    n, h, w, c = x.shape
    y = x.reshape(-1, c) @ params[f"{name}/kernel"].reshape(c, -1)
    return y.reshape(n, h, w, -1) + params[f"{name}/bias"]


def _np_depthwise(x: np.ndarray, params: Mapping[str, np.ndarray], name: str, stride: int):
    n, h, w, c = x.shape
    before = 1 if stride == 1 else 0
    x = np.pad(x, ((0, 0), (before, 1), (before, 1), (0, 0)))
    out_h, out_w = h // stride, w // stride
    kernel = params[f"{name}/kernel"]
    out = np.broadcast_to(params[f"{name}/bias"], (n, out_h, out_w, c)).copy()
    for dy in range(3):
        for dx in range(3):
            rows = slice(dy, dy + stride * (out_h - 1) + 1, stride)
            cols = slice(dx, dx + stride * (out_w - 1) + 1, stride)
            out += x[:, rows, cols] * kernel[dy, dx, 0]
    return out


def _np_stem(x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    n, h, w, c = x.shape
    x = np.pad(x, ((0, 0), (1, 2), (1, 2), (0, 0)))
    out_h, out_w = h // 2, w // 2
    taps = np.empty((n, out_h, out_w, 5, 5, c), np.float32)
    for dy in range(5):
        for dx in range(5):
            taps[:, :, :, dy, dx] = x[:, dy : dy + 2 * out_h - 1 : 2, dx : dx + 2 * out_w - 1 : 2]
    y = taps.reshape(-1, 25 * c) @ params["stem/kernel"].reshape(25 * c, -1)
    return np.maximum(y.reshape(n, out_h, out_w, -1) + params["stem/bias"], 0)


def predict_numpy(params: Mapping[str, Any], images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`predict` computed by NumPy, layer for layer the same network (equal to float32 rounding).

    For detection beside running JAX work on the same CPU (the live mode tracks faces while the
    edit of earlier windows is in flight): XLA runs one device's programs in order, so a jitted
    detection waits for every edit program dispatched before it (2 s behind a 2 s program,
    measured), where NumPy starts at once (6 ms a frame alone, 12 ms beside that program).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"BlazeFace expects (N, 128, 128, 3) images, got {images.shape}")
    flat = traverse_util.flatten_dict(dict(params["params"]), sep="/")
    flat = {name: np.asarray(leaf, np.float32) for name, leaf in flat.items()}  # NumPy: no copy
    if images.dtype == np.uint8:
        x = _UINT8_TO_INPUT[images]
    else:
        x = images.astype(np.float32)
    x = _np_stem(x, flat)
    maps = {}
    for i, (features, stride) in enumerate(BLOCKS):
        name, channels = f"block{i + 1:02d}", x.shape[-1]
        y = _np_depthwise(x, flat, f"{name}/depthwise", stride)
        y = _np_conv1x1(y, flat, f"{name}/pointwise")
        shortcut = x
        if stride == 2:
            n, h, w, _ = x.shape
            shortcut = x.reshape(n, h // 2, 2, w // 2, 2, channels).max(axis=(2, 4))
        if features > channels:
            shortcut = np.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, features - channels)))
        x = np.maximum(y + shortcut, 0)
        if i + 1 == STRIDE_8_BLOCKS:
            maps[8] = x
    maps[16] = x
    regressors, logits = [], []
    for stride, feature_map in maps.items():
        n = feature_map.shape[0]
        logits.append(_np_conv1x1(feature_map, flat, f"classifier_{stride}").reshape(n, -1))
        reg = _np_conv1x1(feature_map, flat, f"regressor_{stride}")
        regressors.append(reg.reshape(n, -1, NUM_COORDS))
    return np.concatenate(regressors, axis=1), np.concatenate(logits, axis=1)


def param_shapes() -> dict[str, tuple[int, ...]]:
    """{"stem/kernel": (5, 5, 3, 24), ...}: every parameter's name and shape (Flax layout)."""
    shapes = jax.eval_shape(
        BlazeFace().init,
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32),
    )
    flat = traverse_util.flatten_dict(dict(shapes["params"]), sep="/")
    return {name: tuple(leaf.shape) for name, leaf in flat.items()}


def params_from_arrays(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, Any]:
    """The Flax tree `{"params": ...}` from flat arrays named as `param_shapes()`.

    Raises:
      RppgEditError: a name is missing or extra, or a shape differs (naming `source`).
    """
    want = param_shapes()
    missing, extra = sorted(set(want) - set(arrays)), sorted(set(arrays) - set(want))
    if missing or extra:
        raise RppgEditError(
            f"{source}: not BlazeFace short-range weights (missing {missing[:3]}, extra {extra[:3]})"
        )
    for name, shape in want.items():
        if tuple(np.shape(arrays[name])) != shape:
            raise RppgEditError(
                f"{source}: {name} has shape {np.shape(arrays[name])}, BlazeFace needs {shape}"
            )
    return _tree(arrays)


def _tree(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    # device_put, not jnp.asarray: that compiles a copy program for each of the 74 shapes (0.35 s)
    flat = jax.device_put({name: np.asarray(a, np.float32) for name, a in arrays.items()})
    return {"params": traverse_util.unflatten_dict(flat, sep="/")}


def params_path() -> pathlib.Path:
    """Path of the shipped `blaze_face.npz`, checked against its sha256 record."""
    from rppgedit import checkpoints  # lazy: the checkpoints package loads orbax helpers

    return checkpoints.shipped_file(PARAMS_NAME)


def load_params(path: str | pathlib.Path | None = None) -> dict[str, Any]:
    """BlazeFace's parameters from a converted .npz (default: the shipped `blaze_face.npz`).

    Args:
      path: an .npz written by `rppgedit.checkpoints.blazeface_convert.convert_blazeface`;
        None: the shipped file (`params_path()`, checked against its sha256 record).

    Returns:
      `{"params": {...}}` of float32 arrays, for `predict`.

    Raises:
      RppgEditError: the file is missing, unreadable or not BlazeFace weights.
    """
    shipped = path is None
    path = pathlib.Path(path) if path is not None else params_path()
    if not path.is_file():
        raise RppgEditError(f"{path}: BlazeFace weight file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise RppgEditError(f"{path}: cannot read BlazeFace weights ({err})") from None
    if shipped:  # its sha256 is the file's whose names and shapes the tests check: no trace of
        return _tree(arrays)  # the model for `param_shapes` (0.4 s of every edit's start)
    return params_from_arrays(arrays, str(path))
