//! The network's clock as seen from here: offsets learned from snodes' `"t"` fields, applied to
//! signed requests and store timestamps.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

/// Samples of the network-wide offset kept (libsession takes the median of 3).
const SAMPLES: usize = 3;
/// Per-node offsets remembered at most; the map is cleared when full.
const MAX_NODE_OFFSETS: usize = 4096;

/// Local wall clock, ms since the Unix epoch.
pub(crate) fn local_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Offsets (snode time − local time, ms): a network-wide median and per node.
#[derive(Debug, Default)]
pub(crate) struct NetworkClock {
    samples: VecDeque<i64>,
    per_node: HashMap<[u8; 32], i64>,
}

impl NetworkClock {
    /// Records that `node` said its time was `t_ms` when our clock read `local_ms`.
    /// `t_ms == 0` (absent) is ignored.
    pub(crate) fn record(&mut self, node: [u8; 32], t_ms: u64, local_ms: u64) {
        if t_ms == 0 {
            return;
        }
        let offset = i64::try_from(i128::from(t_ms) - i128::from(local_ms)).unwrap_or(0);
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(offset);
        if self.per_node.len() >= MAX_NODE_OFFSETS && !self.per_node.contains_key(&node) {
            self.per_node.clear();
        }
        self.per_node.insert(node, offset);
    }

    /// The network-wide offset: the median of the last samples (0 before any).
    pub(crate) fn offset(&self) -> i64 {
        let mut s: Vec<i64> = self.samples.iter().copied().collect();
        if s.is_empty() {
            return 0;
        }
        s.sort_unstable();
        s[s.len() / 2]
    }

    /// The offset to use for a request to `node`: its own if known, else the network's.
    pub(crate) fn offset_for(&self, node: &[u8; 32]) -> i64 {
        self.per_node
            .get(node)
            .copied()
            .unwrap_or_else(|| self.offset())
    }

    /// `local_ms` shifted by `offset`, clamped to the u64 range.
    pub(crate) fn apply(local_ms: u64, offset: i64) -> u64 {
        let v = i128::from(local_ms) + i128::from(offset);
        u64::try_from(v.max(0)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_last_three() {
        let mut c = NetworkClock::default();
        assert_eq!(c.offset(), 0);
        c.record([1; 32], 1_000_500, 1_000_000);
        assert_eq!(c.offset(), 500);
        c.record([2; 32], 1_100_000, 1_000_000);
        c.record([3; 32], 1_000_100, 1_000_000);
        assert_eq!(c.offset(), 500);
        c.record([4; 32], 1_000_200, 1_000_000);
        // Samples now 100_000, 100, 200.
        assert_eq!(c.offset(), 200);
        c.record([5; 32], 0, 1_000_000);
        assert_eq!(c.offset(), 200);
    }

    #[test]
    fn node_offset_wins_for_that_node() {
        let mut c = NetworkClock::default();
        c.record([1; 32], 2_000_000, 1_000_000);
        c.record([2; 32], 1_000_010, 1_000_000);
        c.record([3; 32], 1_000_020, 1_000_000);
        assert_eq!(c.offset_for(&[1; 32]), 1_000_000);
        assert_eq!(c.offset_for(&[9; 32]), 20);
        assert_eq!(NetworkClock::apply(1000, -2000), 0);
        assert_eq!(NetworkClock::apply(1000, 500), 1500);
        assert_eq!(NetworkClock::apply(u64::MAX, 5), u64::MAX);
    }
}
