//! Resumable answers: a call answered as an event stream keeps its events, each with an id
//! (`<stream>-<sequence>`), until a while after its answer, so that a client whose connection dropped can ask
//! again with `GET` and `Last-Event-ID` and get the rest. The events are pumped from the call into the buffer
//! whether or not a client reads them; a resumption is served only within the session that made the call (so to
//! the same subject). Notifications are kept within a bound (a reader behind them skips ahead, as a slow client's
//! notifications were always droppable); the answer is kept whole and always comes last.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use tokio::sync::Notify;

/// How long an answered stream's events stay for a client to resume.
pub(super) const KEEP_AFTER_ANSWER: Duration = Duration::from_secs(60);
/// Most notifications one stream keeps (older ones are forgotten: a reader behind them skips to the oldest kept).
const MAX_EVENTS: usize = 1024;
/// Most bytes of notifications one stream keeps; the answer is kept whatever its size, and never forgotten.
const MAX_BYTES: usize = 1 << 20;
/// What the first event tells the client to wait before reconnecting, in milliseconds.
pub(super) const RETRY_MS: u64 = 1000;

/// One answer's events: the call's notifications (bounded), then its answer (kept whole).
#[derive(Default)]
pub(super) struct Replay {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Notifications kept, oldest first; the first has sequence number `first`.
    events: VecDeque<Bytes>,
    first: u64,
    bytes: usize,
    /// The answer, once it came, and its sequence number: nothing follows it.
    answer: Option<(u64, Bytes)>,
    /// Nothing more will come (with or without an answer).
    done: bool,
}

impl State {
    fn next_sequence(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl Replay {
    /// Adds a notification (its frame already carries its id, [`Replay::next_sequence`]).
    pub(super) fn push(&self, frame: Bytes) {
        if let Ok(mut state) = self.state.lock() {
            state.bytes += frame.len();
            state.events.push_back(frame);
            while state.events.len() > MAX_EVENTS || state.bytes > MAX_BYTES {
                let Some(old) = state.events.pop_front() else {
                    break;
                };
                state.bytes -= old.len();
                state.first += 1;
            }
        }
        self.changed.notify_waiters();
    }

    /// The sequence number the next event gets.
    pub(super) fn next_sequence(&self) -> u64 {
        self.state
            .lock()
            .map(|s| s.next_sequence())
            .unwrap_or(u64::MAX)
    }

    /// Whether nothing more will come.
    pub(super) fn is_done(&self) -> bool {
        self.state.lock().map(|s| s.done).unwrap_or(true)
    }

    /// Ends the stream with its answer (its frame carries the id [`Replay::next_sequence`] gave), or without one.
    pub(super) fn finish(&self, answer: Option<Bytes>) {
        if let Ok(mut state) = self.state.lock() {
            let sequence = state.next_sequence();
            state.answer = answer.map(|a| (sequence, a));
            state.done = true;
        }
        self.changed.notify_waiters();
    }

    /// The events after sequence number `after` (all of them for `None`), then each new one, then the answer. A
    /// reader behind the notifications still kept skips to the oldest kept; the answer always comes.
    pub(super) fn events_after(
        self: &Arc<Self>,
        after: Option<u64>,
    ) -> impl Stream<Item = Bytes> + Send + use<> {
        let next = after.map_or(0, |a| a.saturating_add(1));
        let replay = Arc::clone(self);
        futures::stream::unfold((replay, next), |(replay, next)| async move {
            loop {
                // Registered before looking, so that an event added in between is not missed.
                let waker = Arc::clone(&replay);
                let changed = waker.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let (event, sequence) = {
                    let state = replay.state.lock().ok()?;
                    let next = next.max(state.first);
                    let event = usize::try_from(next - state.first)
                        .ok()
                        .and_then(|i| state.events.get(i))
                        .cloned();
                    match (event, &state.answer) {
                        (Some(event), _) => (Some(event), next),
                        (None, Some((sequence, answer))) if *sequence >= next => {
                            (Some(answer.clone()), *sequence)
                        }
                        (None, _) if state.done => return None,
                        (None, _) => (None, next),
                    }
                };
                match event {
                    Some(event) => return Some((event, (replay, sequence + 1))),
                    None => changed.await,
                }
            }
        })
    }
}

/// An event id: `<stream>-<sequence>`, the stream a session-local name.
pub(super) fn event_id(stream: &str, sequence: u64) -> String {
    format!("{stream}-{sequence}")
}

/// The stream and sequence number of an event id.
pub(super) fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (stream, sequence) = id.rsplit_once('-')?;
    Some((stream, sequence.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_reader_gets_every_event_after_its_id_then_the_rest_as_it_comes() {
        let replay = Arc::new(Replay::default());
        for n in 0..3 {
            replay.push(Bytes::from(format!("e{n}")));
        }
        let from_start: Vec<Bytes> = {
            let stream = replay.events_after(None);
            let late = Arc::clone(&replay);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                late.push(Bytes::from("e3"));
                late.finish(Some(Bytes::from("answer")));
            });
            stream.collect().await
        };
        assert_eq!(from_start, ["e0", "e1", "e2", "e3", "answer"]);
        let resumed: Vec<Bytes> = replay.events_after(Some(1)).collect().await;
        assert_eq!(resumed, ["e2", "e3", "answer"]);
        let after_answer: Vec<Bytes> = replay.events_after(Some(4)).collect().await;
        assert!(after_answer.is_empty());
        assert_eq!(parse_event_id(&event_id("s7", 12)), Some(("s7", 12)));
        assert_eq!(parse_event_id("nope"), None);
    }

    #[tokio::test]
    async fn a_reader_behind_what_is_kept_skips_ahead_and_the_answer_always_comes() {
        let replay = Arc::new(Replay::default());
        for n in 0..(MAX_EVENTS + 10) {
            replay.push(Bytes::from(format!("e{n}")));
        }
        // An answer larger than everything the notifications may keep.
        let answer = Bytes::from(vec![b'a'; MAX_BYTES * 3]);
        replay.finish(Some(answer.clone()));
        let rest: Vec<Bytes> = replay.events_after(Some(3)).collect().await;
        assert_eq!(rest.len(), MAX_EVENTS + 1);
        assert_eq!(rest[0], Bytes::from("e10"));
        assert_eq!(rest.last(), Some(&answer));
        let last: Vec<Bytes> = replay
            .events_after(Some((MAX_EVENTS + 8) as u64))
            .collect()
            .await;
        assert_eq!(last, [Bytes::from(format!("e{}", MAX_EVENTS + 9)), answer]);
    }
}
