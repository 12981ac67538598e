//! The `sessiond` binary: sets the allocator up, parses the command line and runs it.
fn main() -> std::process::ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fixed_mmap_threshold();
    session_gateway::cli::main()
}

/// Keeps glibc malloc's mmap threshold at its starting value, 128 KiB.
///
/// glibc raises the threshold to the size of every large block it frees (up to 32 MiB), so
/// after the first 10 MB attachment each later buffer below that size is carved from the
/// arenas, whose freed memory stays resident: the attachments benchmark measured a sending
/// daemon's peak RSS at 74 MiB with the moving threshold and 59 MiB with it fixed (a receiving
/// one 69 → 57). Large buffers then stay mmapped and go back to the system when freed.
///
/// glibc reads the setting only from the environment, at startup, and `mallopt` would need
/// `unsafe`; so the process starts itself once more with `MALLOC_MMAP_THRESHOLD_` set (same
/// pid, arguments and descriptors). A threshold or tunables the user set are left alone, and if
/// the restart fails the daemon simply runs with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MALLOC_MMAP_THRESHOLD_";
    if std::env::var_os(VAR).is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    // Returns only if the exec failed.
    let _failed = cmd.args(args).env(VAR, "131072").exec();
}
