//! Log setup: every record passes [`ContentSafe`] before it reaches env_logger (one line per
//! record on stderr).
//!
//! WHY a filter in front of the logger: the libraries under the daemon log what they carry at
//! debug/trace — ureq-proto hex-dumps every HTTP request and answer to the Konnektor (the SOAP
//! bodies with the plaintext mail inside, base64), rustls and ldap3/lber log handshake and
//! protocol details. The Clientmodul must never put message content, passwords or SOAP bodies
//! into a log (A_2005: content never on disk; examples/komle-cm.toml promises it). So every
//! target that is not one of ours (`komle*`) is capped at [`LIBRARY_CAP`] whatever the
//! configured level, `--log-level` or `RUST_LOG` say. [`init`] is the only way the daemon
//! installs its logger, and the cap sits outside env_logger, so `RUST_LOG=trace` cannot lift it.
//! Our own targets may log at every level; they log sizes, counts, session ids and reasons,
//! never content (`demo/tests/log_canary.rs` checks this at trace).

use std::sync::atomic::{AtomicU64, Ordering};

use log::{LevelFilter, Log, Metadata, Record, SetLoggerError};

/// The most verbose level any library target may log at: warnings and errors (TLS alerts,
/// connection failures) stay visible, the content-carrying debug/trace output never appears.
pub const LIBRARY_CAP: LevelFilter = LevelFilter::Warn;

/// Our own crates (`komle_core`, `komle_service`, `komle_smol`, `komle_demo`, `komle_conformance`,
/// the `komle-cm` binary ...):
/// their log statements are written to carry no content, so they follow the configured level.
pub fn is_own_target(target: &str) -> bool {
    target.starts_with("komle")
}

/// The highest level a record of `target` may have to pass, given the configured `level`.
pub fn effective_level(target: &str, level: LevelFilter) -> LevelFilter {
    if is_own_target(target) {
        level
    } else {
        level.min(LIBRARY_CAP)
    }
}

/// A [`Log`] in front of another that drops every record above its target's
/// [`effective_level`]: library targets never pass above [`LIBRARY_CAP`].
pub struct ContentSafe<L> {
    inner: L,
    level: LevelFilter,
    capped: AtomicU64,
}

impl<L: Log> ContentSafe<L> {
    /// `level` is the configured level for our own targets.
    pub fn new(inner: L, level: LevelFilter) -> Self {
        Self {
            inner,
            level,
            capped: AtomicU64::new(0),
        }
    }

    /// Whether a record with this metadata passes the cap and the configured level.
    pub fn allows(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= effective_level(metadata.target(), self.level)
    }

    /// Records of library targets dropped so far because they were above [`LIBRARY_CAP`]
    /// (while within the configured level): proof in tests that the cap did something.
    pub fn capped(&self) -> u64 {
        self.capped.load(Ordering::Relaxed)
    }

    /// The logger behind the filter.
    pub fn inner(&self) -> &L {
        &self.inner
    }
}

impl<L: Log> Log for ContentSafe<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Libraries ask `log_enabled!` before formatting expensive or sensitive details (ureq
        // un-redacts headers at trace): they must get "no" for what the cap drops.
        self.allows(metadata) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.allows(record.metadata()) {
            self.inner.log(record);
        } else if record.level() <= self.level {
            self.capped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs `inner` behind [`ContentSafe`] as the process's logger and sets the global maximum
/// level to `max` (at least as verbose as `level` so our own targets can reach it); returns
/// the installed filter.
pub fn install<L: Log + 'static>(
    inner: L,
    level: LevelFilter,
    max: LevelFilter,
) -> Result<&'static ContentSafe<L>, SetLoggerError> {
    let filter: &'static ContentSafe<L> = Box::leak(Box::new(ContentSafe::new(inner, level)));
    log::set_logger(filter)?;
    log::set_max_level(max.max(level));
    Ok(filter)
}

/// Installs the daemon's logger: env_logger at `level` behind [`ContentSafe`]. `RUST_LOG`
/// still refines env_logger (e.g. `RUST_LOG=komle_smol::listener=debug` raises one module of
/// ours); it never lifts the cap on library targets. A second call (tests) is a no-op.
pub fn init(level: LevelFilter) {
    let inner = env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .format_timestamp_millis()
        .build();
    let max = inner.filter();
    let _ = install(inner, level, max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Sink(Mutex<Vec<(String, log::Level)>>);

    impl Log for Sink {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            if let Ok(mut v) = self.0.lock() {
                v.push((record.target().to_owned(), record.level()));
            }
        }
        fn flush(&self) {}
    }

    fn emit(filter: &ContentSafe<Sink>, target: &str, level: log::Level) {
        filter.log(
            &Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("x"))
                .build(),
        );
    }

    #[test]
    fn libraries_are_capped_at_warn_even_when_trace_is_configured() {
        let filter = ContentSafe::new(Sink::default(), LevelFilter::Trace);
        for target in ["ureq_proto::util", "rustls::conn", "lber", "ldap3", "hyper"] {
            for level in [log::Level::Trace, log::Level::Debug, log::Level::Info] {
                emit(&filter, target, level);
            }
            emit(&filter, target, log::Level::Warn);
        }
        emit(&filter, "komle_smol::listener", log::Level::Trace);
        emit(&filter, "komle_core::smtp", log::Level::Debug);
        let seen = filter.inner().0.lock().unwrap().clone();
        assert_eq!(filter.capped(), 15);
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert!(
            seen.iter()
                .all(|(t, l)| t.starts_with("komle") || *l <= log::Level::Warn)
        );
    }

    #[test]
    fn configured_level_still_applies_to_everyone() {
        let filter = ContentSafe::new(Sink::default(), LevelFilter::Error);
        emit(&filter, "komle_smol", log::Level::Info);
        emit(&filter, "rustls", log::Level::Warn);
        emit(&filter, "rustls", log::Level::Error);
        assert_eq!(filter.inner().0.lock().unwrap().len(), 1);
        // Below the configured level is not the cap's doing.
        assert_eq!(filter.capped(), 0);
    }

    #[test]
    fn enabled_answers_no_for_capped_library_records() {
        let filter = ContentSafe::new(Sink::default(), LevelFilter::Trace);
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(!filter.enabled(&meta("ureq", log::Level::Trace)));
        assert!(filter.enabled(&meta("ureq", log::Level::Warn)));
        assert!(filter.enabled(&meta("komle_smol", log::Level::Trace)));
    }
}
