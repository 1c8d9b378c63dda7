"""Pasting, quantising and comparing only where the faces can change the pixels.

`pipeline.paste_chunk` works on the rectangles that the faces' boxes reach; these tests hold it to
the bits of the whole-frame paste it replaced (`_paste_whole_frames`, kept here as the reference),
`quantise.quantize(window=)` to the numbers the whole frames draw, and `metrics.ssim(changed=)` and the
report's `edit_report.Fidelity` to the whole-frame PSNR and SSIM.
"""

import jax
import numpy as np
import pytest

from rppgedit import edit_report, metrics, pipeline
from rppgedit.video import crop, margin, paste, quantise

SIZE = 16  # side of the working crop


def _paste_whole_frames(frames, start, faces, job, index):
    """`pipeline.paste_chunk` on one rectangle, the whole frames, as it was before it worked on the
    rectangles that the faces reach (each face followed by its ring, `rppgedit.video.margin`)."""
    num, height, width = frames.shape[:3]
    parts, mask_full = [], np.zeros(frames.shape[:3], bool)
    for f in faces:
        a, b = max(start, f.first), min(start + num, f.stop)
        if f.residual is None or a >= b:
            continue
        inner, rows = slice(a - start, b - start), slice(a - f.first, b - f.first)
        mask = pipeline.full_frame_mask(f.mask[rows], f.boxes[a:b], frames.shape[1:3])
        parts.append((np.asarray(f.boxes[a:b], np.float64), f.residual[rows], mask, inner))
        mask_full[inner] |= mask
        args = (f.boxes[a:b], f.residual[rows], f.mask[rows], (0, 0), (height, width))
        part = margin.ring_part(frames[inner], *args, margin=job.margin, method=job.mask_method)
        if part is not None:
            parts.append((*part, inner))
            mask_full[inner] |= part[2]
    key = quantise.rounding_seed(job.seed, index)
    mode = "stochastic" if job.bit_depth == 16 else job.quantize
    out, _ = paste.paste_rounded(
        frames, (0, height, 0, width), parts, key, mode=mode, bit_depth=job.bit_depth
    )
    return out, mask_full


def _face(rng, num_video, first, stop, box, drift, dtype=np.float32, edited=True):
    """A FaceEdit whose box (x0, y0, x1, y1) moves by `drift` pixels per frame, with a random skin
    mask and a random residual of a few grey levels."""
    t = np.arange(num_video, dtype=np.float64)[:, None]
    boxes = (np.asarray(box, np.float64) + drift * t * np.array([1.0, 0.5, 1.0, 0.5])).astype(dtype)
    n = stop - first
    mask = rng.random((n, SIZE, SIZE)) < 0.7
    residual = (rng.standard_normal((n, SIZE, SIZE, 3)) * 2.0 / 255.0).astype(np.float32)
    residual *= mask[..., None]
    clip = np.zeros((n, SIZE, SIZE, 3), np.float32)
    return pipeline.FaceEdit(boxes, first, stop, clip, mask, residual if edited else None)


def _scene(rng, height=72, width=160):
    """A 12-frame video and faces: two overlapping ones, one past the top-left corner, one past
    the bottom-right corner, one that enters late, one unedited and one with float64 boxes whose
    values are not float32 values. The frames are skin-coloured noise, so that the faces' rings
    (`rppgedit.video.margin`) hold skin."""
    num = 12
    skin_colour = np.array([190, 140, 115])
    frames = np.clip(skin_colour + rng.integers(-40, 41, (num, height, width, 3)), 0, 255)
    frames = frames.astype(np.uint8)
    frames[:, :4] = 255  # saturated rows: the paste must clip there as the whole frames do
    faces = [
        _face(rng, num, 0, num, (20.3, 10.7, 50.3, 40.7), 0.37),
        _face(rng, num, 0, num, (40.9, 20.2, 70.9, 50.2), -0.21),  # overlaps the first
        _face(rng, num, 0, num, (-8.6, -5.25, 14.4, 17.75), 0.1),  # past the top-left corner
        _face(rng, num, 2, 9, (width - 12.5, height - 20.1, width + 9.5, height + 1.9), 0.05),
        _face(rng, num, 7, num, (100.0, 30.0, 124.0, 54.0), 0.0),  # enters in the second chunk
        _face(rng, num, 0, num, (120.0, 2.0, 140.0, 22.0), 0.0, edited=False),
        _face(rng, num, 0, num, (130.123456789, 40.987654321, 150.1, 61.3), 0.3, np.float64),
    ]
    return frames, faces


@pytest.mark.parametrize(
    "quantize, bit_depth",
    [("stochastic", 8), ("round", 8), ("error_diffusion", 8), ("stochastic", 16)],
)
@pytest.mark.parametrize("all_faces", [True, False])
def test_paste_chunk_gives_the_whole_frame_bits(rng, quantize, bit_depth, all_faces):
    frames, faces = _scene(rng)
    if not all_faces:  # without the float64 face, whose rectangle starts at the frame's corner
        faces = faces[:-1]
    job = pipeline.EditJob(quantize=quantize, bit_depth=bit_depth, seed=3, margin=0.15)
    for index, start in enumerate(range(0, len(frames), 5)):  # chunks of 5, 5 and 2 frames
        chunk = frames[start : start + 5]
        want, want_mask = _paste_whole_frames(chunk, start, faces, job, index)
        got, changed = pipeline.paste_chunk(chunk, start, faces, job, index)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(changed.full_mask(), want_mask)
        # The paste's sum of squared differences is the one of its output (8 bits: exactly).
        top = 65535 if bit_depth == 16 else 255
        diff = got.astype(np.int64) - chunk.astype(np.int64) * (top // 255)
        want_sse = float(np.sum(diff * diff)) / top**2
        assert changed.sse == pytest.approx(want_sse, rel=1e-6 if bit_depth == 16 else 0.0)
        y0, y1, x0, x1 = changed.bounds()
        outside = np.ones(chunk.shape[:3], bool)
        outside[:, y0:y1, x0:x1] = False
        assert np.all(
            want.astype(np.int64)[outside]
            == chunk.astype(np.int64)[outside] * (257 if bit_depth == 16 else 1)
        )
    assert np.any(want != chunk)  # the faces did change pixels
    inside = np.zeros(want_mask.shape, bool)
    for f in faces:
        if f.residual is not None:
            inner = slice(max(f.first - start, 0), max(f.stop - start, 0))
            inside[inner] |= margin.box_footprint(f.boxes[start : start + len(chunk)][inner],
                                                  *chunk.shape[1:3])  # fmt: skip
    assert np.any(want_mask & ~inside)  # and rings around them


@pytest.mark.parametrize(
    "quantize, bit_depth",
    [("stochastic", 8), ("error_diffusion", 8), ("stochastic", 16)],
)
def test_paste_bits_do_not_depend_on_the_band_size(rng, quantize, bit_depth, monkeypatch):
    """The paste works through a rectangle in bands of rows (`paste.BAND_VALUES` values): one row
    at a time, bands whose last one overlaps the one before, or the whole rectangle at once, each
    value's rounding and the per-row sums are the same."""
    frames, faces = _scene(rng)
    job = pipeline.EditJob(quantize=quantize, bit_depth=bit_depth, seed=4)
    results = []
    # One row a band; about 7 rows of the widest rectangle (more of narrow ones), the last
    # band overlapping the one before; one band.
    for values in (1, 5 * 160 * 3 * 7, 2**30):
        monkeypatch.setattr(paste, "BAND_VALUES", values)
        results.append(pipeline.paste_chunk(frames[:5], 0, faces, job, 0))
    (want, want_changed), *others = results
    assert np.any(want != frames[:5].astype(want.dtype) * (257 if bit_depth == 16 else 1))
    for got, changed in others:
        np.testing.assert_array_equal(got, want)
        # 8 bits: integer sums, exact; 16: float32 row sums, summed in another order
        assert changed.sse == pytest.approx(want_changed.sse, rel=1e-6 if bit_depth == 16 else 0)


def test_float_paste_is_the_bilinear_upsampling_in_float64(rng, monkeypatch):
    """`paste.paste_float`, in bands of 3 rows, against the bilinear upsampling of the residual
    written out in float64 NumPy: frames + 255 x residual at each pixel centre inside the box
    and the mask, the input elsewhere."""
    monkeypatch.setattr(paste, "BAND_VALUES", 3 * 2 * 90 * 3)
    num, height, width, size = 2, 50, 90, 8
    frames = rng.integers(0, 256, (num, height, width, 3), dtype=np.uint8)
    boxes = np.array([[10.25, 4.5, 52.75, 47.0], [-3.5, 9.0, 38.5, 51.0]])
    residual = rng.uniform(-3.0, 3.0, (num, size, size, 3)).astype(np.float32) / 255.0
    mask = rng.random((num, height, width)) < 0.8
    got = paste.paste_float(frames, boxes, residual, mask)
    want = frames.astype(np.float64)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        (ya, yb), (xa, xb) = crop.pixel_span(y0, y1, height), crop.pixel_span(x0, x1, width)
        # Pixel centre j + 0.5 sits at cell position (j + 0.5 - start) / step - 0.5 of the grid.
        ys = np.clip((np.arange(ya, yb) + 0.5 - y0) * size / (y1 - y0) - 0.5, 0, size - 1)
        xs = np.clip((np.arange(xa, xb) + 0.5 - x0) * size / (x1 - x0) - 0.5, 0, size - 1)
        r0, c0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        r1, c1 = np.minimum(r0 + 1, size - 1), np.minimum(c0 + 1, size - 1)
        fy, fx = (ys - r0)[:, None, None], (xs - c0)[None, :, None]
        res = residual[t].astype(np.float64)
        top = res[r0][:, c0] * (1 - fx) + res[r0][:, c1] * fx
        bottom = res[r1][:, c0] * (1 - fx) + res[r1][:, c1] * fx
        up = 255.0 * (top * (1 - fy) + bottom * fy)
        inside = mask[t, ya:yb, xa:xb, None]
        want[t, ya:yb, xa:xb] += np.where(inside, up, 0.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    outside = np.ones((num, height, width), bool)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        (ya, yb), (xa, xb) = crop.pixel_span(y0, y1, height), crop.pixel_span(x0, x1, width)
        outside[t, ya:yb, xa:xb] &= ~mask[t, ya:yb, xa:xb]
    np.testing.assert_array_equal(got[outside], frames[outside])


def test_rectangles_are_disjoint_and_hold_every_face(rng):
    frames, faces = _scene(rng)
    faces = faces[:-1]  # float64 boxes keep their rectangle at the corner, holding all the others
    _, changed = pipeline.paste_chunk(frames, 0, faces, pipeline.EditJob(), 0)
    assert len(changed.rects) == 4
    for i, r in enumerate(changed.rects):
        for q in changed.rects[i + 1 :]:
            assert not pipeline._overlapping(r, q)
    for f in faces:
        if f.residual is not None:
            y0, y1, x0, x1 = crop.pixel_rect(f.boxes[f.span], *frames.shape[1:3])
            assert any(
                r[0] <= y0 and y1 <= r[1] and r[2] <= x0 and x1 <= r[3] for r in changed.rects
            )


def test_paste_frames_streams_the_whole_frame_bits(rng):
    frames, faces = _scene(rng)
    job = pipeline.EditJob(seed=5, margin=0.15)
    got, mask = pipeline.paste_frames(frames, faces, job, np.float32(2.0))
    size = pipeline.chunk_frames(*frames.shape[1:3])
    scaled = pipeline.scaled(faces, np.float32(2.0))
    want = _paste_whole_frames(frames[:size], 0, scaled, job, 0)
    np.testing.assert_array_equal(got[:size], want[0])
    np.testing.assert_array_equal(mask[:size], want[1])


@pytest.mark.parametrize(
    "rect",
    [(0, 9, 0, 40), (3, 9, 0, 40), (2, 7, 5, 33), (0, 1, 39, 40), (4, 5, 0, 1), (0, 9, 17, 18)],
)
@pytest.mark.parametrize("width", [40, 200])  # rows drawn as one strip, or skipped between rows
def test_quantize_window_draws_the_whole_frame_numbers(rng, rect, width):
    values = rng.random((3, 9, width, 3), dtype=np.float32) * 255
    key = jax.random.fold_in(jax.random.key(7), 2)
    x1 = min(rect[3], width)
    y0, y1, x0, _ = rect
    whole = quantise.quantize(values, key)
    part = quantise.quantize(values[:, y0:y1, x0:x1], key, window=((9, width, 3), (y0, y1, x0, x1)))
    np.testing.assert_array_equal(part, whole[:, y0:y1, x0:x1])
    whole16 = quantise.quantize_16bit(values * 257, key)
    part16 = quantise.quantize_16bit(
        values[:, y0:y1, x0:x1] * 257, key, window=((9, width, 3), (y0, y1, x0, x1))
    )
    np.testing.assert_array_equal(part16, whole16[:, y0:y1, x0:x1])


def test_quantize_window_must_fit():
    with pytest.raises(ValueError, match="does not fit"):
        quantise.quantize(np.zeros((1, 4, 4, 3), np.float32), 0, window=((8, 8, 3), (0, 5, 0, 4)))


def _skimage_ssim(a, b):
    """scikit-image's SSIM in float64, per frame, averaged over frames (the metric's reference)."""
    from skimage.metrics import structural_similarity

    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)
    return float(
        np.mean(
            [structural_similarity(x, y, data_range=1.0, **kw) for x, y in zip(a, b, strict=True)]
        )
    )


def _changed_pair(rng, dtype, num, height, width, rect):
    """Random frames a and b equal to a outside `rect`, random inside it (a random mask)."""
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    if dtype == np.float32:
        a = rng.random((num, height, width, 3), dtype=np.float32)
    else:
        a = rng.integers(0, top + 1, (num, height, width, 3)).astype(dtype)
    b = a.copy()
    y0, y1, x0, x1 = rect
    inside = rng.random((num, y1 - y0, x1 - x0, 1)) < 0.5
    inside[:, 0, 0] = True
    noise = (
        (2 * rng.integers(0, 2, (num, y1 - y0, x1 - x0, 3)) - 1) * (0.2 + rng.random()) * 0.05 * top
    )
    patch = a[:, y0:y1, x0:x1].astype(np.float64) + noise * inside
    b[:, y0:y1, x0:x1] = np.clip(patch, 0, top).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize(
    "shape, rect",
    [
        ((3, 48, 64), (10, 30, 20, 41)),  # inside
        ((2, 48, 64), (0, 7, 0, 9)),  # at the top-left corner
        ((2, 48, 64), (40, 48, 50, 64)),  # at the bottom-right corner
        ((2, 48, 64), (0, 48, 0, 64)),  # everywhere
        ((2, 150, 170), (60, 61, 80, 82)),  # one pixel pair in a larger frame
        ((35, 40, 300), (5, 30, 100, 180)),  # more frames than one device call
    ],
)
def test_ssim_from_the_changed_rect_equals_the_whole_frames(rng, dtype, shape, rect):
    a, b = _changed_pair(rng, dtype, *shape, rect)
    region = metrics.ssim(a, b, changed=rect)
    assert region < 1.0  # even one changed pixel pair in a large frame (the whole frames' float32
    # mean of the map rounds that to 1)
    assert region == pytest.approx(metrics.ssim(a, b), abs=2e-6)
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    exact = _skimage_ssim(a.astype(np.float64) / top, b.astype(np.float64) / top)
    assert region == pytest.approx(exact, abs=2e-6)
    assert metrics.ssim(a[0], b[0], changed=rect) == pytest.approx(
        metrics.ssim(a[0], b[0]), abs=2e-6
    )


def test_ssim_changed_edge_cases(rng):
    a, b = _changed_pair(rng, np.uint8, 2, 32, 32, (4, 8, 4, 8))
    assert metrics.ssim(a, a, changed=(4, 4, 0, 32)) == 1.0
    with pytest.raises(ValueError, match="not inside"):
        metrics.ssim(a, b, changed=(0, 33, 0, 8))


@pytest.mark.parametrize("out_dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("pending", [1 << 26, 1])  # SSIM terms left running, or waited for at once
@pytest.mark.parametrize("group", [1 << 24, 1])  # one SSIM computation per add, or per 4 frames
def test_fidelity_equals_whole_frame_psnr_and_ssim(rng, out_dtype, pending, group, monkeypatch):
    monkeypatch.setattr(edit_report.Fidelity, "_PENDING_VALUES", pending)
    monkeypatch.setattr(edit_report.Fidelity, "_GROUP_VALUES", group)
    a, b = _changed_pair(rng, np.uint8, 10, 40, 56, (12, 30, 3, 20))
    b[7, 0, 55] += 1  # a change far from the others, in one frame only
    out = b.astype(np.uint16) * np.uint16(257) if out_dtype == np.uint16 else b
    given, found = edit_report.Fidelity(), edit_report.Fidelity()
    given.add(a[:6], out[:6], (12, 30, 3, 20))
    given.add(a[6:], out[6:], (0, 40, 0, 56))
    found.add(a, out)
    # 10 frames: one SSIM computation (the device keeps few in flight; metrics._ssim_deficit),
    # or one per 4 frames
    assert len(found._pending) == (0 if pending == 1 else 1 if group > 1 else 3)
    assert all(len(terms.deficits) == 1 for terms, _ in found._pending)
    # the whole frames' PSNR in float64: differences in [0, 1] over every pixel (8-bit input
    # lifted to 16 bits against 16-bit output, x 257: exact)
    diff = out.astype(np.float64) / np.iinfo(out_dtype).max - a.astype(np.float64) / 255
    psnr = -10 * np.log10(np.sum(np.square(diff)) / a.size)
    ssim = metrics.ssim(a, b)
    for fidelity in (given, found):
        assert fidelity.psnr_db() == pytest.approx(psnr, rel=1e-12)
        assert fidelity.ssim() == pytest.approx(ssim, abs=2e-6)
    same = edit_report.Fidelity()
    same.add(a, a.copy())
    assert same.psnr_db() == float("inf") and same.ssim() == 1.0


def test_paste_rounds_the_float_paste_without_bias(rng):
    """Each pasted pixel is its float paste (`paste.paste_float`) floored or ceiled, up with the
    probability of its fraction: over a face the mean rounding error is within noise of 0."""
    num, height, width, size = 16, 96, 120, 8
    frames = rng.integers(20, 230, (num, height, width, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[10.25, 6.5, 100.25, 90.5]]), (num, 1))
    residual = rng.uniform(-2.0, 2.0, (num, size, size, 3)).astype(np.float32) / 255.0
    mask = np.ones((num, size, size), bool)
    face = pipeline.FaceEdit(boxes, 0, num, np.zeros_like(residual), mask, residual, True)
    out, changed = pipeline.paste_chunk(frames, 0, [face], pipeline.EditJob(seed=9), 0)
    full = changed.full_mask()
    want = paste.paste_float(frames, boxes, residual, full).astype(np.float64)
    got = out.astype(np.float64)
    assert np.all((got == np.floor(want)) | (got == np.ceil(want)))
    np.testing.assert_array_equal(out[~full], frames[~full])
    frac = (want - np.floor(want))[full]
    error = (got - want)[full]
    assert abs(error.mean()) < 4 * np.sqrt(np.sum(frac * (1 - frac))) / error.size
    assert 0.3 < np.mean(error > 0) < 0.7  # both ways, not one
