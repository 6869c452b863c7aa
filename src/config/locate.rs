//! Finds the line of a dotted key path in a TOML document, and the key path at a byte offset,
//! for error messages.

use toml::de::{DeTable, DeValue};

/// The 1-based line where `path` (e.g. `models.gpt-4o.providers` or `keys[1].key`) is
/// defined in `src`, or of its nearest ancestor that exists.
pub fn line_of(src: &str, path: &str) -> Option<usize> {
    let root = DeTable::parse(src).ok()?;
    let mut table = root.get_ref();
    let mut offset: Option<usize> = None;
    let mut current: Option<&DeValue<'_>> = None;
    for segment in split_path(path) {
        let (name, index) = segment;
        if let Some(value) = current {
            match value.as_table() {
                Some(t) => table = t,
                None => break,
            }
        }
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        offset = Some(key.span().start);
        let mut value = value;
        if let Some(i) = index {
            match value.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(item) => {
                    offset = Some(item.span().start);
                    value = item;
                }
                None => break,
            }
        }
        current = Some(value.get_ref());
    }
    offset.map(|o| src[..o.min(src.len())].matches('\n').count() + 1)
}

/// `a."b.c"[2].d` → `[("a", None), ("b.c", Some(2)), ("d", None)]`. A segment is quoted
/// when it contains a dot (model ids such as `gpt-4.1`); see [`key_segment`].
fn split_path(path: &str) -> Vec<(&str, Option<usize>)> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let name;
        if let Some(tail) = rest.strip_prefix('"') {
            let end = tail.find('"').unwrap_or(tail.len());
            name = &tail[..end];
            rest = tail.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            name = &rest[..end];
            rest = &rest[end..];
        }
        let mut index = None;
        if let Some(tail) = rest.strip_prefix('[') {
            if let Some(close) = tail.find(']') {
                index = tail[..close].parse().ok();
                rest = &tail[close + 1..];
            }
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
        out.push((name, index));
    }
    out
}

/// The dotted path (`server.max_body_bytes`, `keys[1].key`) of the deepest key whose name or
/// value covers byte `offset` of `src`: names the key of a type error that toml reports by
/// span only.
pub fn key_at(src: &str, offset: usize) -> Option<String> {
    let root = DeTable::parse(src).ok()?;
    let mut best = None;
    walk(root.get_ref(), offset, "", &mut best);
    best
}

fn walk(table: &DeTable<'_>, offset: usize, prefix: &str, best: &mut Option<String>) {
    for (key, value) in table.iter() {
        let segment = key_segment(key.get_ref().as_ref());
        let path = if prefix.is_empty() {
            segment
        } else {
            format!("{prefix}.{segment}")
        };
        if key.span().contains(&offset) || value.span().contains(&offset) {
            *best = Some(path.clone());
        }
        visit(value.get_ref(), offset, &path, best);
    }
}

fn visit(value: &DeValue<'_>, offset: usize, path: &str, best: &mut Option<String>) {
    if let Some(table) = value.as_table() {
        walk(table, offset, path, best);
    } else if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            let path = format!("{path}[{i}]");
            if item.span().contains(&offset) {
                *best = Some(path.clone());
            }
            visit(item.get_ref(), offset, &path, best);
        }
    }
}

/// Writes a table key as a path segment, quoting it when it contains a dot.
pub fn key_segment(name: &str) -> String {
    if name.contains(['.', '[', '"']) {
        format!("\"{name}\"")
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[server]\nlisten = \"127.0.0.1:1\"\n\n[models.m]\nproviders = [\"a\"]\n\n[[keys]]\nname = \"x\"\n\n[[keys]]\nname = \"y\"\nkey = \"k\"\n";

    #[test]
    fn finds_lines() {
        assert_eq!(line_of(DOC, "server.listen"), Some(2));
        assert_eq!(line_of(DOC, "models.m.providers"), Some(5));
        assert_eq!(line_of(DOC, "keys[1].key"), Some(12));
        assert_eq!(line_of(DOC, "keys[0]"), Some(7));
        // Unknown leaf: nearest ancestor.
        assert_eq!(line_of(DOC, "models.m.price"), Some(4));
        assert_eq!(line_of(DOC, "nothing"), None);
        let dotted = "[models.\"gpt-4.1\"]\nproviders = []\n";
        assert_eq!(
            line_of(
                dotted,
                &format!("models.{}.providers", key_segment("gpt-4.1"))
            ),
            Some(2)
        );
    }

    #[test]
    fn finds_the_key_at_an_offset() {
        let at = |needle: &str| key_at(DOC, DOC.find(needle).unwrap());
        assert_eq!(at("\"127.0.0.1:1\"").as_deref(), Some("server.listen"));
        assert_eq!(at("listen").as_deref(), Some("server.listen"));
        assert_eq!(at("\"a\"").as_deref(), Some("models.m.providers[0]"));
        assert_eq!(at("\"k\"").as_deref(), Some("keys[1].key"));
        assert_eq!(key_at("a = [", 0), None);
    }
}
