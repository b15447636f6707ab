"""The one result-row schema: typed columns, JSON for NaN and infinities, row keys, typed frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from archscale.core.errors import ArchscaleError
from archscale.core.schema import COLUMNS, NAS, SWEEP, RowSchema, lr_key

ROW = {"graph": "2_02", "arch": "mlp", "width": 8, "kernel_size": 0, "act": "relu", "lr": 0.1, "seed": 1,
       "train_loss": float("nan"), "train_loss_final": float("inf"), "test_loss": -float("inf"),
       "test_acc": 0.5, "diverged": True, "steps": 4, "diverged_step": 2, "layout": "paper",
       "init": "archscale", "readout": "mean_field", "optimizer": "adamw"}


def test_encode_is_json_and_decode_inverts_it():
    enc = SWEEP.encode(ROW)
    text = json.dumps(enc, allow_nan=False)  # strict JSON: no NaN or Infinity tokens
    assert enc["train_loss"] is None and enc["train_loss_final"] == "inf" and enc["test_loss"] == "-inf"
    back = SWEEP.decode(json.loads(text))
    assert math.isnan(back["train_loss"]) and back["train_loss_final"] == math.inf
    assert back["test_loss"] == -math.inf
    assert {k: v for k, v in back.items() if k != "train_loss"} == {k: v for k, v in ROW.items()
                                                                    if k != "train_loss"}
    assert list(enc) == COLUMNS


def test_numpy_scalars_are_encoded_as_python_values():
    row = {**ROW, "width": np.int64(8), "lr": np.float32(0.25), "diverged": np.bool_(False)}
    enc = SWEEP.encode(row)
    assert type(enc["width"]) is int and enc["lr"] == 0.25 and enc["diverged"] is False


@pytest.mark.parametrize("change, match", [
    ({"width": "8"}, "width"), ({"width": 8.0}, "width"), ({"lr": "0.1"}, "lr"),
    ({"diverged": "yes"}, "diverged"), ({"graph": 202}, "graph"),
])
def test_encode_refuses_mistyped_columns(change, match):
    with pytest.raises(ArchscaleError, match=match):
        SWEEP.encode({**ROW, **change})


def test_decode_refuses_missing_and_mistyped_columns():
    enc = SWEEP.encode(ROW)
    with pytest.raises(ArchscaleError, match="no column"):
        SWEEP.decode({k: v for k, v in enc.items() if k != "seed"})
    for change in ({"seed": "1"}, {"seed": True}, {"lr": "fast"}, {"diverged": 1}):
        with pytest.raises(ArchscaleError):
            SWEEP.decode({**enc, **change})


def test_a_row_of_an_older_store_takes_the_added_columns_implicit_value():
    """Stores written before Adam have no optimizer column: their rows trained with SGD."""
    enc = SWEEP.encode(ROW)
    old = {k: v for k, v in enc.items() if k != "optimizer"}
    assert SWEEP.decode(old)["optimizer"] == "sgd" and SWEEP.decode(enc)["optimizer"] == "adamw"
    assert SWEEP.key_of(SWEEP.decode(old)) == SWEEP.key_of(ROW)  # the optimizer is not in the key
    with pytest.raises(ArchscaleError, match="outside the key"):
        RowSchema("x", (("a", str), ("b", int)), key=("a",), added=(("a", "sgd"),))


def test_row_key_is_stable_across_float_noise():
    assert lr_key(0.1) == lr_key(0.1 + 1e-18) == "0.1"
    assert SWEEP.key_of(ROW) == ("2_02", "mlp", 8, 0, "relu", "0.1", 1)
    assert SWEEP.key_of({**ROW, "lr": np.float64(0.1), "width": np.int64(8)}) == SWEEP.key_of(ROW)


def test_frames_are_typed_even_when_empty():
    empty = SWEEP.frame()
    assert list(empty.columns) == COLUMNS and empty.empty
    assert str(empty["width"].dtype) == "int64" and str(empty["diverged"].dtype) == "bool"
    full = SWEEP.frame([SWEEP.decode(SWEEP.encode(ROW))])
    assert list(full.columns) == COLUMNS and full["graph"].dtype == empty["graph"].dtype


def test_nas_rows_fit_the_same_machinery():
    row = {"graph": "1_01_001", "recipe": "archscale", "kind": "archscale", "seed": 0, "width": 16,
           "n_cells": 5, "base_lr": 0.1, "lr": 0.05, "epochs": 1, "train_loss": 1.0, "train_acc": 0.5,
           "test_loss": float("nan"), "test_acc": 0.1, "diverged": False, "seconds": 1.5}
    back = NAS.decode(json.loads(json.dumps(NAS.encode(row))))
    assert NAS.key_of(back) == ("1_01_001", "archscale", 0)
    assert list(NAS.frame([back]).columns) == NAS.names


def test_schemas_are_checked():
    with pytest.raises(ArchscaleError):
        RowSchema("bad", (("a", int),), key=("b",))
    with pytest.raises(ArchscaleError):
        RowSchema("bad", (("a", list),), key=("a",))
