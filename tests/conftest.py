"""Shared test settings: strict JAX promotion, a key fixture, and the shared real-data folder."""

import os
import pathlib

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# Commands run by the tests (`python -m rppgedit.main`) keep no compilation cache in the user's home.
os.environ["RPPGEDIT_JAX_CACHE"] = "off"

SHARED_DATA = pathlib.Path(
    os.environ.get(
        "RPPGEDIT_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_file(*parts: str) -> pathlib.Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path
