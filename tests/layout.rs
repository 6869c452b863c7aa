//! Arrows point down (STYLE.md, DESIGN.md §12): every top-level module of the library may
//! import only the modules its row in [`RULES`] names, and every source file under `src/`
//! belongs to a top-level module that has a row. The check reads `src/**/*.rs` with a small
//! lexer that skips comments (line, doc and nested block) and string, char and raw string
//! literals, then resolves `crate::X…` (grouped `use crate::{X, Y::z}` split), `$crate::X…`
//! and `super::` chains that climb to the crate root (inline `mod m { … }` blocks and
//! `#[path]` modules counted) to the top-level module they name.
//!
//! Code under `#[cfg(test)]` counts like any other code: a test that needs a module above its
//! own belongs in `tests/`, not next to the code. Only `main` (the binary) and `lib` (the
//! root) are exempt; a path to an item of `lib.rs` itself (`crate::install_crypto_provider`)
//! is not a module and is not checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a top-level module may import, besides itself.
enum Allowed {
    /// `main` and `lib`: not checked.
    Exempt,
    /// `app`: wires everything.
    Any,
    Only(&'static [&'static str]),
}
use Allowed::{Any, Exempt, Only};

/// The layout: top-level module → the modules of ours it may import. A module missing from
/// `src/` is fine; a file under `src/` whose top-level module has no row fails the test.
#[rustfmt::skip]
const RULES: &[(&str, Allowed)] = &[
    ("main",      Exempt),
    ("lib",       Exempt),
    ("app",       Any),
    ("errors",    Only(&[])),
    ("config",    Only(&[])),
    ("board",     Only(&[])),
    ("mock",      Only(&["config"])),
    ("catalog",   Only(&["config", "board"])),
    ("telemetry", Only(&["config", "catalog", "board"])),
    ("outcome",   Only(&["config", "catalog", "board", "providers"])),
    ("providers", Only(&["config", "catalog", "board", "telemetry", "mock", "errors"])),
    ("router",    Only(&["providers", "outcome", "board", "catalog", "config", "telemetry",
                         "errors"])),
    ("actors",    Only(&["outcome", "board", "catalog", "config", "telemetry", "providers"])),
    ("state",     Only(&["outcome", "board", "catalog", "config", "telemetry", "errors"])),
    ("ledger",    Only(&["outcome", "board", "catalog", "config", "telemetry", "errors"])),
    ("http",      Only(&["router", "outcome", "board", "catalog", "config", "telemetry",
                         "errors", "state", "ledger", "providers", "shutdown"])),
    ("shutdown",  Only(&["config", "telemetry"])),
];

/// The name a glob import of the crate root (`use crate::*`) is reported under.
const ROOT_GLOB: &str = "*";

#[test]
fn arrows_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    rust_files(&root.join("src"), &mut paths);
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|path| {
            let rel = path.strip_prefix(root).unwrap();
            let rel: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            (rel.join("/"), std::fs::read_to_string(path).unwrap())
        })
        .collect();
    assert!(
        files.len() > 1,
        "no source files found under {}",
        root.display()
    );
    let violations = check(&files);
    assert!(
        violations.is_empty(),
        "{} arrow(s) break the layout (tests/layout.rs RULES):\n{}\n",
        violations.len(),
        violations.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checker: files as (`src/…` path, text) in, sorted violation lines out.

fn check(files: &[(String, String)]) -> Vec<String> {
    let rule = |name: &str| RULES.iter().find(|(m, _)| *m == name).map(|(_, a)| a);
    // Modules of ours: every row, and every top-level name that exists under src/.
    let mut ours: BTreeSet<String> = RULES.iter().map(|(m, _)| m.to_string()).collect();
    ours.insert(ROOT_GLOB.to_string());
    let mut scanned = Vec::new();
    for (path, text) in files {
        let module = module_path(path);
        ours.insert(location_owner(path));
        let tokens = lex(text);
        let first = scan(&tokens, &module);
        scanned.push((path, module, tokens, first));
    }
    // `#[path = "…"] mod m;` puts a file at a module path its location does not tell; rescan
    // those with their real path so that `super::` counts the right number of levels.
    let mut mounted = Vec::new();
    for (path, module, _, found) in &scanned {
        for decl in &found.path_mods {
            let mut dir: Vec<&str> = path.split('/').collect();
            let file = dir.pop().unwrap_or_default();
            let mut dir: Vec<String> = dir.iter().map(|s| s.to_string()).collect();
            if !decl.inline.is_empty() {
                if !matches!(file, "mod.rs" | "lib.rs" | "main.rs") {
                    dir.push(file.trim_end_matches(".rs").to_string());
                }
                dir.extend(decl.inline.iter().cloned());
            }
            let mut real = module.clone();
            real.extend(decl.inline.iter().cloned());
            real.push(decl.name.clone());
            mounted.push((normalize(&dir, &decl.file), real));
        }
    }
    for (path, module, tokens, found) in &mut scanned {
        if let Some((_, real)) = mounted.iter().find(|(p, _)| p == path.as_str()) {
            *module = real.clone();
            *found = scan(tokens, module);
        }
    }

    let mut out: Vec<(String, usize, String)> = Vec::new();
    for (path, _, _, found) in &scanned {
        let owner = location_owner(path);
        let allowed = match rule(&owner) {
            Some(Exempt) => continue,
            Some(Any) => continue,
            Some(Only(list)) => *list,
            None => {
                let msg = format!("{owner} is not in the layout table (give it a row in RULES)");
                out.push((path.to_string(), 1, msg));
                continue;
            }
        };
        for (line, target) in &found.refs {
            if *target == owner || !ours.contains(target) || allowed.contains(&target.as_str()) {
                continue;
            }
            let list = if allowed.is_empty() {
                "nothing of ours".to_string()
            } else {
                allowed.join(", ")
            };
            let target = if target == ROOT_GLOB {
                "crate::* (every module)"
            } else {
                target
            };
            out.push((
                path.to_string(),
                *line,
                format!("{owner} imports {target} (allowed: {list})"),
            ));
        }
    }
    out.sort();
    out.dedup();
    out.into_iter()
        .map(|(path, line, msg)| format!("{path}:{line}: {msg}"))
        .collect()
}

/// The top-level module a file belongs to by its location: `src/<name>.rs` or `src/<name>/`.
fn location_owner(path: &str) -> String {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let first = rel.split('/').next().unwrap_or(rel);
    first.trim_end_matches(".rs").to_string()
}

/// The module path a file's location gives: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_path(path: &str) -> Vec<String> {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let mut parts: Vec<String> = rel.split('/').map(|s| s.to_string()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" || parts.is_empty() {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// `dir` joined with a relative `#[path]`, `.` and `..` folded.
fn normalize(dir: &[String], rel: &str) -> String {
    let mut parts: Vec<String> = dir.to_vec();
    for piece in rel.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p.to_string()),
        }
    }
    parts.join("/")
}

// ---------------------------------------------------------------------------------------------
// The lexer: identifiers, `::`, string contents and single punctuation, with line numbers.
// Comments vanish; literals become `Str` so that nothing inside them reads as a path.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            let (text, next) = quoted(&c, i + 1, &mut line);
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
            i = next;
        } else if ch == '\'' {
            i = char_or_lifetime(&c, i);
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else if ch == '_' || ch.is_alphanumeric() {
            let begin = i;
            while i < c.len() && (c[i] == '_' || c[i].is_alphanumeric()) {
                i += 1;
            }
            let word: String = c[begin..i].iter().collect();
            let next = at(i);
            if matches!(word.as_str(), "r" | "br" | "cr") && (next == '"' || next == '#') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    let (text, after) = raw(&c, i + hashes + 1, hashes, &mut line);
                    out.push(Token {
                        tok: Tok::Str(text),
                        line: start_line,
                    });
                    i = after;
                } else if word == "r" && hashes == 1 {
                    // A raw identifier, `r#type`: the identifier without its prefix.
                    let begin = i + 1;
                    i = begin;
                    while i < c.len() && (c[i] == '_' || c[i].is_alphanumeric()) {
                        i += 1;
                    }
                    let name: String = c[begin..i].iter().collect();
                    out.push(Token {
                        tok: Tok::Ident(name),
                        line,
                    });
                } else {
                    out.push(Token {
                        tok: Tok::Ident(word),
                        line,
                    });
                }
            } else if matches!(word.as_str(), "b" | "c") && next == '"' {
                let (text, after) = quoted(&c, i + 1, &mut line);
                out.push(Token {
                    tok: Tok::Str(text),
                    line: start_line,
                });
                i = after;
            } else if word == "b" && next == '\'' {
                i = char_or_lifetime(&c, i);
            } else {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
            }
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The text of a `"…"` literal whose body starts at `i`, and the index after its close.
fn quoted(c: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut text = String::new();
    while i < c.len() {
        match c[i] {
            '"' => return (text, i + 1),
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                text.extend(c.get(i..i + 2).unwrap_or_default());
                i += 2;
            }
            ch => {
                if ch == '\n' {
                    *line += 1;
                }
                text.push(ch);
                i += 1;
            }
        }
    }
    (text, i)
}

/// The text of a raw literal with `hashes` `#`s whose body starts at `i`.
fn raw(c: &[char], mut i: usize, hashes: usize, line: &mut usize) -> (String, usize) {
    let mut text = String::new();
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return (text, i + 1 + hashes);
        }
        if c[i] == '\n' {
            *line += 1;
        }
        text.push(c[i]);
        i += 1;
    }
    (text, i)
}

/// Skips a char literal (`'x'`, `'\''`, `'\u{1F600}'`, `b'x'`) or the quote of a lifetime
/// (`'a`, whose name then lexes as an identifier) starting at `i`.
fn char_or_lifetime(c: &[char], mut i: usize) -> usize {
    if c[i] == 'b' {
        i += 1;
    }
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut k = i + 3;
        while k < c.len() && c[k] != '\'' && c[k] != '\n' {
            k += 1;
        }
        k + 1
    } else if at(i + 2) == '\'' && at(i + 1) != '\n' {
        i + 3
    } else {
        i + 1
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner: which top-level modules a token stream names, with the line of each.

#[derive(Debug, Default)]
struct Found {
    /// (line, top-level module named) for every path that reaches the crate root.
    refs: Vec<(usize, String)>,
    path_mods: Vec<PathMod>,
}

/// `#[path = "file"] mod name;`, declared inside the inline modules `inline`.
#[derive(Debug)]
struct PathMod {
    file: String,
    inline: Vec<String>,
    name: String,
}

/// `module` is the file's module path (`["telemetry", "loki", "layer"]`).
fn scan(t: &[Token], module: &[String]) -> Found {
    let ident = |k: usize, word: &str| matches!(t.get(k), Some(Token { tok: Tok::Ident(w), .. }) if w == word);
    let punct =
        |k: usize, p: char| matches!(t.get(k), Some(Token { tok: Tok::Punct(q), .. }) if *q == p);
    let sep = |k: usize| {
        matches!(
            t.get(k),
            Some(Token {
                tok: Tok::PathSep,
                ..
            })
        )
    };
    let name = |k: usize| match t.get(k) {
        Some(Token {
            tok: Tok::Ident(w), ..
        }) => Some(w.clone()),
        _ => None,
    };

    let mut found = Found::default();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut opening_mod: Option<String> = None;
    let mut pending_path: Option<String> = None;
    let mut j = 0;
    while j < t.len() {
        match &t[j].tok {
            Tok::Punct('{') => {
                depth += 1;
                if let Some(m) = opening_mod.take() {
                    inline.push((m, depth));
                }
                pending_path = None;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                pending_path = None;
            }
            Tok::Punct(';') => pending_path = None,
            Tok::Punct('#') if punct(j + 1, '[') && ident(j + 2, "path") && punct(j + 3, '=') => {
                if let Some(Token {
                    tok: Tok::Str(file),
                    ..
                }) = t.get(j + 4)
                {
                    pending_path = Some(file.clone());
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(m) = name(j + 1) {
                    if punct(j + 2, '{') {
                        opening_mod = Some(m);
                    } else if let (true, Some(file)) = (punct(j + 2, ';'), pending_path.take()) {
                        let inline = inline.iter().map(|(n, _)| n.clone()).collect();
                        found.path_mods.push(PathMod {
                            file,
                            inline,
                            name: m,
                        });
                    }
                }
            }
            Tok::Ident(w) if w == "crate" && !(j > 0 && sep(j - 1)) && sep(j + 1) => {
                tail(t, j + 2, &mut found.refs);
            }
            Tok::Ident(w) if (w == "super" || w == "self") && !(j > 0 && sep(j - 1)) => {
                let mut k = j;
                if w == "self" && sep(j + 1) {
                    k += 2;
                }
                let mut climbs = 0;
                while ident(k, "super") && sep(k + 1) {
                    climbs += 1;
                    k += 2;
                }
                if climbs > 0 && climbs == module.len() + inline.len() {
                    tail(t, k, &mut found.refs);
                }
                j = k.max(j + 1);
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    found
}

/// The top-level modules named right after the crate root, at token `k`: `X`, `*`, or each
/// element of a group `{X, Y::z, …}`.
fn tail(t: &[Token], k: usize, refs: &mut Vec<(usize, String)>) {
    let mut push = |tok: &Token| match &tok.tok {
        Tok::Ident(w) if !matches!(w.as_str(), "self" | "super" | "crate") => {
            refs.push((tok.line, w.clone()));
        }
        Tok::Punct('*') => refs.push((tok.line, ROOT_GLOB.to_string())),
        _ => {}
    };
    let Some(first) = t.get(k) else { return };
    if first.tok != Tok::Punct('{') {
        push(first);
        return;
    }
    let mut nesting = 0;
    let mut element_start = true;
    for tok in &t[k..] {
        match tok.tok {
            Tok::Punct('{') => {
                nesting += 1;
                element_start = nesting == 1;
            }
            Tok::Punct('}') => {
                nesting -= 1;
                if nesting == 0 {
                    return;
                }
            }
            Tok::Punct(',') if nesting == 1 => element_start = true,
            _ => {
                if element_start && nesting == 1 {
                    push(tok);
                }
                element_start = false;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checker checked.

fn targets(path: &str, text: &str) -> Vec<(usize, String)> {
    scan(&lex(text), &module_path(path)).refs
}

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn comments_are_ignored() {
    let text = "//! Sends crate::router a note.\n\
                /// See [`crate::router::Router`].\n\
                // use crate::router;\n\
                /* outer /* nested crate::router */ still crate::actors */\n\
                /** crate::router */\n\
                use crate::config::Config; // crate::router\n";
    assert_eq!(
        targets("src/telemetry/mod.rs", text),
        [(6, "config".to_string())]
    );
}

#[test]
fn literals_are_ignored() {
    let text = r####"
        const A: &str = "crate::router";
        const B: &str = r#"crate::router "quoted" "#;
        const C: &[u8] = br##"crate::actors"#"##;
        const D: &[u8] = b"crate::actors \" crate::router";
        const E: char = '"'; const F: u8 = b'\''; const G: char = '\u{22}';
        fn f<'a>(x: &'a str) -> &'static str { x }
        use crate::board::View;
    "####;
    assert_eq!(
        targets("src/telemetry/mod.rs", text),
        [(8, "board".to_string())]
    );
}

#[test]
fn paths_anywhere_in_code_count() {
    let text = "fn f() -> crate::outcome::Outcome {\n\
                    let x: Vec<crate::router::Attempt> = vec![];\n\
                    $crate::actors::go!();\n\
                    pub(crate) fn g() {}\n\
                }\n";
    let found: Vec<String> = targets("src/telemetry/mod.rs", text)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(found, ["outcome", "router", "actors"]);
}

#[test]
fn grouped_use_is_split() {
    let text = "pub use crate::{\n    config::{Config, Bounds},\n    telemetry,\n    board::*,\n    self,\n};\n\
                use crate::{errors as e, *};\n";
    let found = targets("src/router/mod.rs", text);
    let want: Vec<(usize, String)> = [
        (2, "config"),
        (3, "telemetry"),
        (4, "board"),
        (7, "errors"),
        (7, ROOT_GLOB),
    ]
    .iter()
    .map(|(l, m)| (*l, m.to_string()))
    .collect();
    assert_eq!(found, want);
}

#[test]
fn super_climbing_out_is_resolved() {
    // Two levels down, two `super`s reach the root.
    let text = "use super::exposition;\nuse super::super::actors::Event;\n\
                use super::super::{router, config::X};\n";
    let found = targets("src/telemetry/metrics.rs", text);
    assert_eq!(
        found,
        [
            (2, "actors".to_string()),
            (3, "router".to_string()),
            (3, "config".to_string())
        ]
    );
    // A top-level file climbs out with one; `mod.rs` is its folder's module.
    assert_eq!(
        targets("src/errors.rs", "use super::router;"),
        [(1, "router".to_string())]
    );
    assert_eq!(
        targets("src/actors/mod.rs", "use super::router;"),
        [(1, "router".to_string())]
    );
    // Inside an inline module `super` stays home: `mod tests { use super::*; }`.
    let text = "mod tests {\n    use super::*;\n    use super::super::Config;\n}\nuse super::x;\n";
    assert!(targets("src/config/loki.rs", text).is_empty());
    // ... and after it closes, the file's own depth counts again.
    let text = "mod tests { use super::*; }\nuse super::super::router;\n";
    assert_eq!(
        targets("src/config/loki.rs", text),
        [(2, "router".to_string())]
    );
    // `pub(super)` and `pub(in super::…)` are visibilities, not imports.
    assert!(targets(
        "src/errors.rs",
        "pub(super) fn f() {}\npub(in super) fn g() {}"
    )
    .is_empty());
}

#[test]
fn path_attribute_modules_count_their_real_depth() {
    // `breaker.rs` mounts `breaker_tests.rs` as `actors::breakers::breaker::tests`: four
    // levels, so three `super`s stay inside `actors` and four reach the root.
    let checked = check(&files(&[
        (
            "src/actors/breakers/breaker.rs",
            "#[cfg(test)]\n#[path = \"breaker_tests.rs\"]\nmod tests;\n",
        ),
        (
            "src/actors/breakers/breaker_tests.rs",
            "use super::super::super::x;\nuse super::super::super::super::router::R;\n",
        ),
    ]));
    assert_eq!(
        checked,
        ["src/actors/breakers/breaker_tests.rs:2: actors imports router (allowed: outcome, board, \
          catalog, config, telemetry, providers)"]
    );
}

#[test]
fn violations_are_reported_sorted_with_lines() {
    let checked = check(&files(&[
        (
            "src/telemetry/mod.rs",
            "use crate::config;\n\n\nuse crate::actors;\n",
        ),
        (
            "src/config/mod.rs",
            "use crate::board::View;\nuse crate::config::x;\n",
        ),
        (
            "src/actors/mod.rs",
            "use crate::telemetry;\n\n\n\n\n\n\n\n\nuse crate::router;\nuse crate::app::Boot;\n",
        ),
        ("src/app.rs", "use crate::routes;\nuse crate::http;\n"),
        ("src/main.rs", "use gatewayz::app;\nuse crate::app;\n"),
        ("src/lib.rs", "pub mod app;\n"),
        // A path to an item of lib.rs is not a module.
        ("src/board.rs", "crate::install_crypto_provider();\n"),
    ]));
    assert_eq!(
        checked,
        [
            "src/actors/mod.rs:10: actors imports router (allowed: outcome, board, catalog, \
             config, telemetry, providers)",
            "src/actors/mod.rs:11: actors imports app (allowed: outcome, board, catalog, \
             config, telemetry, providers)",
            "src/config/mod.rs:1: config imports board (allowed: nothing of ours)",
            "src/telemetry/mod.rs:4: telemetry imports actors (allowed: config, catalog, board)",
        ]
    );
}

#[test]
fn an_unknown_top_level_module_is_reported() {
    let checked = check(&files(&[
        ("src/auth.rs", "use crate::config::Key;\n"),
        ("src/routes/chat.rs", ""),
        ("src/routes/mod.rs", ""),
        ("src/telemetry/http.rs", "use crate::routes::Pattern;\n"),
    ]));
    assert_eq!(
        checked,
        [
            "src/auth.rs:1: auth is not in the layout table (give it a row in RULES)",
            "src/routes/chat.rs:1: routes is not in the layout table (give it a row in RULES)",
            "src/routes/mod.rs:1: routes is not in the layout table (give it a row in RULES)",
            "src/telemetry/http.rs:1: telemetry imports routes (allowed: config, catalog, board)",
        ]
    );
}

#[test]
fn modules_of_the_table_may_be_missing() {
    // No state/, ledger/, catalog, board or http/: nothing to report.
    assert!(check(&files(&[("src/config/mod.rs", "pub mod x;\n")])).is_empty());
}
