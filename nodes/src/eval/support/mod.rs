//! What `metrics` shares with `voxflow eval` and the report.

pub mod scoring;
