"""Writes the small synthetic seed inputs of the fuzz targets (no scan data).

Run with a Python that has pydicom (the training venv): .venv-train/bin/python fuzz/make_seeds.py
"""
import io
import pathlib
import struct

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

OUT = pathlib.Path(__file__).parent / "seeds"
SEPARATOR = b"\xffFUZZFILE\xff"  # voxflow_fuzz::FILE_SEPARATOR


def nifti1(dims, datatype, bitpix, data, endian="<", offset=352, ext=b"", slope=1.0):
    h = bytearray(348)
    struct.pack_into(endian + "i", h, 0, 348)
    struct.pack_into(endian + "8h", h, 40, len(dims), *dims, *[1] * (7 - len(dims)))
    struct.pack_into(endian + "hh", h, 70, datatype, bitpix)
    struct.pack_into(endian + "8f", h, 76, 1.0, 0.8, 0.9, 2.5, 1, 1, 1, 1)
    struct.pack_into(endian + "fff", h, 108, offset, slope, 0.0)
    h[123] = 2
    struct.pack_into(endian + "hh", h, 252, 1, 1)
    struct.pack_into(endian + "6f", h, 256, 0, 0, 0.7071068, 10, -20, 30)
    struct.pack_into(endian + "12f", h, 280, 0, -0.9, 0, 10, 0.8, 0, 0, -20, 0, 0, 2.5, 30)
    h[344:348] = b"n+1\0"
    extflag = b"\1\0\0\0" if ext else b"\0\0\0\0"
    return bytes(h) + extflag + ext + data


def nifti2(dims, datatype, bitpix, data):
    h = bytearray(544)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    struct.pack_into("<8q", h, 16, len(dims), *dims, *[1] * (7 - len(dims)))
    struct.pack_into("<8d", h, 104, 1.0, 0.8, 0.9, 2.5, 1, 1, 1, 1)
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<dd", h, 176, 1.0, 0.0)
    struct.pack_into("<ii", h, 344, 1, 1)
    struct.pack_into("<6d", h, 352, 0, 0, 0.7071068, 10, -20, 30)
    struct.pack_into("<12d", h, 400, 0, -0.9, 0, 10, 0.8, 0, 0, -20, 0, 0, 2.5, 30)
    struct.pack_into("<i", h, 500, 2)
    return bytes(h) + data


def nifti_seeds():
    d = OUT / "nifti"
    d.mkdir(parents=True, exist_ok=True)
    n = 4 * 3 * 2
    i16 = struct.pack("<%dh" % n, *[(v * 37) % 2000 - 1000 for v in range(n)])
    (d / "int16.nii").write_bytes(nifti1([4, 3, 2], 4, 16, i16))
    (d / "int16_be.nii").write_bytes(
        nifti1([4, 3, 2], 4, 16, struct.pack(">%dh" % n, *[(v * 37) % 2000 - 1000 for v in range(n)]), endian=">"))
    (d / "uint8_label.nii").write_bytes(nifti1([4, 3, 2], 2, 8, bytes(v % 3 for v in range(n))))
    (d / "float32.nii").write_bytes(nifti1([4, 3, 2], 16, 32, struct.pack("<%df" % n, *[v * 0.5 for v in range(n)])))
    (d / "float64_2d.nii").write_bytes(nifti1([4, 3], 64, 64, struct.pack("<12d", *range(12))))
    probs = [((v // n) + (v % 2)) % 2 * 1.0 for v in range(2 * n)]
    (d / "prob_4d.nii").write_bytes(nifti1([4, 3, 2, 2], 16, 32, struct.pack("<%df" % (2 * n), *probs)))
    ext = struct.pack("<ii", 64, 6) + b"x" * 56
    (d / "int16_extension.nii").write_bytes(nifti1([4, 3, 2], 4, 16, i16, offset=416, ext=ext))
    (d / "int16_scaled.nii").write_bytes(nifti1([4, 3, 2], 4, 16, i16, slope=0.5))
    (d / "int16_nifti2.nii").write_bytes(nifti2([4, 3, 2], 4, 16, i16))
    for code, bits, name in [(512, 16, "uint16"), (8, 32, "int32"), (768, 32, "uint32"),
                             (1024, 64, "int64"), (1280, 64, "uint64"), (256, 8, "int8")]:
        (d / f"{name}.nii").write_bytes(nifti1([4, 3, 2], code, bits, bytes(n * bits // 8)))


def dicom_slice(series, z, k, rows=6, cols=5, transfer=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series, str(k)])
    meta.TransferSyntaxUID = transfer
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series
    ds.PatientID = "FUZZ"
    ds.PatientName = "Fuzz^Seed"
    ds.Modality = "CT"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [-10.0, -20.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.9]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = struct.pack("<%dh" % (rows * cols), *[(v * 31 + k) % 3000 for v in range(rows * cols)])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=transfer == ImplicitVRLittleEndian,
               little_endian=True)
    return buf.getvalue()


def dicom_seeds():
    one = OUT / "dicom_file"
    one.mkdir(parents=True, exist_ok=True)
    series = "1.2.826.0.1.3680043.8.498.2"
    (one / "ct_slice.dcm").write_bytes(dicom_slice(series, 0.0, 0))
    (one / "ct_slice_implicit.dcm").write_bytes(dicom_slice(series, 0.0, 0, transfer=ImplicitVRLittleEndian))
    folder = OUT / "dicom_folder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "three_slices").write_bytes(SEPARATOR.join(dicom_slice(series, 2.5 * k, k) for k in range(3)))
    (folder / "two_series").write_bytes(SEPARATOR.join(
        [dicom_slice(series, 0.0, 0), dicom_slice(series, 2.5, 1), dicom_slice(series + ".9", 0.0, 0)]))


nifti_seeds()
dicom_seeds()
