"""Unit tests of the tumour synthesis (training/synth_tumor.py, synth_data.py) on synthetic
volumes. Run: .venv-train/bin/python -m unittest discover -s training/tests -v"""
import copy
import os
import sys
import tempfile
import unittest

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from prepare import resize_label  # noqa: E402
from synth_data import HostSet, draw_liver_slices, draw_rois, equalize_slice  # noqa: E402
from synth_tumor import Host, load_config, synthesize  # noqa: E402


def phantom_liver(spacing, liver_hu=100.0, shape_mm=(120.0, 160.0, 160.0), seed=0, vessels=True):
    """An ellipsoidal 'liver' (semi-axes 50 x 65 x 65 mm) of `liver_hu` with CT-like noise and two
    bright straight 'vessels', in fat (-100 HU), on a grid of `spacing` mm per array axis."""
    sp = np.asarray(spacing, dtype=np.float64)
    shape = tuple(int(round(s / d)) for s, d in zip(shape_mm, sp))
    c = [(n - 1) / 2 for n in shape]
    z, y, x = np.meshgrid(*[(np.arange(n) - ci) * d for n, ci, d in zip(shape, c, sp)], indexing="ij")
    liver = (z / 50.0) ** 2 + (y / 65.0) ** 2 + (x / 65.0) ** 2 <= 1
    rng = np.random.default_rng(seed)
    hu = np.where(liver, liver_hu, -100.0) + rng.normal(0, 10.0, shape)
    if vessels:
        tube = ((y - 20) ** 2 + (x + 15) ** 2 <= 9) | ((z + 10) ** 2 + (x - 25) ** 2 <= 9)
        hu = np.where(liver & tube, liver_hu + 80.0, hu)
    return hu.astype(np.float32), liver


def only(cfg, cls, **over):
    """The config with every tumour of class `cls` and keys overridden."""
    cfg = copy.deepcopy(cfg)
    for c in cfg["size_classes"]:
        cfg["size_classes"][c]["p"] = 1.0 if c == cls else 0.0
    cfg.update(over)
    return cfg


class Synthesis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cfg = load_config()
        cls.sp = (2.5, 0.8, 0.8)
        cls.hu, cls.liver = phantom_liver(cls.sp)
        cls.host = Host(cls.hu, cls.liver, cls.sp, cls.cfg)

    def test_same_seed_same_tumours_other_seed_others(self):
        a = synthesize(self.host, self.cfg, np.random.default_rng(7), count=3)
        b = synthesize(self.host, self.cfg, np.random.default_rng(7), count=3)
        c = synthesize(self.host, self.cfg, np.random.default_rng(8), count=3)
        self.assertTrue(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
        self.assertEqual(a[2], b[2])
        self.assertTrue((a[1] == 2).any())
        self.assertFalse(np.array_equal(a[1], c[1]))

    def test_tumours_are_lesion_inside_the_unchanged_liver(self):
        for seed in range(4):
            hu, lab, tumours = synthesize(self.host, self.cfg, np.random.default_rng(seed), count=4)
            self.assertTrue(tumours)
            liver = self.host.liver
            self.assertTrue(np.array_equal(lab >= 1, liver), "the liver label must still cover every liver voxel")
            self.assertTrue(np.all(lab[~liver] == 0))
            self.assertTrue((lab == 2).any())
            self.assertEqual(set(np.unique(lab)), {0, 1, 2})
            # Outside the liver nothing changed.
            self.assertTrue(np.array_equal(hu[~liver], self.host.hu[~liver]))

    def test_small_tumours_lie_inside_and_away_from_vessels(self):
        cfg = only(self.cfg, "small")
        for seed in range(3):
            _, lab, tumours = synthesize(self.host, cfg, np.random.default_rng(seed), count=2)
            self.assertTrue(tumours)
            tum = lab == 2
            # No tumour voxel touches the liver's edge.
            self.assertFalse((tum & ~ndimage.binary_erosion(self.host.liver)).any())
            for t in tumours:
                c = tuple(t["centre"])
                need = min(cfg["vessel_clearance"] * np.mean(t["axes_mm"]), cfg["vessel_clearance_max_mm"])
                self.assertGreaterEqual(float(self.host.dist_vessel[c]), need)
                self.assertTrue(self.host.liver[c])

    def test_radius_is_in_mm_whatever_the_spacing(self):
        """A sphere (no ellipticity, deformation or mass effect) of radius r mm has the volume
        4/3 pi r^3 on a fine isotropic grid and on a coarse anisotropic one alike."""
        cfg = only(self.cfg, "medium", ellipticity=0.0, elastic_amplitude=0.0, mass_effect=[0.0, 0.0])
        cfg["size_classes"]["medium"]["radius_mm"] = [12.0, 12.0]
        vols = []
        for sp in [(1.0, 1.0, 1.0), (3.0, 0.7, 0.7)]:
            hu, liver = phantom_liver(sp, vessels=False)
            host = Host(hu, liver, sp, cfg)
            _, lab, tumours = synthesize(host, cfg, np.random.default_rng(1), count=1)
            self.assertEqual(len(tumours), 1)
            self.assertAlmostEqual(tumours[0]["radius_mm"], 12.0)
            vol = (lab == 2).sum() * np.prod(sp)
            vols.append(vol)
            self.assertAlmostEqual(vol / (4 / 3 * np.pi * 12.0 ** 3), 1.0, delta=0.08)
            # Extent along the coarse axis in mm, not voxels.
            ks = np.flatnonzero((lab == 2).any(axis=(1, 2)))
            self.assertAlmostEqual((ks[-1] - ks[0] + 1) * sp[0], 24.0, delta=2 * sp[0])

    def test_intensity_follows_the_host_liver(self):
        """The same draw in a liver at 60 HU and one at 140 HU: tumours 80 HU apart, each within
        the configured distance below its own liver."""
        cfg = only(self.cfg, "medium", hypodense_probability=1.0, rim_probability=0.0)
        means = []
        for level in (60.0, 140.0):
            hu, liver = phantom_liver(self.sp, liver_hu=level, vessels=False)
            host = Host(hu, liver, self.sp, cfg)
            out, lab, tumours = synthesize(host, cfg, np.random.default_rng(3), count=1)
            core = ndimage.binary_erosion(lab == 2, iterations=2)
            self.assertGreater(core.sum(), 50)
            m = float(out[core].mean())
            lo, hi = cfg["hypodense_delta_hu"]
            self.assertAlmostEqual(m - host.median, tumours[0]["delta_hu"], delta=4.0)
            self.assertTrue(lo - 4 <= m - host.median <= hi + 4)
            means.append(m)
        self.assertAlmostEqual(means[1] - means[0], 80.0, delta=3.0)

    def test_mass_effect_pushes_tissue_outward(self):
        """On a liver whose intensity grows along the last axis, pushing tissue away from the
        tumour brings lower values to the shell beyond it on that side."""
        cfg = only(self.cfg, "medium", ellipticity=0.0, elastic_amplitude=0.0, mass_effect=[0.5, 0.5],
                   rim_probability=0.0)
        sp = (1.0, 1.0, 1.0)
        hu, liver = phantom_liver(sp, vessels=False)
        ramp = np.broadcast_to(np.arange(hu.shape[2], dtype=np.float32), hu.shape)
        hu = np.where(liver, 100.0 + ramp, hu).astype(np.float32)
        host = Host(hu, liver, sp, cfg)
        out, lab, tumours = synthesize(host, cfg, np.random.default_rng(2), count=1)
        t = tumours[0]
        r = t["axes_mm"][0]
        g = np.indices(out.shape).astype(np.float64)
        d = np.sqrt(sum((g[i] - t["centre"][i]) ** 2 for i in range(3)))
        shell = (d > 1.1 * r) & (d < 1.5 * r) & host.liver & (g[2] > t["centre"][2] + 0.5 * r)
        self.assertGreater(shell.sum(), 100)
        self.assertLess(float((out - host.hu)[shell].mean()), -0.5)
        far = (d > 1.05 * cfg["mass_reach"] * r * (1 + cfg["elastic_amplitude"])) & host.liver
        self.assertTrue(np.array_equal(out[far], host.hu[far]))

    def test_healthy_draw_changes_nothing(self):
        hu, lab, tumours = synthesize(self.host, self.cfg, np.random.default_rng(0), count=0)
        self.assertEqual(tumours, [])
        self.assertTrue(np.array_equal(hu, self.host.hu))
        self.assertTrue(np.array_equal(lab, self.host.liver.astype(np.uint8)))

    def test_config_refuses_a_missing_key(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write("tumours_per_liver: [1.0]\n")
            with self.assertRaises(ValueError) as e:
                load_config(path)
            self.assertIn("bad.yaml", str(e.exception))
            self.assertIn("size_classes", str(e.exception))


class SynthRois(unittest.TestCase):
    def test_rois_carry_the_tumours_and_held_out_hosts_are_refused(self):
        cfg = load_config()
        sp = (3.0, 1.2, 1.2)
        hu, liver = phantom_liver(sp)
        with tempfile.TemporaryDirectory() as d:
            np.savez(os.path.join(d, "hostA.npz"), hu=np.rint(hu).astype(np.int16), liver=liver.astype(np.uint8),
                     spacing=np.array(sp), k0=0, shape=np.array(hu.shape))
            hosts = HostSet(d, ["hostA"], cfg)
            img, lab, case_of, medians, n = draw_rois(hosts, np.random.default_rng(5), (64, 64))
            self.assertEqual(img.shape, lab.shape)
            self.assertEqual(img.dtype, np.uint8)
            self.assertEqual(len(img), int(liver.any(axis=(1, 2)).sum()))
            self.assertTrue(np.all(case_of == 0))
            if n:
                self.assertTrue(lab.any())
                # Tumour pixels are darker than the liver's median (hypodense mostly) or at least liver.
                self.assertTrue(np.all(img[lab == 1] > 0))
            self.assertAlmostEqual(medians[0], (100.0 + 100.0) / 500.0, delta=0.02)
            with self.assertRaises(SystemExit):
                HostSet(d, ["btcv0022"], cfg)

    def test_closed_rois_show_what_the_closing_adds(self):
        """With close_mm the ROI keeps the pixels the per-slice closing adds (a notch 6 mm wide
        cut into the liver mask, not the image), as crop_resample masks with close_mm; the
        tumours and their labels are the same draw."""
        cfg = dict(load_config(), healthy_probability=0.0)
        sp = (3.0, 1.2, 1.2)
        hu, liver = phantom_liver(sp, vessels=False)
        notched = liver.copy()
        notched[:, 64:69, 100:] = False
        with tempfile.TemporaryDirectory() as d:
            np.savez(os.path.join(d, "hostA.npz"), hu=np.rint(hu).astype(np.int16), liver=notched.astype(np.uint8),
                     spacing=np.array(sp), k0=0, shape=np.array(hu.shape))
            hosts = HostSet(d, ["hostA"], cfg)
            plain = draw_rois(hosts, np.random.default_rng(7), (64, 64))
            closed = draw_rois(hosts, np.random.default_rng(7), (64, 64), close_mm=10.0)
        self.assertEqual(plain[0].shape, closed[0].shape)
        self.assertTrue(np.array_equal(plain[1], closed[1]))
        self.assertGreater((closed[0] > 0).sum(), (plain[0] > 0).sum())
        self.assertTrue(np.all(closed[0][plain[0] > 0] > 0))

    def test_binary_label_resize_matches_prepare(self):
        from prepare import resize_image
        rng = np.random.default_rng(0)
        for _ in range(5):
            m = ndimage.binary_opening(rng.random((37, 53)) > 0.6)
            want = resize_label(m.astype(np.uint8)[None], (64, 64), 2)[0]
            got = (resize_image(m[None], (64, 64))[0] > 0.5).astype(np.uint8)
            self.assertTrue(np.array_equal(want, got))

    def test_equalize_matches_the_node_definition(self):
        """4 pixels over [0, 4) with 4 bins (the node's unit-test case) and a value mid-bin."""
        out = equalize_slice(np.array([[0.0, 1.0], [2.0, 3.0]]), 0.0, 4.0, 4)
        self.assertTrue(np.allclose(out, [[0.0, 0.25], [0.5, 0.75]]))
        out = equalize_slice(np.array([[0.5, 1.0], [2.0, 9.0]]), 0.0, 4.0, 4)
        self.assertTrue(np.allclose(out, [[0.125, 0.25], [0.5, 1.0]]))

    def test_liver_slices_change_only_where_tumours_are(self):
        cfg = load_config()
        sp = (3.0, 1.2, 1.2)
        hu, liver = phantom_liver(sp)
        ks = np.flatnonzero(liver.any(axis=(1, 2)))
        with tempfile.TemporaryDirectory() as d:
            np.savez(os.path.join(d, "hostA.npz"), hu=np.rint(hu[ks[0]:ks[-1] + 1]).astype(np.int16),
                     liver=liver[ks[0]:ks[-1] + 1].astype(np.uint8), spacing=np.array(sp), k0=int(ks[0]),
                     shape=np.array(hu.shape))
            hosts = HostSet(d, ["hostA"], cfg)
            (k0, healthy), = draw_liver_slices(hosts, np.random.default_rng(0), (32, 32))[0]
            self.assertEqual((k0, len(healthy)), (int(ks[0]), len(ks)))
            cfg_t = dict(cfg, healthy_probability=0.0)
            hosts.cfg = cfg_t
            [(_, sick)], n = draw_liver_slices(hosts, np.random.default_rng(1), (32, 32))
            self.assertGreater(n, 0)
            self.assertEqual(sick.dtype, np.uint8)
            hosts.cfg = dict(cfg, healthy_probability=1.0)
            [(_, none)], _ = draw_liver_slices(hosts, np.random.default_rng(1), (32, 32))
            changed = np.abs(sick.astype(int) - none.astype(int)).reshape(len(sick), -1).max(axis=1) > 0
            self.assertTrue(changed.any())
            self.assertFalse(changed.all(), "slices without tumour stay as they were")


class TrainWithSynth(unittest.TestCase):
    """train.py's synth section end to end on tiny data: a lesion model on synthetic tumours only
    and a liver model whose training liver gets tumours."""

    def run_config(self, d, **cfg):
        import train
        base = {"name": "t", "classes": ["background", "fg"], "input_size": [32, 32], "preprocess": "hu_window:-100,400",
                "modality": "ct", "width": 4, "depth": 2, "batch_norm": True, "val_cases": [], "batch_size": 2,
                "epoch_iters": 2, "epochs": 3, "loss": {"weights": [1.0, 3.0]}, "optimizer": {"name": "adam", "lr": 0.001},
                "augment": {}, "threads": 1, "run_root": os.path.join(d, "runs"), "log_dir": os.path.join(d, "logs")}
        base.update(cfg)
        train.train(base, False, None, "cpu", False)
        with open(os.path.join(d, "logs", "t.tsv")) as f:
            return f.read().splitlines()

    def test_lesion_and_liver_configs_train(self):
        sp = (3.0, 1.2, 1.2)
        hu, liver = phantom_liver(sp)
        ks = np.flatnonzero(liver.any(axis=(1, 2)))
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "hosts"))
            np.savez(os.path.join(d, "hosts", "hostA.npz"), hu=np.rint(hu[ks[0]:ks[-1] + 1]).astype(np.int16),
                     liver=liver[ks[0]:ks[-1] + 1].astype(np.uint8), spacing=np.array(sp), k0=int(ks[0]),
                     shape=np.array(hu.shape))
            synth = {"config": "training/configs/synth_tumor.yaml", "data": os.path.join(d, "hosts"), "hosts": ["hostA"],
                     "every_epochs": 1}
            log = self.run_config(d, data=os.path.join(d, "none"), train_cases=[], synth=dict(synth),
                                  preprocess="hu_window:-100,400;scale:0.002,0.2;liver_level:0.4")
            self.assertEqual(len(log), 4, log)  # header + 3 epochs
            os.makedirs(os.path.join(d, "slices"))
            n = hu.shape[0]
            np.savez(os.path.join(d, "slices", "hostA.npz"), img=np.zeros((n, 32, 32), np.uint8),
                     lab=np.ones((n, 32, 32), np.uint8), shape=np.array(hu.shape))
            log = self.run_config(d, data=os.path.join(d, "slices"), train_cases=["hostA"],
                                  synth=dict(synth, target="liver_slices"))
            self.assertEqual(len(log), 4, log)
            with self.assertRaises(SystemExit):  # a liver host must be a training case
                self.run_config(d, data=os.path.join(d, "slices"), train_cases=["hostA"],
                                synth=dict(synth, target="liver_slices", hosts=["hostB"]))


if __name__ == "__main__":
    unittest.main()
