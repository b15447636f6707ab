"""The evidence records and the trust line: regimes, the default law, provenance, warnings."""

import json
import math

import pytest

from archscale.core.dag import Dag
from archscale.core.errors import ArchscaleError
from archscale.core.evidence import Evidence, LawEvidence, load_evidence, record_evidence
from archscale.core.trust import IMPLAUSIBLE, alternatives, assess, default_law, regime_of
from archscale.experiments.evidence import parse_published, publish


def _ev(laws, **kw) -> Evidence:
    d = dict(arch="mlp", structure="residual", normalized=False, notebook="nb", sweep="s", preset="quick",
             recipe="reference", n=3, seeds=3, laws={k: LawEvidence(*v) for k, v in laws.items()})
    d.update(kw)
    return Evidence(**d)


@pytest.mark.parametrize("code, structure", [
    ("1", "chain"), ("2_02", "chain"), ("2_12_202", "cell"), ("2_12", "cell"),
    ("2_12_002_0012", "residual"), ("2_12_002_0012_00002_000012", "residual"),
    ("2_12_202_0012_00002", "multi-branch"),
])
def test_regime_of_sorts_graphs_by_their_paths_and_blocks(code, structure):
    assert regime_of(Dag.parse(code), "mlp") == ("mlp", structure, False)
    assert regime_of(Dag.parse(code), "cnn", True) == ("cnn", structure, True)


def test_the_default_law_changes_only_when_the_data_separate_it_from_eq8():
    clear = _ev({"eq8": (3.0, 2.0, 5.0), "constant": (1.2, 1.0, 1.5), "depth_mup": (1.1, 1.0, 1.2)})
    overlap = _ev({"eq8": (3.0, 1.4, 5.0), "constant": (1.2, 1.0, 1.5)})
    eq8_best = _ev({"eq8": (1.1, 1.0, 1.3), "constant": (4.0, 3.0, 6.0)})
    assert clear.default_law() == "constant" and clear.best() == "depth_mup"  # depth_mup is never imposed
    assert overlap.default_law() == "eq8" and overlap.best() == "constant"
    assert eq8_best.default_law() == "eq8"
    assert default_law(("mlp", "residual", False), {clear.regime: clear}) == "constant"
    assert default_law(("cnn", "chain", True), {}) == "eq8"


def test_a_record_keeps_its_date_while_its_numbers_do_not_change(tmp_path):
    ev = _ev({"eq8": (2.0, 1.5, 3.0)})
    path = record_evidence(ev, tmp_path, today="2026-01-01")
    assert json.loads(path.read_text())["date"] == "2026-01-01"
    record_evidence(ev, tmp_path, today="2026-02-02")
    assert json.loads(path.read_text())["date"] == "2026-01-01"
    record_evidence(_ev({"eq8": (2.5, 1.5, 3.0)}), tmp_path, today="2026-03-03")
    loaded = load_evidence(tmp_path)[("mlp", "residual", False)]
    assert loaded.date == "2026-03-03" and loaded.laws["eq8"].error_factor == 2.5


def test_a_malformed_record_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{\"arch\": 1}")
    with pytest.raises(ArchscaleError, match="malformed.*make reproduce"):
        load_evidence(tmp_path)


def test_trust_quotes_the_measured_error_of_its_law_with_n_and_provenance():
    ev = _ev({"eq8": (1.54, 1.15, 2.74), "depth_mup": (1.3, 1.0, 1.59)})
    t = assess("eq8", ev.regime, 0.1, evidence={ev.regime: ev})
    assert t.law == "eq8" and "1.54 [1.15, 2.74]" in t.evidence
    assert "n = 3 configurations x 3 seeds" in t.evidence
    assert t.warning is None
    assert "1.54" in t.line() and "residual MLP" in t.line()


def test_trust_warns_outside_the_measured_regimes_on_unmeasured_laws_poor_laws_and_tiny_lrs():
    ev = _ev({"eq8": (4.0, 1.5, 6.0), "depth_mup": (1.3, 1.0, 1.59)})
    records = {ev.regime: ev}
    outside = assess("eq8", ("cnn", "residual", True), 1.0, evidence=records)
    assert outside.evidence is None and "outside every measured regime" in outside.warning
    assert "mlp_residual" in outside.warning
    unmeasured = assess("longest_path", ev.regime, 1.0, evidence=records)
    assert "never measured" in unmeasured.warning
    poor = assess("eq8", ev.regime, 1.0, evidence=records)
    assert "misses" in poor.warning and "depth_mup did best" in poor.warning
    tiny = assess("depth_mup", ev.regime, 0.5 / IMPLAUSIBLE, evidence=records)
    assert "implausibly small" in tiny.warning and "200x below" in tiny.warning
    for t in (outside, unmeasured, poor, tiny):
        assert "\n" not in t.line()


def test_alternatives_give_every_law_and_depth_mup_on_residual_graphs():
    dag, base = Dag.parse("2_12_002_0012_00002_000012"), Dag.parse("1")
    alt = alternatives(dag, base, offset=3, residual=True)
    assert {"eq8", "effective_depth", "constant", "depth_mup"} <= set(alt)
    assert alt["constant"] == 1.0 and alt["depth_mup"] == 1.0 and alt["eq8"] < 1.0
    assert "depth_mup" not in alternatives(Dag.parse("2_02"), base, offset=3)
    cnn = alternatives(dag, base, offset=3, q=5, q_base=3, residual=True)
    assert math.isclose(cnn["depth_mup"], 3 / 5) and math.isclose(cnn["constant"], 3 / 5)


def test_published_lines_round_trip(capsys, tmp_path):
    ev = _ev({"eq8": (2.0, 1.5, 3.0)})
    publish([ev], tmp_path)
    parsed = parse_published(capsys.readouterr().out)
    stored = json.loads((tmp_path / "mlp_residual.json").read_text())
    stored.pop("date")
    assert parsed == {"mlp_residual": stored}


def test_adam_records_are_their_own_files_with_no_graph_factor_as_the_incumbent(tmp_path):
    """Under Adam the incumbent is muP's rule (no graph factor): a law replaces it only when separated."""
    eq8_wins = _ev({"eq8": (1.14, 1.09, 1.28), "constant": (3.58, 2.62, 4.77)}, structure="chain",
                   optimizer="adamw")
    undecided = _ev({"eq8": (2.22, 1.38, 3.24), "constant": (3.08, 2.35, 4.09)}, structure="cell",
                    optimizer="adamw")
    assert eq8_wins.name == "mlp_chain_adamw" and eq8_wins.default_law() == "eq8"
    assert undecided.default_law() == "constant"
    sgd = _ev({"eq8": (2.0, 1.5, 3.0)}, structure="chain")
    assert "optimizer" not in sgd.to_dict() and eq8_wins.to_dict()["optimizer"] == "adamw"
    for ev in (eq8_wins, undecided, sgd):
        record_evidence(ev, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp_cell_adamw.json", "mlp_chain.json",
                                                          "mlp_chain_adamw.json"]
    assert set(load_evidence(tmp_path)) == {("mlp", "chain", False)}
    adamw = load_evidence(tmp_path, optimizer="adamw")
    assert adamw[("mlp", "chain", False)].optimizer == "adamw" and len(adamw) == 2
    assert default_law(("mlp", "residual", False), adamw, optimizer="adamw") == "constant"
    assert default_law(("mlp", "residual", False), {}, optimizer="sgd") == "eq8"
    t = assess("eq8", ("mlp", "chain", False), 0.5, evidence=adamw, optimizer="adamw")
    assert "1.14 [1.09, 1.28]" in t.evidence and "trained with adamw" in t.evidence and t.warning is None
    none = assess("constant", ("mlp", "chain", False), 1.0, evidence={}, optimizer="adam")
    assert none.evidence is None and "trained with adam;" in none.warning
    assert "archscale check --optimizer adam" in none.warning
