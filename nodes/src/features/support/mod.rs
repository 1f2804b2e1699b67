//! The per-region rows `survival_features` and `risk` compute.

pub mod regions;
