//! `${VAR}` interpolation for secrets and addresses.
//!
//! Interpolation runs on typed string fields after parsing, not on the raw text: a secret that
//! contains a quote or a newline can never change the structure of the document, and parse
//! errors keep pointing at the lines the operator wrote. `$${` is a literal `${`;
//! `${NAME:-default}` is `default` when `NAME` is unset or empty (as in a shell).

/// Replaces every `${NAME}` in `input` with `lookup(NAME)`, and `${NAME:-default}` with it or,
/// when it is unset or empty, with `default`.
///
/// Returns the name of the first variable that `lookup` does not know, or a message for a
/// malformed reference.
pub fn interpolate(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal)".to_string())?;
            let (name, default) = match tail[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&tail[..end], None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name"
                ));
            }
            let value = match (lookup(name), default) {
                (Some(value), Some(default)) if value.is_empty() => default.to_owned(),
                (Some(value), _) => value,
                (None, Some(default)) => default.to_owned(),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            };
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cr\"et".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${KEY}", Ok("s3cr\"et")),
            ("Bearer ${KEY}!", Ok("Bearer s3cr\"et!")),
            ("a${EMPTY}b", Ok("ab")),
            ("cost $5", Ok("cost $5")),
            ("$${KEY}", Ok("${KEY}")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${KEY:-fallback}", Ok("s3cr\"et")),
            ("${MISSING:-}", Ok("")),
            (
                "pg://u:${MISSING:-pw}@h/${KEY:-db}",
                Ok("pg://u:pw@h/s3cr\"et"),
            ),
            ("${MISSING}", Err("environment variable MISSING is not set")),
            (
                "${KEY",
                Err("unterminated `${` (write `$${` for a literal)"),
            ),
            (
                "${1X}",
                Err("`${1X}` is not a valid environment variable name"),
            ),
        ];
        for (input, want) in cases {
            let got = interpolate(input, &env);
            assert_eq!(
                got.as_deref().map_err(|e| e.as_str()),
                *want,
                "input {input:?}"
            );
        }
    }
}
