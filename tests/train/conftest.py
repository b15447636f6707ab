"""The datasets the trainer's tests share: digits as vectors and as 8x8 images."""

import pytest

from archscale.data import load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", n_train=600, n_test=200)


@pytest.fixture(scope="session")
def digit_images():
    return load_dataset("digits", flatten=False, n_train=300, n_test=100)
