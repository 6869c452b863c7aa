//! The configuration resolved once: every provider and model gets its id, its name, its
//! upstream model names, its price and its place in the model's candidate list here, at
//! start-up, and everyone else — the router, the board, the meters, the actors — is built
//! from this one value instead of deriving the same facts from `Config` again.
//!
//! Ids are positions: providers and models in the configuration's (sorted) order, so every
//! table built from the catalogue lines up by construction. A reloaded configuration
//! ([`Catalog::next`]) keeps them: a name keeps its id for the life of the process, a new name
//! takes the next one, and a name the new file drops stays in the tables, retired — no longer
//! listed, routed or exported, but still there for the requests that began before the reload
//! and report under its id when they end.

use std::collections::HashMap;
use std::sync::Arc;

use crate::board::{Board, ModelId, ProviderId};
use crate::config::{Api, Config, ProviderSettings};

/// Prices of a model in USD per token.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub input_per_token: f64,
    pub output_per_token: f64,
}

impl Price {
    /// USD for `input` and `output` tokens: the one pricing formula (spend by model, provider,
    /// key and team all use it).
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        input as f64 * self.input_per_token + output as f64 * self.output_per_token
    }
}

/// One configured provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: Arc<str>,
    /// Its kind's settings, defaults applied.
    pub settings: ProviderSettings,
    /// Dropped by a reloaded configuration (see the module's doc).
    pub retired: bool,
}

/// A provider that serves a model, and the name the model has there.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub provider: ProviderId,
    /// The model's name at this provider, when it differs from the model's own.
    pub upstream_model: Option<Arc<str>>,
}

/// One configured model.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: Arc<str>,
    /// In order of preference.
    pub candidates: Vec<Candidate>,
    pub price: Price,
    /// `owned_by` in `/v1/models`.
    pub owned_by: Arc<str>,
    /// The APIs it serves, by [`Api::index`].
    apis: [bool; Api::ALL.len()],
    /// Dropped by a reloaded configuration (see the module's doc).
    pub retired: bool,
}

impl Model {
    pub fn serves(&self, api: Api) -> bool {
        self.apis[api.capability().index()]
    }
}

/// Every provider and model, by id.
#[derive(Debug)]
pub struct Catalog {
    providers: Vec<Provider>,
    models: Vec<Model>,
    by_name: HashMap<Box<str>, ModelId>,
}

impl Catalog {
    /// Resolves a validated configuration (a model naming an unknown provider is skipped: the
    /// configuration's validation refuses it first).
    pub fn new(config: &Config) -> Self {
        Self::resolve(config, None)
    }

    /// The catalogue of a reloaded configuration: every name keeps the id it has here, new
    /// names take the next ids (in the file's order), and names the file no longer has stay,
    /// retired, as they were.
    pub fn next(&self, config: &Config) -> Self {
        Self::resolve(config, Some(self))
    }

    /// `config`'s providers and models; with `previous`, its names first at their positions
    /// (retired, as they were, when `config` lacks them), then `config`'s other names.
    fn resolve(config: &Config, previous: Option<&Catalog>) -> Self {
        let mut providers: Vec<Provider> = Vec::new();
        for old in previous.map_or(&[][..], |c| &c.providers[..]) {
            providers.push(match config.providers.get(&*old.name) {
                Some(p) => Provider {
                    name: old.name.clone(),
                    settings: p.settings(),
                    retired: false,
                },
                None => Provider {
                    retired: true,
                    ..old.clone()
                },
            });
        }
        for (name, p) in &config.providers {
            if !providers.iter().any(|known| *known.name == **name) {
                providers.push(Provider {
                    name: Arc::from(name.as_str()),
                    settings: p.settings(),
                    retired: false,
                });
            }
        }
        let provider_id = |name: &str| {
            providers
                .iter()
                .position(|p| &*p.name == name && !p.retired)
                .map(ProviderId::from_index)
        };
        let model = |name: Arc<str>, model: &crate::config::ModelConfig| Model {
            candidates: model
                .providers
                .iter()
                .filter_map(|p| {
                    Some(Candidate {
                        provider: provider_id(p)?,
                        upstream_model: model
                            .upstream_model
                            .get(p)
                            .filter(|upstream| **upstream != *name)
                            .map(|upstream| Arc::from(upstream.as_str())),
                    })
                })
                .collect(),
            price: Price {
                input_per_token: model.input_price_per_1m / 1e6,
                output_per_token: model.output_price_per_1m / 1e6,
            },
            owned_by: Arc::from(model.owned_by.as_deref().unwrap_or("gatewayz")),
            apis: Api::ALL.map(|api| model.apis.as_ref().is_none_or(|a| a.contains(&api))),
            name,
            retired: false,
        };
        let mut models: Vec<Model> = Vec::new();
        for old in previous.map_or(&[][..], |c| &c.models[..]) {
            models.push(match config.models.get(&*old.name) {
                Some(m) => model(old.name.clone(), m),
                None => Model {
                    retired: true,
                    ..old.clone()
                },
            });
        }
        for (name, m) in &config.models {
            if !models.iter().any(|known| *known.name == **name) {
                models.push(model(Arc::from(name.as_str()), m));
            }
        }
        let by_name = models
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.retired)
            .map(|(i, m)| (Box::from(&*m.name), ModelId::from_index(i)))
            .collect();
        Self {
            providers,
            models,
            by_name,
        }
    }

    /// The providers in force (not the retired), by id.
    pub fn providers(&self) -> impl Iterator<Item = (ProviderId, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.retired)
            .map(|(i, p)| (ProviderId::from_index(i), p))
    }

    /// The models in force (not the retired), by id.
    pub fn models(&self) -> impl Iterator<Item = (ModelId, &Model)> {
        self.models
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.retired)
            .map(|(i, m)| (ModelId::from_index(i), m))
    }

    /// Every provider by id, the retired's included (tables indexed by id cover them).
    pub fn all_providers(&self) -> impl ExactSizeIterator<Item = (ProviderId, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, p)| (ProviderId::from_index(i), p))
    }

    /// Every model by id, the retired's included (tables indexed by id cover them).
    pub fn all_models(&self) -> impl ExactSizeIterator<Item = (ModelId, &Model)> {
        self.models
            .iter()
            .enumerate()
            .map(|(i, m)| (ModelId::from_index(i), m))
    }

    /// Every model's price by id, the retired's included (what requests that began before a
    /// reload settle with).
    pub fn prices(&self) -> Vec<Price> {
        self.models.iter().map(|m| m.price).collect()
    }

    /// Every model's name by id, the retired's included.
    pub fn model_names(&self) -> Vec<Arc<str>> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    pub fn provider(&self, id: ProviderId) -> &Provider {
        &self.providers[id.index()]
    }

    pub fn model(&self, id: ModelId) -> &Model {
        &self.models[id.index()]
    }

    /// The id of a configured model, by the name clients use.
    pub fn model_id(&self, name: &str) -> Option<ModelId> {
        self.by_name.get(name).copied()
    }

    /// Fresh published state for these providers and models.
    pub fn board(&self) -> Board {
        Board::new(
            self.providers.iter().map(|p| p.name.clone()).collect(),
            self.model_names(),
        )
        .retiring(
            self.providers.iter().map(|p| p.retired).collect(),
            self.models.iter().map(|m| m.retired).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_line_up_with_names_candidates_and_prices() {
        let config = Config::from_toml(
            r#"
            [providers.b]
            kind = "mock"
            [providers.a]
            kind = "mock"
            [models.m]
            providers = ["b", "a"]
            upstream_model = { a = "m-at-a", b = "m" }
            input_price_per_1m = 2.0
            "#,
            "test",
            &|_| None,
        )
        .unwrap();
        let catalog = Catalog::new(&config);
        let names: Vec<_> = catalog
            .providers()
            .map(|(_, p)| p.name.to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let m = catalog.model_id("m").unwrap();
        let model = catalog.model(m);
        let candidates: Vec<_> = model
            .candidates
            .iter()
            .map(|c| {
                (
                    catalog.provider(c.provider).name.to_string(),
                    c.upstream_model.as_deref().map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(
            candidates,
            [("b".into(), None), ("a".into(), Some("m-at-a".into()))]
        );
        assert_eq!(model.price.input_per_token, 2e-6);
        assert_eq!(catalog.model_id("unknown"), None);
        let board = catalog.board();
        assert_eq!(&**board.provider_name(ProviderId::from_index(1)), "b");
    }

    fn config(toml: &str) -> Config {
        Config::from_toml(toml, "test", &|_| None).unwrap()
    }

    /// A reload keeps every name's id, gives new names the next ids and keeps dropped ones,
    /// retired: still in the tables by id, no longer listed, looked up or routed to.
    #[test]
    fn a_reloaded_catalogue_keeps_ids_and_retires_what_the_file_dropped() {
        let before = Catalog::new(&config(
            r#"
            [providers.a]
            kind = "mock"
            [providers.b]
            kind = "mock"
            [models.m]
            providers = ["a", "b"]
            input_price_per_1m = 1.0
            [models.n]
            providers = ["b"]
            "#,
        ));
        let after = before.next(&config(
            r#"
            [providers.b]
            kind = "mock"
            [providers.c]
            kind = "mock"
            [models.m]
            providers = ["c", "b"]
            input_price_per_1m = 3.0
            [models.o]
            providers = ["c"]
            "#,
        ));
        let names = |c: &Catalog| -> Vec<(String, bool)> {
            c.all_providers()
                .map(|(_, p)| (p.name.to_string(), p.retired))
                .collect()
        };
        assert_eq!(
            names(&after),
            [("a".into(), true), ("b".into(), false), ("c".into(), false)]
        );
        let live: Vec<_> = after.providers().map(|(id, _)| id.index()).collect();
        assert_eq!(live, [1, 2]);
        // m keeps id 0 with its new price and candidates; n (1) is retired; o is new (2).
        let m = after.model_id("m").unwrap();
        assert_eq!(m.index(), 0);
        assert_eq!(after.model(m).price.input_per_token, 3e-6);
        let candidates: Vec<_> = after
            .model(m)
            .candidates
            .iter()
            .map(|c| c.provider.index())
            .collect();
        assert_eq!(candidates, [2, 1]);
        assert_eq!(after.model_id("n"), None);
        assert!(after.model(ModelId::from_index(1)).retired);
        assert_eq!(after.model_id("o").unwrap().index(), 2);
        let listed: Vec<_> = after.models().map(|(_, m)| m.name.to_string()).collect();
        assert_eq!(listed, ["m", "o"]);
        // Prices by id cover the retired, for requests that began before the reload.
        assert_eq!(after.prices().len(), 3);
        // The board over it lists what is in force and keeps every id's slot.
        let board = after.board();
        assert_eq!(board.states.len(), 3);
        let providers: Vec<_> = board.providers().map(ProviderId::index).collect();
        assert_eq!(providers, [1, 2]);
        assert_eq!(
            board
                .live_model_names()
                .iter()
                .map(|n| &**n)
                .collect::<Vec<_>>(),
            ["m", "o"]
        );
        // A dropped name that comes back takes its old id again.
        let again = after.next(&config(
            "[providers.a]\nkind = \"mock\"\n[models.n]\nproviders = [\"a\"]\n",
        ));
        assert!(!again.provider(ProviderId::from_index(0)).retired);
        assert_eq!(again.model_id("n").unwrap().index(), 1);
    }
}
