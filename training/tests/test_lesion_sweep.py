"""Unit tests of training/lesion_sweep.py and training/tumour_coverage.py (issue 17's choice of the
CT graph's lesion_threshold / min_lesion_mm3, and the tumour coverage of a liver mask).
Run: .venv-train/bin/python -m unittest discover -s training/tests -v"""
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lesion_sweep import score  # noqa: E402
from tumour_coverage import close_slices, largest_component  # noqa: E402


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
        self.assertAlmostEqual(dice[(0.5, 0)], 2 * 8 / (10 + 8))
        self.assertAlmostEqual(dice[(0.7, 0)], 1.0)
        self.assertAlmostEqual(dice[(0.5, 250)], 0.0)   # 8 mm3 < 250: everything dropped
        self.assertAlmostEqual(ml[(0.6, 0)], 10 / 1000)
        self.assertAlmostEqual(ml[(0.6, 100)], 0.0)
        self.assertAlmostEqual(ml[(0.9, 0)], 0.0)        # 230 > round(0.9 * 255) = 230 is false

    def test_outside_the_liver_is_never_lesion(self):
        lab = np.zeros((4, 4, 4), np.uint8)
        q = np.full(lab.shape, 255, np.uint8)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "01_y.npz")
            np.savez_compressed(f, q=q, lab=lab, zooms=np.array([1.0, 1.0, 1.0]))
            self.assertEqual(score(f, None)[(0.5, 0)], 0.0)


class TumourCoverage(unittest.TestCase):
    def test_largest_component_and_closing(self):
        m = np.zeros((20, 20, 2), bool)
        m[2:18, 2:18, 0] = True
        m[8:12, 8:12, 0] = False   # a hole 4 px wide: a 3 mm closing fills it
        m[0, 19, 1] = True         # a far island: not the largest component
        big = largest_component(m)
        self.assertFalse(big[0, 19, 1])
        self.assertFalse(big[10, 10, 0])
        closed = close_slices(big, 3.0, (1.0, 1.0))
        self.assertTrue(closed[10, 10, 0])
        self.assertTrue((closed >= big).all())
        self.assertFalse(closed[:, :, 1].any())


if __name__ == "__main__":
    unittest.main()
