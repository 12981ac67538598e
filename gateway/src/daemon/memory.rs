//! Gives freed heap memory back to the system after a burst (a storm of connections, a large
//! sync), so the daemon's resident size returns near its baseline instead of staying at its peak.
//!
//! glibc's malloc keeps what a program frees on its arenas' free lists and returns pages to the
//! system only from the top of each heap. Thousands of connections that come and go leave the
//! heaps of the runtime's worker threads full of free holes below a few live allocations: in the
//! soak bench's storm (5 rounds of 2,000 connections per listener) the two worker arenas held
//! 120 and 138 MiB of which all but 2 MiB was free, and RSS stayed at 318 MiB (47 before).
//! `malloc_trim(0)` walks every arena and releases its free pages (`MADV_DONTNEED`): 318 → 70 MiB.
//!
//! The trimmer reads the resident size every `memory.trim_interval_secs` and trims only when it
//! is more than `memory.trim_growth_mib` above the lowest seen (from start-up on): a daemon that
//! stays near it never trims, and after a trim that finds the memory live the next checks are
//! skipped (at most two), so memory that grew for good (caches, paths, more identities) costs a
//! trim every third check that releases little (milliseconds).

use std::time::Duration;

use tokio::sync::watch;

use crate::config::MemoryConfig;

/// Returns the free pages of every malloc arena to the system; true if any were released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and glibc locks each arena while it walks it, so it
    // may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, macOS) return memory on their own, or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// The process's resident size in KiB (`VmRSS` of `/proc/self/status`); None without procfs.
pub fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// At most this many checks are skipped after a trim that found the memory live, so a daemon
/// whose live memory grew trims at most every third check, yet one whose burst is over trims
/// within a few checks.
const MAX_SKIP: u32 = 2;

/// When to trim: the lowest resident size seen, and how much growth above it calls for a trim.
#[derive(Debug)]
struct Trigger {
    /// The lowest resident size seen (at a check or right after a trim), KiB.
    floor_kib: u64,
    growth_kib: u64,
    /// Checks still to skip, after trims that released little.
    skip: u32,
    /// How many to skip after the next trim that releases little (doubles up to [`MAX_SKIP`]).
    backoff: u32,
}

impl Trigger {
    fn new(start_kib: u64, growth_mib: u64) -> Trigger {
        Trigger {
            floor_kib: start_kib,
            growth_kib: growth_mib.saturating_mul(1024),
            skip: 0,
            backoff: 1,
        }
    }

    /// Whether a trim is due at resident size `now_kib`.
    ///
    /// The floor is never raised: a trim during a burst finds most memory live, and the same
    /// memory, freed when the burst ends, must still be given back. A daemon whose live memory
    /// grew for good pays for it with a trim every few checks that releases little.
    fn due(&mut self, now_kib: u64) -> bool {
        self.floor_kib = self.floor_kib.min(now_kib);
        if now_kib <= self.floor_kib.saturating_add(self.growth_kib) {
            self.skip = 0;
            self.backoff = 1;
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// After a trim from `before_kib` to `after_kib`: if it released little, skip the next
    /// checks (more after each such trim).
    fn trimmed(&mut self, before_kib: u64, after_kib: u64) {
        self.floor_kib = self.floor_kib.min(after_kib);
        if before_kib.saturating_sub(after_kib) < self.growth_kib / 2 {
            self.skip = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_SKIP);
        } else {
            self.skip = 0;
            self.backoff = 1;
        }
    }
}

/// Runs until `stop` turns true: every `trim_interval_secs`, trims if the resident size is more
/// than `trim_growth_mib` above the lowest seen. Does nothing if the interval is 0.
pub async fn trim_task(config: MemoryConfig, mut stop: watch::Receiver<bool>) {
    if config.trim_interval_secs == 0 {
        return;
    }
    let period = Duration::from_secs(config.trim_interval_secs);
    // The floor is the size before the listeners open: a first check made during a burst would
    // take the burst for the baseline and never give it back.
    let mut trigger = resident_kib().map(|kib| Trigger::new(kib, config.trim_growth_mib));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|&down| down) => return,
            _ = tick.tick() => {}
        }
        // Unreadable for now (out of file descriptors in a storm): try at the next check.
        let Some(before) = resident_kib() else {
            tracing::debug!("cannot read the resident size");
            continue;
        };
        let trigger = trigger.get_or_insert_with(|| Trigger::new(before, config.trim_growth_mib));
        if !trigger.due(before) {
            continue;
        }
        // It walks and locks every arena: a blocking call, off the runtime's workers.
        let released = tokio::task::spawn_blocking(release_free_memory)
            .await
            .unwrap_or(false);
        let after = resident_kib().unwrap_or(before);
        trigger.trimmed(before, after);
        tracing::debug!(
            before_kib = before,
            after_kib = after,
            released,
            "gave freed memory back to the system"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_parses_from_a_status_text() {
        let status = "Name:\tsessiond\nVmPeak:\t  400000 kB\nVmRSS:\t   69780 kB\nThreads:\t63\n";
        assert_eq!(parse_vm_rss(status), Some(69_780));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn trims_after_growth_and_again_once_a_burst_is_freed() {
        let mut t = Trigger::new(50_000, 8);
        assert!(!t.due(50_000), "no growth");
        assert!(!t.due(58_000), "growth up to the limit is allowed");
        assert!(t.due(300_000), "a burst past it trims");
        // Mid-burst the memory is live: little released, the next check is skipped...
        t.trimmed(300_000, 299_000);
        assert!(!t.due(300_000));
        // ...then the burst's memory, freed but resident, is trimmed.
        assert!(t.due(300_000));
        t.trimmed(300_000, 60_000);
        assert!(!t.due(57_000), "back near the floor");
        // Live memory that grew for good: trims grow rarer, down to one in MAX_SKIP + 1 checks.
        let mut trims = 0;
        for _ in 0..30 {
            if t.due(100_000) {
                trims += 1;
                t.trimmed(100_000, 99_900);
            }
        }
        assert!((10..=11).contains(&trims), "{trims} trims in 30 checks");
    }

    #[test]
    fn the_process_reads_its_own_resident_size_and_trims_without_harm() {
        let rss = resident_kib().expect("procfs on the test machine");
        assert!(rss > 0);
        // Give something back: a few MiB freed in small pieces, then a trim.
        let pieces: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 1024]).collect();
        drop(pieces);
        let _ = release_free_memory();
        assert!(resident_kib().is_some());
    }
}
