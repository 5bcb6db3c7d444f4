//! Session and message counters of the SMTP and POP3 listeners, on every runtime, for the
//! daemon's and an embedding service's health and metrics endpoints, and the process-wide
//! latencies and errors of the Konnektor and the directory ([`Dependencies`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// Session and message counters (SMTP and POP3 listeners together).
#[derive(Debug, Default)]
pub struct Stats {
    pub sessions_total: AtomicU64,
    pub sessions_active: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub messages_protected: AtomicU64,
    pub protection_failures: AtomicU64,
    pub messages_opened: AtomicU64,
    pub open_failures: AtomicU64,
}

impl Stats {
    /// The counters in Prometheus text format, each with HELP and TYPE, followed by the
    /// process-wide [`Dependencies`] (latencies, errors, cache).
    pub fn render(&self) -> String {
        let mut out = self.render_sessions();
        DEPENDENCIES.render(&mut out);
        out
    }

    /// Only this instance's session and message counters.
    pub fn render_sessions(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 7] = [
            (
                "komle_sessions_total",
                "counter",
                "Client sessions accepted (TLS handshake done).",
                &self.sessions_total,
            ),
            (
                "komle_sessions_active",
                "gauge",
                "Client sessions running now.",
                &self.sessions_active,
            ),
            (
                "komle_sessions_refused_total",
                "counter",
                "Client connections refused over a session limit.",
                &self.sessions_refused,
            ),
            (
                "komle_messages_protected_total",
                "counter",
                "Messages signed, encrypted and handed to the MTA.",
                &self.messages_protected,
            ),
            (
                "komle_protection_failures_total",
                "counter",
                "Messages that could not be protected (client got 4xx/5xx).",
                &self.protection_failures,
            ),
            (
                "komle_messages_opened_total",
                "counter",
                "Retrieved messages decrypted and verified.",
                &self.messages_opened,
            ),
            (
                "komle_open_failures_total",
                "counter",
                "Retrieved messages that could not be opened.",
                &self.open_failures,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Upper bounds (seconds) of the latency histograms' buckets: a Konnektor signs in tens to
/// hundreds of milliseconds and may take a minute (Tab_Konf_Param timeout); a directory lookup
/// takes milliseconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// A Prometheus histogram over [`LATENCY_BUCKETS`], lock-free and const-constructible (it
/// lives in the process-wide [`DEPENDENCIES`]).
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; [`Histogram::render`] sums them up).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one call that took `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How many calls were observed.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `name_bucket{le=..}` (cumulative), `name_sum` (seconds) and `name_count`, with HELP/TYPE.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            out.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {cumulative}\n"));
        }
        let count = self.count();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n"
        ));
    }
}

/// What the last call to a dependency did, for `/health` ("the last lookup's outcome").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No call yet.
    Unknown,
    Ok,
    Failed,
}

/// Latencies and errors of the Konnektor and the directory, and the certificate cache's
/// hits, recorded where the calls are made ([`crate::konnektor_http`], [`crate::ldap`]).
///
/// WHY process-wide (like the default registry of Prometheus client libraries): the calls are
/// made deep inside transports that every Konnektor and directory client shares, and a daemon
/// is one Clientmodul per process; threading a handle through each would touch every
/// constructor for nothing the operator could tell apart.
#[derive(Debug)]
pub struct Dependencies {
    pub konnektor_latency: Histogram,
    pub ldap_latency: Histogram,
    /// Transport failures towards the Konnektor (unreachable, TLS, HTTP status).
    pub konnektor_transport_errors: AtomicU64,
    /// SOAP faults by gematik error code (`GERROR:Code`; 0 when the fault carries none).
    konnektor_faults: Mutex<BTreeMap<i64, u64>>,
    pub ldap_errors: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// The last directory lookup: 0 unknown, 1 ok, 2 failed.
    ldap_last: AtomicU8,
}

/// The one [`Dependencies`] of this process.
pub static DEPENDENCIES: Dependencies = Dependencies::new();

/// The process-wide [`Dependencies`].
pub fn dependencies() -> &'static Dependencies {
    &DEPENDENCIES
}

impl Default for Dependencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Dependencies {
    pub const fn new() -> Self {
        Dependencies {
            konnektor_latency: Histogram::new(),
            ldap_latency: Histogram::new(),
            konnektor_transport_errors: AtomicU64::new(0),
            konnektor_faults: Mutex::new(BTreeMap::new()),
            ldap_errors: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            ldap_last: AtomicU8::new(0),
        }
    }

    /// A Konnektor call that took `elapsed`; `ok` false for a transport failure.
    pub fn konnektor_call(&self, elapsed: Duration, ok: bool) {
        self.konnektor_latency.observe(elapsed);
        if !ok {
            self.konnektor_transport_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A SOAP fault body (HTTP 500) from the Konnektor: counted under its gematik code. Only
    /// the code is read (the body is a fault, never a message; nothing of it is kept).
    pub fn konnektor_fault(&self, body: &[u8]) {
        // Any response parser reports a fault envelope as `KonnektorError::Fault` with the
        // gematik detail; GetPinStatus's is as good as any.
        let code = komle_core::konnektor::get_pin_status::parse(body)
            .err()
            .and_then(|e| e.gematik_code())
            .unwrap_or(0);
        self.add_fault(code);
    }

    /// Counts one fault with gematik `code`.
    pub fn add_fault(&self, code: i64) {
        let mut faults = match self.konnektor_faults.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *faults.entry(code).or_insert(0) += 1;
    }

    /// The faults counted under `code`.
    pub fn faults(&self, code: i64) -> u64 {
        match self.konnektor_faults.lock() {
            Ok(g) => g.get(&code).copied().unwrap_or(0),
            Err(poisoned) => poisoned.into_inner().get(&code).copied().unwrap_or(0),
        }
    }

    /// A directory lookup that took `elapsed`; `ok` false when the directory failed.
    pub fn ldap_lookup(&self, elapsed: Duration, ok: bool) {
        self.ldap_latency.observe(elapsed);
        if !ok {
            self.ldap_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.ldap_last
            .store(if ok { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// The last directory lookup's outcome.
    pub fn ldap_last(&self) -> Outcome {
        match self.ldap_last.load(Ordering::Relaxed) {
            1 => Outcome::Ok,
            2 => Outcome::Failed,
            _ => Outcome::Unknown,
        }
    }

    /// A certificate-cache lookup (A_2026): `hit` when the directory was not asked.
    pub fn cache_lookup(&self, hit: bool) {
        let c = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The lookups between two readings of the cache's own counters.
    pub fn cache_counted(
        &self,
        before: komle_core::directory::CacheStats,
        after: komle_core::directory::CacheStats,
    ) {
        let hits = after.hits.saturating_sub(before.hits);
        let misses = after.misses.saturating_sub(before.misses);
        self.cache_hits.fetch_add(hits, Ordering::Relaxed);
        self.cache_misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// The histograms and counters in Prometheus text format with HELP/TYPE.
    pub fn render(&self, out: &mut String) {
        self.konnektor_latency.render(
            "komle_konnektor_request_duration_seconds",
            "Konnektor HTTPS calls (SOAP and connector.sds), answer or failure.",
            out,
        );
        self.ldap_latency.render(
            "komle_directory_lookup_duration_seconds",
            "Directory (VZD, LDAP) lookups, answer or failure.",
            out,
        );
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        };
        counter(
            out,
            "komle_konnektor_transport_errors_total",
            "Konnektor calls that failed below SOAP (unreachable, TLS, HTTP status).",
            &self.konnektor_transport_errors,
        );
        counter(
            out,
            "komle_directory_errors_total",
            "Directory lookups that failed (unreachable, timeout, refused).",
            &self.ldap_errors,
        );
        counter(
            out,
            "komle_certificate_cache_hits_total",
            "Recipient certificate lookups answered from the cache (A_2026).",
            &self.cache_hits,
        );
        counter(
            out,
            "komle_certificate_cache_misses_total",
            "Recipient certificate lookups that went to the directory.",
            &self.cache_misses,
        );
        let name = "komle_konnektor_faults_total";
        out.push_str(&format!(
            "# HELP {name} SOAP faults of the Konnektor by gematik error code (0: none given).\n# TYPE {name} counter\n"
        ));
        let faults = match self.konnektor_faults.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (code, n) in faults {
            out.push_str(&format!("{name}{{code=\"{code}\"}} {n}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample line's metric has a HELP and a TYPE line before it.
    fn assert_help_and_type(text: &str) {
        let mut described = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                described.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| described.contains(*b)))
                    .unwrap_or(name);
                assert!(described.contains(base), "no TYPE for {line}");
            }
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(120));
        let mut out = String::new();
        h.render("x_seconds", "test", &mut out);
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"60\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum 120.033\n"), "{out}");
        assert!(out.contains("x_seconds_count 3\n"), "{out}");
        assert_help_and_type(&out);
    }

    #[test]
    fn dependencies_render_faults_by_gematik_code_and_cache_hits() {
        let d = Dependencies::new();
        d.add_fault(4004);
        d.add_fault(4004);
        d.konnektor_fault(b"not a fault envelope");
        let fault = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
<s:Fault><faultcode>s:Server</faultcode><faultstring>Kontext</faultstring>\
<detail><e:Error xmlns:e=\"http://ws.gematik.de/tel/error/v2.0\"><e:MessageID>x</e:MessageID>\
<e:Timestamp>t</e:Timestamp><e:Trace><e:EventID>1</e:EventID><e:Instance>i</e:Instance>\
<e:LogReference>l</e:LogReference><e:CompType>K</e:CompType><e:Code>4004</e:Code>\
<e:Severity>Error</e:Severity><e:ErrorType>Technical</e:ErrorType>\
<e:ErrorText>Ungueltige Mandanten-ID</e:ErrorText></e:Trace></e:Error></detail></s:Fault>\
</s:Body></s:Envelope>";
        d.konnektor_fault(fault.as_bytes());
        d.cache_lookup(true);
        d.cache_lookup(false);
        d.cache_lookup(true);
        assert_eq!(d.ldap_last(), Outcome::Unknown);
        d.ldap_lookup(Duration::from_millis(2), false);
        assert_eq!(d.ldap_last(), Outcome::Failed);
        d.ldap_lookup(Duration::from_millis(2), true);
        assert_eq!(d.ldap_last(), Outcome::Ok);
        let mut out = String::new();
        d.render(&mut out);
        assert!(
            out.contains("komle_konnektor_faults_total{code=\"4004\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("komle_konnektor_faults_total{code=\"0\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("komle_certificate_cache_hits_total 2\n"),
            "{out}"
        );
        assert!(
            out.contains("komle_certificate_cache_misses_total 1\n"),
            "{out}"
        );
        assert!(out.contains("komle_directory_errors_total 1\n"), "{out}");
        assert!(
            out.contains("komle_directory_lookup_duration_seconds_count 2\n"),
            "{out}"
        );
        assert_help_and_type(&out);
    }

    #[test]
    fn stats_render_has_help_and_type_for_every_sample() {
        let s = Stats::default();
        s.sessions_total.fetch_add(3, Ordering::Relaxed);
        let text = s.render();
        assert!(text.contains("komle_sessions_total 3\n"));
        assert!(text.contains("# TYPE komle_konnektor_request_duration_seconds histogram\n"));
        assert_help_and_type(&text);
    }
}
