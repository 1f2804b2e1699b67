//! The whole-volume CRF run of `dense_crf` (also `voxflow crf-search`).

pub mod crf_volume;
