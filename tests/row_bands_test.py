"""The band plan of programs that sweep an array a band of rows at a time (`rppgedit.row_bands`)."""

import numpy as np
import pytest

from rppgedit import row_bands


@pytest.mark.parametrize("num_rows", [1, 7, 70, 671, 1080])
@pytest.mark.parametrize("row_values", [1, 864, 23040])
@pytest.mark.parametrize("band_values", [1, 5000, 1 << 18, 1 << 30])
def test_bands_cover_every_row_once_evenly(num_rows, row_values, band_values):
    rows, count = row_bands.plan(num_rows, row_values, band_values)
    assert 1 <= rows <= num_rows
    assert rows * row_values <= max(band_values, row_values)  # about band_values, one row at least
    # The fewest bands: one band fewer could not cover the rows, even at the most rows a band holds.
    assert (count - 1) * max(1, band_values // row_values) < num_rows
    covered = np.zeros(num_rows, int)
    for i in range(count):
        first = int(row_bands.start(i, rows, num_rows))
        assert 0 <= first <= num_rows - rows
        fresh = np.asarray(row_bands.fresh(i, rows, num_rows))
        covered[first : first + rows] += fresh
        assert fresh.all() or i == count - 1  # only the last band overlaps
    np.testing.assert_array_equal(covered, 1)  # every row counted once
    assert rows * count - num_rows < count  # the overlap is less than one row a band
