//! The graph loader and checker (as `voxflow check` runs them) with the built-in registry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use voxflow_runtime::{check_all_ways, CheckOptions, GraphDoc};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = GraphDoc::parse(text, Path::new("/nonexistent/fuzz.yaml")) else {
        return;
    };
    let opts = CheckOptions {
        set: vec![],
        cwd: "/nonexistent".into(),
        require_values: false,
    };
    let _ = check_all_ways(&doc, voxflow_fuzz::registry(), &opts);
});
