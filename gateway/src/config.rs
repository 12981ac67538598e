//! The daemon configuration (TOML).
