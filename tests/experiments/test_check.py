"""archscale check: measures a family, scores the laws, answers for a target; resumes; refuses bad input."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archscale.core.errors import ArchscaleError, DataError
from archscale.data import load_dataset, load_tensors
from archscale.experiments import check_measure
from archscale.experiments.check import check, parse_budget
from archscale.train import TrainConfig

FAMILY = '''
import torch.nn as nn
import torch.nn.functional as F


class ResMLP(nn.Module):
    def __init__(self, depth, width=16):
        super().__init__()
        self.stem = nn.Linear(64, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x.flatten(1))
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.head(F.relu(h))


def make(depth):
    return ResMLP(depth)


def broken(depth):
    raise RuntimeError("no such depth")


def images_only(depth):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
'''


class ResMLP(nn.Module):
    def __init__(self, depth: int, width: int = 16):
        super().__init__()
        self.stem = nn.Linear(64, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x.flatten(1))
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.head(F.relu(h))


@pytest.fixture(scope="module")
def small():
    return load_dataset("digits", flatten=False, n_train=256, n_test=64)


CONFIG = TrainConfig(steps=8, batch_size=32)


@pytest.fixture(scope="module")
def report(small, tmp_path_factory):
    return check(ResMLP, {"depth": [1, 2, 4]}, {"depth": 8}, small, config=CONFIG, progress=False,
                 runs_dir=tmp_path_factory.mktemp("runs"), n_boot=200)


def test_the_report_measures_every_size_scores_the_laws_and_answers(report):
    assert report.sizes == [1.0, 2.0, 4.0] and report.target == 8.0 and len(report.table) == 3
    assert (report.table["max_lr"] > 0).all()
    assert {"eq8", "effective_depth", "constant"} <= set(report.laws["law"])
    assert report.recommended_lo <= report.recommended <= report.recommended_hi
    assert math.isfinite(report.recommended) and report.source in {*report.laws["law"], "trend"}
    b = report.trend
    assert math.isfinite(b["b"]) and b["b_lo"] <= b["b"] <= b["b_hi"]
    text = report.format()
    assert "recommended LR at depth = 8" in text and "noise floor" in text
    assert json.dumps(report.to_dict()) and report._repr_html_().startswith("<pre>")
    fig = report.figure()
    assert fig.axes[0].get_title().startswith("LR at depth = 8")


def test_a_second_run_reloads(report, small, monkeypatch):
    monkeypatch.setattr(check_measure, "train_member",
                        lambda *a, **k: pytest.fail("a finished size was trained again"))
    again = check(ResMLP, {"depth": [1, 2, 4]}, {"depth": 8}, small, config=CONFIG, progress=False,
                  runs_dir=report.runs.split("/check/")[0], n_boot=200)
    assert again.recommended == report.recommended


def test_a_far_target_and_bad_arguments_are_said_in_one_line(small, tmp_path):
    with pytest.raises(ArchscaleError, match="same size keyword"):
        check(ResMLP, {"depth": [1, 2]}, {"width": 8}, small, runs_dir=tmp_path)
    with pytest.raises(ArchscaleError, match="at least two depth sizes"):
        check(ResMLP, {"depth": [2]}, {"depth": 8}, small, runs_dir=tmp_path)
    with pytest.raises(ArchscaleError, match="at least 3 seeds"):
        check(ResMLP, {"depth": [1, 2]}, {"depth": 8}, small, seeds=[0, 1], runs_dir=tmp_path)
    with pytest.raises(ArchscaleError, match=r"make_model\(depth=1\) raised RuntimeError: no"):
        check(lambda depth: (_ for _ in ()).throw(RuntimeError("no")), {"depth": [1, 2]}, {"depth": 8},
              small, runs_dir=tmp_path)
    with pytest.raises(ArchscaleError, match="budget must be a duration"):
        parse_budget("soon")
    assert parse_budget("10m") == 600 and parse_budget("1.5h") == 5400 and parse_budget(90) == 90


def test_tensor_files_are_read_without_unpickling_code(tmp_path):
    x, y = np.random.default_rng(0).standard_normal((50, 1, 8, 8)), np.arange(50) % 5
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_tensors(tmp_path / "d.npz")
    assert data.n_train + data.n_test == 50 and data.n_classes == 5 and data.in_shape == (1, 8, 8)
    torch.save({"x": torch.as_tensor(x, dtype=torch.float32), "y": torch.as_tensor(y)}, tmp_path / "d.pt")
    assert load_tensors(tmp_path / "d.pt").n_classes == 5

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil(), "y": y}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="refused, it holds Python code"):
        load_tensors(tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="pickle files are refused"):
        load_tensors(tmp_path / "evil.pkl")
    np.save(tmp_path / "obj.npy", np.array([Evil()], dtype=object))
    np.savez(tmp_path / "obj.npz", x=np.array([Evil()], dtype=object), y=y[:1])
    with pytest.raises(DataError, match="refused, it holds Python objects"):
        load_tensors(tmp_path / "obj.npz")


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "archscale", "check", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_the_command_line_answers_and_refuses_in_one_line(tmp_path):
    (tmp_path / "family.py").write_text(FAMILY)
    x, y = load_dataset("digits", flatten=False, n_train=256, n_test=64).x_train.numpy(), None
    digits = load_dataset("digits", flatten=False, n_train=256, n_test=64)
    np.savez(tmp_path / "d.npz", x_train=digits.x_train.numpy(), y_train=digits.y_train.numpy(),
             x_test=digits.x_test.numpy(), y_test=digits.y_test.numpy())
    del x, y
    run = _cli("family.py:make", "--sizes", "depth=1,2", "--target", "depth=4", "--data", "d.npz", "--json",
               "--budget", "2m", "--figure", "out/fig", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    obj = json.loads(run.stdout)
    assert obj["sizes"] == [1.0, 2.0] and obj["recommended"]["lr"] > 0 and obj["seconds"] <= 2 * 60 * 1.1
    assert (tmp_path / "out" / "fig.png").exists() and (tmp_path / "out" / "fig.pdf").exists()
    for args, needle in [
        (("family.py:broken", "--sizes", "depth=1,2", "--target", "depth=4", "--data", "d.npz"), "raised"),
        (("family.py:images_only", "--sizes", "depth=1,2", "--target", "depth=4", "--data", "d.npz"),
         "does not accept the data's inputs"),
        (("family.py:make", "--sizes", "depth=1,2", "--target", "width=4", "--data", "d.npz"), "same size"),
        (("family.py:make", "--sizes", "depth", "--target", "depth=4"), "NAME=VALUES"),
        (("family.py:make", "--sizes", "depth=1,2", "--target", "depth=4", "--data", "nothing.pt"),
         "no such data file"),
    ]:
        bad = _cli(*args, cwd=tmp_path)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and needle in bad.stderr, \
            (args, bad.stderr)


# -- families whose convolutions mix kernel sizes ------------------------------------------------------

class ProjCNN(nn.Module):
    """Blocks ``proj1x1(h) + conv3x3(relu(conv3x3(relu(h))))``; ``k`` replaces the 1x1 (3: uniform)."""

    def __init__(self, depth: int, width: int = 4, k: int = 1):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.proj = nn.ModuleList(nn.Conv2d(width, width, k, padding=k // 2) for _ in range(depth))
        self.c1 = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.c2 = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        for p, a, b in zip(self.proj, self.c1, self.c2):
            h = p(h) + b(F.relu(a(F.relu(h))))
        return self.head(F.relu(h).mean(dim=(2, 3)))


def _per_edge_by_enumeration(dag, areas, offset=3):
    """Eq. 9 per edge, listing every path: sum_p L_p^2 (offset * mean area + sum of p's edges' areas)."""
    from fractions import Fraction

    one = {pair: Fraction(a[0]) for pair, a in areas.items()}
    a_ref = sum(one.values(), Fraction(0)) / len(one)
    total = Fraction(0)
    for path in dag.iter_paths():
        edges = [(u, v) for u, v in zip(path, path[1:]) if (u, v) in one]
        total += (offset + len(edges)) ** 2 * (offset * a_ref + sum(one[e] for e in edges))
    return total


def test_a_mixed_kernel_family_is_read_per_edge(small):
    from archscale.core.laws import LAWS

    members = [check_measure.read_member(ProjCNN, "depth", d, {}, small, True) for d in (1, 2)]
    for m, d in zip(members, (1, 2)):
        assert m.dag is not None and m.arch == "cnn" and m.kernel is None, m.why_no_graph
        assert sorted(a for v in m.areas.values() for a in v) == sorted([1, 9, 9] * d)
    t1, t2 = (_per_edge_by_enumeration(m.dag, m.areas) for m in members)
    assert t1 == 1245  # paths 0->2 (L = 4, area 1) and 0->1->2 (L = 5, areas 9 + 9), mean area 19/3
    assert check_measure.law_scale(LAWS["eq8"], members[1], members[0]) == pytest.approx(math.sqrt(t1 / t2))
    assert check_measure.predicted_step(members[0], members[1]) == pytest.approx(math.sqrt(t1 / t2))


def test_a_uniform_kernel_family_keeps_one_q(small):
    from archscale.core.laws import LAWS

    members = [check_measure.read_member(ProjCNN, "depth", d, {"k": 3}, small, True) for d in (1, 2)]
    assert all(m.kernel == 3 and m.areas is None for m in members)
    for law in LAWS.values():
        assert check_measure.law_scale(law, members[1], members[0]) == pytest.approx(
            law.scale(members[1].dag, members[0].dag, offset=3, q=3, q_base=3))


def test_check_accepts_a_mixed_kernel_family(small, tmp_path):
    from archscale.core.laws import LAWS, MIXED_KERNEL_LAWS

    rep = check(ProjCNN, {"depth": [1, 2]}, {"depth": 4}, small, config=CONFIG, progress=False,
                runs_dir=tmp_path, n_boot=100, laws=[*LAWS.values(), *MIXED_KERNEL_LAWS.values()])
    laws = rep.laws.set_index("law")
    assert {"eq8", "effective_depth", "eq8_one_q", "eq8_mean_area"} <= set(laws.index)
    assert "cannot read" not in " ".join(rep.sentences)
    members = [check_measure.read_member(ProjCNN, "depth", d, {}, small, True) for d in (1, 2)]
    for name, law in [("eq8", LAWS["eq8"]), ("eq8_one_q", MIXED_KERNEL_LAWS["eq8_one_q"])]:
        at = laws.loc[name, "at_sizes"]
        assert at[1] / at[0] == pytest.approx(check_measure.law_scale(law, members[1], members[0]))
    # by default the registered laws only
    again = check(ProjCNN, {"depth": [1, 2]}, {"depth": 4}, small, config=CONFIG, progress=False,
                  runs_dir=tmp_path, n_boot=100)
    assert list(again.laws["law"]) == [name for name in LAWS if name in set(again.laws["law"])]
    assert "eq8_one_q" not in set(again.laws["law"])
