"""RefUNet in PyTorch, exactly as docs/refunet.md specifies it.

Used to write the golden file that tests/test_refunet_golden.cpp checks, and by
bench/torch_refunet.py to time the same network. Parameter names are the
checkpoint names of the spec, so state_dict() keys match softdiff's
safetensors checkpoints one to one.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, a, b, temb_ch, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, a, eps=eps)
        self.conv1 = nn.Conv2d(a, b, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, b)
        self.norm2 = nn.GroupNorm(groups, b, eps=eps)
        self.conv2 = nn.Conv2d(b, b, 3, padding=1)
        self.skip = nn.Conv2d(a, b, 1) if a != b else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, ch, groups, eps):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=eps)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(n, c, hh * ww).permute(0, 2, 1)  # [n, hw, c]
        k = self.k(y).reshape(n, c, hh * ww)                    # [n, c, hw]
        v = self.v(y).reshape(n, c, hh * ww).permute(0, 2, 1)  # [n, hw, c]
        a = torch.softmax(torch.bmm(q, k) / math.sqrt(c), dim=-1)
        o = torch.bmm(a, v).permute(0, 2, 1).reshape(n, c, hh, ww)
        return x + self.proj(o)


class Downsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def timestep_embedding(t, c):
    h = c // 2
    k = torch.arange(h, dtype=t.dtype)
    f = torch.exp(-math.log(10000.0) * k / (h - 1))
    arg = t[:, None] * f[None, :] * 1000.0
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class RefUNet(nn.Module):
    def __init__(self, in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                 attn_at_lowest=True, groups=8, norm_eps=1e-5):
        super().__init__()
        c = base_channels
        self.c = c
        self.levels = len(channel_mult)
        self.num_res_blocks = num_res_blocks
        self.temb = nn.Sequential(nn.Linear(c, 4 * c), nn.SiLU(), nn.Linear(4 * c, 4 * c))
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        skip_ch = [c]
        ch = c
        self.down = nn.ModuleList()
        for i, m in enumerate(channel_mult):
            level = nn.Module()
            level.res = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.res.append(ResBlock(ch, c * m, 4 * c, groups, norm_eps))
                ch = c * m
                skip_ch.append(ch)
            if i != self.levels - 1:
                level.down = Downsample(ch)
                skip_ch.append(ch)
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.res = nn.ModuleList([ResBlock(ch, ch, 4 * c, groups, norm_eps),
                                      ResBlock(ch, ch, 4 * c, groups, norm_eps)])
        self.mid.attn = AttnBlock(ch, groups, norm_eps) if attn_at_lowest else None
        ups = [None] * self.levels
        for i in reversed(range(self.levels)):
            level = nn.Module()
            level.res = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.res.append(ResBlock(ch + skip_ch.pop(), c * channel_mult[i], 4 * c, groups, norm_eps))
                ch = c * channel_mult[i]
            if i != 0:
                level.up = Upsample(ch)
            ups[i] = level
        self.up = nn.ModuleList(ups)
        self.norm_out = nn.GroupNorm(groups, c, eps=norm_eps)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)

    def forward(self, x, t):
        temb = self.temb(timestep_embedding(t, self.c))
        h = self.conv_in(x)
        skips = [h]
        for i in range(self.levels):
            for j in range(self.num_res_blocks):
                h = self.down[i].res[j](h, temb)
                skips.append(h)
            if i != self.levels - 1:
                h = self.down[i].down(h)
                skips.append(h)
        h = self.mid.res[0](h, temb)
        if self.mid.attn is not None:
            h = self.mid.attn(h)
        h = self.mid.res[1](h, temb)
        for i in reversed(range(self.levels)):
            for j in range(self.num_res_blocks + 1):
                h = self.up[i].res[j](torch.cat([h, skips.pop()], dim=1), temb)
            if i != 0:
                h = self.up[i].up(h)
        return self.conv_out(F.silu(self.norm_out(h)))


if __name__ == "__main__":
    net = RefUNet()
    print(sum(p.numel() for p in net.parameters()))
    for k, v in list(net.state_dict().items())[:12]:
        print(k, tuple(v.shape))
