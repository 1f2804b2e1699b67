"""Reference decoding of DICOM files with pydicom, for tests/dicom_codecs.rs.

Usage: dicom_reference.py OUT_DIR FILE...  For each FILE writes OUT_DIR/NAME.f32 (the modality
values, RescaleSlope/Intercept applied, float32 little endian, row-major) and OUT_DIR/NAME.json
(transfer syntax, Rows, Columns and the geometry tags that are present).
With `--test-files` instead of OUT_DIR, prints the folder of pydicom's bundled test files.
With `--make-jpeg SOURCE OUT`, writes OUT: SOURCE's header with a synthetic 8-bit 64 x 64
image encoded by Pillow as JPEG baseline (1.2.840.10008.1.2.4.50), and OUT.u8, the image
before encoding.
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

if sys.argv[1] == "--test-files":
    print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))
    sys.exit(0)
if sys.argv[1] == "--make-jpeg":
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    j, i = np.mgrid[0:64, 0:64]
    image = (100 + 80 * np.sin(i / 7.0) * np.cos(j / 11.0) + (i > 40) * 40).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    ds = pydicom.dcmread(sys.argv[2])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(sys.argv[3], enforce_file_format=True)
    image.tofile(sys.argv[3] + ".u8")
    sys.exit(0)
out = sys.argv[1]
for path in sys.argv[2:]:
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype("<f4")
    name = os.path.basename(path)
    values.tofile(os.path.join(out, name + ".f32"))
    info = {"TransferSyntaxUID": str(ds.file_meta.TransferSyntaxUID), "Rows": ds.Rows, "Columns": ds.Columns}
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        if key in ds:
            v = ds[key].value
            info[key] = [float(x) for x in v] if isinstance(v, (list, pydicom.multival.MultiValue)) else float(v)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(info, f)
