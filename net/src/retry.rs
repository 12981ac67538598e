//! The one retry policy of the network client: a budget of attempts per request and an
//! exponential backoff with jitter between them.
//!
//! Every request (to a snode, to a swarm, to a server) runs in one loop that asks a [`Retry`]
//! whether another attempt is allowed after a retryable failure; path failures (another path
//! next) and destination failures (another swarm member next) spend the same budget. Jitter
//! keeps many pollers that failed together from retrying in lockstep.

use std::time::Duration;

use rand::Rng;

use super::config::NetConfig;

/// Attempts and backoff, from [`NetConfig`] (`attempts`, `backoff_initial_ms`,
/// `backoff_max_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// Backoff before the first retry.
    pub initial: Duration,
    /// Largest backoff.
    pub max: Duration,
}

impl RetryPolicy {
    /// The policy a [`NetConfig`] describes.
    pub fn from_config(c: &NetConfig) -> RetryPolicy {
        RetryPolicy {
            attempts: c.attempts.max(1),
            initial: Duration::from_millis(c.backoff_initial_ms),
            max: Duration::from_millis(c.backoff_max_ms),
        }
    }

    /// The backoff ceiling before retry number `retry` (1 = first retry): initial ×
    /// 2^(retry−1), capped at `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The backoff before retry number `retry`, with "equal jitter": half the ceiling plus a
    /// uniformly random part of the other half.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(rng.gen_range(0..=spread))
    }
}

/// One request's use of a [`RetryPolicy`]: counts failures and says how long to wait before
/// the next attempt, or that the budget is spent.
#[derive(Debug)]
pub(crate) struct Retry {
    policy: RetryPolicy,
    failures: u32,
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy) -> Retry {
        Retry {
            policy,
            failures: 0,
        }
    }

    /// Records a retryable failure: `Some(wait)` if another attempt is allowed.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        self.failures += 1;
        (self.failures < self.policy.attempts)
            .then(|| self.policy.delay(self.failures, &mut rand::thread_rng()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = RetryPolicy::from_config(&NetConfig::default());
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(400));
        assert_eq!(p.ceiling(5), Duration::from_millis(3200));
        assert_eq!(p.ceiling(6), Duration::from_millis(5000));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_millis(5000));
    }

    #[test]
    fn delay_is_jittered_within_half_and_full_ceiling() {
        let p = RetryPolicy::from_config(&NetConfig::default());
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = p.delay(2, &mut rng);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
            seen.insert(d);
        }
        assert!(seen.len() > 100, "delays vary");
    }

    #[test]
    fn budget_counts_every_failure() {
        let mut r = Retry::new(RetryPolicy {
            attempts: 3,
            initial: Duration::ZERO,
            max: Duration::ZERO,
        });
        assert!(r.failed().is_some());
        assert!(r.failed().is_some());
        assert!(r.failed().is_none());
        let mut once = Retry::new(RetryPolicy {
            attempts: 0,
            ..RetryPolicy::from_config(&NetConfig::default())
        });
        assert!(once.failed().is_none());
    }
}
