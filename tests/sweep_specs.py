"""The tiny sweep specs the tests run (a few seconds each), shared by the test folders."""

TINY_SPEC = """\
arch: mlp
graphs: ['1', '2', '2_02']
widths: [8]
lr_min: 0.05
lr_max: 0.5
n_lrs: 3
seeds: [0]
steps: 3
batch_size: 64
n_train: 128
n_test: 32
"""

#: Six sampled graphs and the base: enough for a held-out calibration split.
CAL_SPEC = """\
arch: mlp
graphs: ['1']
sample: {n_vertices: 4, k: 6, seed: 0}
widths: [8]
lrs: [0.05, 0.2, 0.8]
seeds: [0, 1]
steps: 3
batch_size: 64
n_train: 128
n_test: 32
"""

#: CAL_SPEC trained with AdamW at Adam-sized learning rates.
ADAMW_SPEC = CAL_SPEC.replace("lrs: [0.05, 0.2, 0.8]", "lrs: [0.003, 0.01, 0.03]") + """\
optimizer: adamw
betas: [0.9, 0.99]
weight_decay: 0.01
"""
