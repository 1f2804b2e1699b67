//! Third-party node plugins (issues 9 and 19): the example plugins on synthetic and real volumes
//! (whole-volume and streaming), the C route, version-1 libraries, the search path, and
//! deliberately broken libraries.

mod common;

use common::{data_file, root, temp_dir, write_graph};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use voxflow_nodes::io::nifti_io::write_nifti;
use voxflow_nodes::io::read_volume::read_any;
use voxflow_runtime::stream::{StreamType, VolumeData};
use voxflow_runtime::{Header, Volume};

/// Runs voxflow without any `VOXFLOW_PLUGIN_PATH` from the caller's environment.
fn voxflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(args)
        .env_remove("VOXFLOW_PLUGIN_PATH")
        .output()
        .expect("run voxflow")
}

fn voxflow_ok(args: &[&str]) -> std::process::Output {
    let o = voxflow(args);
    assert!(
        o.status.success(),
        "voxflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

const PACKAGES: [&str; 10] = [
    "voxflow-plugin-largest-component",
    "voxflow-plugin-mask-image",
    "voxflow-testplugin-v1-legacy",
    "voxflow-testplugin-half-stream",
    "voxflow-testplugin-stream-probe",
    "voxflow-testplugin-bad-version",
    "voxflow-testplugin-no-entry",
    "voxflow-testplugin-faulty",
    "voxflow-testplugin-bad-decl",
    "voxflow-testplugin-clash",
];

/// `target/<profile>/`, found from this test binary (`target/<profile>/deps/plugins-*`); the
/// plugin libraries are built there once, with the profile of this test run.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile name")
            .to_string();
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .env("CARGO_TARGET_DIR", target_dir)
            .arg("build")
            .arg("--quiet");
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            p => {
                cmd.args(["--profile", p]);
            }
        }
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        let out = cmd.output().expect("run cargo build for the plugins");
        assert!(
            out.status.success(),
            "building the plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir
    })
}

/// A plugin library built in the workspace.
fn lib(name: &str) -> PathBuf {
    let p = plugin_dir().join(format!("lib{name}.so"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Files in `dir` (names), sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn label_header(shape: [usize; 3]) -> Header {
    let mut h = Header::new(StreamType::Label, shape, [2.0, 0.8, 0.7]);
    h.affine = [
        [-0.7, 0.0, 0.0, 12.5],
        [0.0, -0.8, 0.0, -30.0],
        [0.0, 0.0, 2.0, 100.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    h
}

/// Graph: read a label file, run `kind` on it, write the result.
fn pipeline(dir: &Path, plugins: &str, kind: &str, extra: &str) -> PathBuf {
    write_graph(
        dir,
        "graph.yaml",
        &format!(
            "graph: plugin-test\nplugins: {plugins}\nparams:\n  input: {{ default: in.nii.gz }}\n  output: {{ default: out.nii.gz }}\n\
             nodes:\n  seg: {{ kind: read_volume, path: $input, as: label }}\n  step: {{ kind: {kind}, in: seg{extra} }}\n\
             \x20 save: {{ kind: write_volume, in: step, path: $output }}\n"
        ),
    )
}

fn read_label(p: &Path) -> Volume {
    read_any(p, Some(StreamType::Label), None).expect("read label")
}

#[test]
fn nodes_lists_plugin_kinds_before_or_after_the_subcommand() {
    let lc = lib("largest_component");
    let before = voxflow_ok(&["--plugin", s(&lc), "nodes"]);
    let after = voxflow_ok(&["nodes", "--plugin", s(&lc)]);
    for o in [&before, &after] {
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("largest_component "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains("[plugin ") && line.contains("liblargest_component.so"),
            "{line}"
        );
        assert!(
            text.lines().any(|l| l.starts_with("hu_window ")),
            "built-ins still listed"
        );
    }
    let plain = voxflow_ok(&["nodes"]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("largest_component"));
    let one = voxflow_ok(&["--plugin", s(&lc), "nodes", "largest_component"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("26-neighbourhood")
            && text.contains("label")
            && text.contains("int in [1, 255]"),
        "{text}"
    );
}

/// A 6x10x12 label volume: a 3x3x3 cube of 1 with a 2 inside, a voxel touching the cube only at
/// a corner, a 10-voxel line of 1, a lone voxel, and a pair of 2s.
fn synthetic() -> Volume {
    let mut v = Volume::zeros(label_header([6, 10, 12]));
    v.slice_meta = vec![Some(Default::default()); 6];
    let VolumeData::Label(a) = &mut v.data else {
        unreachable!()
    };
    for k in 1..4 {
        for j in 1..4 {
            for i in 1..4 {
                a[[k, j, i]] = 1;
            }
        }
    }
    a[[2, 2, 2]] = 2;
    a[[4, 4, 4]] = 1; // corner contact with (3, 3, 3)
    for i in 0..10 {
        a[[0, 8, i]] = 1;
    }
    a[[5, 0, 11]] = 1;
    a[[5, 8, 0]] = 2;
    a[[5, 8, 1]] = 2;
    v
}

#[test]
fn largest_component_on_a_synthetic_volume() {
    let dir = temp_dir("plugin-synthetic");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let inp = input.label().expect("label");

    // Default: every non-zero voxel is foreground; cube + corner voxel (28) win over the line (10).
    let g = pipeline(
        &dir,
        &format!("[{}]", s(&lib("largest_component"))),
        "largest_component",
        "",
    );
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_label(&dir.join("out.nii.gz"));
    let written = read_label(&dir.join("in.nii.gz"));
    assert_eq!(out.header.affine, written.header.affine, "geometry kept");
    let o = out.label().expect("label");
    let mut expect = inp.clone();
    for i in 0..10 {
        expect[[0, 8, i]] = 0;
    }
    expect[[5, 0, 11]] = 0;
    expect[[5, 8, 0]] = 0;
    expect[[5, 8, 1]] = 0;
    assert_eq!(o, &expect);
    assert_eq!(o.iter().filter(|&&v| v != 0).count(), 28);

    // `label: 2`: only the 2s compete; the pair wins, the lone 2 in the cube goes, 1s stay.
    std::fs::remove_file(dir.join("out.nii.gz")).expect("remove");
    let g = pipeline(
        &dir,
        &format!("[{}]", s(&lib("largest_component"))),
        "largest_component",
        ", label: 2",
    );
    voxflow_ok(&["-q", "run", s(&g)]);
    let o2 = read_label(&dir.join("out.nii.gz"));
    let mut expect = inp.clone();
    expect[[2, 2, 2]] = 0;
    assert_eq!(o2.label().expect("label"), &expect);

    // The declaration's bounds are checked like a built-in's.
    let g = pipeline(
        &dir,
        &format!("[{}]", s(&lib("largest_component"))),
        "largest_component",
        ", label: 0",
    );
    let o = voxflow(&["check", s(&g)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("0 is out of range (must be int in [1, 255])"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn largest_component_on_a_real_label_with_a_stray_blob() {
    let Some(src) = data_file("ircadb01_small_label.nii.gz") else {
        return;
    };
    let dir = temp_dir("plugin-real");
    let orig = read_label(&src);
    let mut v = orig.clone();
    let [nk, nj, ni] = v.header.shape;
    let VolumeData::Label(a) = &mut v.data else {
        unreachable!()
    };
    // A 4x4x4 blob in the last corner, 2 voxels away from any label.
    let (k0, j0, i0) = (nk - 5, nj - 5, ni - 5);
    for k in k0 - 2..nk {
        for j in j0 - 2..nj {
            for i in i0 - 2..ni {
                assert_eq!(
                    a[[k, j, i]],
                    0,
                    "the corner must be background for this test"
                );
            }
        }
    }
    for k in k0..k0 + 4 {
        for j in j0..j0 + 4 {
            for i in i0..i0 + 4 {
                a[[k, j, i]] = 1;
            }
        }
    }
    write_nifti(&dir.join("in.nii.gz"), &v.header, &v.data).expect("write input");
    // The graph names the plugin relative to its own folder.
    std::fs::create_dir_all(dir.join("plugins")).expect("mkdir");
    std::fs::copy(
        lib("largest_component"),
        dir.join("plugins/liblargest_component.so"),
    )
    .expect("copy");
    let g = pipeline(
        &dir,
        "[plugins/liblargest_component.so]",
        "largest_component",
        "",
    );
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_label(&dir.join("out.nii.gz"));
    let (o, want) = (out.label().expect("label"), orig.label().expect("label"));
    // The scan's liver+lesion label is one 26-connected component, so exactly the blob goes.
    assert_eq!(o, want);
    assert_eq!(
        o.iter().filter(|&&v| v == 2).count(),
        want.iter().filter(|&&v| v == 2).count()
    );
    assert!(want.iter().filter(|&&v| v != 0).count() > 100_000);
    assert_eq!(out.header.affine, orig.header.affine);
}

#[test]
fn c_plugin_compiled_with_cc() {
    let dir = temp_dir("plugin-c");
    let so = dir.join("libc_threshold.so");
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I"])
        .arg(root().join("plugins/abi"))
        .arg("-o")
        .arg(&so)
        .arg(root().join("plugins/c_example/threshold.c"))
        .output();
    match cc {
        Err(e) => panic!("the C plugin example needs a C compiler (`cc`: {e})"),
        Ok(o) => assert!(o.status.success(), "cc failed:\n{}", stderr(&o)),
    }
    let mut h = Header::new(StreamType::Image, [2, 3, 4], [1.0, 1.0, 1.0]);
    h.affine[0][3] = 5.0;
    let mut v = Volume::zeros(h);
    v.slice_meta = vec![Some(Default::default()); 2];
    let VolumeData::Image(a) = &mut v.data else {
        unreachable!()
    };
    for (n, x) in a.iter_mut().enumerate() {
        *x = n as f32 / 10.0; // 0.0 .. 2.3
    }
    write_nifti(&dir.join("in.nii.gz"), &v.header, &v.data).expect("write");
    let g = write_graph(
        &dir,
        "graph.yaml",
        "graph: c\nplugins: [libc_threshold.so]\nnodes:\n  img: { kind: read_volume, path: in.nii.gz }\n  \
         t: { kind: c_threshold, in: img, min: 1.05 }\n  save: { kind: write_volume, in: t, path: out.nii.gz }\n",
    );
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_label(&dir.join("out.nii.gz"));
    let o = out.label().expect("label");
    let want: Vec<u8> = (0..24).map(|n| u8::from(n as f32 / 10.0 >= 1.05)).collect();
    assert_eq!(o.iter().copied().collect::<Vec<_>>(), want);
    assert_eq!(out.header.affine[0][3], 5.0);
}

#[test]
fn search_path_loads_every_library_and_resolves_bare_names() {
    let dir = temp_dir("plugin-path");
    let plugdir = dir.join("plugdir");
    std::fs::create_dir_all(&plugdir).expect("mkdir");
    std::fs::copy(
        lib("largest_component"),
        plugdir.join("liblargest_component.so"),
    )
    .expect("copy");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let g = pipeline(&dir, "[largest_component]", "largest_component", "");
    let with_path = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_voxflow"))
            .args(args)
            .env("VOXFLOW_PLUGIN_PATH", &plugdir)
            .output()
            .expect("run voxflow")
    };
    let o = with_path(&["nodes"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("largest_component "),
        "{}",
        stderr(&o)
    );
    let o = with_path(&["-q", "run", s(&g)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("out.nii.gz").is_file());
    // Without the variable the bare name cannot be found.
    let o = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(["check", s(&g)])
        .env_remove("VOXFLOW_PLUGIN_PATH")
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("{}:2:", g.display()))
            && stderr(&o).contains(
                "plugin `largest_component` is a bare name but VOXFLOW_PLUGIN_PATH is not set"
            ),
        "{}",
        stderr(&o)
    );
}

/// Runs `args` and checks it fails with `want` in its error and leaves `dir` as it was.
fn fails_cleanly(dir: &Path, args: &[&str], want: &str) {
    let before = files_in(dir);
    let o = voxflow(args);
    assert!(!o.status.success(), "voxflow {args:?} succeeded");
    let e = stderr(&o);
    assert!(
        e.contains(want),
        "voxflow {args:?}:\nwanted: {want}\ngot: {e}"
    );
    assert_eq!(files_in(dir), before, "voxflow {args:?} left files behind");
}

#[test]
fn broken_libraries_are_refused_before_anything_runs() {
    let dir = temp_dir("plugin-broken");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let g = pipeline(&dir, "[]", "largest_component", "");
    let gs = s(&g);

    let fake = dir.join("libfake.so");
    std::fs::write(&fake, "this is not a library\n").expect("write");
    fails_cleanly(
        &dir,
        &["--plugin", s(&fake), "run", gs],
        &format!(
            "error: plugin {} is not a loadable shared library: ",
            fake.display()
        ),
    );
    let missing = dir.join("libmissing.so");
    fails_cleanly(
        &dir,
        &["run", gs, "--plugin", s(&missing)],
        &format!("error: plugin {}: no such file", missing.display()),
    );

    let no_entry = lib("vftest_no_entry");
    fails_cleanly(
        &dir,
        &["--plugin", s(&no_entry), "run", gs],
        &format!(
            "error: plugin {} has no entry symbol `voxflow_plugin_entry`: not a voxflow plugin",
            no_entry.display()
        ),
    );
    let bad_version = lib("vftest_bad_version");
    fails_cleanly(
        &dir,
        &["--plugin", s(&bad_version), "run", gs],
        &format!(
            "error: plugin {} was built for voxflow plugin ABI version 999, but this voxflow supports versions 1 and 2",
            bad_version.display()
        ),
    );
    let bad_decl = lib("vftest_bad_decl");
    fails_cleanly(
        &dir,
        &["--plugin", s(&bad_decl), "nodes"],
        &format!(
            "error: plugin {}: kind `bad_decl` has an invalid declaration: input `in`: unknown stream type `voxels` (image, label, prob or any)",
            bad_decl.display()
        ),
    );
    let half = lib("vftest_half_stream");
    fails_cleanly(
        &dir,
        &["--plugin", s(&half), "nodes"],
        &format!(
            "error: plugin {}: kind `half_stream` streams but has no `slice`, `finish` function (a streaming kind needs `start`, `slice` and `finish`)",
            half.display()
        ),
    );
    let clash = lib("vftest_clash");
    let canon = clash.canonicalize().expect("canonical");
    fails_cleanly(
        &dir,
        &["--plugin", s(&clash), "check", gs],
        &format!(
            "error: node kind `hu_window` from {} clashes with the one from built-in",
            canon.display()
        ),
    );

    // The same kind from two copies of the example plugin.
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::copy(lib("largest_component"), d.join("liblargest_component.so")).expect("copy");
    }
    let (pa, pb) = (
        a.join("liblargest_component.so"),
        b.join("liblargest_component.so"),
    );
    fails_cleanly(
        &dir,
        &["--plugin", s(&pa), "--plugin", s(&pb), "check", gs],
        &format!(
            "error: node kind `largest_component` from {} clashes with the one from {}",
            pb.canonicalize().expect("canon").display(),
            pa.canonicalize().expect("canon").display()
        ),
    );
    // The same file twice is one library.
    voxflow_ok(&["--plugin", s(&pa), "--plugin", s(&pa), "check", gs]);

    // From the graph's `plugins:` key the error names the graph line.
    let g2 = pipeline(
        &dir,
        &format!("[{}]", s(&bad_version)),
        "largest_component",
        "",
    );
    fails_cleanly(
        &dir,
        &["check", s(&g2)],
        &format!("error: {}:2:", g2.display()),
    );
    fails_cleanly(
        &dir,
        &["check", s(&g2)],
        "was built for voxflow plugin ABI version 999",
    );
}

#[test]
fn failing_plugin_nodes_cancel_the_graph_and_write_nothing() {
    let dir = temp_dir("plugin-faulty");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let faulty = lib("vftest_faulty");
    let cases = [
        (
            "test_panics",
            "plugin libvftest_faulty.so panicked: test_panics was asked to process 720 voxels",
        ),
        ("test_fails", "test_fails refuses this volume"),
        (
            "test_no_output",
            "plugin libvftest_faulty.so returned success without allocating output `out`",
        ),
        (
            "test_bad_alloc",
            "the host refused output 0 (the host refused: output `out` is declared label, the plugin requested image)",
        ),
        (
            "test_stream_panics",
            "plugin libvftest_faulty.so panicked: test_stream_panics at slice 1",
        ),
        (
            "test_stream_twice",
            "the host refused slice 0 of output 0 (the host refused: output `out`: slice 0 sent after slice 0 (slices go in increasing order, each once))",
        ),
        (
            "test_stream_short",
            "the host refused slice 0 of output 0 (the host refused: output `out`: a slice has 120 elements, the plugin sent 119)",
        ),
        (
            "test_stream_skips",
            "plugin libvftest_faulty.so sent 5 of output `out`'s slices, it must send the slices the inputs delivered (6); slice 1 is missing",
        ),
        (
            "test_stream_unopened",
            "plugin libvftest_faulty.so did not open output `out` in `start` (a streaming kind opens every output there)",
        ),
    ];
    for (kind, want) in cases {
        let g = pipeline(&dir, &format!("[{}]", s(&faulty)), kind, "");
        // The error names the node, its kind and its graph line (line 8: `step`).
        fails_cleanly(
            &dir,
            &["-q", "run", s(&g)],
            &format!("error: node `step` ({kind}) at {}:8: {want}", g.display()),
        );
        assert!(!dir.join("out.nii.gz").exists());
    }
    // A stream stopped by the plugin's own panic still gets `finish`, which frees its state.
    let marker = dir.join("dropped.txt");
    let g = pipeline(&dir, &format!("[{}]", s(&faulty)), "test_stream_panics", "");
    let o = Command::new(env!("CARGO_BIN_EXE_voxflow"))
        .args(["-q", "run", s(&g)])
        .env_remove("VOXFLOW_PLUGIN_PATH")
        .env("VFTEST_DROP_MARKER", &marker)
        .output()
        .expect("run voxflow");
    assert!(!o.status.success());
    assert!(marker.is_file(), "finish was not called after the panic");
}

/// Label slice `k` of `v` as a flat vector.
fn label_slice(v: &Volume, k: usize) -> Vec<u8> {
    v.label()
        .expect("label")
        .index_axis(ndarray::Axis(0), k)
        .iter()
        .copied()
        .collect()
}

#[test]
fn streaming_plugins_get_one_slice_at_a_time_and_may_hold_back() {
    let dir = temp_dir("plugin-stream");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let probe = lib("vftest_stream_probe");

    // Output slice k was sent from the (k+1)-th `slice` call.
    let g = pipeline(&dir, &format!("[{}]", s(&probe)), "test_slice_calls", "");
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_any(&dir.join("out.nii.gz"), Some(StreamType::Image), None).expect("read");
    let img = out.image().expect("image");
    for k in 0..6 {
        let plane = img.index_axis(ndarray::Axis(0), k);
        assert!(
            plane.iter().all(|&v| v == (k + 1) as f32),
            "slice {k}: {plane:?}"
        );
    }
    let written = read_label(&dir.join("in.nii.gz"));
    assert_eq!(out.header.affine, written.header.affine, "geometry kept");

    // Everything sent from `finish` arrives, in order, each slice its input's label sum.
    std::fs::remove_file(dir.join("out.nii.gz")).expect("remove");
    let g = pipeline(&dir, &format!("[{}]", s(&probe)), "test_hold_back", "");
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_label(&dir.join("out.nii.gz"));
    for k in 0..6 {
        let sum: usize = label_slice(&input, k).iter().map(|&v| v as usize).sum();
        assert!(sum > 0, "slice {k} of the synthetic volume has labels");
        assert!(
            label_slice(&out, k)
                .iter()
                .all(|&v| v as usize == sum % 256),
            "slice {k}"
        );
    }
}

#[test]
fn version_1_libraries_still_load_and_run() {
    let dir = temp_dir("plugin-v1");
    let input = synthetic();
    write_nifti(&dir.join("in.nii.gz"), &input.header, &input.data).expect("write input");
    let legacy = lib("vftest_v1_legacy");
    let g = pipeline(&dir, &format!("[{}]", s(&legacy)), "legacy_invert", "");
    voxflow_ok(&["-q", "run", s(&g)]);
    let out = read_label(&dir.join("out.nii.gz"));
    let want = input.label().expect("label").mapv(|v| u8::from(v == 0));
    assert_eq!(out.label().expect("label"), &want);
}

/// Graph: mask an image with a label through `mask_image`, write the result.
fn mask_graph(dir: &Path, image: &Path, mask: &Path, extra: &str) -> PathBuf {
    write_graph(
        dir,
        "mask.yaml",
        &format!(
            "graph: mask\nplugins: [{}]\nnodes:\n  img: {{ kind: read_volume, path: {} }}\n  \
             seg: {{ kind: read_volume, path: {}, as: label }}\n  \
             m: {{ kind: mask_image, image: img, mask: seg{extra} }}\n  \
             save: {{ kind: write_volume, in: m, path: out.nii.gz }}\n",
            s(&lib("mask_image")),
            s(image),
            s(mask)
        ),
    )
}

#[test]
fn mask_image_streams_a_real_ct_through_its_liver_mask() {
    let (Some(ct), Some(label)) = (
        data_file("ircadb01_small_ct.nii.gz"),
        data_file("ircadb01_small_label.nii.gz"),
    ) else {
        return;
    };
    let dir = temp_dir("plugin-mask");
    let g = mask_graph(&dir, &ct, &label, ", outside: -1000.0, label: 2");
    voxflow_ok(&["-q", "run", s(&g)]);
    let image = read_any(&ct, Some(StreamType::Image), None).expect("read ct");
    let mask = read_label(&label);
    let out = read_any(&dir.join("out.nii.gz"), Some(StreamType::Image), None).expect("read");
    let (o, i, m) = (
        out.image().expect("image"),
        image.image().expect("image"),
        mask.label().expect("label"),
    );
    assert_eq!(o.dim(), i.dim());
    let mut lesion = 0;
    for ((&ov, &iv), &mv) in o.iter().zip(i).zip(m) {
        if mv == 2 {
            assert_eq!(ov, iv);
            lesion += 1;
        } else {
            assert_eq!(ov, -1000.0);
        }
    }
    assert!(lesion > 1000, "the scan has lesion voxels ({lesion})");
    assert_eq!(out.header.affine, image.header.affine);

    // A mask on another grid is refused by name.
    let small = dir.join("small.nii.gz");
    let v = synthetic();
    write_nifti(&small, &v.header, &v.data).expect("write");
    std::fs::remove_file(dir.join("out.nii.gz")).expect("remove");
    let g = mask_graph(&dir, &ct, &small, "");
    fails_cleanly(
        &dir,
        &["-q", "run", s(&g)],
        "and `mask` (12x10x6) are not on the same grid",
    );
}

/// The plugin host drops the built-in nodes' preprocessing record from a plugin's outputs by
/// its key; the two must name the same key.
#[test]
fn plugin_host_knows_the_preprocessing_key() {
    assert_eq!(
        voxflow_plugin_host::PREPROCESS_META,
        voxflow_nodes::meta::PREPROCESS
    );
}
