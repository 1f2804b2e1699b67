"""Checks a DICOM SEG written by voxflow's `write_dicom_seg` against its source series and the
label volume it was written from, with pydicom and highdicom. Called by tests/dicom_seg.rs.

usage: check_seg.py SEG DICOM_DIR LABEL_NII
Exits non-zero with the first mismatch; prints one summary line when everything matches.
"""

import os
import sys

import highdicom
import nibabel
import numpy as np
import pydicom
from pydicom.uid import UID

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def check(cond, msg):
    if not cond:
        sys.exit(f"check_seg: {msg}")


def code(seq):
    check(len(seq) == 1, f"expected one code item, got {len(seq)}")
    return (seq[0].CodeValue, seq[0].CodingSchemeDesignator)


def main(seg_path, dicom_dir, label_path):
    seg = pydicom.dcmread(seg_path)
    src = [
        pydicom.dcmread(os.path.join(dicom_dir, f), stop_before_pixels=True)
        for f in sorted(os.listdir(dicom_dir))
    ]
    # Slice k = position along the slice normal (as voxflow and the NIfTI conversion order them).
    ori = np.array(src[0].ImageOrientationPatient, float)
    normal = np.cross(ori[:3], ori[3:])
    src.sort(key=lambda d: float(normal @ np.array(d.ImagePositionPatient, float)))
    k_of = {d.SOPInstanceUID: k for k, d in enumerate(src)}
    first = src[0]

    # The object, new identifiers.
    check(seg.SOPClassUID == SEG_SOP_CLASS, f"SOPClassUID {seg.SOPClassUID}")
    check(seg.file_meta.MediaStorageSOPClassUID == SEG_SOP_CLASS, "file meta SOP class")
    check(seg.file_meta.MediaStorageSOPInstanceUID == seg.SOPInstanceUID, "file meta UID")
    check(seg.Modality == "SEG" and seg.SegmentationType == "BINARY", "modality/type")
    check(seg.BitsAllocated == 1 and seg.BitsStored == 1, "not 1-bit")
    for kw in ["SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"]:
        uid = seg.get(kw)
        check(uid and UID(uid).is_valid, f"{kw} {uid!r} is not a valid UID")
    check(seg.SeriesInstanceUID != first.SeriesInstanceUID, "SeriesInstanceUID not new")
    check(seg.SOPInstanceUID not in k_of, "SOPInstanceUID not new")
    check(seg.SOPInstanceUID.startswith("2.25."), "SOPInstanceUID not 2.25.<uuid>")

    # Patient and study attributes of the source (type 2: present even where empty).
    for kw in [
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
        "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    ]:
        check(kw in seg, f"{kw} missing")
        check(str(seg[kw].value or "") == str(first.get(kw) or ""),
              f"{kw}: {seg[kw].value!r} vs source {first.get(kw)!r}")

    # Segments and their codes.
    segs = {s.SegmentNumber: s for s in seg.SegmentSequence}
    check(sorted(segs) == [1, 2], f"segments {sorted(segs)}")
    liver, lesion = segs[1], segs[2]
    check(code(liver.SegmentedPropertyCategoryCodeSequence) == ("91723000", "SCT"), "liver category")
    check(code(liver.SegmentedPropertyTypeCodeSequence) == ("10200004", "SCT"), "liver type")
    check(code(lesion.SegmentedPropertyCategoryCodeSequence) == ("49755003", "SCT"),
          "lesion category")
    check(code(lesion.SegmentedPropertyTypeCodeSequence) == ("52988006", "SCT"), "lesion type")
    check(code(lesion.AnatomicRegionSequence) == ("10200004", "SCT"), "lesion region")
    for s in segs.values():
        check(s.SegmentAlgorithmType == "AUTOMATIC", "algorithm type")
        alg = s.SegmentationAlgorithmIdentificationSequence[0]
        check(alg.AlgorithmName == "voxflow" and alg.AlgorithmVersion, "algorithm identification")
        check(code(alg.AlgorithmFamilyCodeSequence) == ("123110", "DCM"), "algorithm family")

    # References to the whole source series.
    ref = seg.ReferencedSeriesSequence
    check(len(ref) == 1 and ref[0].SeriesInstanceUID == first.SeriesInstanceUID, "series ref")
    check([r.ReferencedSOPInstanceUID for r in ref[0].ReferencedInstanceSequence]
          == [d.SOPInstanceUID for d in src], "ReferencedInstanceSequence")

    # Shared geometry.
    shared = seg.SharedFunctionalGroupsSequence[0]
    check(np.allclose(shared.PixelMeasuresSequence[0].PixelSpacing, first.PixelSpacing,
                      rtol=0, atol=1e-9), "PixelSpacing")
    check(np.allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                      first.ImageOrientationPatient, rtol=0, atol=1e-9), "orientation")

    # Frames: each one's position and reference is its source slice's.
    frames = seg.PerFrameFunctionalGroupsSequence
    check(int(seg.NumberOfFrames) == len(frames), "NumberOfFrames")
    where = []
    for n, f in enumerate(frames):
        s = f.DerivationImageSequence[0].SourceImageSequence[0]
        check(s.ReferencedSOPInstanceUID in k_of, f"frame {n}: unknown source instance")
        check(s.ReferencedSOPClassUID == first.SOPClassUID, f"frame {n}: source SOP class")
        k = k_of[s.ReferencedSOPInstanceUID]
        pos = [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
        want = [float(v) for v in src[k].ImagePositionPatient]
        check(np.allclose(pos, want, rtol=0, atol=1e-6),
              f"frame {n}: position {pos} vs source slice {k} {want}")
        number = f.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        check(list(f.FrameContentSequence[0].DimensionIndexValues) == [number, k + 1],
              f"frame {n}: DimensionIndexValues")
        where.append((number, k))
    check(len(set(where)) == len(where), "two frames for one segment and slice")

    # Masks: decoded frames equal the label volume (NIfTI i = column, j = row).
    lab = np.asarray(nibabel.load(label_path).dataobj).transpose(2, 1, 0)
    check(lab.shape == (len(src), seg.Rows, seg.Columns), f"label shape {lab.shape}")
    want = {1: lab >= 1, 2: lab == 2}
    pix = seg.pixel_array.reshape(len(frames), seg.Rows, seg.Columns)
    got = {s: np.zeros_like(want[s]) for s in want}
    for (number, k), p in zip(where, pix):
        got[number][k] = p.astype(bool)
    for s in want:
        check(np.array_equal(got[s], want[s]), f"segment {s}: decoded mask differs")
    # Empty frames omitted: a frame exists exactly where its segment has pixels.
    nonempty = {(s, k) for s in want for k in range(lab.shape[0]) if want[s][k].any()}
    check(set(where) == nonempty, "frames are not exactly the non-empty ones")
    check(seg.SegmentsOverlap == ("YES" if want[2].any() else "NO"), "SegmentsOverlap")

    # highdicom reads it as a segmentation of the source instances.
    hseg = highdicom.seg.segread(seg_path)
    px = hseg.get_pixels_by_source_instance(
        [d.SOPInstanceUID for d in src],
        segment_numbers=[1, 2],
        assert_missing_frames_are_empty=True,
    )
    for i, s in enumerate([1, 2]):
        check(np.array_equal(px[..., i].astype(bool), want[s]), f"highdicom: segment {s}")
    check(hseg.get_segment_description(1).segment_label == "Liver", "highdicom: label")

    print(f"check_seg: ok: {len(frames)} frames, {len(src)} source slices, "
          f"{int(want[1].sum())} liver and {int(want[2].sum())} lesion voxels, "
          f"pydicom {pydicom.__version__}, highdicom {highdicom.__version__}")


if __name__ == "__main__":
    check(len(sys.argv) == 4, __doc__)
    main(*sys.argv[1:])
