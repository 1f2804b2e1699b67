"""Training-step throughput of the default U-Net at 256x256 and 128x128 (docs/perf/training.md).
Run: nice -n 19 .venv-train/bin/python training/bench_train.py"""
import sys, time, torch
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from unet import UNet
from augment import augment
from losses import balanced_cross_entropy
torch.set_num_threads(2)
for size, width, bn in ((256, 16, True), (128, 16, True)):
    m = UNet(2, width, 4, bn)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=0.1)
    x = torch.rand(4, 1, size, size); y = (torch.rand(4, size, size) > 0.9).long()
    cfg = {"p": 0.8, "rotate_deg": 10, "translate": 0.05, "elastic_px": 6, "elastic_sigma": 12, "noise": 0.1}
    for i in range(4):
        if i == 1: t0 = time.time()
        xa, ya = augment(x, y, cfg)
        loss = balanced_cross_entropy(m.logits(xa), ya, [1.0, 10.0])
        opt.zero_grad(); loss.backward(); opt.step()
    dt = (time.time() - t0) / 3
    print(f"size {size} width {width}: {4/dt:.2f} train slices/s", flush=True)
