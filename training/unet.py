"""U-Net (Ronneberger et al. 2015): contracting path of two 3x3 convolutions + ReLU per level and
2x2 max pooling, expanding path with learned 2x2 up-convolutions (ConvTranspose2d, stride 2),
skip connections by concatenation, a 1x1 convolution to the classes and a softmax.

Convolutions are padded ("same"), so the output has the input's size and the exported model
has `voxflow.padding` 0. `in_channels` > 1: the slice and its neighbours (`context_slices` in a
training config), one channel each. Optional batch normalisation after each convolution (folded into the
convolution at export). Defaults: width 16, depth 4 (4 poolings) -> 1.94 M parameters.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, batch_norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(cout) if batch_norm else None
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(cout) if batch_norm else None

    def forward(self, x):
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        x = F.relu(x)
        x = self.conv2(x)
        if self.bn2 is not None:
            x = self.bn2(x)
        return F.relu(x)


class UNet(nn.Module):
    def __init__(self, classes=2, width=16, depth=4, batch_norm=True, in_channels=1):
        super().__init__()
        self.classes, self.width, self.depth, self.batch_norm = classes, width, depth, batch_norm
        self.in_channels = in_channels
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.down.append(DoubleConv(cin, c, batch_norm))
            cin = c
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for c in reversed(chans[:-1]):
            self.up.append(nn.ConvTranspose2d(c * 2, c, 2, stride=2))
            self.up_conv.append(DoubleConv(c * 2, c, batch_norm))
        self.head = nn.Conv2d(chans[0], classes, 1)

    def logits(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, block in zip(self.up, self.up_conv):
            x = up(x)
            x = block(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
