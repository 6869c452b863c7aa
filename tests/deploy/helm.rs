//! The Helm chart: values for every template path, a valid config whose shutdown budget fits
//! the grace period, and `files/` identical to `alerts/` and `grafana/dashboards/`.

use std::collections::{BTreeMap, BTreeSet};

use gatewayz::config::Config;
use serde_yaml::Value;

use super::{files, read, text, yaml};

pub(crate) const CHART: &str = "deploy/helm/gatewayz";

pub(crate) fn values() -> Value {
    yaml(&format!("{CHART}/values.yaml"))
}

fn templates() -> Vec<(String, String)> {
    let dir = format!("{CHART}/templates");
    let mut out: Vec<_> = ["yaml", "tpl", "txt"]
        .iter()
        .flat_map(|ext| files(&dir, &format!(".{ext}")))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Every `.Values.a.b` path a template names.
fn values_paths(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in template.match_indices(".Values.") {
        let rest = &template[i + ".Values.".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        out.push(path.trim_end_matches('.').to_owned());
    }
    out
}

#[test]
fn every_value_a_template_reads_is_defined() {
    let values = values();
    let mut checked = 0;
    for (name, template) in templates() {
        for path in values_paths(&template) {
            let mut node = &values;
            for key in path.split('.') {
                node = node.get(key).unwrap_or_else(|| {
                    panic!("templates/{name} reads .Values.{path}, which values.yaml lacks")
                });
            }
            checked += 1;
        }
        // Go templates: every block that opens closes.
        let actions: Vec<&str> = template
            .split("{{")
            .skip(1)
            .map(|a| a.trim_start_matches('-').trim_start())
            .collect();
        let opens = ["if ", "range ", "with ", "define "];
        let open = actions
            .iter()
            .filter(|a| opens.iter().any(|o| a.starts_with(o)))
            .count();
        let end = actions.iter().filter(|a| a.starts_with("end")).count();
        assert_eq!(
            open, end,
            "templates/{name}: {open} blocks opened, {end} ended"
        );
    }
    assert!(checked > 20, "only {checked} .Values paths found");
}

#[test]
fn the_chart_reads_its_files_and_runs_the_image_user() {
    let mut globs = 0;
    for (name, template) in templates() {
        for (i, _) in template.match_indices(".Files.Glob \"") {
            let pattern = &template[i + ".Files.Glob \"".len()..];
            let pattern = &pattern[..pattern.find('"').unwrap()];
            let (dir, glob) = pattern.rsplit_once('/').unwrap();
            let ext = glob.strip_prefix('*').expect("a DIR/*.EXT glob");
            let found = files(&format!("{CHART}/{dir}"), ext);
            assert!(
                !found.is_empty(),
                "templates/{name}: {pattern} matches no file"
            );
            globs += 1;
        }
    }
    assert_eq!(
        globs, 2,
        "the rules and the dashboards are read with .Files.Glob"
    );

    let user = super::instruction(&super::dockerfile(), "USER").remove(0);
    let (uid, gid) = user.split_once(':').unwrap();
    let deployment = read(&format!("{CHART}/templates/deployment.yaml"));
    for line in [format!("runAsUser: {uid}"), format!("runAsGroup: {gid}")] {
        assert!(
            deployment.contains(&line),
            "deployment.yaml: {line}, as the image's USER"
        );
    }
    for line in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "mountPath: /var/lib/gatewayz",
    ] {
        assert!(deployment.contains(line), "deployment.yaml: {line}");
    }
}

#[test]
fn the_chart_config_validates_and_its_shutdown_fits_the_grace_period() {
    let values = values();
    let toml = values["config"].as_str().expect("values.yaml: config");
    let env = |var: &str| -> Option<String> {
        Some(match var {
            "REDIS_URL" => "redis://redis:6379".into(),
            "LEDGER_URL" => "postgres://gatewayz:pw@postgres:5432/gatewayz".into(),
            _ => format!("test-value-of-{var}"),
        })
    };
    let config = Config::from_toml(toml, "values.yaml config", &env)
        .unwrap_or_else(|e| panic!("the config in values.yaml: {e}"));
    assert_eq!(
        values["containerPort"].as_u64(),
        Some(config.server.listen.port().into())
    );
    assert!(
        !config.server.listen.ip().is_loopback(),
        "a pod listens beyond loopback"
    );
    let shutdown = config.server.shutdown_timeout.as_secs();
    assert_eq!(
        values["shutdownTimeoutSeconds"].as_u64(),
        Some(shutdown),
        "shutdownTimeoutSeconds must equal server.shutdown_timeout of config"
    );

    // terminationGracePeriodSeconds: {{ add .Values.a .Values.b ... }}, summed from values.
    let deployment = read(&format!("{CHART}/templates/deployment.yaml"));
    let line = deployment
        .lines()
        .find(|l| l.trim_start().starts_with("terminationGracePeriodSeconds:"))
        .expect("deployment.yaml sets terminationGracePeriodSeconds");
    let terms = values_paths(line);
    assert!(line.contains("{{ add ") && !terms.is_empty(), "{line}");
    let grace: u64 = terms
        .iter()
        .map(|t| values[t.as_str()].as_u64().unwrap())
        .sum();
    let pre_stop = values["preStopSleepSeconds"].as_u64().unwrap();
    assert!(deployment.contains(r#"command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]"#));
    assert!(
        grace > shutdown + pre_stop,
        "terminationGracePeriodSeconds {grace} must exceed shutdown {shutdown} + preStop {pre_stop}"
    );

    let chart = yaml(&format!("{CHART}/Chart.yaml"));
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        manifest["package"]["version"].as_str(),
        "Chart.yaml appVersion is the gateway's version (the default image tag)"
    );
    for dep in chart["dependencies"].as_sequence().unwrap() {
        let condition = text(&dep["condition"]);
        let mut node = &values;
        for key in condition.split('.') {
            node = &node[key];
        }
        assert_eq!(
            node.as_bool(),
            Some(false),
            "{condition}: optional, off by default"
        );
    }
}

#[test]
fn the_chart_files_are_copies_of_the_repository_files() {
    for (original, copy, ext) in [
        ("alerts", "files/alerts", ".yml"),
        ("grafana/dashboards", "files/dashboards", ".json"),
    ] {
        let names = |dir: &str| -> BTreeMap<String, Vec<u8>> {
            files(dir, ext)
                .into_iter()
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read(p).unwrap(),
                    )
                })
                .collect()
        };
        let (want, got) = (names(original), names(&format!("{CHART}/{copy}")));
        assert!(!want.is_empty(), "{original}/ holds no {ext} file");
        let stale: BTreeSet<_> = want
            .keys()
            .chain(got.keys())
            .filter(|name| want.get(*name) != got.get(*name))
            .collect();
        assert!(
            stale.is_empty(),
            "{CHART}/{copy} is not a copy of {original}/ ({stale:?} missing, extra or changed): \
             run deploy/helm/sync.sh"
        );
    }
}
