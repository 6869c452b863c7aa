use std::time::UNIX_EPOCH;

use proptest::prelude::*;

use super::*;
use crate::config::{Config, KeyPolicy};

const BASE: &str = r#"
[providers.a]
kind = "mock"

[models.cheap]
providers = ["a"]

[models.dear]
providers = ["a"]
input_price_per_1m = 100000.0
output_price_per_1m = 100000.0
"#;

/// The store for `BASE` plus `extra`, and a fake clock at a fixed wall time.
fn store(extra: &str) -> (InProcess, Catalog, Now) {
    let config = Config::from_toml(&format!("{BASE}{extra}"), "test.toml", &|_| None).unwrap();
    let catalog = Catalog::new(&config);
    let now = Now {
        mono: Instant::now(),
        wall: UNIX_EPOCH + Duration::from_secs(1_796_587_200),
    };
    (InProcess::new(&config, &catalog, now.mono), catalog, now)
}

fn key(name: &str, lines: &str) -> String {
    format!("[[keys]]\nname = \"{name}\"\nkey = \"{name}-secret-key\"\n{lines}\n")
}

fn later(now: Now, secs: u64) -> Now {
    Now {
        mono: now.mono + Duration::from_secs(secs),
        wall: now.wall + Duration::from_secs(secs),
    }
}

fn tokens(model: ModelId, input: u64, output: u64) -> Spend {
    Spend::Tokens {
        model,
        input,
        output,
    }
}

#[test]
fn a_key_without_limits_is_admitted_with_no_quotas() {
    let (s, _, now) = store(&key("free", ""));
    for _ in 0..1000 {
        let a = s.admit(0, None, 10, now).unwrap();
        assert_eq!(a.quotas, Quotas::default());
        s.settle(0, &a, Spend::Nothing, now);
    }
    // An index past the keys (auth off) is never limited.
    assert!(s.admit(7, None, 10, now).is_ok());
}

#[test]
fn rpm_admits_exactly_the_limit_then_says_when() {
    let (s, _, now) = store(&key("k", "rate_limit_rpm = 3"));
    for left in [2, 1, 0] {
        let a = s.admit(0, None, 1, now).unwrap();
        assert_eq!(a.quotas.requests.unwrap().remaining, left);
    }
    let refused = s.admit(0, None, 1, now).unwrap_err();
    assert_eq!((refused.reason, refused.scope), (Reason::Rpm, Scope::Key));
    assert_eq!(refused.retry_after, Duration::from_secs(20));
    assert_eq!(
        refused.quotas.requests.unwrap().reset,
        Duration::from_secs(60)
    );
    assert!(s.admit(0, None, 1, later(now, 20)).is_ok());
}

#[test]
fn a_team_limit_is_shared_and_a_refusal_gives_back() {
    let (s, _, now) = store(&format!(
        "[teams.ops]\nrate_limit_rpm = 3\n{}{}",
        key("a", "team = \"ops\"\nrate_limit_rpm = 2"),
        key("b", "team = \"ops\""),
    ));
    assert!(s.admit(0, None, 1, now).is_ok());
    assert!(s.admit(1, None, 1, now).is_ok());
    // The key's own quota is the tighter one.
    let third = s.admit(0, None, 1, now).unwrap();
    assert_eq!(third.quotas.requests.unwrap().remaining, 0);
    let refused = s.admit(1, None, 1, now).unwrap_err();
    assert_eq!((refused.reason, refused.scope), (Reason::Rpm, Scope::Team));
    // A minute later the team has room again; `a` taking its own place and failing the
    // team's would give its own back.
    let now = later(now, 60);
    for _ in 0..3 {
        assert!(s.admit(1, None, 1, now).is_ok());
    }
    assert_eq!(s.admit(0, None, 1, now).unwrap_err().scope, Scope::Team);
    let own = lock(s.keys.load()[0].own.rpm.as_ref().unwrap()).quota(now.mono);
    assert_eq!(own.remaining, 2, "the key's own place was given back");
}

#[test]
fn tokens_reserve_then_settle_with_the_usage() {
    let (s, catalog, now) = store(&key("k", "rate_limit_tpm = 1000"));
    let cheap = catalog.model_id("cheap").unwrap();
    let big = s.admit(0, Some(cheap), 800, now).unwrap();
    assert_eq!(big.quotas.tokens.unwrap().remaining, 200);
    let refused = s.admit(0, Some(cheap), 300, now).unwrap_err();
    assert_eq!(refused.reason, Reason::Tpm);
    assert_eq!(refused.retry_after, Duration::from_secs(6));
    // The answer used 50 tokens: 750 come back.
    s.settle(0, &big, tokens(cheap, 20, 30), now);
    let next = s.admit(0, Some(cheap), 300, now).unwrap();
    assert_eq!(next.quotas.tokens.unwrap().remaining, 650);
    // No answer: the whole reservation comes back; an answer without usage keeps it.
    s.settle(0, &next, Spend::Nothing, now);
    let kept = s.admit(0, Some(cheap), 300, now).unwrap();
    s.settle(0, &kept, Spend::Unknown, now);
    let probe = s.admit(0, Some(cheap), 1, now).unwrap();
    assert_eq!(probe.quotas.tokens.unwrap().remaining, 1000 - 50 - 300 - 1);
}

#[test]
fn parallel_places_come_back_on_settlement() {
    let (s, _, now) = store(&key("k", "max_parallel = 2"));
    let first = s.admit(0, None, 1, now).unwrap();
    let _second = s.admit(0, None, 1, now).unwrap();
    let refused = s.admit(0, None, 1, now).unwrap_err();
    assert_eq!(refused.reason, Reason::Parallel);
    assert_eq!(refused.retry_after, PARALLEL_RETRY);
    s.settle(0, &first, Spend::Nothing, now);
    assert!(s.admit(0, None, 1, now).is_ok());
}

#[test]
fn a_budget_refuses_once_spent_and_reports_the_soft_crossing_once() {
    let (s, catalog, now) = store(&key(
        "k",
        "budget_usd = 1.0\nbudget_period = \"1h\"\nsoft_budget_usd = 0.5",
    ));
    let dear = catalog.model_id("dear").unwrap();
    let left = |now: Now| {
        let mut seen = Vec::new();
        s.budgets_left(now.wall, &mut |usd, _| seen.push(usd));
        assert_eq!(seen.len(), 1);
        seen[0]
    };
    assert_eq!(left(now), 1.0);
    // 6 tokens at 0.1 USD each: past the soft budget, not the hard one.
    let a = s.admit(0, Some(dear), 1, now).unwrap();
    s.settle(0, &a, tokens(dear, 3, 3), now);
    assert!((left(now) - 0.4).abs() < 1e-9);
    let b = s.admit(0, Some(dear), 1, now).unwrap();
    s.settle(0, &b, tokens(dear, 5, 0), now);
    let refused = s.admit(0, Some(dear), 1, now).unwrap_err();
    assert_eq!(refused.reason, Reason::Budget);
    // 20:00 UTC: the hour ends at 21:00.
    assert_eq!(refused.retry_after, Duration::from_secs(3600));
    assert_eq!(left(now), 0.0);
    let keys = s.keys.load();
    let budget = keys[0].own.budget.as_ref().unwrap();
    assert!(
        !lock(budget).spend(0.0, now.wall).soft_crossed,
        "reported once"
    );
    assert!(s.admit(0, Some(dear), 1, later(now, 3600)).is_ok());
    assert_eq!(left(later(now, 3600)), 1.0);
}

#[test]
fn keys_made_at_run_time_join_and_change_without_losing_spend() {
    let (s, catalog, now) = store(&key("file", ""));
    let dear = catalog.model_id("dear").unwrap();
    let policy = |parallel, budget| KeyPolicy {
        name: "made".into(),
        models: Some(vec!["dear".into()]),
        limits: Configured {
            max_parallel: Some(parallel),
            budget_usd: Some(budget),
            budget_period: Some(crate::config::BudgetPeriod::Monthly),
            ..Configured::default()
        },
        ..KeyPolicy::default()
    };
    s.set_key(1, &policy(1, 10.0), now.wall);
    let cheap = catalog.model_id("cheap").unwrap();
    assert_eq!(
        s.admit(1, Some(cheap), 1, now).unwrap_err().reason,
        Reason::ModelNotAllowed
    );
    let first = s.admit(1, Some(dear), 1, now).unwrap();
    assert_eq!(
        s.admit(1, Some(dear), 1, now).unwrap_err().reason,
        Reason::Parallel
    );
    // $2 spent (100,000 USD per 1M tokens, 20 tokens) before the change...
    let spent = s.admit(1, Some(dear), 1, now);
    assert!(spent.is_err());
    s.settle(1, &first, tokens(dear, 20, 0), now);
    let held = s.admit(1, Some(dear), 1, now).unwrap();
    // ...then two places: the held request's place was the old limiters'.
    s.set_key(1, &policy(2, 10.0), now.wall);
    assert!((s.key_budget(1, now.wall).unwrap().spent_usd - 2.0).abs() < 1e-9);
    let a = s.admit(1, Some(dear), 1, now).unwrap();
    let b = s.admit(1, Some(dear), 1, now).unwrap();
    assert_eq!(
        s.admit(1, Some(dear), 1, now).unwrap_err().reason,
        Reason::Parallel
    );
    // The held request settles its spend, not a place it never took from the new gauge.
    s.settle(1, &held, tokens(dear, 10, 0), now);
    assert_eq!(
        s.admit(1, Some(dear), 1, now).unwrap_err().reason,
        Reason::Parallel
    );
    assert!((s.key_budget(1, now.wall).unwrap().spent_usd - 3.0).abs() < 1e-9);
    s.settle(1, &a, Spend::Nothing, now);
    s.settle(1, &b, Spend::Nothing, now);
    // The file's key is untouched, and a slot past the end pads with unlimited keys.
    assert!(s.admit(0, Some(cheap), 1, now).is_ok());
    s.set_key(4, &policy(1, 1.0), now.wall);
    assert!(s.admit(3, Some(cheap), 1, now).is_ok());
    assert_eq!(s.key_budget(4, now.wall).unwrap().spent_usd, 0.0);
}

#[test]
fn the_model_list_refuses_other_models_only() {
    let (s, catalog, now) = store(&key("k", "models = [\"cheap\"]\nrate_limit_rpm = 1"));
    let dear = catalog.model_id("dear").unwrap();
    let refused = s.admit(0, Some(dear), 1, now).unwrap_err();
    assert_eq!(refused.reason, Reason::ModelNotAllowed);
    // Refused before any limit: the request quota is untouched.
    assert!(s.admit(0, catalog.model_id("cheap"), 1, now).is_ok());
    // An unknown model is the router's to refuse.
    assert_eq!(s.admit(0, None, 1, now).unwrap_err().reason, Reason::Rpm);
}

/// One step of a random interleaving.
#[derive(Debug, Clone)]
enum Step {
    Admit {
        key: usize,
        estimate: u64,
    },
    /// Settle the `nth` request in flight with `used` tokens (`None`: no answer).
    Settle {
        nth: usize,
        used: Option<u64>,
    },
    Wait {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..=U).prop_map(|(key, estimate)| Step::Admit { key, estimate }),
        3 => (any::<usize>(), proptest::option::of(0..=U))
            .prop_map(|(nth, used)| Step::Settle { nth, used }),
        1 => (0..20_000u64).prop_map(|ms| Step::Wait { ms }),
    ]
}

/// The most tokens a request declares or uses.
const U: u64 = 400;
const RPM: u64 = 20;
const TPM: u64 = 2000;
const PARALLEL: u64 = 3;
/// USD per token of `dear`.
const PRICE: f64 = 0.1;
const BUDGET: f64 = 300.0;

proptest! {
    /// However admissions, settlements and waits interleave, over the run a key's (and its
    /// team's) admitted requests stay within the rate's burst plus its refill, the tokens
    /// used within the same plus what requests in flight may add beyond their reservation,
    /// places in flight within `max_parallel`, and spend within the budget plus what requests
    /// in flight may add.
    #[test]
    fn limits_hold_under_any_interleaving(steps in proptest::collection::vec(step(), 1..200)) {
        let limits = format!(
            "rate_limit_rpm = {RPM}\nrate_limit_tpm = {TPM}\nmax_parallel = {PARALLEL}\n\
             budget_usd = {BUDGET:.1}\nbudget_period = \"1h\""
        );
        let (s, catalog, start) = store(&format!(
            "[teams.t]\n{limits}\n{}{}",
            key("a", &format!("team = \"t\"\n{limits}")),
            key("b", "team = \"t\""),
        ));
        let dear = catalog.model_id("dear").unwrap();
        let mut now = start;
        let mut in_flight: Vec<(usize, Admission)> = Vec::new();
        let (mut admitted, mut used_tokens, mut spent) = (0u64, 0u64, 0.0f64);
        let mut peak = 0u64;
        for step in steps {
            match step {
                Step::Admit { key, estimate } => {
                    if let Ok(a) = s.admit(key, Some(dear), estimate, now) {
                        admitted += 1;
                        in_flight.push((key, a));
                        peak = peak.max(in_flight.len() as u64);
                    }
                }
                Step::Settle { nth, used } if !in_flight.is_empty() => {
                    let (key, a) = in_flight.remove(nth % in_flight.len());
                    let spend = match used {
                        Some(n) => tokens(dear, n, 0),
                        None => Spend::Nothing,
                    };
                    used_tokens += used.unwrap_or(0);
                    spent += used.unwrap_or(0) as f64 * PRICE;
                    s.settle(key, &a, spend, now);
                }
                Step::Settle { .. } => {}
                Step::Wait { ms } => now.mono += Duration::from_millis(ms),
            }
            prop_assert!(in_flight.len() as u64 <= PARALLEL, "parallel {}", in_flight.len());
            let elapsed = now.mono.duration_since(start.mono).as_secs_f64();
            let refill = |limit: u64| limit as f64 + limit as f64 * elapsed / 60.0;
            prop_assert!(admitted as f64 <= refill(RPM), "rpm: {admitted} in {elapsed}s");
            let reserved: u64 = in_flight.iter().map(|(_, a)| a.reserved).sum();
            prop_assert!(
                (used_tokens + reserved) as f64 <= refill(TPM) + (peak * U) as f64,
                "tpm: {used_tokens} used + {reserved} reserved in {elapsed}s"
            );
            prop_assert!(spent <= BUDGET + (peak * U) as f64 * PRICE + 1e-6, "spent {spent}");
        }
    }
}

/// A reload's catalogue (ids kept, a model added, prices changed): a key keeps its limiters
/// — a place taken before the reload is still held, and given back, after it — its allow-list
/// covers the new ids, and spend is priced at the new price.
#[test]
fn a_reloaded_catalogue_keeps_limiters_and_reprices() {
    let (s, catalog, now) = store(&key(
        "k",
        "max_parallel = 1\nmodels = [\"cheap\"]\nbudget_usd = 1000.0",
    ));
    let cheap = catalog.model_id("cheap").unwrap();
    let held = s.admit(0, Some(cheap), 10, now).unwrap();
    let next = Config::from_toml(
        &format!(
            "{}\n[models.new]\nproviders = [\"a\"]\n{}",
            BASE.replace(
                "[models.cheap]\nproviders = [\"a\"]",
                "[models.cheap]\nproviders = [\"a\"]\ninput_price_per_1m = 100000.0"
            ),
            key(
                "k",
                "max_parallel = 1\nmodels = [\"cheap\"]\nbudget_usd = 1000.0"
            ),
        ),
        "test.toml",
        &|_| None,
    )
    .unwrap();
    let reloaded = catalog.next(&next);
    let new = reloaded.model_id("new").unwrap();
    assert_eq!(new.index(), 2);
    s.reconfigure(&reloaded);
    assert!(
        s.check_model(0, Some(new)).is_err(),
        "not in the key's list"
    );
    assert!(s.check_model(0, Some(cheap)).is_ok());
    // The place taken before the reload is still taken...
    assert!(s.admit(0, Some(cheap), 10, now).is_err());
    // ...and given back to the same limiter; spend is priced at the new price ($0.1/token).
    s.settle(0, &held, tokens(cheap, 5, 0), now);
    let budget = s.key_budget(0, now.wall).unwrap();
    assert!((budget.spent_usd - 0.5).abs() < 1e-9, "{budget:?}");
    assert!(s.admit(0, Some(cheap), 10, now).is_ok());
}
