//! `voxflow segment INPUT -o OUTDIR`: the shipped CT or MRI graph in one command, its outputs
//! under fixed names directly in OUTDIR.

use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::graph::{Entry, NodeSpec};
use voxflow_runtime::stream::StreamType;
use voxflow_runtime::{
    BuildEnv, CheckOptions, GraphDoc, Node, NodeCtx, NodeDecl, NodeError, NodeParams, Registry,
    RunOptions, TypedKind, VolumeData,
};

#[derive(Args)]
pub struct SegmentArgs {
    /// CT or MR volume: a NIfTI file (.nii, .nii.gz) or a DICOM series folder.
    input: PathBuf,
    /// Output folder (created if missing); files there with the output names are replaced.
    #[arg(short, long, value_name = "OUTDIR")]
    output: PathBuf,
    /// Which graph to run; for a DICOM folder the default is its Modality tag, a NIfTI file
    /// needs it.
    #[arg(long, value_enum)]
    modality: Option<Modality>,
    /// Where the FCNs run: auto (CUDA device 0 if available, else CPU), cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Override a param of the graph, as with `voxflow run` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Modality {
    Ct,
    Mr,
}

impl Modality {
    fn graph_file(self) -> &'static str {
        match self {
            Modality::Ct => "ct_liver_lesion.yaml",
            Modality::Mr => "mri_liver.yaml",
        }
    }
}

/// Output names in OUTDIR.
const SEG: &str = "seg.nii.gz";
const LIVER: &str = "liver.nii.gz";
const LESIONS: &str = "liver_lesions.nii.gz";
const REPORT: &str = "seg.html";
const STATS: &str = "seg.stats.json";
const DICOM_SEG: &str = "seg.dcm";
const ALL_OUTPUTS: [&str; 6] = [SEG, LIVER, LESIONS, REPORT, STATS, DICOM_SEG];

/// Folders that may hold the shipped `graphs/` and `models/` (the graphs find the models at
/// `../models/` beside them), in the order they are searched:
/// 1. `$VOXFLOW_HOME`, when set (then the only place);
/// 2. `<folder of the executable>/../share/voxflow` (an installed copy, e.g. the pip wheel);
/// 3. the source tree the executable was built from.
pub fn data_dirs() -> Vec<PathBuf> {
    if let Some(home) = std::env::var_os("VOXFLOW_HOME") {
        return vec![PathBuf::from(home)];
    }
    let mut dirs = Vec::new();
    let exe = std::env::current_exe().ok();
    if let Some(prefix) = exe.as_deref().and_then(Path::parent).and_then(Path::parent) {
        dirs.push(prefix.join("share").join("voxflow"));
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dirs
}

/// The shipped graph `name`, from the first of [`data_dirs`] that has it.
pub fn find_graph(name: &str) -> Result<PathBuf, String> {
    let dirs = data_dirs();
    for d in &dirs {
        let g = d.join("graphs").join(name);
        if g.is_file() {
            return Ok(g);
        }
    }
    Err(format!(
        "cannot find the shipped graph graphs/{name}; looked in {} (set VOXFLOW_HOME to the folder that holds graphs/ and models/)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The Modality tag of the first DICOM file in `dir` that has one (pixel data is not read).
fn dicom_modality(dir: &Path) -> Result<String, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let Ok(obj) = dicom_object::OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .open_file(f)
        else {
            continue;
        };
        if let Some(m) = obj
            .get(dicom_dictionary_std::tags::MODALITY)
            .and_then(|e| e.to_str().ok())
        {
            return Ok(m.trim().trim_end_matches('\0').to_string());
        }
    }
    Err(format!(
        "{}: no DICOM file with a Modality tag among its {} files; is it a DICOM series folder?",
        dir.display(),
        files.len()
    ))
}

fn choose_modality(args: &SegmentArgs, dicom: bool) -> Result<Modality, String> {
    if !dicom {
        return args.modality.ok_or_else(|| {
            format!(
                "{} is a NIfTI file, which does not say whether it is a CT or an MR: give --modality ct or --modality mr",
                args.input.display()
            )
        });
    }
    let tag = dicom_modality(&args.input)?;
    let from_tag = match tag.as_str() {
        "CT" => Some(Modality::Ct),
        "MR" => Some(Modality::Mr),
        _ => None,
    };
    match (args.modality, from_tag) {
        (Some(m), Some(t)) if m != t => {
            tracing::warn!(
                "--modality {} overrides the series' Modality tag {tag}",
                m.to_possible_value().expect("value").get_name()
            );
            Ok(m)
        }
        (Some(m), _) => Ok(m),
        (None, Some(t)) => Ok(t),
        (None, None) => Err(format!(
            "{}: the series' Modality is {tag:?}; voxflow segment has graphs for CT and MR: give --modality ct or --modality mr to run one of them",
            args.input.display()
        )),
    }
}

fn set_entry(spec: &mut NodeSpec, key: &str, value: Value) {
    match spec.entries.iter_mut().find(|e| e.key == key) {
        Some(e) => e.value = value,
        None => spec.entries.push(Entry {
            key: key.into(),
            key_pos: spec.pos,
            value,
            value_pos: spec.pos,
        }),
    }
}

fn path_value(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// Points the graph's outputs at OUTDIR and adds the mask node; fails when the graph lacks a
/// node that writes one of the promised files.
fn adapt_graph(doc: &mut GraphDoc, out: &Path, dicom: bool, lesions: bool) -> Result<(), String> {
    let kind_of = |n: &NodeSpec| {
        n.entry("kind")
            .and_then(|e| e.value.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let missing = |what: &str| {
        format!(
            "{}: the graph has no {what} node, which voxflow segment needs",
            doc.file.display()
        )
    };
    let save = doc
        .nodes
        .iter()
        .find(|n| {
            kind_of(n) == "write_volume"
                && n.entry("path").and_then(|e| e.value.as_str()) == Some("$output")
        })
        .ok_or_else(|| missing("write_volume with `path: $output`"))?;
    let label_source = save
        .entry("in")
        .map(|e| e.value.clone())
        .ok_or_else(|| missing("connected write_volume"))?;
    let pos = save.pos;
    let (mut report, mut stats, mut seg) = (false, false, false);
    for n in &mut doc.nodes {
        match kind_of(n).as_str() {
            "report" => {
                set_entry(n, "path", path_value(&out.join(REPORT)));
                report = true;
            }
            "stats" => {
                set_entry(n, "json", path_value(&out.join(STATS)));
                stats = true;
            }
            "write_dicom_seg" => {
                set_entry(n, "path", path_value(&out.join(DICOM_SEG)));
                set_entry(n, "if_unavailable", "error".into());
                if !dicom {
                    set_entry(n, "enabled", false.into());
                }
                seg = true;
            }
            // The report holds the same pictures; OUTDIR keeps to the files listed above.
            "overlay" => set_entry(n, "enabled", false.into()),
            _ => {}
        }
    }
    for (found, what) in [
        (report, "report"),
        (stats, "stats"),
        (seg, "write_dicom_seg"),
    ] {
        if !found {
            return Err(missing(what));
        }
    }
    let mut id = String::from("class_masks");
    while doc.nodes.iter().any(|n| n.id == id) {
        id.push('_');
    }
    let mut masks = NodeSpec {
        id,
        pos,
        entries: vec![],
        scope: 0,
    };
    set_entry(&mut masks, "kind", MASK_KIND.into());
    set_entry(&mut masks, "in", label_source);
    set_entry(&mut masks, "liver", path_value(&out.join(LIVER)));
    if lesions {
        set_entry(&mut masks, "lesions", path_value(&out.join(LESIONS)));
    }
    doc.nodes.push(masks);
    Ok(())
}

pub fn run(a: SegmentArgs, reg: &Registry, quiet: bool) -> Result<(), String> {
    let dicom = if a.input.is_dir() {
        true
    } else if a.input.is_file() {
        let name = a.input.to_string_lossy();
        if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
            return Err(format!(
                "{}: expected a NIfTI file (.nii, .nii.gz) or a DICOM series folder",
                a.input.display()
            ));
        }
        false
    } else {
        return Err(format!("{}: no such file or folder", a.input.display()));
    };
    let modality = choose_modality(&a, dicom)?;
    let mut set = crate::parse_sets(&a.set)?;
    if let Some((name, _)) = set
        .iter()
        .find(|(n, _)| ["input", "output", "report"].contains(&n.as_str()))
    {
        return Err(format!(
            "--set {name}: voxflow segment sets `{name}` itself (INPUT, -o OUTDIR; the report is always written)"
        ));
    }
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
    let input = cwd.join(&a.input);
    std::fs::create_dir_all(&a.output)
        .map_err(|e| format!("cannot create output folder {}: {e}", a.output.display()))?;
    let out = cwd.join(&a.output);
    set.push(("input".into(), path_value(&input)));
    set.push(("output".into(), path_value(&out.join(SEG))));
    set.push(("report".into(), Value::Bool(true)));
    if let Some(d) = &a.device {
        set.push(("device".into(), Value::String(d.clone())));
    }

    let graph = find_graph(modality.graph_file())?;
    let mut doc = GraphDoc::load(&graph).map_err(|d| d.to_string())?;
    adapt_graph(&mut doc, &out, dicom, modality == Modality::Ct)?;
    let mut reg = reg.clone();
    reg.add(Arc::new(ClassMasks), "voxflow segment")?;
    let opts = CheckOptions {
        set,
        cwd,
        require_values: true,
    };
    let plan = voxflow_runtime::check(&doc, &reg, &opts).map_err(|d| d.to_string())?;

    let report = crate::execute_stoppable(&plan, &reg, RunOptions::default(), quiet)?;

    // Files of an earlier run into the same folder that this run does not replace (a DICOM
    // SEG after a NIfTI input, lesions after an MR) would read as results of this one.
    for name in ALL_OUTPUTS {
        let p = out.join(name);
        if p.exists() && !report.outputs.contains(&p) {
            std::fs::remove_file(&p).map_err(|e| {
                format!("cannot remove {} left by an earlier run: {e}", p.display())
            })?;
        }
    }
    if !quiet {
        println!(
            "{} segmentation of {} ({:.1} s), in {}:",
            match modality {
                Modality::Ct => "CT liver and lesion",
                Modality::Mr => "MR liver",
            },
            a.input.display(),
            report.wall_ms / 1000.0,
            a.output.display()
        );
        let (labels, liver) = match modality {
            Modality::Ct => (
                "labels: 0 background, 1 liver, 2 lesion",
                "mask of the liver with its lesions (label >= 1)",
            ),
            Modality::Mr => ("labels: 0 background, 1 liver", "mask of the liver"),
        };
        for (name, what) in [
            (SEG, labels),
            (LIVER, liver),
            (LESIONS, "mask of the lesions (label 2)"),
            (REPORT, "report: volumes, lesions, pictures"),
            (STATS, "the report's numbers as JSON"),
            (DICOM_SEG, "DICOM SEG for viewers and PACS"),
        ] {
            if report.outputs.contains(&out.join(name)) {
                println!("  {name:<22} {what}");
            }
        }
    }
    Ok(())
}

/// The kind of the node that `voxflow segment` adds to write one mask per class; only its
/// registry has it.
const MASK_KIND: &str = "segment_class_masks";

struct ClassMasks;

/// Params of `segment_class_masks`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct ClassMasksParams {
    /// mask of label >= 1 (the liver with its lesions)
    #[param(writes)]
    liver: PathBuf,
    /// mask of label 2
    #[param(writes)]
    lesions: Option<PathBuf>,
}

impl TypedKind for ClassMasks {
    type Params = ClassMasksParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new(
            MASK_KIND,
            "One NIfTI mask per class of a liver/lesion label volume",
        )
        .input(
            "in",
            PortType::Fixed(StreamType::Label),
            "labels: 0 background, 1 liver, 2 lesion",
        )
    }

    fn create(&self, p: ClassMasksParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(MaskWriter {
            liver: p.liver,
            lesions: p.lesions,
        }))
    }
}

struct MaskWriter {
    liver: PathBuf,
    lesions: Option<PathBuf>,
}

impl Node for MaskWriter {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        let VolumeData::Label(labels) = &v.data else {
            return Err(NodeError::msg("input `in` must be a label stream"));
        };
        // The stream's header, as write_volume writes it for seg.nii.gz: the same affine.
        let mut masks = vec![(&self.liver, labels.mapv(|l| u8::from(l >= 1)))];
        if let Some(p) = &self.lesions {
            masks.push((p, labels.mapv(|l| u8::from(l == 2))));
        }
        for (path, mask) in masks {
            let tmp = ctx.output_file(path)?;
            voxflow_nodes::io::nifti_io::write_nifti(&tmp, &v.header, &VolumeData::Label(mask))?;
        }
        Ok(())
    }
}
