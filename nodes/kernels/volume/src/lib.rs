//! Volume operations that several voxflow nodes and kernels share, one copy each: the exact
//! anisotropic Euclidean distance transform, 3-D connected components, per-slice morphological
//! closing, numpy's linear percentile and slice resizing (`align_corners = false`).
//!
//! Array convention: a volume has shape `(nk, nj, ni)` (slice, row, column) and `spacing` is
//! the voxel size in mm in the same axis order, `[dk, dj, di]`.

#![warn(missing_docs)]

pub mod components;
mod edt;
mod morphology;
mod percentile;
mod resize;

pub use components::{component_sizes, label_components, largest_component, Connectivity};
pub use edt::{edt_squared, edt_squared_at};
pub use morphology::close_slices;
pub use percentile::{percentile_linear, percentile_sorted};
pub use resize::{nearest_indices, resize_bilinear, resize_nearest};
