//! `deploy/compose.yaml`: its services listen where they are dialled, mount what the
//! repository holds, and run `deploy/gatewayz.toml` with an environment it validates under.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gatewayz::config::Config;
use serde_yaml::Value;

use super::image::{dockerfile, instruction};
use super::{files, host_port, is_route, root, strings, text, url_path, yaml};

pub(crate) fn compose() -> Value {
    yaml("deploy/compose.yaml")
}

pub(crate) fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("compose.yaml has services")
        .iter()
        .map(|(k, v)| (text(k), v.clone()))
        .collect()
}

/// Compose's own interpolation: `${VAR:-default}` and `${VAR-default}` take the default,
/// `${VAR}` and `$VAR` a test value, `$$` is a `$`.
fn compose_interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .unwrap_or_else(|| panic!("unterminated ${{ in {s:?}"));
            let inner = &tail[..end];
            let value = match inner.split_once(":-").or_else(|| inner.split_once('-')) {
                Some((_, default)) => default.to_owned(),
                None => format!("test-{}-value", inner.to_lowercase()),
            };
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            panic!("write ${{VAR}}, not a bare $, in compose.yaml: {s:?}");
        }
    }
    out + rest
}

/// The environment compose gives a service, interpolated.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (text(k), compose_interpolate(&text(v))))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = text(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), compose_interpolate(v))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `(host, container)` ports of `ports:` (`"127.0.0.1:8080:8080"`, `"8080:8080"`, `"8080"`).
fn published(service: &Value) -> Vec<(Option<u16>, u16)> {
    strings(&service["ports"])
        .iter()
        .map(|spec| {
            let spec = spec.split('/').next().unwrap();
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            let container = parts[0].parse().unwrap();
            (parts.get(1).map(|p| p.parse().unwrap()), container)
        })
        .collect()
}

/// The ports a service declares it listens on: `expose` and the container side of `ports`.
fn exposed(service: &Value) -> BTreeSet<u16> {
    let mut out: BTreeSet<u16> = strings(&service["expose"])
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    out.extend(published(service).into_iter().map(|(_, c)| c));
    out
}

/// `(host path, container path)` of the bind mounts; named volumes are checked apart.
pub(crate) fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .iter()
        .filter_map(|spec| {
            let mut parts = spec.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            (src.starts_with('.') || src.starts_with('/')).then(|| (src.to_owned(), dst.to_owned()))
        })
        .collect()
}

/// A host path of compose.yaml, which resolves them from its own directory.
pub(crate) fn host_path(src: &str) -> PathBuf {
    let path = root().join("deploy").join(src);
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("mount {src}: {e}"));
    assert!(
        path.starts_with(root().canonicalize().unwrap()),
        "mount {src} leaves the repository"
    );
    path
}

pub(crate) fn gateway_services(services: &BTreeMap<String, Value>) -> Vec<(String, Value)> {
    let out: Vec<_> = services
        .iter()
        .filter(|(_, s)| s["command"][0].as_str() == Some("serve"))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    assert!(
        out.len() >= 2,
        "compose.yaml runs at least two gateway replicas"
    );
    out
}

/// The gateway config of a compose replica: the file mounted where `--config` points,
/// validated with exactly the environment compose gives the replica.
fn replica_config(name: &str, service: &Value) -> Config {
    let command = strings(&service["command"]);
    assert_eq!(command[..2], ["serve", "--config"], "{name}: command");
    let (src, _) = bind_mounts(service)
        .into_iter()
        .find(|(_, dst)| *dst == command[2])
        .unwrap_or_else(|| panic!("{name}: nothing is mounted at {}", command[2]));
    let env = environment(service);
    let toml = std::fs::read_to_string(host_path(&src)).unwrap();
    Config::from_toml(&toml, &src, &|var| env.get(var).cloned())
        .unwrap_or_else(|e| panic!("{name}: {src} with compose's environment: {e}"))
}

fn deploy_config() -> Config {
    let services = services(&compose());
    let (name, service) = gateway_services(&services).remove(0);
    replica_config(&name, &service)
}

/// Where each service really listens, from its own configuration where it has one.
fn listening(name: &str, service: &Value) -> BTreeSet<u16> {
    let command = strings(&service["command"]);
    let image = service["image"].as_str().unwrap_or_default();
    let flag = |f: &str| {
        command
            .iter()
            .position(|a| a == f)
            .map(|i| command[i + 1].clone())
    };
    let port_of = |v: &Value| v.as_u64().unwrap() as u16;
    if command.first().is_some_and(|c| c == "serve") {
        BTreeSet::from([replica_config(name, service).server.listen.port()])
    } else if command.first().is_some_and(|c| c == "mock-upstream") {
        BTreeSet::from([host_port(&flag("--listen").expect("mock --listen")).1])
    } else if image.starts_with("grafana/loki:") {
        BTreeSet::from([port_of(
            &yaml("deploy/loki/loki.yml")["server"]["http_listen_port"],
        )])
    } else if image.starts_with("grafana/tempo:") {
        let tempo = yaml("deploy/tempo/tempo.yml");
        let otlp = &tempo["distributor"]["receivers"]["otlp"]["protocols"];
        BTreeSet::from([
            port_of(&tempo["server"]["http_listen_port"]),
            host_port(otlp["grpc"]["endpoint"].as_str().unwrap()).1,
            host_port(otlp["http"]["endpoint"].as_str().unwrap()).1,
        ])
    } else {
        let default = [
            ("prom/prometheus:", 9090),
            ("prom/alertmanager:", 9093),
            ("grafana/grafana:", 3000),
            ("redis:", 6379),
            ("postgres:", 5432),
        ];
        let (_, port) = default
            .iter()
            .find(|(prefix, _)| image.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: unknown image {image:?}: teach tests/deploy.rs"));
        assert!(
            !command.iter().any(|a| a.contains("listen-address")),
            "{name}: a listen address moved: teach tests/deploy.rs"
        );
        BTreeSet::from([*port])
    }
}

#[test]
fn every_service_exposes_where_it_listens() {
    for (name, service) in services(&compose()) {
        assert_eq!(
            exposed(&service),
            listening(&name, &service),
            "compose service {name}: `expose`/`ports` must be the ports it listens on"
        );
    }
}

#[test]
fn every_address_named_is_a_compose_service_exposing_that_port() {
    let services = services(&compose());
    // (who names it, the address, the service `localhost` means there)
    let mut named: Vec<(String, String, Option<&str>)> = Vec::new();
    for path in files("grafana/provisioning/datasources", ".yml") {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        for ds in yaml(&rel)["datasources"].as_sequence().unwrap() {
            named.push((rel.clone(), text(&ds["url"]), None));
        }
    }
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();
    let managers = prometheus["alerting"]["alertmanagers"]
        .as_sequence()
        .unwrap();
    for group in jobs.iter().chain(managers) {
        for sc in group["static_configs"].as_sequence().unwrap() {
            for target in strings(&sc["targets"]) {
                named.push((
                    "deploy/prometheus/prometheus.yml".into(),
                    target,
                    Some("prometheus"),
                ));
            }
        }
    }
    let tempo = yaml("deploy/tempo/tempo.yml");
    for rw in tempo["metrics_generator"]["storage"]["remote_write"]
        .as_sequence()
        .unwrap()
    {
        named.push((
            "deploy/tempo/tempo.yml".into(),
            text(&rw["url"]),
            Some("tempo"),
        ));
    }
    let loki = yaml("deploy/loki/loki.yml");
    named.push((
        "deploy/loki/loki.yml".into(),
        text(&loki["ruler"]["alertmanager_url"]),
        None,
    ));

    let config = deploy_config();
    let toml = "deploy/gatewayz.toml".to_owned();
    for provider in config.providers.values() {
        named.extend(provider.base_url.clone().map(|u| (toml.clone(), u, None)));
    }
    named.extend(
        config
            .state
            .redis_url
            .clone()
            .map(|u| (toml.clone(), u, None)),
    );
    named.extend(
        config
            .ledger
            .as_ref()
            .map(|l| (toml.clone(), l.url.clone(), None)),
    );
    named.extend(
        config
            .telemetry
            .loki
            .as_ref()
            .map(|l| (toml.clone(), l.url.clone(), None)),
    );
    let otlp = config
        .telemetry
        .otlp
        .as_ref()
        .and_then(|o| o.endpoint.clone());
    named.extend(otlp.map(|u| (toml.clone(), u, None)));
    for needed in ["redis", "postgres", "loki", "tempo", "mock"] {
        assert!(
            named
                .iter()
                .any(|(src, a, _)| *src == toml && host_port(a).0 == needed),
            "deploy/gatewayz.toml names no {needed}"
        );
    }

    for (source, address, local) in named {
        let (host, port) = host_port(&address);
        let host = match (host.as_str(), local) {
            ("localhost" | "127.0.0.1", Some(own)) => own.to_owned(),
            _ => host,
        };
        let service = services.get(&host).unwrap_or_else(|| {
            panic!("{source} names {address}, but compose.yaml has no service {host:?}")
        });
        assert!(
            exposed(service).contains(&port),
            "{source} names {address}: compose service {host} does not expose {port}"
        );
    }
}

#[test]
fn compose_mounts_and_builds_what_the_repository_holds() {
    let compose = compose();
    let volumes = compose["volumes"].as_mapping().cloned().unwrap_or_default();
    for (name, service) in services(&compose) {
        for (src, dst) in bind_mounts(&service) {
            let path = host_path(&src);
            // A file mounted over a file, a directory over a directory: a config name
            // without an extension is a directory.
            let dir_target = Path::new(&dst).extension().is_none();
            assert_eq!(path.is_dir(), dir_target, "{name}: {src} mounted at {dst}");
        }
        for spec in strings(&service["volumes"]) {
            let src = spec.split(':').next().unwrap();
            if !(src.starts_with('.') || src.starts_with('/')) {
                assert!(
                    volumes.contains_key(src),
                    "{name}: volume {src} is not declared"
                );
            }
        }
        if let Some(build) = service.get("build") {
            let context = host_path(&text(&build["context"]));
            assert!(
                context.join(text(&build["dockerfile"])).is_file(),
                "{name}: Dockerfile"
            );
        }
    }
}

#[test]
fn compose_replicas_run_the_deploy_config_on_one_port() {
    let services = services(&compose());
    let replicas = gateway_services(&services);
    let mut host_ports = BTreeSet::new();
    for (name, service) in &replicas {
        let config = replica_config(name, service);
        let port = config.server.listen.port();
        assert!(
            !config.keys.is_empty(),
            "{name}: a reachable gateway needs client keys"
        );
        let ports = published(service);
        assert!(!ports.is_empty(), "{name}: publishes no port");
        for (host, container) in ports {
            assert_eq!(
                container, port,
                "{name}: publishes a port it does not listen on"
            );
            assert!(
                host_ports.insert(host),
                "{name}: host port {host:?} is taken twice"
            );
        }
        let check = strings(&service["healthcheck"]["test"]);
        let url = check
            .iter()
            .find(|a| a.starts_with("http"))
            .expect("health check URL");
        assert_eq!(host_port(url).1, port, "{name}: health check port");
        assert!(
            is_route(&url_path(url)),
            "{name}: health check {url} is no route"
        );
        let grace = humantime::parse_duration(&text(&service["stop_grace_period"])).unwrap();
        assert!(
            grace > config.server.shutdown_timeout,
            "{name}: stop_grace_period {grace:?} does not cover server.shutdown_timeout"
        );
    }
    let sources: BTreeSet<_> = replicas.iter().map(|(_, s)| bind_mounts(s)).collect();
    assert_eq!(sources.len(), 1, "every replica mounts the same config");
    let dockerfile = dockerfile();
    let expose = instruction(&dockerfile, "EXPOSE");
    let port = deploy_config().server.listen.port().to_string();
    assert_eq!(expose, [port], "the Dockerfile EXPOSEs the config's port");
}

#[test]
fn prometheus_and_grafana_find_their_mounted_files() {
    let services = services(&compose());
    let mounted = |service: &str, container: &str| -> PathBuf {
        let (src, dst) = bind_mounts(&services[service])
            .into_iter()
            .find(|(_, dst)| container.starts_with(dst.as_str()))
            .unwrap_or_else(|| panic!("{service}: nothing is mounted over {container}"));
        host_path(&src).join(container[dst.len()..].trim_start_matches('/'))
    };
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let mut loaded = BTreeSet::new();
    for pattern in strings(&prometheus["rule_files"]) {
        let (dir, glob) = pattern.rsplit_once('/').unwrap();
        let ext = glob.strip_prefix('*').expect("rule_files: DIR/*.EXT");
        let host_dir = mounted("prometheus", dir);
        for file in std::fs::read_dir(&host_dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(ext) {
                loaded.insert(name);
            }
        }
    }
    let rules: BTreeSet<_> = files("alerts", ".yml")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!rules.is_empty());
    assert_eq!(
        loaded, rules,
        "Prometheus must load every rule file of alerts/"
    );
    let config = mounted("prometheus", "/etc/prometheus/prometheus.yml");
    assert_eq!(config, host_path("prometheus/prometheus.yml"));

    let provisioning = mounted("grafana", "/etc/grafana/provisioning");
    assert_eq!(provisioning, host_path("../grafana/provisioning"));
    for provider in files("grafana/provisioning/dashboards", ".yml") {
        let rel = provider.strip_prefix(root()).unwrap().display().to_string();
        for p in yaml(&rel)["providers"].as_sequence().unwrap() {
            let dir = mounted("grafana", p["options"]["path"].as_str().unwrap());
            assert_eq!(
                dir,
                host_path("../grafana/dashboards"),
                "{rel}: options.path"
            );
        }
    }
}
