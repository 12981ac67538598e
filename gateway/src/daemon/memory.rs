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
//! has grown by more than `memory.trim_growth_mib` since the last trim: an idle or steady daemon
//! never trims, and a trim that finds the memory live sets the new floor, so live memory is not
//! trimmed again and again.

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

/// When to trim: the resident size since the last trim, and how much growth triggers one.
#[derive(Debug)]
struct Trigger {
    /// The lowest resident size seen since the last trim (or right after it), KiB.
    floor_kib: u64,
    growth_kib: u64,
}

impl Trigger {
    fn new(start_kib: u64, growth_mib: u64) -> Trigger {
        Trigger {
            floor_kib: start_kib,
            growth_kib: growth_mib.saturating_mul(1024),
        }
    }

    /// Whether a trim is due at resident size `now_kib`; a smaller size lowers the floor.
    fn due(&mut self, now_kib: u64) -> bool {
        self.floor_kib = self.floor_kib.min(now_kib);
        now_kib > self.floor_kib.saturating_add(self.growth_kib)
    }

    /// After a trim: what is left is the new floor.
    fn trimmed(&mut self, after_kib: u64) {
        self.floor_kib = after_kib;
    }
}

/// Runs until `stop` turns true: every `trim_interval_secs`, trims if the resident size grew by
/// more than `trim_growth_mib` since the last trim. Does nothing if the interval is 0 or the
/// resident size cannot be read.
pub async fn trim_task(config: MemoryConfig, mut stop: watch::Receiver<bool>) {
    if config.trim_interval_secs == 0 {
        return;
    }
    let Some(start) = resident_kib() else {
        return;
    };
    let mut trigger = Trigger::new(start, config.trim_growth_mib);
    let mut tick = tokio::time::interval(Duration::from_secs(config.trim_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|&down| down) => return,
            _ = tick.tick() => {}
        }
        let Some(before) = resident_kib() else {
            return;
        };
        if !trigger.due(before) {
            continue;
        }
        // It walks and locks every arena: a blocking call, off the runtime's workers.
        let released = tokio::task::spawn_blocking(release_free_memory)
            .await
            .unwrap_or(false);
        let after = resident_kib().unwrap_or(before);
        trigger.trimmed(after);
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
    fn trims_after_growth_and_not_again_for_live_memory() {
        let mut t = Trigger::new(50_000, 8);
        assert!(!t.due(50_000), "no growth");
        assert!(!t.due(58_000), "growth up to the limit is allowed");
        assert!(t.due(60_000), "a burst past it trims");
        // The trim found most of it live: that is the new floor, so no trim at the next check.
        t.trimmed(59_000);
        assert!(!t.due(59_500));
        // Memory freed on its own lowers the floor; growth is measured from there.
        assert!(!t.due(40_000));
        assert!(t.due(49_000));
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
