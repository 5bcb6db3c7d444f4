//! The Konnektor's service directory (`connector.sds`), read lazily and re-read on connection
//! problems (KOM-LE-A_2076).
//!
//! A_2076: the endpoints come from the service directory and are cached; when a connection
//! problem occurs ("Dienst nicht erreichbar") the directory MUST be refreshed. So:
//! - a Konnektor that is down when the daemon starts does not stop the start: the directory is
//!   read on first use, and until it can be read every call fails with a typed
//!   [`DirectoryError`] (the sessions answer 4xx / `-ERR`, as for any Konnektor outage);
//! - [`KonnektorDirectory::call`] re-reads `connector.sds` when a call fails with "no
//!   connection" or "connection lost" and retries the call once at the endpoint the fresh
//!   directory names for the same service;
//! - one log line per change of reachability (down → up, up → down), not one per failed call.
//!
//! The retry needs the request body a second time. Bodies up to [`RETRY_COPY_LIMIT`] are kept
//! (in wiped memory) for that; larger ones — SignDocument, EncryptDocument, DecryptDocument and
//! VerifyDocument carrying a mail — are not retried, only the directory is refreshed, because a
//! second copy of a 25 MB mail would break the memory goal of BENCHMARKS.md (peak < 4x the
//! message); the client's own retry of the 4xx then uses the fresh endpoints. A VerifyPin whose
//! connection broke is not retried either: the PIN may have been counted already.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use komle_core::konnektor::{
    KonnektorEndpoints, KonnektorError, ServiceDirectory, TransportError as Kind,
};
use komle_core::secret::SecretBytes;

use crate::contracts::BoxFuture;
use crate::konnektor_http::{KonnektorHttp, TransportError};
use crate::services::Konnektor;

/// Largest request body kept for the one retry after a connection problem (see module docs).
pub const RETRY_COPY_LIMIT: usize = 256 * 1024;

/// Where `connector.sds` comes from: the Konnektor over HTTPS in production.
pub trait SdsSource: Send + Sync {
    /// Fetches `connector.sds`.
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, TransportError>>;
}

/// `connector.sds` over the Konnektor's HTTPS transport (`[konnektor] sds_url`).
pub struct HttpSds {
    pub http: KonnektorHttp,
    pub url: String,
}

impl SdsSource for HttpSds {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        Box::pin(self.http.get(&self.url))
    }
}

/// Why no endpoints are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryError {
    /// `connector.sds` could not be fetched; the kind names why (no host, no body).
    Unreachable(Kind),
    /// `connector.sds` was fetched but is unusable (not parseable, no usable endpoint).
    Unusable(KonnektorError),
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryError::Unreachable(k) => {
                write!(f, "Dienstverzeichnis des Konnektors nicht lesbar ({k})")
            }
            DirectoryError::Unusable(e) => {
                write!(f, "Dienstverzeichnis des Konnektors unbrauchbar ({e})")
            }
        }
    }
}

impl std::error::Error for DirectoryError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reachability {
    Unknown,
    Up,
    Down,
}

#[derive(Debug)]
struct State {
    endpoints: Option<KonnektorEndpoints>,
    /// Counts successful reads; a caller that saw generation `g` before its call and finds a
    /// higher one after it knows somebody else refreshed meanwhile.
    generation: u64,
    reachability: Reachability,
}

/// The cached endpoints and how to renew them. Shared by all sessions (`Arc`).
pub struct KonnektorDirectory {
    source: Option<Arc<dyn SdsSource>>,
    state: Mutex<State>,
    reads: AtomicU64,
}

impl std::fmt::Debug for KonnektorDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KonnektorDirectory")
            .field("reads", &self.sds_reads())
            .field("resolved", &self.current().is_some())
            .finish()
    }
}

/// Whether a transport failure is a connection problem in the sense of A_2076.
pub fn is_connection_problem(kind: Kind) -> bool {
    matches!(kind, Kind::Unreachable | Kind::ConnectionLost)
}

impl KonnektorDirectory {
    /// Nothing read yet: the first [`Self::endpoints`] reads `connector.sds`.
    pub fn new(source: Arc<dyn SdsSource>) -> Self {
        Self::with(Some(source), None)
    }

    /// `connector.sds` from `url` over `http`.
    pub fn over_http(http: KonnektorHttp, url: impl Into<String>) -> Self {
        Self::new(Arc::new(HttpSds {
            http,
            url: url.into(),
        }))
    }

    /// Fixed endpoints and no directory to re-read (the demo and tests that bring their own);
    /// [`Self::call`] then makes no second attempt either.
    pub fn fixed(endpoints: KonnektorEndpoints) -> Self {
        Self::with(None, Some(endpoints))
    }

    fn with(source: Option<Arc<dyn SdsSource>>, endpoints: Option<KonnektorEndpoints>) -> Self {
        let reachability = if endpoints.is_some() {
            Reachability::Up
        } else {
            Reachability::Unknown
        };
        KonnektorDirectory {
            source,
            state: Mutex::new(State {
                endpoints,
                generation: 0,
                reachability,
            }),
            reads: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The endpoints last read, if any.
    pub fn current(&self) -> Option<KonnektorEndpoints> {
        self.lock().endpoints.clone()
    }

    /// How often `connector.sds` was fetched (tests and metrics).
    pub fn sds_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Takes a fetched `connector.sds` (or why it could not be fetched) as the new state; logs
    /// when reachability changes. The daemon's start calls this with a blocking fetch, so a
    /// Konnektor that is down only leaves the directory unresolved.
    pub fn install(
        &self,
        fetched: Result<Vec<u8>, TransportError>,
    ) -> Result<KonnektorEndpoints, DirectoryError> {
        let result = match fetched {
            Ok(bytes) => ServiceDirectory::parse(&bytes)
                .and_then(|d| d.endpoints())
                .map_err(DirectoryError::Unusable),
            Err(e) => {
                // The library's text (host, OS error) stays in this line; the kind goes on.
                log::debug!("connector.sds: {e}");
                Err(DirectoryError::Unreachable(e.kind()))
            }
        };
        let mut state = self.lock();
        match &result {
            Ok(endpoints) => {
                if state.reachability != Reachability::Up
                    || state.endpoints.as_ref() != Some(endpoints)
                {
                    log::info!(
                        "Konnektor service directory read: signature service {:?}, ECC capable: {}",
                        endpoints.signature_version,
                        endpoints.ecc_capable
                    );
                }
                state.endpoints = Some(endpoints.clone());
                state.generation += 1;
                state.reachability = Reachability::Up;
            }
            Err(e) => {
                if state.reachability != Reachability::Down {
                    log::warn!("Konnektor unavailable: {e}");
                }
                state.reachability = Reachability::Down;
            }
        }
        result
    }

    /// Re-reads `connector.sds` now (A_2076). Without a source (fixed endpoints) the current
    /// endpoints are returned unchanged.
    pub async fn refresh(&self) -> Result<KonnektorEndpoints, DirectoryError> {
        let Some(source) = &self.source else {
            return self
                .current()
                .ok_or(DirectoryError::Unreachable(Kind::Unreachable));
        };
        self.reads.fetch_add(1, Ordering::Relaxed);
        let fetched = source.fetch().await;
        self.install(fetched)
    }

    /// The endpoints, reading `connector.sds` if none are known yet.
    pub async fn endpoints(&self) -> Result<KonnektorEndpoints, DirectoryError> {
        match self.current() {
            Some(e) => Ok(e),
            None => self.refresh().await,
        }
    }

    /// Refreshes unless somebody else did since `seen` (many sessions hitting the same outage
    /// read the directory once, not once each).
    async fn refresh_since(&self, seen: u64) -> Result<KonnektorEndpoints, DirectoryError> {
        {
            let state = self.lock();
            if state.generation > seen
                && let Some(e) = &state.endpoints
            {
                return Ok(e.clone());
            }
        }
        self.refresh().await
    }

    fn note_success(&self) {
        let mut state = self.lock();
        if state.reachability == Reachability::Down {
            log::info!("Konnektor reachable again");
            state.reachability = Reachability::Up;
        }
    }

    /// POSTs a SOAP request built from `used` to `url`; on a connection problem re-reads the
    /// directory and retries once at the fresh endpoint of the same service (A_2076, see the
    /// module docs for the bodies that are not retried).
    pub async fn call(
        &self,
        konnektor: &dyn Konnektor,
        used: &KonnektorEndpoints,
        url: &str,
        soap_action: &'static str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let seen = self.generation();
        let retry_copy = (body.len() <= RETRY_COPY_LIMIT).then(|| SecretBytes::from(&body[..]));
        let first = konnektor.call(url, soap_action, body).await;
        let kind = match &first {
            Ok(_) => {
                self.note_success();
                return first;
            }
            Err(e) if is_connection_problem(e.kind()) => e.kind(),
            Err(_) => return first,
        };
        if self.source.is_none() {
            // Fixed endpoints: nothing to re-read, so nothing new to retry at.
            return first;
        }
        log::warn!(
            "Konnektor call {soap_action} failed ({kind}); re-reading connector.sds (A_2076)"
        );
        let fresh = match self.refresh_since(seen).await {
            Ok(fresh) => fresh,
            Err(_) => return first,
        };
        let non_idempotent = kind == Kind::ConnectionLost && soap_action.ends_with("#VerifyPin");
        let Some(copy) = retry_copy.filter(|_| !non_idempotent) else {
            return first;
        };
        let url = remap(used, &fresh, url);
        let second = konnektor
            .call(&url, soap_action, copy.as_slice().to_vec())
            .await;
        if second.is_ok() {
            self.note_success();
        }
        second
    }
}

/// The URL of the same service in `fresh` as `url` was in `used`; `url` itself when it is not
/// one of `used`'s endpoints.
pub fn remap(used: &KonnektorEndpoints, fresh: &KonnektorEndpoints, url: &str) -> String {
    let pairs = [
        (&used.signature_service, &fresh.signature_service),
        (&used.encryption_service, &fresh.encryption_service),
        (&used.certificate_service, &fresh.certificate_service),
        (&used.event_service, &fresh.event_service),
    ];
    for (old, new) in pairs {
        if old == url {
            return new.clone();
        }
    }
    if let (Some(old), Some(new)) = (&used.card_service, &fresh.card_service)
        && old == url
    {
        return new.clone();
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use komle_core::konnektor::SignatureServiceVersion;

    use super::*;

    fn endpoints(host: &str) -> KonnektorEndpoints {
        KonnektorEndpoints {
            signature_service: format!("https://{host}/sig"),
            signature_version: SignatureServiceVersion::V7_5,
            encryption_service: format!("https://{host}/enc"),
            certificate_service: format!("https://{host}/cert"),
            event_service: format!("https://{host}/evt"),
            card_service: Some(format!("https://{host}/card")),
            ecc_capable: true,
        }
    }

    /// A Konnektor whose every call fails with `kind`; counts calls.
    struct Failing(Kind, AtomicUsize);

    impl Konnektor for Failing {
        fn call<'a>(
            &'a self,
            _url: &'a str,
            _action: &'static str,
            _body: Vec<u8>,
        ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let e = match self.0 {
                Kind::ConnectionLost => TransportError::ConnectionDropped("reset".into()),
                Kind::Timeout => TransportError::Timeout,
                _ => TransportError::ConnectionRefused("refused".into()),
            };
            Box::pin(async move { Err(e) })
        }
    }

    /// A service directory that cannot be fetched; counts attempts.
    struct Fixed(AtomicUsize);

    impl SdsSource for Fixed {
        fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(TransportError::ConnectionRefused("down".into())) })
        }
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        smol::block_on(f)
    }

    #[test]
    fn a_2076_remap_finds_the_same_service_in_the_fresh_directory() {
        let (a, b) = (endpoints("a.test"), endpoints("b.test"));
        assert_eq!(remap(&a, &b, "https://a.test/cert"), "https://b.test/cert");
        assert_eq!(remap(&a, &b, "https://a.test/card"), "https://b.test/card");
        assert_eq!(remap(&a, &b, "https://elsewhere/x"), "https://elsewhere/x");
    }

    #[test]
    fn a_2076_only_no_connection_and_connection_lost_are_connection_problems() {
        assert!(is_connection_problem(Kind::Unreachable));
        assert!(is_connection_problem(Kind::ConnectionLost));
        assert!(!is_connection_problem(Kind::Timeout));
        assert!(!is_connection_problem(Kind::Tls));
        assert!(!is_connection_problem(Kind::HttpStatus(503)));
    }

    #[test]
    fn a_2076_timeout_does_not_refresh_and_fixed_endpoints_never_retry() {
        let source = Arc::new(Fixed(AtomicUsize::new(0)));
        let dir = KonnektorDirectory::with(Some(source.clone()), Some(endpoints("a.test")));
        let k = Failing(Kind::Timeout, AtomicUsize::new(0));
        let e = endpoints("a.test");
        let r = block_on(dir.call(
            &k,
            &e,
            &e.certificate_service,
            "x#VerifyCertificate",
            vec![1],
        ));
        assert_eq!(r.unwrap_err(), TransportError::Timeout);
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            0,
            "a timeout is no A_2076 case"
        );
        let fixed = KonnektorDirectory::fixed(endpoints("a.test"));
        let k = Failing(Kind::Unreachable, AtomicUsize::new(0));
        assert!(block_on(fixed.call(&k, &e, &e.event_service, "x#GetCards", vec![1])).is_err());
        assert_eq!(k.1.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_2076_failed_refresh_means_no_retry_and_a_warning_per_state_change_only() {
        let source = Arc::new(Fixed(AtomicUsize::new(0)));
        let dir = KonnektorDirectory::with(Some(source.clone()), Some(endpoints("a.test")));
        let k = Failing(Kind::Unreachable, AtomicUsize::new(0));
        let e = endpoints("a.test");
        for _ in 0..3 {
            let r = block_on(dir.call(&k, &e, &e.event_service, "x#GetCards", vec![1]));
            assert!(r.is_err());
        }
        assert_eq!(
            k.1.load(Ordering::SeqCst),
            3,
            "no retry without fresh endpoints"
        );
        assert_eq!(source.0.load(Ordering::SeqCst), 3);
        assert_eq!(dir.lock().reachability, Reachability::Down);
        // The endpoints known before stay usable for the next attempt.
        assert_eq!(dir.current(), Some(endpoints("a.test")));
    }

    /// The Konnektor moved to `b.test`: `a.test` refuses (or drops) connections.
    struct Moved {
        drop_instead_of_refuse: bool,
        seen: Mutex<Vec<(String, usize)>>,
    }

    impl Konnektor for Moved {
        fn call<'a>(
            &'a self,
            url: &'a str,
            _action: &'static str,
            body: Vec<u8>,
        ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
            self.seen.lock().unwrap().push((url.to_owned(), body.len()));
            let r = if url.starts_with("https://b.test/") {
                Ok(b"answer".to_vec())
            } else if self.drop_instead_of_refuse {
                Err(TransportError::ConnectionDropped("reset".into()))
            } else {
                Err(TransportError::ConnectionRefused("refused".into()))
            };
            Box::pin(async move { r })
        }
    }

    struct SdsAtB;

    impl SdsSource for SdsAtB {
        fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
            let sds = komle_conformance::sim::sds::connector_sds(
                &komle_conformance::sim::ServiceVersions::ecc(),
                "https://b.test",
            );
            Box::pin(async move { Ok(sds.into_bytes()) })
        }
    }

    fn moved(drop: bool) -> (KonnektorDirectory, Moved, KonnektorEndpoints) {
        let dir = KonnektorDirectory::new(Arc::new(SdsAtB));
        let old = block_on(dir.endpoints())
            .unwrap()
            .clone_with_host("https://b.test", "https://a.test");
        (
            dir,
            Moved {
                drop_instead_of_refuse: drop,
                seen: Mutex::new(Vec::new()),
            },
            old,
        )
    }

    trait Rehost {
        fn clone_with_host(&self, from: &str, to: &str) -> KonnektorEndpoints;
    }

    impl Rehost for KonnektorEndpoints {
        fn clone_with_host(&self, from: &str, to: &str) -> KonnektorEndpoints {
            let r = |s: &String| s.replace(from, to);
            KonnektorEndpoints {
                signature_service: r(&self.signature_service),
                encryption_service: r(&self.encryption_service),
                certificate_service: r(&self.certificate_service),
                event_service: r(&self.event_service),
                card_service: self.card_service.as_ref().map(r),
                ..self.clone()
            }
        }
    }

    #[test]
    fn a_2076_small_request_is_retried_once_at_the_fresh_endpoint() {
        let (dir, k, old) = moved(false);
        let r = block_on(dir.call(&k, &old, &old.event_service, "x#GetCards", vec![7; 100]));
        assert_eq!(r.unwrap(), b"answer");
        let seen = k.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].0.starts_with("https://a.test/"), "{seen:?}");
        assert!(seen[1].0.starts_with("https://b.test/"), "{seen:?}");
        assert_eq!(seen[1].1, 100, "the same body again");
        assert_eq!(dir.sds_reads(), 2);
    }

    #[test]
    fn a_2076_large_request_is_not_retried_but_the_directory_is_refreshed() {
        let (dir, k, old) = moved(false);
        let body = vec![0u8; RETRY_COPY_LIMIT + 1];
        let r = block_on(dir.call(&k, &old, &old.signature_service, "x#SignDocument", body));
        assert!(matches!(r, Err(TransportError::ConnectionRefused(_))));
        assert_eq!(k.seen.lock().unwrap().len(), 1);
        assert_eq!(dir.sds_reads(), 2, "refreshed for the next attempt");
    }

    #[test]
    fn a_2076_verify_pin_after_a_lost_connection_is_not_sent_twice() {
        let (dir, k, old) = moved(true);
        let card = old.card_service.clone().unwrap();
        let r = block_on(dir.call(&k, &old, &card, "x#VerifyPin", vec![1; 10]));
        assert!(matches!(r, Err(TransportError::ConnectionDropped(_))));
        assert_eq!(
            k.seen.lock().unwrap().len(),
            1,
            "the PIN may have been counted"
        );
        // Other operations are retried after a lost connection.
        let r = block_on(dir.call(&k, &old, &old.event_service, "x#GetCards", vec![1; 10]));
        assert!(r.is_ok());
    }
}
