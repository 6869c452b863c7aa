//! The outbox between the request path and the actors.
//!
//! Sending each outcome to each actor woke the actors' thread several times per request: on a
//! one-core worker every wake-up is a context switch that preempts the request path. The
//! request path instead appends its events to this outbox — a short, uncontended lock and a
//! `Vec` push — and the [`Dispatcher`] hands them to the actors in batches:
//!
//! - the first event into an idle outbox asks the dispatcher to drain at the next beat of
//!   the actors' thread ([`cadence`], at most [`FLUSH_DELAY`] later); while events keep
//!   coming, each drain arms the next beat itself, so a busy gateway wakes the actors' thread
//!   once per beat (the Loki shipper's gathering ends in the same wake-up), an idle one never;
//! - a failure (an attempt that errored or timed out) asks for a drain now, so a breaker
//!   still opens as soon as the actors' thread runs, and events stay in order.
//!
//! The outbox holds at most [`CAPACITY`] events; past that (the actors' thread starved for
//! long) new events are dropped and the dispatcher logs how many at its next drain.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient};

use super::{Attempt, Completion, Finished};
use crate::telemetry::cadence;

/// The longest an event waits for its drain.
pub const FLUSH_DELAY: Duration = cadence::BEAT;
/// Most events held between two drains.
pub const CAPACITY: usize = 65_536;

/// One thing the request path tells the actors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Report {
    Attempt(Attempt),
    Finished(Finished),
    Completion(Completion),
}

/// A drained batch, in the order the request path pushed it; every actor gets the same one
/// and takes the kinds it handles.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Reports(pub Arc<[Report]>);

impl Reports {
    pub fn attempts(&self) -> impl Iterator<Item = Attempt> + '_ {
        self.0.iter().filter_map(|e| match *e {
            Report::Attempt(a) => Some(a),
            _ => None,
        })
    }

    pub fn completions(&self) -> impl Iterator<Item = Completion> + '_ {
        self.0.iter().filter_map(|e| match *e {
            Report::Completion(c) => Some(c),
            _ => None,
        })
    }
}

/// What a push asks of the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum Wake {
    /// Drain at the next beat (at most [`FLUSH_DELAY`] later).
    Soon,
    /// Drain as soon as the actors' thread runs.
    Now,
}

/// The events waiting and which drain is already asked for: a plain state machine.
#[derive(Debug, Default)]
pub struct Pending {
    events: Vec<Report>,
    /// A drain at the next beat is asked for or armed: pushes need not ask.
    soon: bool,
    now: bool,
    dropped: u64,
}

impl Pending {
    /// Appends `event`; returns the wake-up to send, if none already asked for covers it.
    pub fn push(&mut self, event: Report, urgent: bool) -> Option<Wake> {
        if self.events.len() >= CAPACITY {
            self.dropped += 1;
        } else {
            self.events.push(event);
        }
        if urgent && !self.now {
            self.now = true;
            Some(Wake::Now)
        } else if !self.soon && !self.now {
            self.soon = true;
            Some(Wake::Soon)
        } else {
            None
        }
    }

    /// Everything waiting, and how many were dropped since the last drain. After a drain that
    /// found events the dispatcher arms the next beat itself (more are likely), so pushes do
    /// not ask; after an empty one the next push asks for a drain again.
    ///
    /// The next beat's vector starts at this one's length: one allocation a beat, not a
    /// doubling after every few pushes.
    pub fn take(&mut self) -> (Vec<Report>, u64) {
        self.soon = !self.events.is_empty() || self.dropped > 0;
        self.now = false;
        let next = Vec::with_capacity(self.events.len());
        (
            std::mem::replace(&mut self.events, next),
            std::mem::take(&mut self.dropped),
        )
    }
}

/// The request path's side: push and, at most once per batch, wake the dispatcher.
pub struct Outbox {
    pending: Mutex<Pending>,
    wake: Recipient<Wake>,
}

impl Outbox {
    pub fn push(&self, event: Report, urgent: bool) {
        let wake = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event, urgent);
        if let Some(wake) = wake {
            self.wake.do_send(wake);
        }
    }

    fn take(&self) -> (Vec<Report>, u64) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Drains the outbox into every actor, one [`Reports`] message each per batch.
pub struct Dispatcher {
    outbox: Arc<Outbox>,
    actors: Vec<Recipient<Reports>>,
    /// A drain at the next beat is armed.
    armed: bool,
}

impl Dispatcher {
    /// Starts the dispatcher (needs a running actix `System`); returns the outbox to push to.
    pub fn start(actors: Vec<Recipient<Reports>>) -> Arc<Outbox> {
        let ctx = Context::new();
        let outbox = Arc::new(Outbox {
            pending: Mutex::default(),
            wake: ctx.address().recipient(),
        });
        ctx.run(Dispatcher {
            outbox: outbox.clone(),
            actors,
            armed: false,
        });
        outbox
    }

    /// Arms a drain at the next beat, unless one is armed.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if self.armed {
            return;
        }
        self.armed = true;
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(cadence::until_next_beat()).map(|(), this, ctx| {
                this.armed = false;
                this.drain(ctx);
            }),
        );
    }

    /// Hands what is waiting to the actors; a drain that found events arms the next beat
    /// ([`Pending::take`]).
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let (events, dropped) = self.outbox.take();
        if !events.is_empty() || dropped > 0 {
            self.arm(ctx);
        }
        self.send(events, dropped);
    }

    fn send(&self, events: Vec<Report>, dropped: u64) {
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "actor outbox full: outcome events dropped (the actors' thread is starved)"
            );
        }
        if events.is_empty() {
            return;
        }
        let batch = Reports(events.into());
        for actor in &self.actors {
            actor.do_send(batch.clone());
        }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn stopping(&mut self, _: &mut Self::Context) -> actix::Running {
        let (events, dropped) = self.outbox.take();
        self.send(events, dropped);
        actix::Running::Stop
    }
}

impl Handler<Wake> for Dispatcher {
    type Result = ();

    fn handle(&mut self, wake: Wake, ctx: &mut Self::Context) {
        match wake {
            Wake::Now => self.drain(ctx),
            Wake::Soon => self.arm(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{ModelId, ProviderId};
    use crate::outcome::AttemptResult;

    fn attempt(result: AttemptResult) -> Report {
        Report::Attempt(Attempt {
            provider: ProviderId::from_index(0),
            model: ModelId::from_index(0),
            result,
            latency: Duration::from_millis(5),
        })
    }

    #[test]
    fn one_wake_per_batch_and_failures_ask_for_a_drain_now() {
        let mut p = Pending::default();
        assert_eq!(
            p.push(attempt(AttemptResult::Success), false),
            Some(Wake::Soon)
        );
        assert_eq!(p.push(attempt(AttemptResult::Success), false), None);
        assert_eq!(p.push(attempt(AttemptResult::Error), true), Some(Wake::Now));
        // Both asked for: nothing more until a drain.
        assert_eq!(p.push(attempt(AttemptResult::Error), true), None);
        assert_eq!(p.push(attempt(AttemptResult::Success), false), None);
        let (events, dropped) = p.take();
        assert_eq!(events.len(), 5);
        assert_eq!(dropped, 0);
        // The drain found events, so the dispatcher armed the next beat: no need to ask.
        assert_eq!(p.push(attempt(AttemptResult::Success), false), None);
        // A failure still asks for a drain now.
        assert_eq!(p.push(attempt(AttemptResult::Error), true), Some(Wake::Now));
        assert_eq!(p.take().0.len(), 2);
        // After a drain that found nothing (the gateway went idle), the next event asks again.
        assert_eq!(p.take(), (Vec::new(), 0));
        assert_eq!(
            p.push(attempt(AttemptResult::Success), false),
            Some(Wake::Soon)
        );
    }

    #[test]
    fn an_urgent_event_after_a_drain_now_was_asked_adds_no_soon() {
        let mut p = Pending::default();
        assert_eq!(p.push(attempt(AttemptResult::Error), true), Some(Wake::Now));
        // A drain now is pending: it covers later events too.
        assert_eq!(p.push(attempt(AttemptResult::Success), false), None);
    }

    #[test]
    fn events_keep_their_order() {
        let mut p = Pending::default();
        let sequence = [
            attempt(AttemptResult::Success),
            attempt(AttemptResult::Error),
            Report::Finished(Finished {
                model: ModelId::from_index(0),
                ok: true,
            }),
            attempt(AttemptResult::Timeout),
        ];
        for e in sequence {
            p.push(e, false);
        }
        assert_eq!(p.take().0, sequence);
    }

    #[test]
    fn a_full_outbox_drops_and_counts_new_events() {
        let mut p = Pending::default();
        for _ in 0..CAPACITY + 3 {
            p.push(attempt(AttemptResult::Success), false);
        }
        let (events, dropped) = p.take();
        assert_eq!(events.len(), CAPACITY);
        assert_eq!(dropped, 3);
        assert_eq!(p.take(), (Vec::new(), 0));
    }

    struct Collect(Arc<Mutex<Vec<Report>>>);
    impl Actor for Collect {
        type Context = Context<Self>;
    }
    impl Handler<Reports> for Collect {
        type Result = ();
        fn handle(&mut self, batch: Reports, _: &mut Self::Context) {
            self.0.lock().unwrap().extend(batch.0.iter().copied());
        }
    }

    /// Waits (bounded) until `seen` holds `n` events.
    async fn until_seen(seen: &Mutex<Vec<Report>>, n: usize) {
        for _ in 0..200 {
            if seen.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(FLUSH_DELAY).await;
        }
    }

    #[actix_rt::test]
    async fn events_pushed_after_a_drain_reach_the_actors_at_the_next_beats() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let outbox = Dispatcher::start(vec![Collect(seen.clone()).start().recipient()]);
        // Each round's push follows a drain that found events: it asks for nothing unless a
        // beat has since found the outbox empty, and reaches the actors either way.
        for round in 1..=3 {
            outbox.push(attempt(AttemptResult::Success), false);
            until_seen(&seen, round).await;
            assert_eq!(seen.lock().unwrap().len(), round, "round {round}");
        }
        // A beat with nothing to drain leaves the outbox idle: the next push asks again.
        let idle = || !outbox.pending.lock().unwrap().soon;
        for _ in 0..200 {
            if idle() {
                break;
            }
            tokio::time::sleep(FLUSH_DELAY).await;
        }
        assert!(idle(), "the outbox never went idle");
        outbox.push(attempt(AttemptResult::Timeout), false);
        assert!(!idle());
        until_seen(&seen, 4).await;
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[actix_rt::test]
    async fn every_pushed_event_reaches_each_actor_once_in_order() {
        let seen: [Arc<Mutex<Vec<Report>>>; 2] = Default::default();
        let actors = seen
            .iter()
            .map(|s| Collect(s.clone()).start().recipient())
            .collect();
        let outbox = Dispatcher::start(actors);
        let sent: Vec<Report> = (0..1000)
            .map(|i| {
                attempt(if i % 97 == 0 {
                    AttemptResult::Error
                } else {
                    AttemptResult::Success
                })
            })
            .collect();
        for (i, e) in sent.iter().enumerate() {
            outbox.push(*e, i % 97 == 0);
        }
        for s in &seen {
            until_seen(s, sent.len()).await;
        }
        for s in &seen {
            assert_eq!(*s.lock().unwrap(), sent);
        }
    }
}
