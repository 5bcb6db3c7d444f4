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

pub use crate::config::LogFormat;

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

/// Installs the daemon's logger: env_logger at `level` behind [`ContentSafe`], text format.
/// `RUST_LOG` still refines env_logger (e.g. `RUST_LOG=komle_smol::listener=debug` raises one
/// module of ours); it never lifts the cap on library targets. A second call (tests) is a no-op.
pub fn init(level: LevelFilter) {
    init_with(level, LogFormat::Text);
}

/// As [`init`], writing each record in `format` (`[log] format`).
pub fn init_with(level: LevelFilter, format: LogFormat) {
    let inner = builder(level, format).build();
    let max = inner.filter();
    let _ = install(inner, level, max);
}

/// env_logger at `level` (refined by `RUST_LOG`) writing one line per record in `format`; the
/// daemon writes to stderr, tests redirect it with `Builder::target`.
pub fn builder(level: LevelFilter, format: LogFormat) -> env_logger::Builder {
    use std::io::Write as _;
    let mut b = env_logger::Builder::new();
    b.filter_level(level).parse_default_env();
    match format {
        LogFormat::Text => {
            b.format_timestamp_millis();
        }
        LogFormat::Json => {
            b.format(|buf, record| {
                let ts = buf.timestamp_millis().to_string();
                writeln!(buf, "{}", json_line(&ts, record))
            });
        }
        LogFormat::Journald => {
            b.format(|buf, record| writeln!(buf, "{}", journald_line(record)));
        }
    }
    b
}

/// One JSON object: `ts` (RFC 3339, UTC, milliseconds), `level`, `target`, `msg`. serde_json
/// escapes quotes and newlines, so a record is always exactly one line.
pub fn json_line(ts: &str, record: &Record<'_>) -> String {
    serde_json::json!({
        "ts": ts,
        "level": record.level().as_str(),
        "target": record.target(),
        "msg": record.args().to_string(),
    })
    .to_string()
}

/// systemd's `<N>` priority prefix (sd-daemon(3): 3 error, 4 warning, 6 info, 7 debug) before
/// `target: message`; journald strips it and files the line at that priority. No timestamp:
/// journald adds its own. Line breaks inside a message become spaces, so one record stays one
/// journal entry.
pub fn journald_line(record: &Record<'_>) -> String {
    let priority = match record.level() {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    let msg = record.args().to_string().replace(['\r', '\n'], " ");
    format!("<{priority}>{}: {msg}", record.target())
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

    /// A `Write` the tests read back (env_logger's `Target::Pipe`).
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The formatted stream of `records` passed through [`ContentSafe`] at trace.
    fn formatted(format: LogFormat, records: &[(&str, log::Level, &str)]) -> String {
        let out = Buffer::default();
        let inner = builder(LevelFilter::Trace, format)
            .target(env_logger::Target::Pipe(Box::new(out.clone())))
            .build();
        let filter = ContentSafe::new(inner, LevelFilter::Trace);
        for (target, level, msg) in records {
            filter.log(
                &Record::builder()
                    .target(target)
                    .level(*level)
                    .args(format_args!("{msg}"))
                    .build(),
            );
        }
        filter.flush();
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    const CANARY: &str = "Befundinhalt-Kanarie-4711";

    fn sample() -> Vec<(&'static str, log::Level, &'static str)> {
        vec![
            (
                "komle_smol::listener",
                log::Level::Info,
                "session 7: \"quoted\"\nsecond line",
            ),
            (
                "komle_service::ldap",
                log::Level::Error,
                "directory unreachable",
            ),
            // A library hex-dumping a SOAP body at trace: the cap must drop it in every format.
            ("ureq_proto::util", log::Level::Trace, CANARY),
            ("rustls::conn", log::Level::Warn, "alert"),
        ]
    }

    #[test]
    fn json_format_writes_one_parseable_object_per_record_without_capped_content() {
        let text = formatted(LogFormat::Json, &sample());
        assert!(!text.contains(CANARY), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], "komle_smol::listener");
        assert_eq!(lines[0]["msg"], "session 7: \"quoted\"\nsecond line");
        assert_eq!(lines[1]["level"], "ERROR");
        assert_eq!(lines[2]["target"], "rustls::conn");
        for l in &lines {
            let ts = l["ts"].as_str().unwrap();
            // RFC 3339 in UTC with milliseconds: 2026-12-07T15:00:00.123Z
            assert_eq!(ts.len(), 24, "{ts}");
            assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        }
    }

    #[test]
    fn journald_format_prefixes_the_priority_and_keeps_one_line_per_record() {
        let text = formatted(LogFormat::Journald, &sample());
        assert!(!text.contains(CANARY), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "<6>komle_smol::listener: session 7: \"quoted\" second line",
                "<3>komle_service::ldap: directory unreachable",
                "<4>rustls::conn: alert",
            ]
        );
    }

    #[test]
    fn text_format_is_env_loggers_line_with_timestamp() {
        let text = formatted(LogFormat::Text, &sample()[1..2]);
        assert!(text.starts_with('['), "{text}");
        assert!(
            text.contains("ERROR komle_service::ldap] directory unreachable"),
            "{text}"
        );
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
