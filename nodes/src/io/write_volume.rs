//! `write_volume`: NIfTI output with the stream's geometry.

use super::nifti_io;
use serde::Deserialize;
use std::path::PathBuf;
use voxflow_runtime::decl::PortType;
use voxflow_runtime::{BuildEnv, Node, NodeCtx, NodeDecl, NodeError, NodeParams, TypedKind};

pub struct WriteVolume;

/// Params of `write_volume`.
#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
pub struct WriteVolumeParams {
    /// output file, `.nii` or `.nii.gz`
    #[param(writes)]
    pub path: PathBuf,
}

impl TypedKind for WriteVolume {
    type Params = WriteVolumeParams;

    fn declare(&self) -> NodeDecl {
        NodeDecl::new("write_volume", "Write a stream to a NIfTI file")
            .docs(
                "Gathers the stream and writes it with the stream's affine in both sform and qform \
                 (units mm). Labels are written as uint8, images and probabilities as float32 \
                 (probabilities as a 4D `x, y, z, class` volume). Slices missing from a sparse \
                 stream are zero. The file appears only when the whole graph succeeded.",
            )
            .input("in", PortType::Any, "stream to write")
    }

    fn check_params(&self, p: &WriteVolumeParams) -> Vec<(String, String)> {
        let s = p.path.to_string_lossy();
        if !(s.ends_with(".nii") || s.ends_with(".nii.gz")) {
            return vec![("path".into(), format!("`{s}` must end in .nii or .nii.gz"))];
        }
        vec![]
    }

    fn create(&self, p: WriteVolumeParams, _env: &BuildEnv) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(WriteVolumeNode { path: p.path }))
    }
}

struct WriteVolumeNode {
    path: PathBuf,
}

impl Node for WriteVolumeNode {
    fn run(&mut self, ctx: &mut NodeCtx) -> Result<(), NodeError> {
        let v = ctx.gather("in")?;
        let tmp = ctx.output_file(&self.path)?;
        // Name the output, not its temporary, in a failure.
        nifti_io::write_nifti(&tmp, &v.header, &v.data)
            .map_err(|e| e.replace(&*tmp.to_string_lossy(), &self.path.to_string_lossy()))?;
        Ok(())
    }
}
