"""The tiny sweep spec the command-line tests run (a few seconds: 3 graphs x 3 LRs, 3 steps)."""

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
