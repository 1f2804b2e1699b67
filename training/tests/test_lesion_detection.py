"""Unit tests of training/lesion_detection.py (the scoring behind the CT graph's false-lesion
params). Run: .venv-train/bin/python -m unittest discover -s training/tests -v"""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lesion_detection import evaluate  # noqa: E402


class LesionDetection(unittest.TestCase):
    def setUp(self):
        # 1 mL per voxel keeps the volumes readable: truth lesions of 8 and 1 voxels; predictions:
        # 4 voxels inside the big lesion, a 2-voxel false island, a 1-voxel false island
        # touching the big prediction only by a corner (so part of its 26-connected component).
        self.truth = np.ones((6, 6, 6), np.uint8)
        self.truth[0:2, 0:2, 0:2] = 2
        self.truth[5, 5, 5] = 2
        self.pred = np.ones_like(self.truth)
        self.pred[0:1, 0:2, 0:2] = 2
        self.pred[3, 3:5, 0] = 2
        self.pred[1, 2, 2] = 2

    def test_counts_and_dice_per_drop_threshold(self):
        rows = evaluate(self.pred, self.truth, 1.0, [0.0, 3.0, 10.0], truth_min_ml=1.0, pred_min_ml=0.5)
        # No drop: components {4 + corner voxel} (true) and {2} (false); 2 truth lesions >= 1 mL, one found.
        dice, found, big_truth, true_big, big, ml = rows[0]
        self.assertEqual((found, big_truth, true_big, big, ml), (1, 2, 1, 2, 7.0))
        self.assertAlmostEqual(dice, 2 * 4 / (7 + 9))
        # Drop < 3 mL: the false 2-voxel island goes, Dice rises.
        dice, found, _, true_big, big, ml = rows[1]
        self.assertEqual((found, true_big, big, ml), (1, 1, 1, 5.0))
        self.assertAlmostEqual(dice, 2 * 4 / (5 + 9))
        # Drop < 10 mL: nothing is left.
        dice, found, _, true_big, big, ml = rows[2]
        self.assertEqual((found, true_big, big, ml, dice), (0, 0, 0, 0.0, 0.0))

    def test_healthy_liver_counts_volume_only(self):
        rows = evaluate(self.pred, None, 0.5, [0.0], truth_min_ml=1.0, pred_min_ml=0.5)
        dice, found, big_truth, true_big, big, ml = rows[0]
        self.assertEqual((found, big_truth, true_big, big, ml, dice), (0, 0, 0, 2, 3.5, 0.0))


if __name__ == "__main__":
    unittest.main()
