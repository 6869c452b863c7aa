//! `CostAggregator`: the actor that prices usage and tracks token efficiency.
//!
//! For each completion with usage it adds tokens and `tokens × price` (prices from the
//! configuration) to the cost counters, forwards the spend to the anomaly detector (a
//! `Recipient`, stubbed in tests), and publishes the model's token efficiency into the
//! [`Board`]. A completion without usage is counted in `gatewayz_unpriced_completions_total`
//! and logged at debug — never priced by guesswork.

mod ledger;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient};

pub use ledger::{cost, Efficiency};

use super::outbox::Reports;
use super::{now, Completion, Reconfigure, Spend};
use crate::board::Board;
use crate::catalog::Price;
use crate::telemetry::metrics::{hot, Labels, Meters};

pub struct CostAggregator {
    prices: Vec<Price>,
    efficiency: Vec<Efficiency>,
    window: Duration,
    board: Arc<Board>,
    labels: Arc<Labels>,
    meters: Arc<Meters>,
    spend: Recipient<Spend>,
}

impl CostAggregator {
    pub fn new(
        prices: Vec<Price>,
        window: Duration,
        board: Arc<Board>,
        meters: Arc<Meters>,
        spend: Recipient<Spend>,
    ) -> Self {
        Self {
            efficiency: vec![Efficiency::new(now(), window); prices.len()],
            prices,
            window,
            labels: Arc::new(Labels::new(&board)),
            board,
            meters,
            spend,
        }
    }
}

impl Actor for CostAggregator {
    type Context = Context<Self>;
}

impl CostAggregator {
    /// Prices one completion; returns whether the model's efficiency changed (the caller
    /// publishes, once per batch).
    fn record(&mut self, msg: Completion) -> bool {
        let m = &self.meters;
        let (Some(p), Some(model), Some(price)) = (
            self.labels.provider.get(msg.provider.index()),
            self.labels.model.get(msg.model.index()),
            self.prices.get(msg.model.index()),
        ) else {
            return false;
        };
        let Some(usage) = msg.usage else {
            m.unpriced.add(1, &[p.clone(), model.clone()]);
            tracing::debug!(provider = %p.value, model = %model.value, "completion without usage: not priced");
            return false;
        };
        let completion = hot::Completion {
            provider: Some(msg.provider.index() as u32),
            model: msg.model.index() as u32,
            api: msg.api.label(),
        };
        for (kind, n) in [
            ("input", usage.prompt_tokens),
            ("output", usage.completion_tokens),
        ] {
            m.hot.tokens.add(
                n,
                &hot::CompletionTokens {
                    completion,
                    value: kind,
                },
            );
        }
        let usd = cost(&usage, price);
        m.hot
            .cost_by_provider
            .add(usd, &hot::Provider(msg.provider.index() as u32));
        m.hot
            .cost_by_model
            .add(usd, &hot::Model(msg.model.index() as u32));
        self.spend.do_send(Spend {
            provider: msg.provider,
            usd,
        });
        match self.efficiency.get_mut(msg.model.index()) {
            Some(e) => {
                e.record(&usage, now());
                true
            }
            None => false,
        }
    }

    /// Publishes every model's token efficiency into the board.
    fn publish(&self) {
        let at = now();
        let all = self.efficiency.iter().map(|e| e.ratio(at)).collect();
        self.board.efficiency.store(Arc::new(all));
    }
}

impl Handler<Completion> for CostAggregator {
    type Result = ();

    fn handle(&mut self, msg: Completion, _: &mut Self::Context) {
        if self.record(msg) {
            self.publish();
        }
    }
}

impl Handler<Reconfigure> for CostAggregator {
    type Result = ();

    /// New prices from now on (a request that began before the reload is priced when it
    /// ends); kept models keep their efficiency windows.
    fn handle(&mut self, change: Reconfigure, _: &mut Self::Context) {
        let fresh = Efficiency::new(now(), self.window);
        self.efficiency.resize(change.prices.len(), fresh);
        self.prices = change.prices;
        self.labels = Arc::new(Labels::new(&change.board));
        self.board = change.board;
        self.publish();
    }
}

impl Handler<Reports> for CostAggregator {
    type Result = ();

    fn handle(&mut self, batch: Reports, _: &mut Self::Context) {
        let mut changed = false;
        for completion in batch.completions() {
            changed |= self.record(completion);
        }
        if changed {
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::actors::breakers::tests::board;
    use crate::board::{ModelId, ProviderId};
    use crate::providers::Usage;

    /// Collects the spend the aggregator forwards.
    struct Collect(Arc<Mutex<Vec<Spend>>>);
    impl Actor for Collect {
        type Context = Context<Self>;
    }
    impl Handler<Spend> for Collect {
        type Result = ();
        fn handle(&mut self, msg: Spend, _: &mut Self::Context) {
            self.0.lock().unwrap().push(msg);
        }
    }

    #[actix::test]
    async fn prices_usage_and_forwards_spend() {
        tokio::time::pause();
        let board = board();
        let metrics = crate::telemetry::metrics::test_metrics(board.clone());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Collect(seen.clone()).start();
        let price = Price {
            input_per_token: 0.01,
            output_per_token: 0.02,
        };
        let addr = CostAggregator::new(
            vec![price, price],
            Duration::from_secs(3600),
            board.clone(),
            metrics.meters.clone(),
            sink.recipient(),
        )
        .start();
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
        };
        let completion = |usage| Completion {
            provider: ProviderId::from_index(0),
            model: ModelId::from_index(1),
            api: crate::config::Api::Embeddings,
            usage,
        };
        addr.send(completion(Some(usage))).await.unwrap();
        addr.send(completion(None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let spent: Vec<f64> = seen.lock().unwrap().iter().map(|s| s.usd).collect();
        assert_eq!(spent.len(), 1);
        assert!((spent[0] - 0.2).abs() < 1e-9);
        assert_eq!(board.efficiency.load()[1], Some(0.5));
        let text = String::from_utf8(metrics.encode().unwrap()).unwrap();
        assert!(
            text.contains("gatewayz_cost_by_model_total{model=\"mock-mini\"} 0.2"),
            "{text}"
        );
        assert!(
            text.contains(
                "gatewayz_tokens_total{api=\"embeddings\",model=\"mock-mini\",provider=\"mock-a\",type=\"input\"} 10"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "gatewayz_unpriced_completions_total{model=\"mock-mini\",provider=\"mock-a\"} 1"
            ),
            "{text}"
        );
    }
}
