//! `write_volume`: NIfTI output with the stream's geometry.

use super::nifti_io;
use std::path::PathBuf;
use voxflow_runtime::decl::{ParamType, PortType};
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeKind, Params};

pub struct WriteVolume;

impl NodeKind for WriteVolume {
    fn decl(&self) -> NodeDecl {
        NodeDecl::new("write_volume", "Write a stream to a NIfTI file")
            .docs(
                "Gathers the stream and writes it with the stream's affine in both sform and qform \
                 (units mm). Labels are written as uint8, images and probabilities as float32 \
                 (probabilities as a 4D `x, y, z, class` volume). Slices missing from a sparse \
                 stream are zero. The file appears only when the whole graph succeeded.",
            )
            .input("in", PortType::Any, "stream to write")
            .required("path", ParamType::Path, "output file, `.nii` or `.nii.gz`")
            .writes(&["path"])
    }

    fn check(&self, params: &Params) -> Vec<(String, String)> {
        match params.str("path") {
            Ok(p) if !(p.ends_with(".nii") || p.ends_with(".nii.gz")) => {
                vec![("path".into(), format!("`{p}` must end in .nii or .nii.gz"))]
            }
            _ => vec![],
        }
    }

    fn build(&self, params: &Params, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        let path = params.path("path")?;
        let s = path.to_string_lossy();
        if !(s.ends_with(".nii") || s.ends_with(".nii.gz")) {
            return Err(NodeError::msg(format!(
                "output {s} must end in .nii or .nii.gz"
            )));
        }
        Ok(Box::new(WriteNode { path }))
    }
}

struct WriteNode {
    path: PathBuf,
}

impl Node for WriteNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        let tmp = ctx.output_file(&self.path)?;
        // Name the output, not its temporary, in a failure.
        nifti_io::write_nifti(&tmp, &v.header, &v.data)
            .map_err(|e| e.replace(&*tmp.to_string_lossy(), &self.path.to_string_lossy()))?;
        Ok(())
    }
}
