#!/usr/bin/env python3
"""Chooses the CT graph's `lesion_threshold` and `min_lesion_mm3` on validation volumes (issue 17
item 4; scripts/lesion_validation.sh runs it). Two steps:

  extract PROB.nii OUT.npz [--liver LIVER.nii]
                             the cascade's 3-class probabilities (the graph's `merge`, written by
                             write_volume as x, y, z, class) -> lesion probability (uint8, x255)
                             and the argmax label, compact; with --liver also the liver network's
                             probability (the graph's `liver`, channel 1; uint16, x65535)
  sweep DIR TRUTH_DIR        every DIR/FOLD_ID.npz scored per candidate pair: an ID with a
                             TRUTH_DIR/ID_label.nii.gz is a synthetic-tumour volume (lesion Dice),
                             one without is a healthy liver (predicted lesion mL)
  mask TRUTH_DIR --run TAU DIR DIR2 [--run ...]
                             the graph's liver_threshold x min_lesion_ball_share (below)

The candidate (t, v) labels lesion where the liver mask (argmax >= 1) has lesion probability > t,
then drops 26-connected lesion components under v mm3, as `paste_back` (`lesion_threshold`) and
`drop_small_components` do in the graph. The rule: the highest mean lesion Dice over the
synthetic volumes (rounded to 4 places; ties to the lower threshold, then the smaller volume)
among the pairs whose mean healthy lesion volume is <= --healthy-max-ml. The detection counts
(issue 17's: tumours >= 1 mL found, predicted components >= 0.5 mL touching one) are printed
beside it.

Where the .npz files have the liver probability, a second table scores `min_lesion_liver_prob`
(the graph's `drop_unsure_components`: a lesion component whose mean liver probability is below
it becomes liver) at the pair --at (default: the chosen pair). Its rule: the smallest value whose
mean healthy lesion volume is <= --healthy-max-ml and whose synthetic Dice is at most 0.02 below
that of 0 (no filter); 0 when 0 already meets the healthy bound.

With --guard DIR2 (the same volumes run with other liver models), a third table scores
`min_lesion_thickness_mm` (the graph's `drop_thin_components`: a lesion component whose thickness,
twice the largest distance in mm from one of its voxels to the nearest voxel outside it, is below
it becomes liver) jointly with the pair. Its rule: among the triples whose mean healthy
lesion volume in DIR is <= --healthy-max-ml and whose synthetic Dice in DIR2 is at most 0.02 below
DIR2's at --at without the filter, the highest synthetic Dice in DIR (ties to the thinner bound,
then the lower threshold, then the smaller volume); it is adopted if that Dice is at most 0.02
below DIR's at --at without the filter. A fourth table (with liver probabilities) scores both
filters at once at --at: a lesion goes when it is unsure (min_lesion_liver_prob) and thinner than
max_unsure_lesion_thickness_mm. Its rule: among the pairs with healthy <= --healthy-max-ml in DIR,
DIR2's Dice at most 0.02 below its own without them, and at most 2 synthetic tumours fewer found
in DIR, the highest Dice in DIR (ties to the thinner bound, then the lower probability), adopted
as the third table's is.

`mask` scores the liver mask's threshold (the graph's liver_threshold: each --run gives the part-2
folders made at one, DIR with the main liver models, DIR2 with the guard's) jointly with
min_lesion_ball_share (the graph's drop_thin_components: a lesion component goes when the volume of
a ball as thick as it, over its own volume, is below it) at --at. Its rule: among the pairs with
healthy <= --healthy-max-ml in DIR, DIR2's Dice at most 0.02 below its own at the lowest threshold
without the filter, at most 2 synthetic tumours fewer found in DIR and DIR2's liver Dice on the
healthy livers (against --labels) at most 0.005 lower, the highest Dice in DIR (ties to the lower
threshold, then the smaller share), adopted if at most 0.02 below DIR's at the lowest threshold
without the filter.
"""
import argparse
import glob
import os
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lesion_detection import CONN26  # noqa: E402  (the detection counts' 26-connectivity)
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MIN_MM3 = [0, 100, 250, 500, 1000, 2000]
MIN_LIVER_PROB = [0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
MIN_THICKNESS_MM = [0, 4, 6, 8, 10, 12]
LIVER_PROB_DICE_LOSS = 0.02  # the most synthetic Dice the liver-probability filter may cost
FILTER_DICE_LOSS = 0.02      # ... and the thickness and mask tables' filters, in either run
UNSURE_THIN_PROB = [0.5, 0.6, 0.7, 0.8, 0.9]   # the fourth table's grid
UNSURE_THIN_MM = [8, 10, 12]
FILTER_FOUND_LOSS = 2        # the most synthetic tumours the fourth and mask tables may lose (found)
BALL_SHARES = [0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15]   # the mask table's min_lesion_ball_share grid
MASK_LIVER_DICE_LOSS = 0.005   # the most healthy-liver Dice the guard's liver mask may lose
PRED_MIN_ML = 0.5    # issue 17's detection counts: predicted components of >= 0.5 mL ...
TRUTH_MIN_ML = 1.0   # ... and truth lesions of >= 1 mL


def extract(prob_path, out_path, liver_path=None):
    img = nib.load(prob_path)
    p = np.asarray(img.dataobj, dtype=np.float32)
    if p.ndim != 4 or p.shape[3] != 3:
        sys.exit(f"lesion_sweep: {prob_path} has shape {p.shape}, not x, y, z, 3 classes")
    extra = {}
    if liver_path:
        lp = np.asarray(nib.load(liver_path).dataobj, dtype=np.float32)
        if lp.ndim != 4 or lp.shape[:3] != p.shape[:3] or lp.shape[3] != 2:
            sys.exit(f"lesion_sweep: {liver_path} has shape {lp.shape}, not {p.shape[:3]} x 2 classes")
        extra["lp"] = np.round(np.clip(lp[..., 1], 0, 1) * 65535).astype(np.uint16)
    np.savez_compressed(out_path, q=np.round(p[..., 2] * 255).astype(np.uint8),
                        lab=np.argmax(p, axis=3).astype(np.uint8), zooms=np.array(img.header.get_zooms()[:3]),
                        **extra)


def thickness_mm(comp, n, zooms):
    """Per component of `comp` (labels 1..n; index 0 unused): twice the largest distance in mm from
    one of its voxels to the nearest voxel outside it (outside the volume counts as outside)."""
    out = np.zeros(n + 1)
    for c, box in enumerate(ndimage.find_objects(comp), start=1):
        inside = np.pad(comp[box] == c, 1)
        out[c] = 2 * ndimage.distance_transform_edt(inside, sampling=zooms)[inside].max()
    return out


def truth_lesions(t_mask, ml):
    """The truth's 26-connected lesions and which of them count (>= TRUTH_MIN_ML; index 0 unused)."""
    tlab, tn = ndimage.label(t_mask, structure=CONN26)
    big_truth = np.bincount(tlab.ravel(), minlength=tn + 1) * ml >= TRUTH_MIN_ML
    big_truth[0] = False
    return tlab, big_truth


def lesion_components(candidates, t_mask, tlab):
    """26-connected components of `candidates`: (labels, n, voxels per component, voxels on the
    truth per component, the (component, truth lesion) pairs that touch)."""
    comp, n = ndimage.label(candidates, structure=CONN26)
    vox = np.bincount(comp.ravel(), minlength=n + 1)
    inter = np.bincount(comp[t_mask], minlength=n + 1)
    hit = comp[t_mask] > 0
    pairs = set(zip(comp[t_mask][hit].tolist(), tlab[t_mask][hit].tolist()))
    return comp, n, vox, inter, pairs


def outcome(keep, vox, inter, pairs, big_truth, truth_voxels, ml):
    """(lesion Dice, truth lesions found, truth lesions, true components, components, lesion mL) of
    the components `keep` (index 0 ignored); components >= PRED_MIN_ML, truth lesions >= TRUTH_MIN_ML."""
    keep = keep.copy()
    keep[0] = False
    big = keep & (vox * ml >= PRED_MIN_ML)
    found = len({tl for pl, tl in pairs if big[pl] and big_truth[tl]})
    s = vox[keep].sum() + truth_voxels
    dice = 2 * inter[keep].sum() / s if s else 1.0
    return (dice, found, int(big_truth.sum()), int((big & (inter > 0)).sum()), int(big.sum()),
            vox[keep].sum() * ml)


def score(npz, truth):
    """{(t, v, m, T): (lesion Dice, truth lesions found, truth lesions, true components, components,
    lesion mL)} for min_lesion_liver_prob m (only 0 without a liver probability in the file) and
    thickness T: with m = 0 `drop_thin_components`' min_thickness_mm, with m > 0 the graph's
    max_unsure_lesion_thickness_mm (only unsure components thinner than T go; 0: any);
    components >= PRED_MIN_ML, truth lesions >= TRUTH_MIN_ML (issue 17's counts). Without truth
    (a healthy liver) only the lesion mL counts."""
    d = np.load(npz)
    q, liver = d["q"], d["lab"] >= 1
    lp = d["lp"].astype(np.float64) / 65535 if "lp" in d else None
    zooms = tuple(float(z) for z in d["zooms"])
    ml = float(np.prod(zooms)) / 1000
    t_mask = truth if truth is not None else np.zeros(q.shape, bool)
    tlab, big_truth = truth_lesions(t_mask, ml)
    filters = [(m, T) for m in (MIN_LIVER_PROB if lp is not None else [0]) for T in MIN_THICKNESS_MM]
    out = {}
    for t in THRESHOLDS:
        comp, n, vox, inter, pairs = lesion_components(liver & (q > round(t * 255)), t_mask, tlab)
        mean_lp = np.asarray(ndimage.mean(lp, comp, index=np.arange(n + 1))) if lp is not None and n else np.zeros(n + 1)
        thick = thickness_mm(comp, n, zooms)
        for v, (m, T) in [(v, f) for v in MIN_MM3 for f in filters]:
            keep = vox * ml * 1000 >= v
            if m > 0 or T > 0:   # drop what is thin (T > 0) and unsure (m > 0)
                keep &= ~((thick < T if T > 0 else True) & (mean_lp < m if m > 0 else True))
            out[(t, v, m, T)] = outcome(keep, vox, inter, pairs, big_truth, t_mask.sum(), ml)
    return out


def pool(outcomes, synthetic, dice, healthy, counts):
    """Adds one file's {key: outcome}: a synthetic-tumour volume's Dice and detection counts, or a
    healthy liver's lesion mL."""
    for k, o in outcomes.items():
        if synthetic:
            dice.setdefault(k, []).append(o[0])
            counts[k] = counts.get(k, np.zeros(4, int)) + np.array(o[1:5])
        else:
            healthy.setdefault(k, []).append(o[5])


def collect(folder, truth_dir):
    """Every FOLD_ID.npz of `folder` scored: {key: [Dice per synthetic volume]}, {key: [mL per
    healthy liver]}, {key: summed detection counts}."""
    dice, healthy, counts = {}, {}, {}
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
        sys.exit(f"lesion_sweep: no .npz in {folder}")
    for f in files:
        cid = os.path.basename(f)[:-4].split("_", 1)[1]
        tp = os.path.join(truth_dir, f"{cid}_label.nii.gz")
        synthetic = os.path.exists(tp)
        truth = np.asarray(nib.load(tp).dataobj) == 2 if synthetic else None
        pool(score(f, truth), synthetic, dice, healthy, counts)
        print(f"scored {os.path.basename(f)}", file=sys.stderr, flush=True)
    if not dice or not healthy:
        sys.exit(f"lesion_sweep: {folder} needs both synthetic-tumour volumes and healthy livers")
    k0 = next(iter(dice))
    if any(len(dice[k]) != len(dice[k0]) or len(healthy[k]) != len(healthy[k0]) for k in dice):
        sys.exit(f"lesion_sweep: some .npz files of {folder} have the liver probability and some not; extract them alike")
    print(f"{folder}: {len(dice[k0])} synthetic-tumour volumes, {len(healthy[k0])} healthy livers")

    def row(k):
        f, n, tc, c = counts[k]
        d, h = round(float(np.mean(dice[k])), 4), float(np.mean(healthy[k]))
        return d, h, f"{d:.4f},{f},{n},{tc},{c},{h:.2f}," + " ".join(f"{x:.1f}" for x in healthy[k])

    return {k: row(k) for k in dice}, counts


def sweep(folder, truth_dir, healthy_max_ml, at=None, guard=None):
    stats, counts = collect(folder, truth_dir)

    def chosen(what, k):
        f, n, tc, c = counts[k]
        d, h, _ = stats[k]
        print(f"CHOSEN {what}: synthetic Dice {d:.4f}, {f} of {n} tumours found, "
              f"{tc} of {c} components true, healthy {h:.2f} mL")

    print("lesion_threshold,min_lesion_mm3,synthetic_dice,found,tumours,true_components,"
          "components,healthy_ml_mean,healthy_ml_each")
    rows = sorted(((stats[k][0], -k[0], -k[1], k) for k in stats if k[2:] == (0, 0)), reverse=True)
    for *_, k in rows:
        print(f"{k[0]},{k[1]}," + stats[k][2])
    ok = [k for *_, k in rows if stats[k][1] <= healthy_max_ml]
    if not ok:
        print(f"CHOSEN lesion_threshold none: no candidate keeps healthy livers under {healthy_max_ml} mL")
        if not at:
            sys.exit(1)
    else:
        chosen(f"lesion_threshold {ok[0][0]}, min_lesion_mm3 {ok[0][1]}", ok[0])
    t, v = at if at else ok[0][:2]
    if (t, v, 0, 0) not in stats:
        sys.exit(f"lesion_sweep: --at {t} {v} is not a pair of the grid")
    has_lp = any(k[2] > 0 for k in stats)
    if has_lp:
        print(f"== min_lesion_liver_prob at lesion_threshold {t}, min_lesion_mm3 {v}")
        print("min_lesion_liver_prob,synthetic_dice,found,tumours,true_components,components,healthy_ml_mean,healthy_ml_each")
        for m in MIN_LIVER_PROB:
            print(f"{m}," + stats[(t, v, m, 0)][2])
        base = stats[(t, v, 0, 0)][0]
        ok = [m for m in MIN_LIVER_PROB
              if stats[(t, v, m, 0)][1] <= healthy_max_ml and stats[(t, v, m, 0)][0] >= base - LIVER_PROB_DICE_LOSS]
        if ok:
            chosen(f"min_lesion_liver_prob {ok[0]}", (t, v, ok[0], 0))
        else:
            print(f"CHOSEN min_lesion_liver_prob none: no value keeps healthy livers under {healthy_max_ml} mL "
                  f"within {LIVER_PROB_DICE_LOSS} of the synthetic Dice of 0")
    if guard:
        gstats, _ = collect(guard, truth_dir)
        thickness_table(stats, gstats, chosen, guard, healthy_max_ml, (t, v))
        if has_lp:
            unsure_thin_table(stats, gstats, counts, chosen, healthy_max_ml, (t, v))


def thickness_table(stats, gstats, chosen, guard, healthy_max_ml, at):
    t, v = at
    floor = gstats[(t, v, 0, 0)][0] - FILTER_DICE_LOSS
    print(f"== min_lesion_thickness_mm x lesion_threshold x min_lesion_mm3; guard {guard} "
          f"(synthetic Dice >= {floor:.4f})")
    print("min_lesion_thickness_mm,lesion_threshold,min_lesion_mm3,synthetic_dice,found,tumours,"
          "true_components,components,healthy_ml_mean,healthy_ml_each,guard_synthetic_dice,guard_healthy_ml_mean")
    keys = sorted((k for k in stats if k[2] == 0), key=lambda k: (k[3], k[0], k[1]))
    for k in keys:
        print(f"{k[3]},{k[0]},{k[1]}," + stats[k][2] + f",{gstats[k][0]:.4f},{gstats[k][1]:.2f}")
    ok = sorted(((-stats[k][0], k[3], k[0], k[1], k) for k in keys
                 if stats[k][1] <= healthy_max_ml and gstats[k][0] >= floor))
    if not ok:
        print(f"CHOSEN min_lesion_thickness_mm none: no triple keeps healthy livers under {healthy_max_ml} mL "
              f"with the guard's Dice >= {floor:.4f}")
        return
    k = ok[0][-1]
    chosen(f"min_lesion_thickness_mm {k[3]}, lesion_threshold {k[0]}, min_lesion_mm3 {k[1]} "
           f"({verdict(stats, k, at)})", k)


def unsure_thin_table(stats, gstats, counts, chosen, healthy_max_ml, at):
    """min_lesion_liver_prob m with max_unsure_lesion_thickness_mm T at the pair `at` (module doc)."""
    t, v = at
    gbase, found = gstats[(t, v, 0, 0)][0], counts[(t, v, 0, 0)][0]
    print(f"== min_lesion_liver_prob x max_unsure_lesion_thickness_mm at lesion_threshold {t}, min_lesion_mm3 {v} "
          f"(guard synthetic Dice >= {gbase - FILTER_DICE_LOSS:.4f}, found >= {found - FILTER_FOUND_LOSS})")
    print("min_lesion_liver_prob,max_unsure_lesion_thickness_mm,synthetic_dice,found,tumours,true_components,"
          "components,healthy_ml_mean,healthy_ml_each,guard_synthetic_dice,guard_healthy_ml_mean")
    keys = [(t, v, m, T) for T in UNSURE_THIN_MM for m in UNSURE_THIN_PROB]
    for k in keys:
        print(f"{k[2]},{k[3]}," + stats[k][2] + f",{gstats[k][0]:.4f},{gstats[k][1]:.2f}")
    ok = sorted((-stats[k][0], k[3], k[2], k) for k in keys
                if stats[k][1] <= healthy_max_ml and gstats[k][0] >= gbase - FILTER_DICE_LOSS
                and counts[k][0] >= found - FILTER_FOUND_LOSS)
    if not ok:
        print("CHOSEN min_lesion_liver_prob with a thickness limit: none")
        return
    k = ok[0][-1]
    chosen(f"min_lesion_liver_prob {k[2]}, max_unsure_lesion_thickness_mm {k[3]} ({verdict(stats, k, at)})", k)


def verdict(stats, k, at):
    """The thickness tables' adoption: the choice's Dice at most FILTER_DICE_LOSS below `at`'s
    without a filter."""
    base = stats[(*at, 0, 0)][0]
    return "adopted" if stats[k][0] >= base - FILTER_DICE_LOSS else \
        f"not adopted: more than {FILTER_DICE_LOSS} below {base:.4f} at {at[0]} / {at[1]} without it"


def ball_share(thick, vox, ml):
    """Per component: the volume of a ball as thick as it over its volume, at most 1."""
    return np.minimum(np.pi / 6 * thick ** 3 / np.maximum(vox * ml * 1000, 1e-9), 1)


def score_mask(npz, truth, host_liver, at):
    """{s: outcome} for min_lesion_ball_share s at the pair `at` (lesion_threshold, min_lesion_mm3),
    and the liver mask's Dice against `host_liver` (a healthy liver's label; None: not scored)."""
    d = np.load(npz)
    q, liver = d["q"], d["lab"] >= 1
    zooms = tuple(float(z) for z in d["zooms"])
    ml = float(np.prod(zooms)) / 1000
    t_mask = truth if truth is not None else np.zeros(q.shape, bool)
    tlab, big_truth = truth_lesions(t_mask, ml)
    comp, n, vox, inter, pairs = lesion_components(liver & (q > round(at[0] * 255)), t_mask, tlab)
    share = ball_share(thickness_mm(comp, n, zooms), vox, ml)
    out = {s: outcome((vox * ml * 1000 >= at[1]) & (share >= s), vox, inter, pairs, big_truth, t_mask.sum(), ml)
           for s in BALL_SHARES}
    if host_liver is None:
        return out, None
    return out, 2 * (host_liver & liver).sum() / (host_liver.sum() + liver.sum())


def collect_mask(folder, truth_dir, labels_dir, at):
    """A part-2 folder scored by score_mask: {s: (mean synthetic Dice, counts, mean healthy mL,
    healthy mL each)}, and the healthy livers' mean liver Dice."""
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
        sys.exit(f"lesion_sweep: no .npz in {folder}")
    dice, healthy, counts, liver_dice = {}, {}, {}, []
    for f in files:
        cid = os.path.basename(f)[:-4].split("_", 1)[1]
        tp = os.path.join(truth_dir, f"{cid}_label.nii.gz")
        synthetic = os.path.exists(tp)
        if synthetic:
            r, _ = score_mask(f, np.asarray(nib.load(tp).dataobj) == 2, None, at)
        else:
            lp = os.path.join(labels_dir, f"{cid}_label.nii.gz")
            if not os.path.exists(lp):
                sys.exit(f"lesion_sweep: {f} is a healthy liver, but {lp} (its liver label) is missing")
            r, ld = score_mask(f, None, np.asarray(nib.load(lp).dataobj) >= 1, at)
            liver_dice.append(ld)
        pool(r, synthetic, dice, healthy, counts)
        print(f"scored {folder}/{os.path.basename(f)}", file=sys.stderr, flush=True)
    if not dice or not healthy:
        sys.exit(f"lesion_sweep: {folder} needs both synthetic-tumour volumes and healthy livers")
    return {k: (round(float(np.mean(dice[k])), 4), counts[k], float(np.mean(healthy[k])), healthy[k])
            for k in dice}, float(np.mean(liver_dice))


def mask_table(runs, truth_dir, labels_dir, healthy_max_ml, at):
    """The liver mask's threshold x min_lesion_ball_share (module doc); `runs`: [(tau, DIR, DIR2)]."""
    scored = {float(tau): (collect_mask(d, truth_dir, labels_dir, at), collect_mask(g, truth_dir, labels_dir, at))
              for tau, d, g in runs}
    ref = min(scored)
    (main0, _), (guard0, guard_liver0) = scored[ref]
    floor, found_floor = guard0[0][0] - FILTER_DICE_LOSS, main0[0][1][0] - FILTER_FOUND_LOSS
    liver_floor = guard_liver0 - MASK_LIVER_DICE_LOSS
    print(f"== liver_threshold x min_lesion_ball_share at lesion_threshold {at[0]}, min_lesion_mm3 {at[1]} "
          f"(guard synthetic Dice >= {floor:.4f}, found >= {found_floor}, guard healthy liver Dice >= {liver_floor:.4f})")
    print("liver_threshold,min_lesion_ball_share,synthetic_dice,found,tumours,true_components,components,"
          "healthy_ml_mean,healthy_ml_each,liver_dice,guard_synthetic_dice,guard_found,guard_healthy_ml_mean,guard_liver_dice")
    ok = []
    for tau, ((main, liver), (guard, guard_liver)) in sorted(scored.items()):
        for s in BALL_SHARES:
            d, (f, n, tc, c), h, each = main[s]
            print(f"{tau},{s},{d:.4f},{f},{n},{tc},{c},{h:.2f}," + " ".join(f"{x:.1f}" for x in each)
                  + f",{liver:.4f},{guard[s][0]:.4f},{guard[s][1][0]},{guard[s][2]:.2f},{guard_liver:.4f}")
            if h <= healthy_max_ml and guard[s][0] >= floor and f >= found_floor and guard_liver >= liver_floor:
                ok.append((-d, tau, s))
    if not ok:
        print(f"CHOSEN liver_threshold none: no pair keeps healthy livers under {healthy_max_ml} mL within the guards")
        return
    d, tau, s = min(ok)
    base = main0[0][0]
    verdict = "adopted" if -d >= base - FILTER_DICE_LOSS else \
        f"not adopted: more than {FILTER_DICE_LOSS} below {base:.4f} at {ref} without it"
    print(f"CHOSEN liver_threshold {tau}, min_lesion_ball_share {s} ({verdict}): synthetic Dice {-d:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("prob")
    e.add_argument("out")
    e.add_argument("--liver", help="the liver network's probabilities (x, y, z, 2 classes)")
    s = sub.add_parser("sweep")
    s.add_argument("folder")
    s.add_argument("truth_dir")
    s.add_argument("--healthy-max-ml", type=float, default=5.0)
    s.add_argument("--at", nargs=2, type=float, metavar=("T", "V"),
                   help="the pair at which min_lesion_liver_prob is scored (default: the chosen pair)")
    s.add_argument("--guard", help="a second part-2 folder (other liver models): the thickness table's guard")
    m = sub.add_parser("mask")
    m.add_argument("truth_dir")
    m.add_argument("--run", nargs=3, action="append", required=True, metavar=("TAU", "DIR", "DIR2"),
                   help="part-2 folders made at liver_threshold TAU: main and guard liver models")
    m.add_argument("--labels", default=os.environ.get("VOXFLOW_DATA"),
                   help="the healthy livers' ID_label.nii.gz (default: $VOXFLOW_DATA)")
    m.add_argument("--healthy-max-ml", type=float, default=5.0)
    m.add_argument("--at", nargs=2, type=float, default=(0.3, 500), metavar=("T", "V"))
    a = ap.parse_args()
    if a.cmd == "extract":
        extract(a.prob, a.out, a.liver)
    elif a.cmd == "mask":
        if not a.labels:
            sys.exit("lesion_sweep: mask needs --labels or VOXFLOW_DATA (the healthy livers' labels)")
        mask_table(a.run, a.truth_dir, a.labels, a.healthy_max_ml, (a.at[0], int(a.at[1])))
    else:
        sweep(a.folder, a.truth_dir, a.healthy_max_ml, (a.at[0], int(a.at[1])) if a.at else None, a.guard)


if __name__ == "__main__":
    main()
