"""What each traced operation is to archscale: an activation, a normalization, a reshape, or refused.

Tables of torch modules, functions and tensor methods by the part they play when a module is read as
a graph (:mod:`archscale.module.capture`), and the elementwise op of :mod:`archscale.core.moments` each
activation stands for (``("act", "relu")``, ``("act", "leaky_relu", 0.1)``...).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["ADD", "DIV", "DROPOUT", "MUL", "NEG", "NORM_FUNCTIONS", "NORM_MODULES", "REFUSED", "STRUCTURAL",
           "SUB", "ZEROS", "activation", "norm_affine", "structural_kind"]

# ---------------------------------------------------------------------------------------- activations
_ACT_MODULES: dict[type, Any] = {
    nn.ReLU: lambda m: ("act", "relu"), nn.ReLU6: lambda m: ("act", "relu6"),
    nn.GELU: lambda m: ("act", "gelu_tanh" if m.approximate == "tanh" else "gelu"),
    nn.SiLU: lambda m: ("act", "silu"), nn.Mish: lambda m: ("act", "mish"),
    nn.LeakyReLU: lambda m: ("act", "leaky_relu", float(m.negative_slope)),
    nn.ELU: lambda m: ("act", "elu", float(m.alpha)), nn.CELU: lambda m: ("act", "celu", float(m.alpha)),
    nn.SELU: lambda m: ("act", "selu"), nn.PReLU: lambda m: ("act", "prelu", float(m.weight.detach().mean())),
    nn.Tanh: lambda m: ("act", "tanh"), nn.Sigmoid: lambda m: ("act", "sigmoid"),
    nn.Hardtanh: lambda m: ("act", "hardtanh", float(m.min_val), float(m.max_val)),
    nn.Hardswish: lambda m: ("act", "hardswish"), nn.Hardsigmoid: lambda m: ("act", "hardsigmoid"),
    nn.Softplus: lambda m: ("act", "softplus", float(m.beta)), nn.Softsign: lambda m: ("act", "softsign"),
}


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    value = node.args[i] if len(node.args) > i else node.kwargs.get(name, default)
    return value if isinstance(value, (int, float, str)) else default


_ACT_FUNCTIONS: dict[Any, Any] = {
    **{f: lambda n: ("act", "relu") for f in (F.relu, torch.relu, F.relu_, torch.relu_)},
    F.relu6: lambda n: ("act", "relu6"),
    F.gelu: lambda n: ("act", "gelu_tanh" if _arg(n, 1, "approximate", "none") == "tanh" else "gelu"),
    F.silu: lambda n: ("act", "silu"), F.mish: lambda n: ("act", "mish"),
    F.leaky_relu: lambda n: ("act", "leaky_relu", float(_arg(n, 1, "negative_slope", 0.01))),
    F.elu: lambda n: ("act", "elu", float(_arg(n, 1, "alpha", 1.0))),
    F.celu: lambda n: ("act", "celu", float(_arg(n, 1, "alpha", 1.0))),
    F.selu: lambda n: ("act", "selu"),
    F.hardtanh: lambda n: ("act", "hardtanh", float(_arg(n, 1, "min_val", -1.0)),
                           float(_arg(n, 2, "max_val", 1.0))),
    F.hardswish: lambda n: ("act", "hardswish"), F.hardsigmoid: lambda n: ("act", "hardsigmoid"),
    F.softplus: lambda n: ("act", "softplus", float(_arg(n, 1, "beta", 1.0))),
    F.softsign: lambda n: ("act", "softsign"),
    **{f: lambda n: ("act", "tanh") for f in (torch.tanh, F.tanh)},
    **{f: lambda n: ("act", "sigmoid") for f in (torch.sigmoid, F.sigmoid)},
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
                "sigmoid_": "sigmoid"}


def activation(node: fx.Node, module: nn.Module | None = None) -> tuple | None:
    """The elementwise op of an activation node (a module call, function or method), else None."""
    if module is not None:
        make = next((f for t, f in _ACT_MODULES.items() if type(module) is t or isinstance(module, t)), None)
        return make(module) if make else None
    if node.op == "call_function" and node.target in _ACT_FUNCTIONS:
        return _ACT_FUNCTIONS[node.target](node)
    if node.op == "call_method" and node.target in _ACT_METHODS:
        return ("act", _ACT_METHODS[str(node.target)])
    return None


# ---------------------------------------------------------------------------------------- the rest
DROPOUT: tuple[tuple, set, set] = ((nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout),
           {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}, set())
NORM_MODULES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm)
NORM_FUNCTIONS = {F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.normalize, F.rms_norm,
                  F.local_response_norm}


def norm_affine(module: nn.Module | None) -> tuple[float, float]:
    """``(gamma, beta)`` of a normalization: the RMS of its affine weight and the mean of its bias."""
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    gamma = float(weight.detach().double().pow(2).mean().sqrt()) if isinstance(weight, torch.Tensor) else 1.0
    beta = float(bias.detach().double().mean()) if isinstance(bias, torch.Tensor) else 0.0
    return gamma, beta


_POOL_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                 nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_POOL_FUNCTIONS = {F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d,
                   F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
                   F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute,
                      torch.transpose, torch.swapaxes, torch.movedim, torch.narrow}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
                    "swapaxes", "movedim", "contiguous", "clone", "float", "double", "half", "type_as", "to",
                    "narrow", "expand_as", "detach"}
#: Ops that only move, select or pool values: ``(kind, modules, functions, methods)``.
STRUCTURAL: list[tuple[str, tuple, set, set]] = [
    ("pool", _POOL_MODULES + (nn.Softmax, nn.LogSoftmax),
     _POOL_FUNCTIONS | {torch.mean, torch.amax, F.softmax, F.log_softmax, torch.softmax, torch.log_softmax},
     {"mean", "amax", "softmax", "log_softmax"}),
    ("reshape", (nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle),
     _RESHAPE_FUNCTIONS | {F.pixel_shuffle, F.pixel_unshuffle, torch.channel_shuffle}, _RESHAPE_METHODS),
    ("slice", (), {operator.getitem, torch.chunk, torch.split, torch.unbind, torch.tensor_split},
     {"__getitem__", "chunk", "split", "unbind", "tensor_split"}),
    ("cat", (), {torch.cat, torch.concat, torch.concatenate, torch.stack, torch.hstack, torch.vstack,
                 torch.dstack}, {"cat"}),
]


def structural_kind(node: fx.Node, module: nn.Module | None = None) -> str | None:
    """``pool``/``reshape``/``slice``/``cat`` for an op that moves or selects values, else None."""
    for kind, modules, functions, methods in STRUCTURAL:
        if module is not None:
            if modules and isinstance(module, modules):
                return kind
        elif (node.op == "call_function" and node.target in functions) or \
                (node.op == "call_method" and node.target in methods):
            return kind
    return None


ADD = ({operator.add, operator.iadd, torch.add}, {"add", "__add__", "__radd__", "__iadd__"})
SUB = ({operator.sub, operator.isub, torch.sub, torch.subtract}, {"sub", "__sub__", "__rsub__"})
MUL = ({operator.mul, operator.imul, torch.mul, torch.multiply}, {"mul", "__mul__", "__rmul__", "__imul__"})
DIV = ({operator.truediv, operator.itruediv, torch.div, torch.true_divide}, {"div", "__truediv__",
                                                                            "__itruediv__"})
NEG = ({operator.neg, torch.neg}, {"neg", "__neg__"})
ZEROS = ({torch.zeros_like, torch.zeros}, {"new_zeros"})
#: (functions, methods, modules, kind, why) of the refused operations.
REFUSED: list[tuple[set, set, tuple, str, str]] = [
    ({operator.matmul, torch.matmul, torch.bmm, torch.mm, torch.einsum, torch.baddbmm,
      F.scaled_dot_product_attention}, {"matmul", "bmm", "mm", "__matmul__", "__rmatmul__"},
     (nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoder, nn.TransformerDecoder,
      nn.TransformerEncoderLayer, nn.TransformerDecoderLayer), "attention",
     "multiply activations by activations (attention, matmul): outside the paper's graphs"),
    ({F.linear, F.conv1d, F.conv2d, F.conv3d, F.bilinear, F.conv_transpose1d, F.conv_transpose2d,
      F.conv_transpose3d}, set(), (), "functional",
     "apply weights functionally; archscale reads weights from nn.Linear / nn.Conv modules"),
    ({F.glu, torch.prod}, {"prod"}, (), "product", "multiply signals (a product or gating)"),
]
