//! The `sessiond` binary: parses the command line and runs it.
fn main() -> std::process::ExitCode {
    session_gateway::cli::main()
}
