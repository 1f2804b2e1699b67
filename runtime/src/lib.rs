//! The voxflow runtime: YAML graphs, validation, typed slice streams, scheduling.
//! It knows nothing about medicine; nodes bring the meaning.

// Lets `#[derive(NodeParams)]` output (which names `::voxflow_runtime`) compile in this crate.
extern crate self as voxflow_runtime;

pub mod decl;
pub mod graph;
pub mod stream;

pub use decl::{NodeDecl, ParamDecl, ParamType, Params, PortDecl, PortType};
pub use graph::{Diagnostic, Diagnostics, GraphDoc, Pos};
pub use stream::{Header, Message, Meta, Slice, SliceData, StreamType, Volume, VolumeData};
pub mod exec;
mod gather;
pub mod node;
pub mod output;
pub mod params;
pub mod registry;
pub mod validate;
pub mod zip;

pub use exec::{execute, RunError, RunOptions, RunReport, RunStats};
pub use node::{BuildEnv, Node, NodeCtx, NodeError, NodeKind, NodeTiming};
pub use params::{NodeParams, ParamEnum, TypedKind};
pub use registry::Registry;
pub use validate::{check, check_all_ways, CheckOptions, Plan};
pub use zip::{Aligned, Zip};
