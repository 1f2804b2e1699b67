//! Finds the NiiVue bundle that the report inlines (`report::viewer`), installed by
//! scripts/setup-niivue.sh into `.niivue/package` at the repo root, and hands its path and
//! version to the crate (`VOXFLOW_NIIVUE_JS`, `VOXFLOW_NIIVUE_VERSION`).
use std::path::Path;

fn main() {
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.niivue/package");
    let js = pkg.join("build/index.min.js");
    let manifest = pkg.join("package.json");
    println!("cargo:rerun-if-changed={}", js.display());
    println!("cargo:rerun-if-changed={}", manifest.display());
    let missing = |what: &str| -> ! {
        panic!(
            "NiiVue, which the HTML report inlines, is {what} ({}): run `bash scripts/setup-niivue.sh` \
             (`make build`, `make test` and `make demo` run it)",
            pkg.display()
        )
    };
    let text = std::fs::read_to_string(&js).unwrap_or_else(|_| missing("missing"));
    // The bundle goes inside a <script> element: it must not be able to close it.
    if text.to_ascii_lowercase().contains("</script") || !text.starts_with("export const esm") {
        missing("not the expected single-file bundle");
    }
    let version = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .and_then(|m| m["version"].as_str().map(String::from))
        .unwrap_or_else(|| missing("without a readable package.json"));
    let js = js.canonicalize().unwrap_or_else(|_| missing("missing"));
    println!("cargo:rustc-env=VOXFLOW_NIIVUE_JS={}", js.display());
    println!("cargo:rustc-env=VOXFLOW_NIIVUE_VERSION={version}");
}
