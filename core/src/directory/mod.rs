//! KOM-LE directory service (VZD) lookups, certificate inspection and the certificate cache.
//!
//! The Clientmodul finds the encryption certificates of every recipient and of the sender by
//! e-mail address in the directory service of the TI (KOM-LE-A_2023). This module holds that
//! logic as data, without I/O: the runtime executes a [`DirectoryQuery`] over LDAP, hands the
//! returned entries in as [`DirectoryEntry`] values, and the core inspects the certificates
//! ([`inspect()`]), selects the usable ones per address ([`select()`]) and caches them
//! ([`CertificateCache`], KOM-LE-A_2026).

mod admission;
pub mod cache;
pub mod cache_access;
pub mod entry;
pub mod inspect;
pub mod kom_le_version;
pub mod oids;
pub mod query;
pub mod resolve;
pub mod select;

pub use cache::{
    CacheConfig, CacheLookup, CacheStats, CertificateCache, RetryDecision, RetryGuard,
};
pub use cache_access::{CacheAccess, SharedCache};
pub use entry::DirectoryEntry;
pub use inspect::{InspectedCertificate, KeyAlgorithm, SkipReason, inspect};
pub use kom_le_version::KomLeVersion;
pub use query::{DirectoryQuery, escape_filter_value};
pub use resolve::{CachePass, resolve_from_cache, resolve_from_directory};
pub use select::{Selected, Selection, SkippedCertificate, select, select_from_entries};
