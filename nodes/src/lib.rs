//! Built-in voxflow nodes, one file per node, grouped by family.

pub mod csv;
pub mod eval;
pub mod features;
pub mod inference;
pub mod io;
pub mod meta;
pub mod preprocess;
pub mod refine;
pub mod report;

use voxflow_runtime::Registry;

/// Every built-in node kind.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    let families = [
        io::kinds(),
        preprocess::kinds(),
        inference::kinds(),
        refine::kinds(),
        eval::kinds(),
        features::kinds(),
        report::kinds(),
    ];
    for k in families.into_iter().flatten() {
        r.add(k, "built-in")
            .expect("built-in kinds have distinct names");
    }
    r
}
