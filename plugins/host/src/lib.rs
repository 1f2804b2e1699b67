//! Loads voxflow node plugins (shared libraries speaking `voxflow-plugin-abi`) and registers
//! their kinds so that `voxflow nodes`, `check` and `run` treat them like built-ins.
//!
//! Libraries are never unloaded: once opened they stay until the process exits.

mod decl;
mod node;

pub use decl::parse_decl;
use node::KindBody;
pub use node::{PluginKind, PREPROCESS_META};

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use voxflow_plugin_abi as abi;
use voxflow_runtime::{GraphDoc, NodeKind, Registry};

/// Environment variable: folders (`:`-separated) whose plugin libraries are all loaded at start,
/// and where bare plugin names are looked up.
pub const PATH_VAR: &str = "VOXFLOW_PLUGIN_PATH";

/// The kinds of one loaded library.
pub struct Library {
    /// Canonical path: the origin shown in clash messages and `voxflow nodes`.
    pub origin: String,
    pub name: String,
    pub kinds: Vec<Arc<PluginKind>>,
}

/// Libraries opened so far, by canonical path (never closed).
fn loaded() -> &'static Mutex<HashMap<PathBuf, Arc<Library>>> {
    static L: OnceLock<Mutex<HashMap<PathBuf, Arc<Library>>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// Opens a plugin library (once per process) and reads its kinds. Errors name the file.
pub fn load_library(path: &Path) -> Result<Arc<Library>, String> {
    let shown = path.display();
    if !path.is_file() {
        return Err(format!("plugin {shown}: no such file"));
    }
    let canon = path
        .canonicalize()
        .map_err(|e| format!("plugin {shown}: {e}"))?;
    let mut map = loaded().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = map.get(&canon) {
        return Ok(l.clone());
    }
    // SAFETY: opening a library runs its initialisers; loading a plugin means trusting it.
    let lib = unsafe { libloading::Library::new(&canon) }.map_err(|e| {
        format!(
            "plugin {shown} is not a loadable shared library: {}",
            chain(&e)
        )
    })?;
    // Never unloaded, whatever happens next (unloading Rust libraries can crash).
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // SAFETY: the symbol's type is fixed by the ABI; a library exporting the name with another
    // type breaks the contract.
    let entry = unsafe { lib.get::<abi::VfEntryFn>(abi::ENTRY_SYMBOL.as_bytes()) }.map_err(|_| {
        format!(
            "plugin {shown} has no entry symbol `{}`: not a voxflow plugin (Rust plugins export it with \
             `voxflow_plugin_abi::export_plugin!`, C plugins define `voxflow_plugin_entry`)",
            abi::ENTRY_SYMBOL
        )
    })?;
    // SAFETY: calling the entry as the ABI describes.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(format!(
            "plugin {shown}: `{}` returned NULL",
            abi::ENTRY_SYMBOL
        ));
    }
    // Only the leading version field is read before the version is known to match.
    // SAFETY: every ABI version starts the table with a u32 version.
    let version = unsafe { std::ptr::read(table as *const u32) };
    if version != abi::ABI_VERSION && version != abi::v1::ABI_VERSION {
        return Err(format!(
            "plugin {shown} was built for voxflow plugin ABI version {version}, but this voxflow \
             supports versions {} and {}; rebuild the plugin against a matching voxflow-plugin-abi",
            abi::v1::ABI_VERSION,
            abi::ABI_VERSION
        ));
    }
    // SAFETY: versions 1 and 2 share the `vf_plugin` layout; checked above.
    let table = unsafe { &*table };
    let name = if table.name.is_null() {
        String::new()
    } else {
        // SAFETY: NUL-terminated, valid for the process life (ABI rule).
        unsafe { CStr::from_ptr(table.name) }
            .to_string_lossy()
            .into_owned()
    };
    if table.n_kinds == 0 || table.kinds.is_null() {
        return Err(format!("plugin {shown} declares no node kinds"));
    }
    let n_kinds = table.n_kinds as usize;
    let raw: Vec<abi::VfKind> = if version == abi::v1::ABI_VERSION {
        // SAFETY: `n_kinds` version-1 entries, valid for the process life.
        let v1 =
            unsafe { std::slice::from_raw_parts(table.kinds as *const abi::v1::VfKind, n_kinds) };
        v1.iter()
            .map(|k| abi::VfKind {
                decl_json: k.decl_json,
                run: k.run,
                user_data: k.user_data,
                start: None,
                slice: None,
                finish: None,
            })
            .collect()
    } else {
        // SAFETY: `n_kinds` entries, valid for the process life.
        unsafe { std::slice::from_raw_parts(table.kinds, n_kinds) }.to_vec()
    };
    let origin = canon.display().to_string();
    let mut kinds: Vec<Arc<PluginKind>> = Vec::new();
    for (n, k) in raw.iter().enumerate() {
        if k.decl_json.is_null() {
            return Err(format!("plugin {shown}: kind #{n} has no declaration"));
        }
        // SAFETY: as for the name.
        let json = unsafe { CStr::from_ptr(k.decl_json) }
            .to_str()
            .map_err(|_| format!("plugin {shown}: kind #{n}: the declaration is not UTF-8"))?;
        let decl = parse_decl(json).map_err(|e| {
            let which = serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| {
                    v.get("kind")
                        .and_then(|k| k.as_str())
                        .map(|s| format!("kind `{s}`"))
                })
                .unwrap_or_else(|| format!("kind #{n}"));
            format!("plugin {shown}: {which} has an invalid declaration: {e}")
        })?;
        if kinds.iter().any(|o| o.decl.kind == decl.kind) {
            return Err(format!(
                "plugin {shown} declares kind `{}` twice",
                decl.kind
            ));
        }
        let body =
            KindBody::of(k).map_err(|e| format!("plugin {shown}: kind `{}` {e}", decl.kind))?;
        kinds.push(Arc::new(PluginKind {
            decl,
            body,
            library: origin.clone(),
        }));
    }
    let l = Arc::new(Library {
        origin,
        name,
        kinds,
    });
    map.insert(canon, l.clone());
    Ok(l)
}

/// An error with its sources (libloading keeps the dlerror text in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// Loads a library and adds its kinds to `reg`. Naming the same file twice is harmless; a kind
/// taken by a built-in or another plugin is an error (the registry's message names both).
pub fn add_library(reg: &mut Registry, path: &Path) -> Result<Arc<Library>, String> {
    let lib = load_library(path)?;
    for k in &lib.kinds {
        if reg
            .get(&k.decl.kind)
            .is_some_and(|e| e.origin == lib.origin)
        {
            continue;
        }
        reg.add(k.clone() as Arc<dyn NodeKind>, &lib.origin)?;
    }
    Ok(lib)
}

/// The folders of `VOXFLOW_PLUGIN_PATH`.
pub fn search_dirs() -> Vec<PathBuf> {
    std::env::var_os(PATH_VAR)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn is_library_name(name: &str) -> bool {
    name.starts_with(std::env::consts::DLL_PREFIX) && name.ends_with(std::env::consts::DLL_SUFFIX)
}

/// Turns a plugin reference into a file: a bare name (no `/`, no library suffix) is looked up as
/// `lib<name>.so` in `VOXFLOW_PLUGIN_PATH`; anything else is a path relative to `base`.
pub fn resolve(spec: &str, base: &Path) -> Result<PathBuf, String> {
    let bare = !spec.contains('/')
        && !spec.contains(std::path::MAIN_SEPARATOR)
        && !spec.ends_with(std::env::consts::DLL_SUFFIX);
    if !bare {
        return Ok(base.join(spec));
    }
    let file = format!(
        "{}{spec}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let dirs = search_dirs();
    for d in &dirs {
        let p = d.join(&file);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(if dirs.is_empty() {
        format!("plugin `{spec}` is a bare name but {PATH_VAR} is not set (give a path, or set {PATH_VAR} to the folder holding {file})")
    } else {
        format!(
            "plugin `{spec}`: no {file} in {PATH_VAR} ({})",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Loads every plugin library (`lib*.so`) in the `VOXFLOW_PLUGIN_PATH` folders, in name order.
pub fn load_search_path(reg: &mut Registry) -> Result<(), String> {
    for d in search_dirs() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| format!("{PATH_VAR}: cannot read folder {}: {e}", d.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(is_library_name)
            })
            .collect();
        files.sort();
        for f in files {
            add_library(reg, &f).map_err(|e| format!("{e} (found through {PATH_VAR})"))?;
        }
    }
    Ok(())
}

/// Start-up loading: `VOXFLOW_PLUGIN_PATH`, then each `--plugin` (relative to the current folder).
pub fn load_startup(reg: &mut Registry, flags: &[PathBuf]) -> Result<(), String> {
    load_search_path(reg)?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    for f in flags {
        let spec = f.to_string_lossy();
        add_library(reg, &resolve(&spec, &cwd)?)?;
    }
    Ok(())
}

/// Loads the `plugins:` of a graph file (paths relative to the file). A file that does not parse
/// is left alone here: the graph check reports it.
pub fn load_graph_plugins(reg: &mut Registry, graph: &Path) -> Result<(), String> {
    let Ok(doc) = GraphDoc::load(graph) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for (spec, pos) in &doc.plugins {
        let r = resolve(spec, &doc.dir).and_then(|p| add_library(reg, &p));
        if let Err(e) = r {
            errors.push(format!(
                "error: {}:{}:{}: {e}",
                doc.file.display(),
                pos.line,
                pos.column
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}
