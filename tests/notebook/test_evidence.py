"""The package's evidence records equal what the committed executed notebooks printed (issue 22):
``make reproduce`` writes both, so a record edited by hand or left stale fails here."""

import json
from pathlib import Path

import nbformat
import pytest

from archscale.core.evidence import EVIDENCE_DIR, REGIMES, load_evidence
from archscale.experiments.evidence import parse_published

RUNS = Path(__file__).resolve().parents[2] / "papermill_runs"


def _printed() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in sorted(RUNS.glob("*.ipynb")):
        if path.stem.count("."):  # other presets than quick
            continue
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    out.update(parse_published(o.get("text", "")))
    return out


def test_every_committed_record_is_what_a_committed_notebook_printed():
    records = sorted(EVIDENCE_DIR.glob("*.json"))
    assert records, f"no evidence records in {EVIDENCE_DIR}; run make reproduce"
    printed = _printed()
    for path in records:
        stored = json.loads(path.read_text())
        stored.pop("date")
        assert path.stem in printed, \
            f"{path.name}: no executed notebook printed this record; run make reproduce"
        assert printed[path.stem] == stored, f"{path.name} differs from what its notebook printed"


def test_every_printed_record_is_committed_and_in_a_known_regime():
    printed = _printed()
    records = [ev for optimizer in ("sgd", "adamw") for ev in load_evidence(optimizer=optimizer).values()]
    stored = {ev.name for ev in records}
    assert set(printed) <= stored, f"printed but not committed: {sorted(set(printed) - stored)}"
    for ev in records:
        assert ev.regime in REGIMES and ev.date and ev.n >= 1


@pytest.mark.parametrize("name", ["mlp_chain", "mlp_cell", "mlp_residual", "cnn_cell", "cnn_residual",
                                  "cnn_residual_norm", "mlp_chain_adamw", "mlp_cell_adamw", "cnn_cell_adamw"])
def test_the_regimes_the_trust_line_needs_have_evidence(name):
    assert (EVIDENCE_DIR / f"{name}.json").exists(), f"no evidence for {name}; run make reproduce"
