//! Resumable answers: a call answered as an event stream keeps its events, each with an id
//! (`<stream>-<sequence>`), until a while after its answer, so that a client whose connection dropped can ask
//! again with `GET` and `Last-Event-ID` and get the rest. The events are pumped from the call into the buffer
//! whether or not a client reads them; a resumption is served only within the session that made the call (so to
//! the same subject), and only while the events after the given id are still kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use tokio::sync::Notify;

/// How long an answered stream's events stay for a client to resume.
pub(super) const KEEP_AFTER_ANSWER: Duration = Duration::from_secs(60);
/// Most events one stream keeps (older ones are forgotten; resuming before them is refused).
const MAX_EVENTS: usize = 1024;
/// Most bytes one stream keeps.
const MAX_BYTES: usize = 4 << 20;
/// What the first event tells the client to wait before reconnecting, in milliseconds.
pub(super) const RETRY_MS: u64 = 1000;

/// One answer's events.
#[derive(Default)]
pub(super) struct Replay {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Events kept, oldest first; the first has sequence number `first`.
    events: VecDeque<Bytes>,
    first: u64,
    bytes: usize,
    /// The answer has been added: nothing follows.
    done: bool,
}

impl Replay {
    /// Adds an event (its frame already carries its id, [`Replay::next_sequence`]).
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
            .map(|s| s.first + s.events.len() as u64)
            .unwrap_or(u64::MAX)
    }

    /// Whether the answer has been added.
    pub(super) fn is_done(&self) -> bool {
        self.state.lock().map(|s| s.done).unwrap_or(true)
    }

    /// Nothing more will be added.
    pub(super) fn finish(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.done = true;
        }
        self.changed.notify_waiters();
    }

    /// The events after sequence number `after` (all of them for `None`), then each new one until the answer;
    /// `None` when some of those events are no longer kept.
    pub(super) fn events_after(
        self: &Arc<Self>,
        after: Option<u64>,
    ) -> Option<impl Stream<Item = Bytes> + Send + use<>> {
        let next = after.map_or(0, |a| a.saturating_add(1));
        if self.state.lock().ok()?.first > next {
            return None;
        }
        let replay = Arc::clone(self);
        Some(futures::stream::unfold(
            (replay, next),
            |(replay, next)| async move {
                loop {
                    // Registered before looking, so that an event added in between is not missed.
                    let waker = Arc::clone(&replay);
                    let changed = waker.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    let (event, done) = {
                        let state = replay.state.lock().ok()?;
                        let event = next
                            .checked_sub(state.first)
                            .and_then(|i| state.events.get(usize::try_from(i).ok()?))
                            .cloned();
                        (event, state.done)
                    };
                    match event {
                        Some(event) => return Some((event, (replay, next + 1))),
                        None if done => return None,
                        None => changed.await,
                    }
                }
            },
        ))
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
            let stream = replay.events_after(None).unwrap();
            let late = Arc::clone(&replay);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                late.push(Bytes::from("e3"));
                late.finish();
            });
            stream.collect().await
        };
        assert_eq!(from_start, ["e0", "e1", "e2", "e3"]);
        let resumed: Vec<Bytes> = replay.events_after(Some(1)).unwrap().collect().await;
        assert_eq!(resumed, ["e2", "e3"]);
        assert_eq!(replay.next_sequence(), 4);
        assert_eq!(parse_event_id(&event_id("s7", 12)), Some(("s7", 12)));
        assert_eq!(parse_event_id("nope"), None);
    }

    #[tokio::test]
    async fn events_no_longer_kept_cannot_be_resumed() {
        let replay = Arc::new(Replay::default());
        for n in 0..(MAX_EVENTS + 10) {
            replay.push(Bytes::from(format!("e{n}")));
        }
        replay.finish();
        assert!(replay.events_after(Some(3)).is_none());
        let last = (MAX_EVENTS + 8) as u64;
        let rest: Vec<Bytes> = replay.events_after(Some(last)).unwrap().collect().await;
        assert_eq!(rest, [Bytes::from(format!("e{}", MAX_EVENTS + 9))]);
    }
}
