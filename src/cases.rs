//! The case list of `voxflow eval`, `batch` and `crf-search`: a CSV manifest with an `id`
//! column, one case per row.

use std::collections::BTreeSet;
use std::path::Path;

/// One manifest row.
pub(crate) struct Case {
    pub(crate) line: usize,
    pub(crate) id: String,
    pub(crate) values: Vec<(String, String)>,
}

/// Splits one CSV line (RFC 4180 quotes, no embedded newlines).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (false, ',') => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// Reads a manifest: the header's columns and one case per row (ids checked and unique).
pub(crate) fn read_manifest(path: &Path) -> Result<(Vec<String>, Vec<Case>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let at = |n: usize, m: String| format!("{}:{n}: {m}", path.display());
    let (hn, head) = lines
        .next()
        .ok_or_else(|| format!("manifest {} is empty", path.display()))?;
    let cols = split_csv(head).map_err(|e| at(hn, e))?;
    if !cols.iter().any(|c| c == "id") {
        return Err(at(
            hn,
            format!("the header needs an `id` column (has {})", cols.join(", ")),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &cols {
        if c.is_empty() || !seen.insert(c) {
            return Err(at(hn, format!("empty or repeated column name `{c}`")));
        }
    }
    let mut cases = Vec::new();
    let mut ids = BTreeSet::new();
    for (n, l) in lines {
        let cells = split_csv(l).map_err(|e| at(n, e))?;
        if cells.len() != cols.len() {
            return Err(at(
                n,
                format!("{} cells, the header has {}", cells.len(), cols.len()),
            ));
        }
        let mut id = String::new();
        let mut values = Vec::new();
        for (c, v) in cols.iter().zip(cells) {
            if c == "id" {
                id = v;
            } else {
                values.push((c.clone(), v));
            }
        }
        if id.is_empty()
            || id.starts_with('.')
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(at(n, format!("case id `{id}` must be letters, digits, `.`, `_` or `-` (it names output files)")));
        }
        if !ids.insert(id.clone()) {
            return Err(at(n, format!("case id `{id}` is repeated")));
        }
        cases.push(Case {
            line: n,
            id,
            values,
        });
    }
    if cases.is_empty() {
        return Err(format!("manifest {} has no cases", path.display()));
    }
    Ok((cols, cases))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_split() {
        assert_eq!(
            split_csv("a, b ,\"c,d\",\"e\"\"f\"").unwrap(),
            ["a", "b", "c,d", "e\"f"]
        );
        assert!(split_csv("\"x").is_err());
    }
}
