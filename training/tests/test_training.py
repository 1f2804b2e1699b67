"""Unit tests of the training code. Run: .venv-train/bin/python -m unittest discover -s training/tests -v"""
import math
import os
import sys
import tempfile
import unittest

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from augment import add_noise, augment, organ_gamma, random_gamma, sampling_grid, smooth_field, warp  # noqa: E402
from export import contract_metadata, fold, load_onnx_weights, to_onnx  # noqa: E402
from losses import balanced_cross_entropy, frequency_weights  # noqa: E402
from prepare import resize_label, roi_box, roi_crop  # noqa: E402
from train import ROOT, SliceSet, batch_tensors, context_slices, init_model, liver_level, load_config, shift_liver  # noqa: E402
from unet import UNet, count_params  # noqa: E402


def blocks(n=4, h=64, w=64):
    lab = torch.zeros((n, h, w), dtype=torch.long)
    lab[:, 10:30, 20:50] = 1
    lab[:, 40:60, 5:15] = 1
    return lab


class Augmentation(unittest.TestCase):
    def test_label_and_image_move_together(self):
        lab = blocks()
        img = lab.float().unsqueeze(1)
        g = torch.Generator().manual_seed(3)
        cfg = {"p": 1.0, "rotate_deg": 15, "translate": 0.1, "elastic_px": 4, "elastic_sigma": 6}
        out_img, out_lab = augment(img, lab, cfg, g)
        self.assertFalse(torch.equal(out_lab, lab), "the transform should move the label")
        inside, outside = out_img[:, 0] > 0.99, out_img[:, 0] < 0.01
        self.assertTrue(inside.any() and outside.any())
        self.assertTrue(torch.all(out_lab[inside] == 1), "label 0 where the image is fully 1")
        self.assertTrue(torch.all(out_lab[outside] == 0), "label 1 where the image is fully 0")
        # Nearly every pixel is on the same side of 0.5 in both.
        agree = ((out_img[:, 0] > 0.5).long() == out_lab).float().mean()
        self.assertGreater(float(agree), 0.99)

    def test_identity_grid_is_exact(self):
        lab = blocks()
        img = torch.rand((4, 1, 64, 64), generator=torch.Generator().manual_seed(0))
        grid = sampling_grid(4, 64, 64)
        a, b = warp(img, lab, grid)
        self.assertLess(float((a - img).abs().max()), 1e-5)
        self.assertTrue(torch.equal(b, lab))

    def test_elastic_field_is_smooth(self):
        g = torch.Generator().manual_seed(1)
        f = smooth_field(2, 128, 128, sigma=10.0, generator=g)
        self.assertAlmostEqual(float(f.abs().amax()), 1.0, places=5)
        step = torch.cat([(f[..., 1:, :] - f[..., :-1, :]).flatten(), (f[..., 1:] - f[..., :-1]).flatten()])
        # A Gaussian-smoothed field (sigma 10 px) changes by a few % of its peak between neighbours;
        # white noise of the same peak changes by ~0.7 on average.
        self.assertLess(float(step.abs().max()), 0.2)
        self.assertLess(float(step.abs().mean()) / float(f.abs().mean()), 0.1)
        rough = smooth_field(2, 128, 128, sigma=0.3, generator=g)
        step_r = (rough[..., 1:] - rough[..., :-1]).abs().mean() / rough.abs().mean()
        self.assertGreater(float(step_r), 0.5, "the smoothness check must be able to fail")

    def test_noise_level_follows_slice_std(self):
        g = torch.Generator().manual_seed(2)
        img = torch.rand((3, 1, 128, 128), generator=g) * torch.tensor([0.2, 1.0, 3.0]).view(3, 1, 1, 1)
        noisy = add_noise(img, 0.5, g)
        for s in range(3):
            want = 0.5 * float(img[s].std())
            got = float((noisy[s] - img[s]).std())
            self.assertAlmostEqual(got / want, 1.0, delta=0.03)

    def test_gamma_is_monotone_in_range_and_spans_both_ways(self):
        g = torch.Generator().manual_seed(4)
        img = torch.linspace(0, 1, 101).view(1, 1, 1, 101).repeat(400, 1, 1, 1)
        out, powers = random_gamma(img, 2.5, g)
        self.assertTrue(torch.all((powers >= 1 / 2.5) & (powers <= 2.5)))
        self.assertLess(float(powers.min()), 0.5)
        self.assertGreater(float(powers.max()), 2.0)
        self.assertTrue(torch.all((out >= 0) & (out <= 1)))
        self.assertTrue(torch.all(out[..., 1:] >= out[..., :-1]), "order of intensities kept")
        want = 0.5 ** powers
        self.assertLess(float((out[:, 0, 0, 50] - want).abs().max()), 1e-6)
        lab = blocks()
        x = lab.float().unsqueeze(1) * 0.5 + 0.25
        a, la = augment(x, lab, {"p": 1.0, "gamma": 2.5}, torch.Generator().manual_seed(5))
        self.assertTrue(torch.equal(la, lab), "gamma alone leaves the label alone")
        self.assertGreater(float((a - x).abs().max()), 0.05)

    def test_organ_gamma_darkens_the_organ_tissue_not_its_vessels_or_surroundings(self):
        g = torch.Generator().manual_seed(6)
        lab = torch.zeros((200, 64, 64), dtype=torch.long)
        lab[:, 16:48, 16:48] = 1
        img = torch.full((200, 1, 64, 64), 0.6)
        img[:, :, 32, 20:44] = 0.95  # a bright vessel through the organ
        out, pw = organ_gamma(img, lab, 4.0, sigma=2.0, generator=g)
        self.assertTrue(torch.all((pw >= 0.25) & (pw <= 4.0)))
        self.assertLess(float(pw.min()), 0.3)
        self.assertGreater(float(pw.max()), 3.0)
        self.assertLess(float((out[:, 0, 24, 24] - 0.6 ** pw).abs().max()), 1e-5, "organ tissue")
        self.assertLess(float((out[:, 0, 32, 32] - 0.95 ** pw).abs().max()), 1e-5, "vessel")
        self.assertLess(float((out[:, 0, 2, 2] - 0.6).abs().max()), 1e-6, "far background unchanged")
        dark = pw > 2.0
        self.assertTrue(bool(dark.any()))
        drop_tissue = 0.6 - out[dark, 0, 24, 24]
        drop_vessel = 0.95 - out[dark, 0, 32, 32]
        self.assertTrue(torch.all(drop_tissue > 2 * drop_vessel), "the vessel stays bright")
        self.assertTrue(torch.all((out >= 0) & (out <= 1)))
        a, la = augment(img, lab, {"p": 1.0, "organ_gamma": 4.0}, torch.Generator().manual_seed(7))
        self.assertTrue(torch.equal(la, lab), "organ_gamma alone leaves the label alone")
        self.assertGreater(float((a - img).abs().max()), 0.05)


class Loss(unittest.TestCase):
    def test_hand_computed_value(self):
        # pixel 1: logits (2, 0), class 0, weight 1 -> log(1 + e^-2) = 0.126928011
        # pixel 2: logits (0, 1), class 1, weight 13 -> 13 log(1 + e^-1) = 13 * 0.313261688
        # mean over the 2 pixels = (0.126928011 + 4.072401938) / 2 = 2.099664975
        logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]]).t().reshape(1, 2, 1, 2)
        target = torch.tensor([[[0, 1]]])
        loss = balanced_cross_entropy(logits, target, [1.0, 13.0])
        self.assertAlmostEqual(float(loss), 2.099664975, places=6)

    def test_frequency_weights(self):
        np.testing.assert_allclose(frequency_weights([90, 10]), [1.0, 9.0])
        np.testing.assert_allclose(frequency_weights([900, 90, 10]), [1.0, 910 / 90, 990 / 10])
        with self.assertRaises(ValueError):
            frequency_weights([10, 0])


class Model(unittest.TestCase):
    def test_default_size(self):
        m = UNet()
        self.assertEqual(count_params(m), 1_942_306)
        x = torch.rand(1, 1, 256, 256)
        p = m(x)
        self.assertEqual(tuple(p.shape), (1, 2, 256, 256))
        self.assertLess(float((p.sum(dim=1) - 1).abs().max()), 1e-5)

    def test_fold_matches_batch_norm_model(self):
        torch.manual_seed(0)
        m = UNet(3, width=4, depth=2)
        for mod in m.modules():  # non-trivial running statistics
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
        m.eval()
        x = torch.rand(2, 1, 32, 32)
        with torch.no_grad():
            self.assertLess(float((fold(m)(x) - m(x)).abs().max()), 1e-5)

    def test_init_from_onnx_reproduces_the_file(self):
        torch.manual_seed(1)
        m = UNet(2, width=4, depth=2)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.bias.data.uniform_(-0.2, 0.2)
        m.eval()
        x = torch.rand(2, 1, 32, 32)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            to_onnx(m, path, contract_metadata(["background", "liver"], [32, 32], "equalize:256", "ct", "1"), [32, 32])
            for bn in (True, False):
                fresh = UNet(2, width=4, depth=2, batch_norm=bn)
                before = float((fresh.eval()(x) - fold(m, half=True)(x)).abs().max())
                load_onnx_weights(fresh, path)
                with torch.no_grad():
                    err = float((fresh.eval()(x) - fold(m, half=True)(x)).abs().max())
                self.assertLess(err, 1e-5, f"batch_norm={bn}")
                self.assertGreater(before, 1e-3, "the check must be able to fail")
            with self.assertRaises(ValueError):
                load_onnx_weights(UNet(2, width=4, depth=3), path)


    def test_one_channel_file_starts_a_context_model_at_its_output(self):
        torch.manual_seed(3)
        m = UNet(2, width=4, depth=2).eval()
        x = torch.rand(2, 3, 32, 32)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            to_onnx(m, path, contract_metadata(["background", "liver"], [32, 32], "equalize:256", "ct", "1"), [32, 32])
            ctx = UNet(2, width=4, depth=2, in_channels=3)
            load_onnx_weights(ctx, path)
            ctx.eval()
            with torch.no_grad():
                want = fold(m, half=True)(x[:, 1:2])
                self.assertLess(float((ctx(x) - want).abs().max()), 1e-5)
                # The neighbours start at zero weight, so changing them changes nothing yet.
                y = x.clone()
                y[:, 0] = 1 - y[:, 0]
                self.assertLess(float((ctx(y) - want).abs().max()), 1e-5)
            out = os.path.join(d, "ctx.onnx")
            to_onnx(ctx, out, contract_metadata(["background", "liver"], [32, 32], "equalize:256", "ct", "1", 1), [32, 32])
            f = onnx.load(out)
            self.assertEqual(f.graph.input[0].type.tensor_type.shape.dim[1].dim_value, 3)
            self.assertEqual({p.key: p.value for p in f.metadata_props}["voxflow.context_slices"], "1")

    def test_neighbours_stay_in_their_case(self):
        with tempfile.TemporaryDirectory() as d:
            for case, n in (("a", 3), ("b", 4)):
                img = np.stack([np.full((8, 8), 10 * len(case) + k, np.uint8) for k in range(n)])
                np.savez(os.path.join(d, f"{case}.npz"), img=img + (0 if case == "a" else 100), lab=np.zeros_like(img))
            ds = SliceSet(d, ["a", "b"]).to("cpu")
            self.assertEqual(ds.neighbours([0, 2, 3, 6], 1).tolist(), [[0, 0, 1], [1, 2, 2], [3, 3, 4], [5, 6, 6]])
            img, lab = batch_tensors(ds, [3], 1)
            self.assertEqual(tuple(img.shape), (1, 3, 8, 8))
            self.assertEqual((img[0, :, 0, 0] * 255).round().tolist(), [110, 110, 111])

    def test_context_slices_must_be_what_the_model_contract_allows(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.yaml")
            for value, ok in (("", True), ("context_slices: 8", True), ("context_slices: 9", False),
                              ("context_slices: -1", False), ("context_slices: '1'", False),
                              ("context_slices: 1.0", False), ("context_slices: true", False)):
                with open(path, "w") as f:
                    f.write(f"name: c\n{value}\n")
                if ok:
                    self.assertIn(context_slices(load_config(path)), (0, 8))
                else:
                    with self.assertRaises(SystemExit, msg=value):
                        load_config(path)


class Quantize(unittest.TestCase):
    def test_int8_model_keeps_the_contract_and_the_output(self):
        import onnxruntime as ort
        from quantize import quantize_on
        torch.manual_seed(2)
        m = UNet(2, width=4, depth=2).eval()
        meta = contract_metadata(["background", "liver"], [32, 32], "equalize:256", "ct", "3")
        x = np.random.default_rng(0).random((16, 1, 32, 32)).astype(np.float32)
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "m.onnx"), os.path.join(d, "q.onnx")
            to_onnx(m, src, meta, [32, 32])
            quantize_on(src, dst, x, "minmax", True)
            q = onnx.load(dst)
            props = {p.key: p.value for p in q.metadata_props}
            self.assertEqual({k: v for k, v in props.items() if k in meta}, meta)
            self.assertIn("int8", props["voxflow.quantized"])
            ops = {n.op_type for n in q.graph.node}
            self.assertIn("QuantizeLinear", ops)

            def run(path):
                s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                return s.run(None, {s.get_inputs()[0].name: x})[0]
            a, b = run(src), run(dst)
            self.assertEqual(a.shape, b.shape)
            self.assertLess(float(np.abs(a - b).mean()), 0.02)
            with self.assertRaisesRegex(ValueError, "int8 model"):
                load_onnx_weights(UNet(2, width=4, depth=2), dst)


class Crop(unittest.TestCase):
    def test_roi_box_min_size_and_bounds(self):
        mask = np.zeros((100, 120), bool)
        mask[40:50, 30:35] = True  # 10 x 5 liver
        self.assertEqual(roi_box(mask, 60), (15, 75, 3, 63))  # widened symmetrically (25+25, 27+28)
        mask[:] = False
        mask[2:8, 110:118] = True  # near the corner: shifted inside
        self.assertEqual(roi_box(mask, 60), (0, 60, 60, 120))
        mask[:] = False
        mask[0:100, 0:90] = True  # larger than min_box: unchanged
        self.assertEqual(roi_box(mask, 60), (0, 100, 0, 90))
        self.assertIsNone(roi_box(np.zeros((10, 10), bool), 60))
        small = np.ones((40, 40), bool)  # slice smaller than min_box: the whole slice
        self.assertEqual(roi_box(small, 60), (0, 40, 0, 40))

    def test_roi_box_matches_crop_resample_node(self):
        # The cases of `widen_is_symmetric_and_clamped` in nodes/src/inference/crop_resample.rs.
        def box1d(lo, hi, n):
            m = np.zeros((n, 1), bool)
            m[lo:hi] = True
            return roi_box(m, 60)[:2]
        self.assertEqual(box1d(40, 50, 100), (15, 75))
        self.assertEqual(box1d(0, 10, 100), (0, 60))
        self.assertEqual(box1d(95, 100, 100), (40, 100))
        self.assertEqual(box1d(3, 5, 40), (0, 40))
        m = np.zeros((100, 120), bool)
        m[20, 30] = m[90, 31] = True
        self.assertEqual(roi_box(m, 60), (20, 91, 1, 61))  # node: [18, 93, 1, 61] with a 2 px margin

    def test_roi_crop_masks_outside_liver(self):
        img = np.full((100, 100), 0.7, np.float32)
        liver = np.zeros((100, 100), bool)
        liver[20:80, 20:80] = True
        crop, box = roi_crop(img, liver, (60, 60))
        self.assertEqual(box, (20, 80, 20, 80))
        np.testing.assert_allclose(crop, 0.7, atol=1e-6)  # box == liver: nothing masked
        liver[20:50, 20:80] = False
        crop, box = roi_crop(img, liver, (60, 60))
        self.assertEqual(box, (35, 95, 20, 80))  # rows 50..80 widened to 60
        self.assertEqual(float(crop[:10].max()), 0.0)

    def test_liver_level_shift(self):
        self.assertEqual(liver_level("hu_window:-100,400;scale:0.002,0.2;liver_level:0.413"), 0.413)
        self.assertIsNone(liver_level("hu_window:-100,400;equalize:256"))
        roi = np.array([[0, 100, 200], [250, 0, 10]], np.uint8)
        # Median 0.4, level 0.6: liver pixels +51, clipped; masked zeros stay 0.
        np.testing.assert_array_equal(shift_liver(roi, 0.4, 0.6), [[0, 151, 251], [255, 0, 61]])
        np.testing.assert_array_equal(shift_liver(roi, 0.4, 0.4), roi)
        np.testing.assert_array_equal(shift_liver(roi, 0.5, 0.1), [[0, 0, 98], [148, 0, 0]])

    def test_resize_label_keeps_classes(self):
        lab = np.zeros((1, 64, 64), np.uint8)
        lab[0, 16:48, 16:48] = 1
        r = resize_label(lab, (32, 32), 2)
        self.assertEqual(r.dtype, np.uint8)
        self.assertEqual(int(r.sum()), 16 * 16)


class InitModel(unittest.TestCase):
    def test_git_revision_gives_the_committed_bytes(self):
        import subprocess
        rev = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%H", "--", "models/ct_liver.onnx"],
                             capture_output=True, text=True, check=True).stdout.strip()
        want = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:models/ct_liver.onnx"],
                              capture_output=True, check=True).stdout
        path = init_model(f"git:{rev}:models/ct_liver.onnx")
        try:
            with open(path, "rb") as f:
                self.assertEqual(f.read(), want)
        finally:
            os.remove(path)
        self.assertEqual(init_model("models/ct_liver.onnx"), os.path.join(ROOT, "models/ct_liver.onnx"))
        with self.assertRaises(SystemExit):
            init_model("git:0000000:models/none.onnx")


if __name__ == "__main__":
    unittest.main()
