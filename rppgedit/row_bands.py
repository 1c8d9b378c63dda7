"""Bands of rows: how a program sweeps a large array a band at a time, so that its intermediates
are a band's (about a megabyte, in cache) and not the whole array's.

On a CPU, XLA materialises what a fusion cannot hold, and over a whole 1080p face rectangle
that is tens of megabytes a call: memory-bound, and fresh pages at every call. The paste
(`rppgedit.video.paste`) and the report's SSIM (`rppgedit.metrics`) loop over bands instead
(`jax.lax.fori_loop`); band i covers rows `start(i) .. start(i) + rows - 1`, and the last band is
moved back inside the array, overlapping the one before, so every band has the same shape.
"""

from __future__ import annotations

import jax.numpy as jnp


def plan(num_rows: int, row_values: int, band_values: int) -> tuple[int, int]:
    """(rows per band, number of bands) for `num_rows` rows of `row_values` values each, about
    `band_values` values a band: the bands are made as even as their count allows, so the last
    one overlaps the one before by less than a band's count of rows."""
    most = max(1, min(num_rows, band_values // max(row_values, 1)))
    count = -(-num_rows // most)
    return -(-num_rows // count), count


def start(i, rows: int, num_rows: int):
    """The first row of band `i` (traced): `i * rows`, moved back to end at the last row."""
    return jnp.minimum(i * rows, num_rows - rows)


def fresh(i, rows: int, num_rows: int):
    """bool (rows,): the rows of band `i` that no earlier band covered (all but the overlap of
    the last band), for sums that must count each row once."""
    return start(i, rows, num_rows) + jnp.arange(rows) >= i * rows
