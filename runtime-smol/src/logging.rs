//! Log setup: env_logger with the configured level, one line per record on stderr.
//!
//! `RUST_LOG` still wins when set, so an operator can raise the level of one module without
//! editing the file.

/// Installs the logger; a second call (tests) is a no-op.
pub fn init(level: log::LevelFilter) {
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .format_timestamp_millis()
        .try_init();
}
