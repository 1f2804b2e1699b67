"""Compare the largest_component plugin with scipy.ndimage (26-connectivity) on real labels.

Usage (repo root): .venv-oracles/bin/python plugins/largest_component/compare.py VOXFLOW LIB FILE...
Runs `voxflow run` on each label file (outputs in a temp dir, deleted), checks voxel equality
with scipy's largest component, and prints one JSON line per file with both timings.
"""
import json, os, subprocess, sys, tempfile, time
import nibabel as nib
import numpy as np
import scipy.ndimage as nd

voxflow, lib, files = sys.argv[1], sys.argv[2], sys.argv[3:]
GRAPH = """graph: lcc
plugins: [{lib}]
nodes:
  seg:  {{ kind: read_volume, path: {inp}, as: label }}
  lcc:  {{ kind: largest_component, in: seg }}
  save: {{ kind: write_volume, in: lcc, path: {out} }}
"""
for f in files:
    with tempfile.TemporaryDirectory() as d:
        out, rep, g = os.path.join(d, "out.nii.gz"), os.path.join(d, "r.json"), os.path.join(d, "g.yaml")
        open(g, "w").write(GRAPH.format(lib=os.path.abspath(lib), inp=os.path.abspath(f), out=out))
        t = time.perf_counter()
        subprocess.run([voxflow, "-q", "run", g, "--report", rep], check=True)
        wall = time.perf_counter() - t
        node = [n for n in json.load(open(rep))["nodes"] if n["id"] == "lcc"][0]
        got = np.asarray(nib.load(out).dataobj)
        a = np.asarray(nib.load(f).dataobj)
        t = time.perf_counter()
        lab, n = nd.label(a > 0, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        ref = np.where(lab == sizes.argmax(), a, 0) if n else a
        t_scipy = time.perf_counter() - t
        print(json.dumps({
            "file": os.path.basename(f), "shape": list(a.shape), "components": int(n),
            "removed_voxels": int((a != ref).sum()), "mismatched_voxels": int((got != ref).sum()),
            "plugin_node_wall_ms": round(node["wall_ms"], 1), "plugin_node_busy_ms": round(node["busy_ms"], 1),
            "voxflow_total_s": round(wall, 2), "scipy_label_ms": round(t_scipy * 1000, 1),
        }), flush=True)
