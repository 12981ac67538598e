//! The same-run comparison the protocol benches share: two closures timed in alternating rounds.

use std::time::{Duration, Instant};

/// Median time per call of `a` and `b` over `rounds` alternating rounds of `iters` calls each,
/// so both see the same machine load.
pub fn interleaved(
    rounds: usize,
    iters: u32,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            a();
        }
        ta.push(t.elapsed() / iters);
        let t = Instant::now();
        for _ in 0..iters {
            b();
        }
        tb.push(t.elapsed() / iters);
    }
    ta.sort();
    tb.sort();
    (ta[rounds / 2], tb[rounds / 2])
}
