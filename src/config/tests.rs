use super::*;

fn env(name: &str) -> Option<String> {
    (name == "OPENAI_KEY").then(|| "sk-test-123".to_string())
}

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::from_toml(src, "test.toml", &env)
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "${OPENAI_KEY}"
timeout = "2s"

[providers.local]
kind = "mock"

[models."gpt-4.1"]
providers = ["openai", "local"]
upstream_model = { openai = "gpt-4.1-2025" }
input_price_per_1m = 2.0
output_price_per_1m = 8.0

[[keys]]
name = "alice"
key = "alice-secret-key"
trial_expires = "2030-01-01T00:00:00Z"
"#;

#[test]
fn builtin_is_valid_and_loopback() {
    let config = Config::builtin().unwrap();
    assert!(config.server.listen.ip().is_loopback());
    assert!(config.keys.is_empty());
    assert!(config.check_exposure(config.server.listen).is_ok());
}

#[test]
fn good_file_parses_and_interpolates() {
    let config = parse(GOOD).unwrap();
    let ProviderSettings::OpenAi(p) = config.providers["openai"].settings() else {
        panic!("wrong kind")
    };
    assert_eq!(p.api_key.as_deref(), Some("sk-test-123"));
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.connect_timeout, Duration::from_secs(5));
    assert!(config.keys[0].expiry().is_some());
}

/// Each bad file must fail with a message naming the key (and the line where known).
#[test]
fn bad_files_name_the_key_and_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("typo in a server key", "[server]\nlisten_addr = \"x\"\n", &["listen_addr", "line 2"]),
        (
            "unknown provider kind",
            "[providers.a]\nkind = \"grpc\"\n",
            &["grpc", "line 2", "kind"],
        ),
        (
            "wrong type",
            "[server]\nmax_body_bytes = \"big\"\n",
            &["server.max_body_bytes", "line 2", "invalid type"],
        ),
        (
            "wrong type in an array",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\n  \"a\",\n  5,\n]\n",
            &["models.m.providers[1]", "line 6"],
        ),
        (
            "bad duration",
            "[providers.a]\nkind = \"mock\"\nlatency = \"fast\"\n",
            &["latency", "invalid duration", "line 3"],
        ),
        (
            "unknown provider in a model",
            "[providers.a]\nkind = \"mock\"\n\n[models.m]\nproviders = [\"a\", \"b\"]\n",
            &["test.toml:5:", "models.m.providers[1]", "unknown provider \"b\""],
        ),
        (
            "missing env var",
            "[providers.a]\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key = \"${NOPE}\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:4:", "providers.a.api_key", "NOPE is not set"],
        ),
        (
            "negative price",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\ninput_price_per_1m = -1.0\n",
            &["test.toml:5:", "models.m.input_price_per_1m"],
        ),
        (
            "bad expiry",
            "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[[keys]]\nname = \"x\"\nkey = \"12345678\"\ntrial_expires = \"soon\"\n",
            &["test.toml:8:", "keys[0].trial_expires"],
        ),
        (
            "bad url",
            "[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:3:", "providers.a.base_url"],
        ),
        (
            "zero attempts",
            "[routing]\nmax_attempts = 0\n[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:2:", "routing.max_attempts"],
        ),
        ("no models", "[providers.a]\nkind = \"mock\"\n", &["models"]),
        (
            "setting of another kind",
            "[providers.a]\nkind = \"mock\"\nbase_url = \"http://x\"\n[models.m]\nproviders = [\"a\"]\n",
            &["test.toml:3:", "providers.a.base_url", "not a setting of kind = Mock"],
        ),
        (
            "openai without base_url",
            "[providers.a]\nkind = \"openai\"\n[models.m]\nproviders = [\"a\"]\n",
            &["providers.a.base_url", "required"],
        ),
    ];
    for (what, src, needles) in cases {
        let err = parse(src).expect_err(what).to_string();
        for needle in *needles {
            assert!(err.contains(needle), "{what}: {needle:?} not in {err:?}");
        }
    }
}

#[test]
fn duplicate_secret_names_holder_not_secret() {
    let src = "[providers.a]\nkind = \"mock\"\n[models.m]\nproviders = [\"a\"]\n[[keys]]\nname = \"x\"\nkey = \"same-secret\"\n[[keys]]\nname = \"y\"\nkey = \"same-secret\"\n";
    let err = parse(src).unwrap_err().to_string();
    assert!(err.contains("keys[1].key"), "{err}");
    assert!(!err.contains("same-secret"), "secret leaked: {err}");
}

#[test]
fn no_keys_only_on_loopback() {
    let config = Config::builtin().unwrap();
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert!(config.check_exposure(public).is_err());
    let with_keys = parse(GOOD).unwrap();
    assert!(with_keys.check_exposure(public).is_ok());
}
