"""Fixtures for the data tests: small NIfTI datasets and a store in temp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nifti_data import write_bids


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    return write_bids(tmp_path / "ds")


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    """A store of an 8-subject dataset at 40 x 64 (48 columns padded to 64), 64 slices."""
    from kmri_jax.data import PreprocessOptions, SliceStore, build_store
    tmp = tmp_path_factory.mktemp("store")
    root = write_bids(tmp / "ds", n_subjects=8)
    build_store(root, tmp / "store", options=PreprocessOptions(ny=40, nx=64))
    return SliceStore(tmp / "store")
