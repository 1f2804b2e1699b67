//! The set of node kinds a graph may use.

use crate::decl::NodeDecl;
use crate::node::NodeKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A registered kind: its declaration (read once) and where it comes from.
#[derive(Clone)]
pub struct KindEntry {
    pub decl: NodeDecl,
    pub kind: Arc<dyn NodeKind>,
    /// "built-in" or the plugin library path.
    pub origin: String,
}

#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, KindEntry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind; a name that is already taken is an error naming both origins.
    pub fn add(&mut self, kind: Arc<dyn NodeKind>, origin: &str) -> Result<(), String> {
        let decl = kind.decl();
        if let Some(prev) = self.kinds.get(&decl.kind) {
            return Err(format!(
                "node kind `{}` from {origin} clashes with the one from {}",
                decl.kind, prev.origin
            ));
        }
        self.kinds.insert(
            decl.kind.clone(),
            KindEntry {
                decl,
                kind,
                origin: origin.to_string(),
            },
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&KindEntry> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    pub fn entries(&self) -> impl Iterator<Item = &KindEntry> {
        self.kinds.values()
    }
}
