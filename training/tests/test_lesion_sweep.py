"""Unit tests of training/lesion_sweep.py and training/tumour_coverage.py (issue 17's choice of the
CT graph's lesion_threshold / min_lesion_mm3, and the tumour coverage of a liver mask).
Run: .venv-train/bin/python -m unittest discover -s training/tests -v"""
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lesion_sweep import score, score_mask, thickness_mm  # noqa: E402
from prepare import close_slices  # noqa: E402
from tumour_coverage import largest_component  # noqa: E402


class LesionSweep(unittest.TestCase):
    def test_threshold_and_minimum_volume(self):
        lab = np.ones((8, 8, 8), np.uint8)
        q = np.zeros_like(lab)
        q[0:2, 0:2, 0:2] = 230   # 8 voxels at p 0.90: kept by every threshold below 0.9
        q[5, 5, 5:7] = 166       # 2 voxels at p 0.65: lesion at t 0.5 and 0.6 only
        truth = np.zeros(lab.shape, bool)
        truth[0:2, 0:2, 0:2] = True
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_x.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            dice = score(f, truth)
            ml = score(f, None)
        self.assertAlmostEqual(dice[(0.5, 0, 0, 0)][0], 2 * 8 / (10 + 8))
        self.assertAlmostEqual(dice[(0.7, 0, 0, 0)][0], 1.0)
        self.assertAlmostEqual(dice[(0.5, 250, 0, 0)][0], 0.0)   # 8 mm3 < 250: everything dropped
        self.assertAlmostEqual(ml[(0.6, 0, 0, 0)][5], 10 / 1000)
        self.assertAlmostEqual(ml[(0.6, 100, 0, 0)][5], 0.0)
        self.assertAlmostEqual(ml[(0.9, 0, 0, 0)][5], 0.0)        # 230 > round(0.9 * 255) = 230 is false

    def test_detection_counts(self):
        """Issue 17's counts: truth lesions >= 1 mL found by predicted components >= 0.5 mL."""
        lab = np.ones((20, 20, 20), np.uint8)
        q = np.zeros_like(lab)
        truth = np.zeros(lab.shape, bool)
        truth[0:10, 0:10, 0:10] = True     # 1000 mm3 = 1 mL: counted
        truth[15:17, 15:17, 15:17] = True  # 8 mm3: too small to count
        q[0:8, 0:8, 0:8] = 255             # 512 mm3 on the big lesion: found, true
        q[12:20, 12:14, 0:20] = 255        # 320 mm3 apart from it: under 0.5 mL, not counted
        q[0:8, 12:20, 12:20] = 255         # 512 mm3 touching no lesion: false
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_z.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            _, found, lesions, true_components, components, _ = score(f, truth)[(0.5, 0, 0, 0)]
        self.assertEqual((found, lesions, true_components, components), (1, 1, 1, 2))

    def test_mean_liver_probability(self):
        """min_lesion_liver_prob drops a component by the mean of the liver probability under it."""
        lab = np.ones((8, 8, 8), np.uint8)
        q = np.zeros_like(lab)
        lp = np.full(lab.shape, 65535, np.uint16)
        q[0:2, 0:2, 0:2] = 255                  # 8 voxels, liver probability 1 and 0.5: mean 0.75
        lp[0, 0:2, 0:2] = 32768
        q[5:7, 5:7, 5:7] = 255                  # 8 voxels at liver probability 0.55
        lp[5:7, 5:7, 5:7] = round(0.55 * 65535)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_w.npz")
            np.savez_compressed(f, q=q, lab=lab, lp=lp, zooms=np.array([1.0, 1.0, 1.0]))
            ml = score(f, None)
            g = os.path.join(d, "01_v.npz")
            np.savez_compressed(g, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            without = score(g, None)
        self.assertAlmostEqual(ml[(0.5, 0, 0, 0)][5], 16 / 1000)
        self.assertAlmostEqual(ml[(0.5, 0, 0.5, 0)][5], 16 / 1000)
        self.assertAlmostEqual(ml[(0.5, 0, 0.6, 0)][5], 8 / 1000)    # the 0.55 component goes
        self.assertAlmostEqual(ml[(0.5, 0, 0.7, 0)][5], 8 / 1000)    # 0.75 stays
        self.assertAlmostEqual(ml[(0.5, 0, 0.8, 0)][5], 0.0)
        self.assertEqual({k[2] for k in without}, {0})             # no liver probability: no filter

    def test_thickness(self):
        """min_lesion_thickness_mm drops a thin plate and keeps a ball of the same volume."""
        lab = np.ones((30, 30, 30), np.uint8)
        q = np.zeros_like(lab)
        q[2:22, 2:22, 2] = 255                  # 400 voxels, 1 voxel thick: thickness 2 x 2 mm
        k, j, i = np.mgrid[0:30, 0:30, 0:30]
        ball = (k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 21   # 4.6 voxels across
        q[ball] = 255
        zooms = (2.0, 1.0, 1.0)
        comp, n = __import__("scipy").ndimage.label(q > 0)
        thick = thickness_mm(comp, n, zooms)
        self.assertEqual(n, 2)
        self.assertAlmostEqual(thick[comp[2, 2, 2]], 2.0)       # 1 mm to the voxels beside it in i
        self.assertGreaterEqual(thick[comp[20, 20, 20]], 8.0)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_t.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array(zooms))
            ml = score(f, None)
        both = (400 + ball.sum()) * 2 / 1000
        self.assertAlmostEqual(ml[(0.5, 0, 0, 0)][5], both)
        self.assertAlmostEqual(ml[(0.5, 0, 0, 4)][5], ball.sum() * 2 / 1000)   # the plate goes
        self.assertAlmostEqual(ml[(0.5, 0, 0, 12)][5], 0.0)

    def test_unsure_and_thin(self):
        """With both set, a component goes only when it is unsure and thin."""
        lab = np.ones((30, 30, 30), np.uint8)
        q = np.zeros_like(lab)
        lp = np.full(lab.shape, 65535, np.uint16)
        q[2:12, 2:12, 2] = 255                  # thin plate, unsure: goes
        lp[2:12, 2:12, 2] = 0
        q[20:26, 20:26, 20:26] = 255            # thick block (6 voxels: 6 mm), unsure: stays
        lp[20:26, 20:26, 20:26] = 0
        q[2:12, 20:30, 12] = 255                # thin plate, sure: stays
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_u.npz")
            np.savez_compressed(f, q=q, lab=lab, lp=lp, zooms=np.array([1.0, 1.0, 1.0]))
            ml = score(f, None)
        self.assertAlmostEqual(ml[(0.5, 0, 0, 0)][5], (100 + 216 + 100) / 1000)
        self.assertAlmostEqual(ml[(0.5, 0, 0.5, 4)][5], (216 + 100) / 1000)
        self.assertAlmostEqual(ml[(0.5, 0, 0.5, 0)][5], 100 / 1000)        # unsure, any thickness
        self.assertAlmostEqual(ml[(0.5, 0, 0, 4)][5], 216 / 1000)          # thin, sure or not

    def test_ball_share_and_liver_dice(self):
        """min_lesion_ball_share drops a plate thin for its size and keeps a small round block; the
        mask table's liver Dice compares the liver mask with a healthy liver's label."""
        lab = np.ones((30, 30, 30), np.uint8)
        lab[:, :, 25:] = 0
        q = np.zeros_like(lab)
        q[2:22, 2:22, 2] = 255                  # 400 voxels, 2 mm thick: ball share 4.19 / 400
        q[20:23, 20:23, 20:23] = 255            # 27 voxels, 4 mm thick: ball share 33.5 / 27 -> 1
        host = np.ones(lab.shape, bool)         # the liver label: the mask plus 5 columns
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_b.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            ml, liver_dice = score_mask(f, None, host, (0.5, 0))
        self.assertAlmostEqual(ml[0][5], 427 / 1000)
        self.assertAlmostEqual(ml[0.02][5], 27 / 1000)      # 0.0105 < 0.02: the plate goes
        self.assertAlmostEqual(ml[0.15][5], 27 / 1000)
        self.assertAlmostEqual(liver_dice, 2 * 25 / (25 + 30))

    def test_outside_the_liver_is_never_lesion(self):
        lab = np.zeros((4, 4, 4), np.uint8)
        q = np.full(lab.shape, 255, np.uint8)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_y.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            self.assertEqual(score(f, None)[(0.5, 0, 0, 0)][5], 0.0)
            g = os.path.join(d, "01_n.npz")   # no component, with liver probabilities
            np.savez_compressed(g, q=q, lab=lab, lp=np.zeros(lab.shape, np.uint16), zooms=np.array([1.0, 1.0, 1.0]))
            self.assertEqual(score(g, None)[(0.5, 0, 0.8, 12)][5], 0.0)


class TumourCoverage(unittest.TestCase):
    def test_largest_component_and_closing(self):
        m = np.zeros((20, 20, 2), bool)
        m[2:18, 2:18, 0] = True
        m[8:12, 8:12, 0] = False   # a hole 4 px wide: a 3 mm closing fills it
        m[0, 19, 1] = True         # a far island: not the largest component
        big = largest_component(m)
        self.assertFalse(big[0, 19, 1])
        self.assertFalse(big[10, 10, 0])


class CloseSlices(unittest.TestCase):
    """The cases of close_slices' unit tests in nodes/kernels/volume/src/morphology.rs: a disk of radius
    15 px with a bite 5 px wide cut in from its right edge, on slice 1 of 3."""

    @staticmethod
    def bitten_disk():
        j, i = np.mgrid[0:41, 0:41]
        m = np.zeros((3, 41, 41), bool)
        m[1] = ((j - 20) ** 2 + (i - 20) ** 2 <= 225) & ~(((j >= 18) & (j <= 22)) & (i >= 26))
        return m

    def test_closing_fills_a_bite_wider_than_nothing_narrower_than_the_disk(self):
        m = self.bitten_disk()
        c = close_slices(m, 3.0, (1.0, 1.0))
        self.assertTrue(c[1, 20, 30])
        self.assertTrue(c[m].all())
        self.assertFalse(c[0].any() or c[2].any())
        self.assertFalse(c[1, 0, 0] or c[1, 40, 40])
        self.assertFalse(close_slices(m, 1.0, (1.0, 1.0))[1, 20, 30])

    def test_closing_radius_is_in_millimetres(self):
        m = self.bitten_disk()
        self.assertTrue(close_slices(m, 1.5, (0.5, 1.0))[1, 20, 30])
        self.assertFalse(close_slices(m, 1.5, (1.0, 1.0))[1, 20, 30])


if __name__ == "__main__":
    unittest.main()
