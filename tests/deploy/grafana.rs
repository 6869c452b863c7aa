//! Grafana: the dashboards and the provisioned datasources refer to uids that exist.

use std::collections::BTreeSet;

use super::{files, read, root, yaml};

/// Every `datasourceUid` / `uid` of a datasource reference under `v`.
fn datasource_refs(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("datasource", serde_json::Value::Object(ds)) => {
                        out.extend(ds.get("uid").and_then(|u| u.as_str()).map(String::from));
                    }
                    ("datasourceUid", serde_json::Value::String(uid)) => {
                        out.insert(uid.clone());
                    }
                    _ => {}
                }
                datasource_refs(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| datasource_refs(i, out)),
        _ => {}
    }
}

#[test]
fn dashboards_and_datasources_refer_to_what_is_provisioned() {
    let mut provisioned = BTreeSet::new();
    let mut linked = BTreeSet::new();
    for path in files("grafana/provisioning/datasources", ".yml") {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        let doc: serde_json::Value = serde_json::to_value(yaml(&rel)).unwrap();
        for ds in doc["datasources"].as_array().unwrap() {
            provisioned.insert(ds["uid"].as_str().expect("a fixed uid").to_owned());
            datasource_refs(&ds["jsonData"], &mut linked);
        }
    }
    let unknown: Vec<_> = linked.difference(&provisioned).collect();
    assert!(
        unknown.is_empty(),
        "the datasources link to unprovisioned {unknown:?}"
    );

    let boards: Vec<(String, serde_json::Value)> = files("grafana/dashboards", ".json")
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    let uids: BTreeSet<String> = boards
        .iter()
        .map(|(_, b)| b["uid"].as_str().unwrap().into())
        .collect();
    assert_eq!(uids.len(), boards.len(), "dashboard uids are unique");
    let tags: BTreeSet<&str> = boards
        .iter()
        .flat_map(|(_, b)| b["tags"].as_array().into_iter().flatten())
        .filter_map(|t| t.as_str())
        .collect();
    for (name, board) in &boards {
        let mut used = BTreeSet::new();
        datasource_refs(board, &mut used);
        used.retain(|u| !u.starts_with('$') && u != "-- Grafana --" && u != "grafana");
        let unknown: Vec<_> = used.difference(&provisioned).collect();
        assert!(
            unknown.is_empty(),
            "{name} uses unprovisioned datasources {unknown:?}"
        );
        let text = board.to_string();
        for (i, _) in text.match_indices("/d/") {
            let uid: String = text[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            assert!(
                uids.contains(&uid),
                "{name} links to dashboard {uid:?}, which none has"
            );
        }
        for link in board["links"].as_array().into_iter().flatten() {
            for tag in link["tags"].as_array().into_iter().flatten() {
                assert!(
                    tags.contains(tag.as_str().unwrap()),
                    "{name} links to tag {tag}"
                );
            }
        }
    }
    // The alert rules and runbooks may link dashboards too.
    let mut prose = read("alerts/gatewayz.rules.yml");
    for runbook in files("docs/runbooks", ".md") {
        prose.push_str(&std::fs::read_to_string(runbook).unwrap());
    }
    for (i, _) in prose.match_indices("/d/gatewayz-") {
        let uid: String = prose[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert!(
            uids.contains(&uid),
            "alerts or runbooks link to dashboard {uid:?}"
        );
    }
}
