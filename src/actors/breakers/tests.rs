//! Actor tests with paused time: the cool-down timer fires on virtual time, no sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::board::{Board, ModelId, ProviderId};
use crate::config::{BreakerConfig, Config};
use crate::outcome::AttemptResult;

pub(crate) fn board() -> Arc<Board> {
    Arc::new(crate::catalog::Catalog::new(&Config::builtin().unwrap()).board())
}

fn failure(provider: usize) -> Attempt {
    Attempt {
        provider: ProviderId::from_index(provider),
        model: ModelId::from_index(0),
        result: AttemptResult::Error,
        latency: Duration::from_millis(1),
    }
}

#[actix::test]
async fn opens_then_half_opens_on_the_timer_then_closes() {
    tokio::time::pause();
    let board = board();
    let config = BreakerConfig {
        consecutive_failures: 2,
        cool_down: Duration::from_secs(30),
        half_open_probes: 1,
        close_after: 1,
        ..BreakerConfig::default()
    };
    let addr = CircuitBreakers::new(config, board.clone()).start();
    addr.send(failure(0)).await.unwrap();
    addr.send(failure(0)).await.unwrap();
    let state = &board.states[0];
    assert_eq!(state.phase(), Phase::Open);
    assert_eq!(board.states[1].phase(), Phase::Closed);
    assert!(state.try_admit().is_none());
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(state.phase(), Phase::Open);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state.phase(), Phase::HalfOpen);
    assert!(state.try_admit().is_some());
    assert!(state.try_admit().is_none(), "one probe slot only");
    let success = Attempt {
        result: AttemptResult::Success,
        ..failure(0)
    };
    addr.send(success).await.unwrap();
    assert_eq!(state.phase(), Phase::Closed);
}
