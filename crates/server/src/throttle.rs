//! Sliding-window counters: at most `limit` events per key within `window`.
//!
//! Used to throttle failures (wrong spend codes) per API key, partner, source address and for
//! the whole service. Each key keeps at most `limit` timestamps, and keys whose events have all
//! left the window are swept out as the table grows, so memory is bounded by the number of
//! events the limits let through in one window.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most `limit` events per key in any `window`.
#[derive(Debug)]
pub struct Window<K> {
    limit: usize,
    window: Duration,
    events: HashMap<K, VecDeque<Instant>>,
    /// The table size at which keys with no recent event are swept out.
    sweep_at: usize,
}

/// The table size below which no sweep runs.
const MIN_SWEEP: usize = 1024;

impl<K: Hash + Eq + Clone> Window<K> {
    /// A window allowing `limit` events per `window` for each key. A limit of 0 disables it.
    pub fn new(limit: usize, window: Duration) -> Window<K> {
        Window {
            limit,
            window,
            events: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    fn prune(queue: &mut VecDeque<Instant>, window: Duration, now: Instant) {
        while queue
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            queue.pop_front();
        }
    }

    /// How long `key` must wait before its next event is allowed, or `None` if it may go now.
    pub fn blocked(&mut self, key: &K, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let queue = self.events.get_mut(key)?;
        Self::prune(queue, self.window, now);
        if queue.len() < self.limit {
            return None;
        }
        let oldest = *queue.front()?;
        Some(
            self.window
                .saturating_sub(now.saturating_duration_since(oldest)),
        )
    }

    /// Records an event of `key`; returns whether this event used up its allowance (so callers
    /// can log a limit being reached once, not on every refusal).
    pub fn record(&mut self, key: K, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let window = self.window;
        let queue = self.events.entry(key).or_default();
        Self::prune(queue, window, now);
        queue.push_back(now);
        // A key is refused once full, so it never holds more than `limit` events.
        while queue.len() > self.limit {
            queue.pop_front();
        }
        let full = queue.len() == self.limit;
        if self.events.len() >= self.sweep_at {
            self.events.retain(|_, q| {
                Self::prune(q, window, now);
                !q.is_empty()
            });
            self.sweep_at = (self.events.len() * 2).max(MIN_SWEEP);
        }
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_limit_until_the_oldest_event_leaves_the_window() {
        let mut w = Window::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(w.blocked(&"a", t0), None);
        assert!(!w.record("a", t0));
        assert!(w.record("a", t0 + Duration::from_secs(10)));
        assert_eq!(
            w.blocked(&"a", t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(w.blocked(&"b", t0), None, "other keys are independent");
        assert_eq!(w.blocked(&"a", t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn idle_keys_are_swept_so_the_table_stays_bounded() {
        let mut w = Window::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..MIN_SWEEP * 4 {
            w.record(i, t0 + Duration::from_secs(i as u64));
        }
        assert!(w.events.len() <= MIN_SWEEP, "{}", w.events.len());
    }

    #[test]
    fn a_zero_limit_disables_the_window() {
        let mut w = Window::new(0, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(!w.record((), t0));
        assert_eq!(w.blocked(&(), t0), None);
    }
}
