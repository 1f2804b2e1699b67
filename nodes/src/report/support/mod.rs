//! What the report nodes share: slice drawing and its annotations, the HTML page, the viewer.

pub(crate) mod annotate;
pub mod draw;
pub(crate) mod page;
pub mod viewer;
