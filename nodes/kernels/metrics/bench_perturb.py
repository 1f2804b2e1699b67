#!/usr/bin/env python3
"""Writes a perturbed copy of a label map (for bench.sh on real data; output under /tmp only).

usage: bench_perturb.py LABEL.nii.gz OUT.nii.gz
Liver (label >= 1) rolled by 2 voxels along x and dilated once (6-connected); lesions
(label 2) rolled the same way and eroded once; header/affine copied.
"""
import sys
import numpy as np
import nibabel as nib
from scipy import ndimage as ndi

im = nib.load(sys.argv[1])
a = np.asanyarray(im.dataobj)
liver = ndi.binary_dilation(np.roll(a >= 1, 2, axis=0))
les = ndi.binary_erosion(np.roll(a == 2, 2, axis=0))
out = np.zeros(a.shape, np.uint8)
out[liver] = 1
out[les & liver] = 2
nib.save(nib.Nifti1Image(out, im.affine, im.header), sys.argv[2])
