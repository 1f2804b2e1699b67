//! resize_bilinear / resize_nearest against OpenCV (fixtures/make_resize_fixtures.py).

use ndarray::Array2;
use voxflow_volume::{resize_bilinear, resize_nearest};

#[test]
fn resize_matches_opencv() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/resize_opencv.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let dims = |v: &serde_json::Value| {
        (
            v[0].as_u64().unwrap() as usize,
            v[1].as_u64().unwrap() as usize,
        )
    };
    let f32s = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let u8s = |v: &serde_json::Value| -> Vec<u8> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u8)
            .collect()
    };
    for (i, c) in cases.iter().enumerate() {
        let (h, w) = dims(&c["in_shape"]);
        let (oh, ow) = dims(&c["out_shape"]);
        let x = Array2::from_shape_vec((h, w), f32s(&c["input"])).unwrap();
        let want = Array2::from_shape_vec((oh, ow), f32s(&c["bilinear"])).unwrap();
        let got = resize_bilinear(x.view(), oh, ow);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            d <= 1e-5,
            "case {i} {h}x{w}->{oh}x{ow}: bilinear max diff {d}"
        );

        let lab = Array2::from_shape_vec((h, w), u8s(&c["labels"])).unwrap();
        let want = Array2::from_shape_vec((oh, ow), u8s(&c["nearest"])).unwrap();
        // OpenCV's fixed-point INTER_NEAREST_EXACT can round an exact tie ((d + 0.5) * in / out
        // an integer) down; we use exact arithmetic. Compare everywhere else.
        let tie =
            |d: usize, n_in: usize, n_out: usize| ((2 * d + 1) * n_in).is_multiple_of(2 * n_out);
        let got = resize_nearest(lab.view(), oh, ow);
        let mut compared = 0;
        for ((y, xx), g) in got.indexed_iter() {
            if tie(y, h, oh) || tie(xx, w, ow) {
                continue;
            }
            assert_eq!(
                *g,
                want[[y, xx]],
                "case {i} {h}x{w}->{oh}x{ow}: nearest at ({y},{xx})"
            );
            compared += 1;
        }
        assert!(
            compared * 2 >= oh * ow,
            "case {i}: too few non-tie pixels compared"
        );
    }
}

#[test]
fn round_trip_through_model_size_keeps_smooth_images() {
    // Slice -> model size -> slice: a linear ramp survives up- and down-sampling by 2 exactly
    // away from the clamped border.
    let x = Array2::from_shape_fn((32, 32), |(y, x)| (y as f32) * 0.5 + (x as f32) * 0.25);
    let up = resize_bilinear(x.view(), 64, 64);
    let back = resize_bilinear(up.view(), 32, 32);
    for ((y, xx), v) in back.indexed_iter() {
        if (1..31).contains(&y) && (1..31).contains(&xx) {
            assert!(
                (v - x[[y, xx]]).abs() < 1e-5,
                "({y},{xx}) {v} vs {}",
                x[[y, xx]]
            );
        }
    }
}
