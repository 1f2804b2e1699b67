//! `NiftiXform::itk_geometry` against what SimpleITK 2.5.7 reads from synthetic NIfTI headers
//! (`fixtures/nifti_geometry.json` from `fixtures/make_nifti_geometry.py`; rerun it to
//! regenerate).

use voxflow_n4::{ItkGeometry, NiftiXform};

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f32::from_bits(u32::from_str_radix(x.as_str().unwrap(), 16).unwrap()))
        .collect()
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f64::from_bits(u64::from_str_radix(x.as_str().unwrap(), 16).unwrap()))
        .collect()
}

fn header(h: &serde_json::Value) -> NiftiXform {
    let (q, o, s, p) = (
        f32s(&h["quatern"]),
        f32s(&h["qoffset"]),
        f32s(&h["srow"]),
        f32s(&h["pixdim"]),
    );
    NiftiXform {
        qform_code: h["qform_code"].as_i64().unwrap() as i16,
        sform_code: h["sform_code"].as_i64().unwrap() as i16,
        quatern: [q[0], q[1], q[2]],
        qoffset: [o[0], o[1], o[2]],
        srow: std::array::from_fn(|r| std::array::from_fn(|c| s[r * 4 + c])),
        pixdim: [p[0], p[1], p[2], p[3]],
        xyzt_units: h["xyzt_units"].as_u64().unwrap() as u8,
    }
}

fn max_diff(g: &ItkGeometry, origin: &[f64], direction: &[f64], spacing: &[f64]) -> f64 {
    let d = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    d(&g.origin, origin)
        .max(d(&g.direction, direction))
        .max(d(&g.spacing, spacing))
}

#[test]
fn geometry_matches_simpleitk_bit_for_bit() {
    let p = format!(
        "{}/fixtures/nifti_geometry.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let cases = d["cases"].as_array().unwrap();
    assert!(cases.len() > 100);
    let mut approximated = 0;
    for c in cases {
        let kind = c["kind"].as_str().unwrap();
        let x = header(&c["header"]);
        let g = x.itk_geometry().unwrap_or_else(|e| panic!("{kind}: {e}"));
        let (o, dir, sp) = (
            f64s(&c["sitk"]["origin"]),
            f64s(&c["sitk"]["direction"]),
            f64s(&c["sitk"]["spacing"]),
        );
        let exact = g.origin[..] == o[..] && g.direction[..] == dir[..] && g.spacing[..] == sp[..];
        if kind.starts_with("sform2_equal") && !exact {
            // ITK's SVD-based choice between two transforms equal to float precision
            approximated += 1;
            let m = max_diff(&g, &o, &dir, &sp);
            assert!(m < 1e-6, "{kind}: {m}");
            continue;
        }
        assert!(
            exact,
            "{kind}: {x:?}\n ours {g:?}\n sitk {o:?} {dir:?} {sp:?}"
        );
    }
    assert!(approximated <= 3, "{approximated} approximated choices");
}
