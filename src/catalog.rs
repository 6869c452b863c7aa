//! The configuration resolved once: every provider and model gets its id, its name, its
//! upstream model names, its price and its place in the model's candidate list here, at
//! start-up, and everyone else — the router, the board, the meters, the actors — is built
//! from this one value instead of deriving the same facts from `Config` again.
//!
//! Ids are positions: providers and models in the configuration's (sorted) order, so every
//! table built from the catalogue lines up by construction.

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
        let providers: Vec<Provider> = config
            .providers
            .iter()
            .map(|(name, provider)| Provider {
                name: Arc::from(name.as_str()),
                settings: provider.settings(),
            })
            .collect();
        let provider_id = |name: &str| {
            providers
                .iter()
                .position(|p| &*p.name == name)
                .map(ProviderId::from_index)
        };
        let models: Vec<Model> = config
            .models
            .iter()
            .map(|(id, model)| Model {
                name: Arc::from(id.as_str()),
                candidates: model
                    .providers
                    .iter()
                    .filter_map(|p| {
                        Some(Candidate {
                            provider: provider_id(p)?,
                            upstream_model: model
                                .upstream_model
                                .get(p)
                                .filter(|name| *name != id)
                                .map(|name| Arc::from(name.as_str())),
                        })
                    })
                    .collect(),
                price: Price {
                    input_per_token: model.input_price_per_1m / 1e6,
                    output_per_token: model.output_price_per_1m / 1e6,
                },
                owned_by: Arc::from(model.owned_by.as_deref().unwrap_or("gatewayz")),
                apis: Api::ALL.map(|api| model.apis.as_ref().is_none_or(|a| a.contains(&api))),
            })
            .collect();
        let by_name = models
            .iter()
            .enumerate()
            .map(|(i, m)| (Box::from(&*m.name), ModelId::from_index(i)))
            .collect();
        Self {
            providers,
            models,
            by_name,
        }
    }

    pub fn providers(&self) -> impl ExactSizeIterator<Item = (ProviderId, &Provider)> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, p)| (ProviderId::from_index(i), p))
    }

    pub fn models(&self) -> impl ExactSizeIterator<Item = (ModelId, &Model)> {
        self.models
            .iter()
            .enumerate()
            .map(|(i, m)| (ModelId::from_index(i), m))
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
            self.models.iter().map(|m| m.name.clone()).collect(),
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
}
