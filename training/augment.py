"""Augmentation as in Christ et al. 2017: elastic deformation, translation, rotation and additive
Gaussian noise scaled by the slice's standard deviation. One spatial transform (a sampling grid)
is built per sample and applied to the image (bilinear) and to the label (nearest), so they move
together. `gamma` (beyond the paper) raises the image, kept in [0, 1], to a random power: MR
intensities have no fixed scale, and one CHAOS liver is much darker than the rest (docs/RESULTS.md).
`organ_gamma` (beyond the paper) does the same to the labelled organ alone: on T2 MR, iron darkens
the liver's tissue while its vessels stay bright.
Everything runs on torch tensors, batched, on the device of the generator (CPU when
there is none), so a GPU run augments on the GPU.
"""
import math

import torch
import torch.nn.functional as F


def _device(generator):
    return generator.device if generator is not None else torch.device("cpu")


def gaussian_kernel1d(sigma, device=None):
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(x, sigma, mode=None):
    """Separable Gaussian blur of [n, 1, h, w] (sigma in px). Edges: `mode` ("reflect" or
    "replicate"); by default mirrored, or repeated where the kernel is wider than the image."""
    _, _, h, w = x.shape
    k = gaussian_kernel1d(sigma, x.device)
    r = (len(k) - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode or ("reflect" if r < w else "replicate")), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode or ("reflect" if r < h else "replicate")), k.view(1, 1, -1, 1))


def smooth_field(n, h, w, sigma, generator=None):
    """Simard-style elastic displacement: uniform noise in [-1, 1], Gaussian-smoothed (sigma in px)
    and rescaled so its maximum magnitude is 1. Returns [n, 2, h, w] (dx, dy), unitless."""
    dev = _device(generator)
    noise = torch.rand((n * 2, 1, h, w), generator=generator, device=dev) * 2 - 1
    f = blur(noise, sigma).view(n, 2, h, w)
    peak = f.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return f / peak


def sampling_grid(n, h, w, rotate_deg=0.0, translate=0.0, elastic_px=0.0, elastic_sigma=10.0, generator=None):
    """A grid for F.grid_sample (align_corners=False), [n, h, w, 2]: random rotation in
    [-rotate_deg, rotate_deg] about the centre, translation up to `translate` x size per axis,
    plus an elastic displacement of at most `elastic_px` pixels."""
    g = generator
    dev = _device(g)
    ang = (torch.rand(n, generator=g, device=dev) * 2 - 1) * math.radians(rotate_deg)
    t = (torch.rand(n, 2, generator=g, device=dev) * 2 - 1) * translate * 2  # normalised coords span 2
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(n, 2, 3, device=dev)
    # Rotation in pixel space: correct the aspect of non-square slices.
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False)
    if elastic_px > 0:
        d = smooth_field(n, h, w, elastic_sigma, generator=g) * elastic_px
        # pixels -> normalised units (2 / size per pixel)
        grid = grid + torch.stack([d[:, 0] * 2 / w, d[:, 1] * 2 / h], dim=-1)
    return grid


def warp(image, label, grid):
    """image [n, 1, h, w] float (bilinear, zeros outside), label [n, h, w] int64 (nearest, 0 outside)."""
    img = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(label.unsqueeze(1).float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return img, lab.squeeze(1).round().long()


def add_noise(image, factor, generator=None):
    """Adds Gaussian noise of standard deviation `factor` x each slice's own std."""
    std = image.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    return image + torch.randn(image.shape, generator=generator, device=_device(generator)) * std * factor


def log_uniform(n, hi, generator=None):
    """`n` numbers drawn log-uniformly from [1 / hi, hi]."""
    u = torch.rand(n, generator=generator, device=_device(generator))
    return torch.exp((u * 2 - 1) * math.log(hi))


def random_gamma(image, max_gamma, generator=None):
    """Raises each slice (clamped to [0, 1]) to a power drawn log-uniformly from
    [1 / max_gamma, max_gamma]; returns the images and the powers."""
    g = log_uniform(image.shape[0], max_gamma, generator)
    return image.clamp(0.0, 1.0).pow(g.view(-1, 1, 1, 1)), g


def organ_gamma(image, label, max_gamma, sigma=2.0, generator=None):
    """Raises each slice's foreground (label >= 1) to a power drawn log-uniformly from
    [1 / max_gamma, max_gamma], blended at the edge through the mask smoothed with a Gaussian of
    `sigma` px. A power above 1 darkens the organ's mid-grey tissue much more than its brightest
    pixels, as iron darkens the liver's parenchyma on T2 while its vessels stay bright.
    Returns the images and the powers."""
    g = log_uniform(image.shape[0], max_gamma, generator).view(-1, 1, 1, 1)
    m = blur((label >= 1).float().unsqueeze(1), sigma, mode="replicate")
    x = image.clamp(0.0, 1.0)
    return x + m * (x.pow(g) - x), g.view(-1)


def augment(image, label, cfg, generator=None):
    """Applies the augmentation of `cfg` (dict: rotate_deg, translate, elastic_px, elastic_sigma,
    organ_gamma, gamma, noise, p) to a batch. Each sample is transformed with probability p."""
    n, _, h, w = image.shape
    p = cfg.get("p", 1.0)
    grid = sampling_grid(n, h, w, cfg.get("rotate_deg", 0.0), cfg.get("translate", 0.0),
                         cfg.get("elastic_px", 0.0), cfg.get("elastic_sigma", 10.0), generator)
    dev = _device(generator)
    keep = torch.rand(n, generator=generator, device=dev) >= p
    if keep.any():
        ident = F.affine_grid(torch.eye(2, 3, device=dev).expand(n, 2, 3), (n, 1, h, w), align_corners=False)
        grid[keep] = ident[keep]
    img, lab = warp(image, label, grid)

    def some(changed, unchanged):  # each sample takes `changed` with probability p
        use = (torch.rand(n, generator=generator, device=dev) < p).view(-1, 1, 1, 1)
        return torch.where(use, changed, unchanged)

    if cfg.get("organ_gamma", 1.0) > 1.0:
        img = some(organ_gamma(img, lab, cfg["organ_gamma"], generator=generator)[0], img)
    if cfg.get("gamma", 1.0) > 1.0:
        img = some(random_gamma(img, cfg["gamma"], generator)[0], img)
    if cfg.get("noise", 0.0) > 0:
        img = some(add_noise(img, cfg["noise"], generator), img)
    return img, lab
