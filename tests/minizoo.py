"""A small collection of the CIFAR networks researchers train, written as they are usually written.

Scaled-down versions (few channels, few blocks, 16x16 inputs) of the classic PyTorch CIFAR
implementations: ResNet (basic and bottleneck blocks, projection shortcuts), pre-activation ResNet,
VGG with batch norm, DenseNet, GoogLeNet, MobileNet V1/V2, ResNeXt, SENet, EfficientNet, DPN,
ShuffleNetV2, RegNet, plus a few constructs that stress the tracer (shape arithmetic, control flow,
attention, learned scales). ``ZOO`` maps a name to ``(factory, apply options)``; options are the
documented choices a model needs (``gating="ignore"`` for the squeeze-excitation nets), ``None``
where archscale is expected to refuse it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMG = (2, 3, 16, 16)


def bn(c):
    return nn.BatchNorm2d(c)


# ---------------------------------------------------------------------------------------- ResNets
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = bn(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), bn(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x ``expansion``); ResNeXt's block is the same with a grouped 3x3."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, groups=1, expansion=4):
        super().__init__()
        out = expansion * planes
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = bn(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != out:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), bn(out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block=BasicBlock, blocks=(2, 2, 2, 2), width=8, classes=10):
        super().__init__()
        self.cin = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = bn(width)
        layers = []
        for i, n in enumerate(blocks):
            layers.append(self._layer(block, width * 2**i if i < 2 else width * 2, n, 1 if i == 0 else 2))
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(self.cin, classes)

    def _layer(self, block, planes, n, stride):
        out = []
        for s in [stride] + [1] * (n - 1):
            out.append(block(self.cin, planes, s))
            self.cin = planes * block.expansion
        return nn.Sequential(*out)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.avg_pool2d(out, out.size(3))
        return self.linear(out.view(out.size(0), -1))


class PreActBlock(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.bn1 = bn(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.layer1 = nn.Sequential(PreActBlock(width, width), PreActBlock(width, width))
        self.layer2 = nn.Sequential(PreActBlock(width, 2 * width, 2), PreActBlock(2 * width, 2 * width))
        self.bn = bn(2 * width)
        self.linear = nn.Linear(2 * width, classes)

    def forward(self, x):
        out = self.layer2(self.layer1(self.conv1(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.linear(out.flatten(1))


class VGG(nn.Module):
    def __init__(self, cfg=(8, 8, "M", 16, 16, "M", 32, "M"), classes=10):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), bn(v), nn.ReLU(inplace=True)]
                cin = v
        layers += [nn.AvgPool2d(1, 1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin * 4, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, x):
        out = self.features(x)
        return self.classifier(out.view(out.size(0), -1))


# ---------------------------------------------------------------------------------------- concatenations
class DenseBottleneck(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = bn(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = bn(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn = bn(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    def __init__(self, growth=4, blocks=(3, 3), classes=10):
        super().__init__()
        c = 2 * growth
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        stages = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                stages.append(DenseBottleneck(c, growth))
                c += growth
            if i < len(blocks) - 1:
                stages.append(Transition(c, c // 2))
                c //= 2
        self.dense = nn.Sequential(*stages)
        self.bn = bn(c)
        self.linear = nn.Linear(c, classes)

    def forward(self, x):
        out = self.dense(self.conv1(x))
        out = F.avg_pool2d(F.relu(self.bn(out)), 8)
        return self.linear(out.view(out.size(0), -1))


class Inception(nn.Module):
    def __init__(self, cin, n1, n3r, n3, n5r, n5, pool):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(cin, n1, 1), bn(n1), nn.ReLU(True))
        self.b2 = nn.Sequential(nn.Conv2d(cin, n3r, 1), bn(n3r), nn.ReLU(True),
                                nn.Conv2d(n3r, n3, 3, padding=1), bn(n3), nn.ReLU(True))
        self.b3 = nn.Sequential(nn.Conv2d(cin, n5r, 1), bn(n5r), nn.ReLU(True),
                                nn.Conv2d(n5r, n5, 3, padding=1), bn(n5), nn.ReLU(True),
                                nn.Conv2d(n5, n5, 3, padding=1), bn(n5), nn.ReLU(True))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, pool, 1), bn(pool), nn.ReLU(True))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.pre = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), bn(16), nn.ReLU(True))
        self.a3 = Inception(16, 8, 8, 8, 4, 4, 4)
        self.b3 = Inception(24, 8, 8, 8, 4, 4, 4)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.a4 = Inception(24, 8, 8, 8, 4, 4, 4)
        self.avgpool = nn.AvgPool2d(8, 1)
        self.linear = nn.Linear(24, classes)

    def forward(self, x):
        out = self.b3(self.a3(self.pre(x)))
        out = self.a4(self.pool(out))
        out = self.avgpool(out)
        return self.linear(out.view(out.size(0), -1))


class DPNBottleneck(nn.Module):
    def __init__(self, last, cin, mid, out_planes, dense, stride, first):
        super().__init__()
        self.out_planes, self.dense = out_planes, dense
        self.conv1 = nn.Conv2d(last, cin, 1, bias=False)
        self.bn1 = bn(cin)
        self.conv2 = nn.Conv2d(cin, mid, 3, stride, 1, groups=2, bias=False)
        self.bn2 = bn(mid)
        self.conv3 = nn.Conv2d(mid, out_planes + dense, 1, bias=False)
        self.bn3 = bn(out_planes + dense)
        self.shortcut = nn.Sequential()
        if first:
            self.shortcut = nn.Sequential(nn.Conv2d(last, out_planes + dense, 1, stride, bias=False),
                                          bn(out_planes + dense))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        x = self.shortcut(x)
        d = self.out_planes
        out = torch.cat([x[:, :d, :, :] + out[:, :d, :, :], x[:, d:, :, :], out[:, d:, :, :]], 1)
        return F.relu(out)


class DPN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = bn(8)
        last = 8
        blocks = []
        for i in range(2):
            blocks.append(DPNBottleneck(last, 8, 8, 8, 4, 1, i == 0))
            last = 8 + (i + 2) * 4
        self.layer = nn.Sequential(*blocks)
        self.linear = nn.Linear(last, classes)

    def forward(self, x):
        out = self.layer(F.relu(self.bn1(self.conv1(x))))
        out = F.avg_pool2d(out, 16)
        return self.linear(out.view(out.size(0), -1))


class ShuffleBlock(nn.Module):
    def __init__(self, groups=2):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.size()
        g = self.groups
        return x.view(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class SplitBlock(nn.Module):
    def __init__(self, ratio):
        super().__init__()
        self.ratio = ratio

    def forward(self, x):
        c = int(x.size(1) * self.ratio)
        return x[:, :c, :, :], x[:, c:, :, :]


class ShuffleUnit(nn.Module):
    def __init__(self, cin, ratio=0.5):
        super().__init__()
        self.split = SplitBlock(ratio)
        c = int(cin * ratio)
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = bn(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = bn(c)
        self.shuffle = ShuffleBlock()

    def forward(self, x):
        x1, x2 = self.split(x)
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return self.shuffle(torch.cat([x1, out], 1))


class ShuffleDown(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = bn(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = bn(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = bn(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = bn(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = bn(mid)
        self.shuffle = ShuffleBlock()

    def forward(self, x):
        out1 = self.bn1(self.conv1(x))
        out1 = F.relu(self.bn2(self.conv2(out1)))
        out2 = F.relu(self.bn3(self.conv3(x)))
        out2 = self.bn4(self.conv4(out2))
        out2 = F.relu(self.bn5(self.conv5(out2)))
        return self.shuffle(torch.cat([out1, out2], 1))


class ShuffleNetV2(nn.Module):
    def __init__(self, classes=10, width=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, 1, 1, bias=False)
        self.bn1 = bn(width // 2)
        # the second down block's depthwise conv reads the shuffled halves of several vertices
        self.layer1 = nn.Sequential(ShuffleDown(width // 2, width), ShuffleUnit(width), ShuffleUnit(width),
                                    ShuffleDown(width, 2 * width))
        self.conv2 = nn.Conv2d(2 * width, 2 * width, 1, bias=False)
        self.bn2 = bn(2 * width)
        self.linear = nn.Linear(2 * width, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


# ---------------------------------------------------------------------------------------- mobile, grouped
class MobileNetV1(nn.Module):
    def __init__(self, cfg=(16, (32, 2), 32), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = bn(8)
        layers, cin = [], 8
        for x in cfg:
            cout, stride = (x, 1) if isinstance(x, int) else x
            layers += [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), bn(cin), nn.ReLU(),
                       nn.Conv2d(cin, cout, 1, bias=False), bn(cout), nn.ReLU()]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).view(x.size(0), -1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expansion, stride, act=nn.ReLU6):
        super().__init__()
        self.stride = stride
        mid = expansion * cin
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = bn(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = bn(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = bn(cout)
        self.act1, self.act2 = act(), act()
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), bn(cout))

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    """cfg: (expansion, out channels, blocks, stride); ``width`` scales the stem and head."""

    def __init__(self, cfg=((1, 8, 1, 1), (2, 12, 2, 1), (2, 16, 2, 2)), width=8, head=32, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = bn(width)
        layers, cin = [], width
        for expansion, cout, n, stride in cfg:
            for s in [stride] + [1] * (n - 1):
                layers.append(InvertedResidual(cin, cout, expansion, s))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.conv2 = nn.Conv2d(cin, head, 1, bias=False)
        self.bn2 = bn(head)
        self.linear = nn.Linear(head, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


class ResNeXt(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 1, bias=False)
        self.bn1 = bn(16)
        self.layers = nn.Sequential(*(Bottleneck(cin, 16, stride, groups=4, expansion=2)  # cardinality 4
                                      for cin, stride in ((16, 1), (32, 1), (32, 2))))
        self.linear = nn.Linear(32, classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.avg_pool2d(out, 8).view(out.size(0), -1))


# ---------------------------------------------------------------------------------------- gates
class SEPreActBlock(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.bn1 = bn(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))
        self.fc1 = nn.Conv2d(planes, planes // 4, 1)
        self.fc2 = nn.Conv2d(planes // 4, planes, 1)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        w = F.avg_pool2d(out, out.size(2))
        w = F.relu(self.fc1(w))
        w = F.sigmoid(self.fc2(w))
        out = out * w
        out += shortcut
        return out


class SENet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = bn(8)
        self.layers = nn.Sequential(SEPreActBlock(8, 8), SEPreActBlock(8, 16, 2))
        self.linear = nn.Linear(16, classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.avg_pool2d(out, 8).view(out.size(0), -1))


def swish(x):
    return x * x.sigmoid()


def drop_connect(x, rate):
    keep = 1.0 - rate
    mask = torch.empty([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x.div(keep) * mask


class SE(nn.Module):
    def __init__(self, cin, se):
        super().__init__()
        self.se1 = nn.Conv2d(cin, se, 1, bias=True)
        self.se2 = nn.Conv2d(se, cin, 1, bias=True)

    def forward(self, x):
        out = F.adaptive_avg_pool2d(x, (1, 1))
        out = swish(self.se1(out))
        out = self.se2(out).sigmoid()
        return x * out


class MBConv(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expansion=1, se_ratio=0.25, drop_rate=0.2):
        super().__init__()
        self.stride, self.drop_rate, self.expansion = stride, drop_rate, expansion
        mid = expansion * cin
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = bn(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel, stride, (1 if kernel == 3 else 2), groups=mid, bias=False)
        self.bn2 = bn(mid)
        self.se = SE(mid, max(1, int(cin * se_ratio)))
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = bn(cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        out = x if self.expansion == 1 else swish(self.bn1(self.conv1(x)))
        out = swish(self.bn2(self.conv2(out)))
        out = self.se(out)
        out = self.bn3(self.conv3(out))
        if self.has_skip:
            if self.training and self.drop_rate > 0:
                out = drop_connect(out, self.drop_rate)
            out = out + x
        return out


class EfficientNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = bn(8)
        self.layers = nn.Sequential(MBConv(8, 8, 3, 1, 1), MBConv(8, 12, 5, 2, 2), MBConv(12, 12, 5, 1, 2))
        self.linear = nn.Linear(12, classes)

    def forward(self, x):
        out = swish(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1)
        out = out.view(out.size(0), -1)
        return self.linear(out)


class RegNetBlock(nn.Module):
    def __init__(self, cin, cout, group_width=4, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, groups=cout // group_width, bias=False)
        self.bn2 = bn(cout)
        self.se = SE(cout, cout // 4)
        self.conv3 = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn3 = bn(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.se(out)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class RegNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = bn(8)
        self.layers = nn.Sequential(RegNetBlock(8, 16), RegNetBlock(16, 16, stride=2))
        self.linear = nn.Linear(16, classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, (1, 1)).view(out.size(0), -1))


class HardSwishNet(nn.Module):
    """Hand-written hard-swish and a GroupNorm/LayerNorm (read as pass-through by default)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.ln = nn.LayerNorm(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        h = self.gn(self.conv1(x))
        h = h * F.relu6(h + 3) / 6
        h = self.conv2(h) + h
        return self.fc(self.ln(h.mean((2, 3))))


# ---------------------------------------------------------------------------------------- refused
class Attention(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.embed = nn.Linear(48, d)
        self.q, self.k, self.v = (nn.Linear(d, d) for _ in range(3))
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.embed(x.flatten(2).transpose(1, 2).reshape(x.size(0), -1, 48))
        a = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / h.size(-1) ** 0.5, -1)
        return self.head((a @ self.v(h)).mean(1))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.deep, self.fc = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 10)

    def forward(self, x):
        h = self.conv(x)
        if h.mean() > 0:  # the structure depends on the data
            h = self.deep(F.relu(h))
        return self.fc(h.mean((2, 3)))


class LayerScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.block, self.fc = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 10)
        self.gamma = nn.Parameter(1e-4 * torch.ones(8, 1, 1))

    def forward(self, x):
        h = self.stem(x)
        h = h + self.gamma * self.block(F.relu(h))
        return self.fc(h.mean((2, 3)))


ZOO: dict[str, tuple] = {
    "resnet_basic": (lambda: ResNet(BasicBlock, (2, 2, 2, 2)), {}),
    "resnet_bottleneck": (lambda: ResNet(Bottleneck, (1, 2, 1, 1)), {}),
    "preact_resnet": (PreActResNet, {}),
    "vgg_bn": (VGG, {}),
    "densenet": (DenseNet, {}),
    "googlenet": (GoogLeNet, {}),
    "mobilenet_v1": (MobileNetV1, {}),
    "mobilenet_v2": (MobileNetV2, {}),
    "resnext": (ResNeXt, {}),
    "senet": (SENet, {"gating": "ignore"}),
    "efficientnet": (EfficientNet, {"gating": "ignore"}),
    "regnet": (RegNet, {"gating": "ignore"}),
    "dpn": (DPN, {}),
    "shufflenet_v2": (ShuffleNetV2, {}),
    "hardswish_norms": (HardSwishNet, {}),
    "attention": (Attention, None),
    "data_dependent": (DataDependent, None),
    "layer_scale": (LayerScale, None),
}
