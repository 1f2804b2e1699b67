//! CSV cells, as the nodes and the batch summary write them.

/// Quotes a CSV cell when needed (RFC 4180).
pub fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(super::quote("plain text"), "plain text");
        assert_eq!(super::quote("a,b"), "\"a,b\"");
        assert_eq!(super::quote("say \"x\"\n"), "\"say \"\"x\"\"\n\"");
    }
}
