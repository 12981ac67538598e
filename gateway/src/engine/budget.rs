//! The pollers' shared budget of onion requests (`poll.max_requests_per_sec`): a token bucket
//! every poll draws one request from before it goes out, so a daemon with many identities
//! spreads their polls instead of bursting, and its request rate has a ceiling whatever the
//! number of identities. Polls reserve their slot (the bucket may go negative) and sleep until
//! it, so waiting pollers go in the order they asked.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` requests per second, up to one second's worth saved up.
#[derive(Debug)]
pub struct Budget {
    /// Requests per second; 0: no limit.
    rate: f64,
    // std Mutex: a few arithmetic operations, never held across an await.
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// A budget of `per_sec` requests per second (0: unlimited).
    pub fn new(per_sec: u32) -> Budget {
        Budget {
            rate: f64::from(per_sec),
            state: Mutex::new(Bucket {
                tokens: f64::from(per_sec),
                at: Instant::now(),
            }),
        }
    }

    /// Takes one request from the budget at `now`: how long to wait before sending it.
    pub fn reserve_at(&self, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = b.at.max(now);
        b.tokens = (b.tokens + elapsed * self.rate).min(self.rate);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }

    /// [`Budget::reserve_at`] now.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }
}

/// `d` stretched or shrunk by a random factor in [0.9, 1.1], so timers of many identities
/// drift apart instead of firing together.
pub fn jitter(d: Duration) -> Duration {
    use rand::Rng as _;
    d.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_spreads_requests_at_its_rate() {
        let b = Budget::new(10);
        let t0 = Instant::now();
        // A second's worth goes at once...
        for _ in 0..10 {
            assert_eq!(b.reserve_at(t0), Duration::ZERO);
        }
        // ...then each further request waits its turn, in order: 0.1 s, 0.2 s, 0.3 s.
        let waits: Vec<u64> = (0..3)
            .map(|_| (b.reserve_at(t0).as_secs_f64() * 1e3).round() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 300]);
        // Time refills it (never beyond a second's worth).
        let later = t0 + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(b.reserve_at(later), Duration::ZERO);
        }
        assert!(b.reserve_at(later) > Duration::ZERO);
        // 0: no limit.
        let free = Budget::new(0);
        for _ in 0..1000 {
            assert_eq!(free.reserve_at(t0), Duration::ZERO);
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000)).as_millis();
            assert!((900..=1100).contains(&j), "{j}");
        }
    }
}
