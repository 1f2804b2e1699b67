//! FcnSession against Python onnxruntime fixtures and the error cases of the model contract.

mod common;

use common::*;
use ndarray::{s, Array4, Axis};
use voxflow_onnx::{Device, FcnError, FcnSession, Modality, ModelInfo, PreprocessStep};

fn cpu(name: &str) -> FcnSession {
    require_ort();
    FcnSession::new(model(name), Device::Cpu, 1).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn parity_with_python_onnxruntime() {
    let (x, want) = parity_fixture("tiny_fcn");
    let mut s = cpu("tiny_fcn.onnx");
    assert_eq!(s.device(), Device::Cpu);
    let got = s.run(x.view()).unwrap();
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max |rust - python| = {d}");
    // The fixture is not degenerate: both classes win somewhere.
    let fg = want.index_axis(Axis(1), 1);
    assert!(fg.iter().any(|&p| p > 0.6) && fg.iter().any(|&p| p < 0.4));
    // Softmax output: channels sum to 1.
    let sum = got.sum_axis(Axis(1));
    assert!(sum.iter().all(|v| (v - 1.0).abs() < 1e-5));
}

#[test]
fn parity_with_reflect_padding_applied_inside() {
    let (x, want) = parity_fixture("tiny_fcn_pad");
    let mut s = cpu("tiny_fcn_pad.onnx");
    assert_eq!(s.info().padding, 2);
    assert_eq!(s.info().tensor_input_size(), (68, 68));
    let got = s.run(x.view()).unwrap();
    assert_eq!(got.shape(), &[2, 3, 64, 64]);
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-5, "max |rust - python| = {d}");
}

#[test]
fn batches_are_independent_and_threads_do_not_change_results() {
    let (x, want) = parity_fixture("tiny_fcn");
    require_ort();
    let mut s = FcnSession::new(model("tiny_fcn.onnx"), Device::Cpu, 2).unwrap();
    for i in 0..x.shape()[0] {
        let one = s.run(x.slice(s![i..i + 1, .., .., ..])).unwrap();
        let d = max_abs_diff(&one, &want.slice(s![i..i + 1, .., .., ..]).to_owned());
        assert!(d <= 1e-5, "slice {i}: {d}");
    }
    // A non-contiguous view (reversed batch) is accepted.
    let rev = s.run(x.slice(s![..;-1, .., .., ..])).unwrap();
    let d = max_abs_diff(&rev, &want.slice(s![..;-1, .., .., ..]).to_owned());
    assert!(d <= 1e-5);
    let empty = s.run(x.slice(s![0..0, .., .., ..])).unwrap();
    assert_eq!(empty.shape(), &[0, 2, 64, 64]);
}

#[test]
fn model_info_is_read_from_metadata() {
    require_ort();
    let info = ModelInfo::load(model("tiny_fcn.onnx")).unwrap();
    assert_eq!(info.model_version, "1");
    assert_eq!(info.classes, vec!["background", "liver"]);
    assert_eq!(info.input_size, (64, 64));
    assert_eq!(info.padding, 0);
    assert_eq!(info.modality, Modality::Ct);
    assert_eq!(
        info.preprocess,
        vec![
            PreprocessStep::HuWindow {
                lo: -100.0,
                hi: 400.0
            },
            PreprocessStep::Equalize { bins: 256 }
        ]
    );
    assert_eq!(
        (info.input_name.as_str(), info.output_name.as_str()),
        ("image", "prob")
    );
}

#[test]
fn identity_model_reproduces_input_exactly() {
    let mut s = cpu("identity.onnx");
    let x = Array4::from_shape_fn((3, 1, 64, 64), |(n, _, y, x)| {
        ((n * 4096 + y * 64 + x) % 997) as f32 / 996.0
    });
    let p = s.run(x.view()).unwrap();
    assert_eq!(p.slice(s![.., 1..2, .., ..]), x);
    assert_eq!(p.slice(s![.., 0..1, .., ..]), x.mapv(|v| 1.0 - v));
}

fn expect_model_error(name: &str, field_part: &str, msg_part: &str) {
    require_ort();
    let err = FcnSession::new(model(name), Device::Cpu, 1).unwrap_err();
    let text = err.to_string();
    match &err {
        FcnError::Model {
            path,
            field,
            message,
        } => {
            assert_eq!(path, &model(name));
            assert!(field.contains(field_part), "{text}");
            assert!(message.contains(msg_part), "{text}");
        }
        other => panic!("expected a model-contract error, got {other:?}"),
    }
    assert!(
        text.contains(name),
        "message does not name the file: {text}"
    );
    // ModelInfo::load reports the same problem.
    assert_eq!(ModelInfo::load(model(name)).unwrap_err().to_string(), text);
}

#[test]
fn wrong_input_rank_is_a_clear_error() {
    expect_model_error("bad_rank.onnx", "input `image`", "rank 3");
}

#[test]
fn missing_metadata_is_a_clear_error() {
    expect_model_error("no_metadata.onnx", "voxflow.model_version", "missing");
}

#[test]
fn class_count_must_match_output_channels() {
    expect_model_error("bad_classes.onnx", "output `prob`", "dimension 1 is 2");
}

#[test]
fn input_size_must_match_static_dims() {
    expect_model_error("bad_size.onnx", "input `image`", "dimension 2 is 64");
}

#[test]
fn context_slices_must_match_the_input_channels() {
    expect_model_error(
        "bad_context.onnx",
        "input `image`",
        "expected float32 [N, 3, 64, 64] (3 = 2 x voxflow.context_slices 1 + 1",
    );
}

#[test]
fn context_model_reads_each_neighbour_in_its_channel() {
    use ndarray::Array2;
    let mut s = cpu("context.onnx");
    assert_eq!((s.info().context_slices, s.info().input_channels()), (1, 3));
    let flat = |v: f32, rows, cols| Array2::from_elem((rows, cols), v);
    let (below, mid, above) = (flat(0.8, 64, 64), flat(0.5, 64, 64), flat(0.4, 64, 64));
    let out = s
        .predict_slices(&[vec![below.view(), mid.view(), above.view()]], 1)
        .unwrap();
    // liver = 0.75 x channel 0 (slice below) + 0.25 x channel 2 (slice above)
    let want = 0.75 * 0.8 + 0.25 * 0.4;
    assert!(out[0]
        .index_axis(Axis(0), 1)
        .iter()
        .all(|p| (p - want).abs() < 1e-6));
    // A stack of the wrong depth, or of slices of different sizes, is refused.
    let err = s.predict_slices(&[vec![mid.view()]], 1).unwrap_err();
    assert!(err.to_string().contains("the model reads 3"), "{err}");
    let small = flat(0.5, 32, 64);
    let err = s
        .predict_slices(&[vec![below.view(), small.view(), above.view()]], 1)
        .unwrap_err();
    assert!(err.to_string().contains("differ in size"), "{err}");
    // run() takes [N, 3, H, W] only.
    let err = s.run(Array4::zeros((1, 1, 64, 64)).view()).unwrap_err();
    assert!(err.to_string().contains("[N, 3, 64, 64]"), "{err}");
}

#[test]
fn stacks_sharing_a_slice_get_each_view_in_its_place() {
    use ndarray::Array2;
    let mut s = cpu("context.onnx");
    // A slice and its transpose share their data but not their values at a pixel.
    let a = Array2::from_shape_fn((64, 64), |(r, c)| (r as f32 + 2.0 * c as f32) / 200.0);
    let t = a.t();
    let out = s
        .predict_slices(
            &[vec![a.view(), a.view(), t], vec![t, a.view(), a.view()]],
            2,
        )
        .unwrap();
    // liver = 0.75 x channel 0 + 0.25 x channel 2
    let liver = |o: &ndarray::Array3<f32>| o.index_axis(Axis(0), 1).to_owned();
    let want = [&a * 0.75 + &t * 0.25, &t * 0.75 + &a * 0.25];
    for (o, w) in out.iter().zip(&want) {
        let worst = (&liver(o) - w).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-5, "off by {worst}");
    }
}

/// Fuzz input (`onnx_model` target): a Conv kernel of 119 on a 68-pixel input makes ONNX
/// Runtime infer the output dimension -50, on which the `ort` binding panicked.
#[test]
fn negative_inferred_dimension_is_a_clear_error() {
    require_ort();
    let path = model("fuzz_negative_dim.onnx");
    for err in [
        FcnSession::new(&path, Device::Cpu, 1).unwrap_err(),
        ModelInfo::load(&path).unwrap_err(),
    ] {
        assert!(matches!(err, FcnError::Ort { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("fuzz_negative_dim.onnx")
                && text.contains("the model's inputs and outputs cannot be described: dim_values must be -1 (symbolic dimension) or larger"),
            "{text}"
        );
    }
}

#[test]
fn missing_model_file_is_a_clear_error() {
    let path = model("does_not_exist.onnx");
    let err = FcnSession::new(&path, Device::Cpu, 1).unwrap_err();
    assert!(matches!(err, FcnError::ModelNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert_eq!(err.model_path(), Some(&path));
    assert!(matches!(
        ModelInfo::load(&path),
        Err(FcnError::ModelNotFound { .. })
    ));
}

#[test]
fn wrong_batch_shape_is_rejected() {
    let mut s = cpu("tiny_fcn.onnx");
    let err = s.run(Array4::zeros((1, 1, 32, 64)).view()).unwrap_err();
    assert!(matches!(err, FcnError::Input { .. }), "{err:?}");
    assert!(err.to_string().contains("[N, 1, 64, 64]"), "{err}");
    let err = s.run(Array4::zeros((1, 2, 64, 64)).view()).unwrap_err();
    assert!(matches!(err, FcnError::Input { .. }), "{err:?}");
}

#[test]
fn cuda_request_fails_clearly_without_cuda() {
    require_ort();
    match FcnSession::new(model("tiny_fcn.onnx"), Device::Cuda(0), 1) {
        Err(err) => {
            assert!(matches!(err, FcnError::Cuda { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("device cuda") && text.contains("tiny_fcn.onnx"),
                "{text}"
            );
        }
        // Only where ONNX Runtime has a working CUDA provider: then it must compute the same.
        Ok(mut s) => {
            assert_eq!(s.device(), Device::Cuda(0));
            let (x, want) = parity_fixture("tiny_fcn");
            assert!(max_abs_diff(&s.run(x.view()).unwrap(), &want) <= 1e-4);
        }
    }
}

#[test]
fn predict_slices_maps_to_model_size_and_back() {
    use ndarray::Array2;
    use voxflow_volume::resize_bilinear;
    let mut s = cpu("identity.onnx");
    let a = Array2::from_shape_fn((64, 64), |(y, x)| ((y * 7 + x * 3) % 50) as f32 / 49.0);
    let b = Array2::from_shape_fn((40, 90), |(y, x)| (y as f32 / 39.0) * (x as f32 / 89.0));
    let out = s
        .predict_slices(&[vec![a.view()], vec![b.view()], vec![a.view()]], 2)
        .unwrap();
    assert_eq!(out.len(), 3);
    // Same size as the model: exact.
    assert_eq!(out[0].shape(), &[2, 64, 64]);
    assert_eq!(out[0].index_axis(Axis(0), 1), a);
    assert_eq!(out[2], out[0]);
    // Other size: resize there and back, channel by channel.
    assert_eq!(out[1].shape(), &[2, 40, 90]);
    let there_back = resize_bilinear(resize_bilinear(b.view(), 64, 64).view(), 40, 90);
    assert_eq!(out[1].index_axis(Axis(0), 1), there_back);
    let bg = out[1].index_axis(Axis(0), 0);
    assert!(bg
        .iter()
        .zip(&there_back)
        .all(|(p0, p1)| (p0 + p1 - 1.0).abs() < 1e-6));
}
