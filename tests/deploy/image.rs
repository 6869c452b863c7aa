//! The `Dockerfile` and `.dockerignore`: the release binary, stripped, run unprivileged.

use super::{read, root};

/// The instructions, continuation lines joined and comments dropped.
pub(crate) fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let joined = std::mem::take(&mut current);
                if let Some((word, rest)) = joined.trim().split_once(' ') {
                    out.push((word.to_uppercase(), rest.trim().to_owned()));
                }
            }
        }
    }
    out
}

/// The arguments of the last `word` instruction: exec form (JSON) or words.
pub(crate) fn instruction(file: &[(String, String)], word: &str) -> Vec<String> {
    let (_, rest) = file.iter().rev().find(|(w, _)| w == word).expect(word);
    let exec = rest.find('[').map(|i| &rest[i..]).unwrap_or(rest);
    serde_json::from_str(exec)
        .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect())
}

#[test]
fn the_image_builds_the_binary_and_runs_it_unprivileged() {
    let file = dockerfile();
    let from: Vec<&str> = file
        .iter()
        .filter(|(w, _)| w == "FROM")
        .map(|(_, r)| r.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        from,
        ["rust:1.95-bookworm", "debian:bookworm-slim"],
        "pinned base images"
    );
    let run: String = file
        .iter()
        .filter(|(w, _)| w == "RUN")
        .map(|(_, r)| r.as_str())
        .collect();
    assert!(
        run.contains("cargo build --release --locked --bin gatewayz"),
        "the release build"
    );
    assert!(
        run.contains("--strip-debug"),
        "the binary is copied without debug info"
    );
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let bins: Vec<_> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert!(
        bins.contains(&"gatewayz".into()),
        "Cargo.toml has no bin gatewayz"
    );
    // The chart's securityContext runs uid 10001; the SQLite ledger's default path is relative.
    assert_eq!(instruction(&file, "USER"), ["10001:10001"], "USER");
    assert_eq!(
        instruction(&file, "WORKDIR"),
        ["/var/lib/gatewayz"],
        "WORKDIR"
    );
    assert_eq!(instruction(&file, "ENTRYPOINT"), ["gatewayz"], "ENTRYPOINT");
    let cmd = instruction(&file, "CMD");
    assert_eq!(cmd[..2], ["serve", "--config"], "CMD");

    // What the builder copies is in the build context: it exists and .dockerignore keeps it.
    let ignore: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let ignored = |path: &str| {
        let mut out = false;
        for pattern in &ignore {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(p) => (true, p.trim_end_matches('/')),
                None => (false, pattern.trim_end_matches('/')),
            };
            if pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/")) {
                out = !negated;
            }
        }
        out
    };
    let copies = file
        .iter()
        .filter(|(w, r)| w == "COPY" && !r.starts_with("--from"));
    let mut copied = 0;
    for (_, args) in copies {
        let words: Vec<&str> = args.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            copied += 1;
            assert!(
                root().join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
            assert!(
                !ignored(src),
                "Dockerfile copies {src}, which .dockerignore leaves out"
            );
        }
    }
    assert!(copied >= 3, "the builder copies the sources");
    for target in manifest["bench"].as_array().into_iter().flatten() {
        let path = format!("benches/{}.rs", target["name"].as_str().unwrap());
        assert!(
            !ignored(&path) && root().join(&path).is_file(),
            "{path} is in the context"
        );
    }
    assert!(
        ignored("target/release/gatewayz") && ignored(".git/config"),
        "a lean context"
    );
}
