//! What the store hands out: a TLS identity for rustls, and what `keys list` shows about an
//! entry (never key material).

use std::fmt;
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use zeroize::Zeroize;

/// A certificate chain (leaf first) with its private key, ready for
/// `ClientConfig::with_client_auth_cert` (KOM-LE-A_2182-01) or a server configuration.
/// The key is wiped when the identity is dropped; `Debug` shows no key bytes.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    pub(crate) fn new(chain: Vec<Vec<u8>>, key_pkcs8: &[u8]) -> ClientIdentity {
        ClientIdentity {
            chain: chain.into_iter().map(CertificateDer::from).collect(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec())),
        }
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key (PKCS#8).
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// Chain and key for rustls, which takes ownership of both.
    pub fn into_parts(mut self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let chain = std::mem::take(&mut self.chain);
        let key = std::mem::replace(
            &mut self.key,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(Vec::new())),
        );
        (chain, key)
    }
}

impl Drop for ClientIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One entry as `komle-cm keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub alias: String,
    /// Subject DN of the leaf certificate (RFC 4514 order as x509-cert prints it).
    pub subject: String,
    /// Issuer DN of the leaf certificate.
    pub issuer: String,
    /// End of the leaf certificate's validity.
    pub not_after: SystemTime,
    /// `not_after` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after_text: String,
    /// Certificates in the chain, leaf included.
    pub chain_len: usize,
}

impl EntryInfo {
    /// Reads subject, issuer and notAfter from the leaf certificate (DER).
    pub(crate) fn from_leaf(
        alias: &str,
        leaf_der: &[u8],
        chain_len: usize,
    ) -> Result<EntryInfo, String> {
        let cert = Certificate::from_der(leaf_der).map_err(|e| format!("certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let not_after = tbs.validity.not_after;
        Ok(EntryInfo {
            alias: alias.to_owned(),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            not_after: not_after.to_system_time(),
            not_after_text: not_after.to_date_time().to_string(),
            chain_len,
        })
    }

    /// Whether the leaf certificate has expired at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// A line for the log when the certificate has expired or expires within 30 days: the
    /// mail service refuses an expired C.CM.TLS-CS, and the provider needs time to issue a new
    /// one. `None` when it stays valid longer.
    pub fn expiry_warning(&self, now: SystemTime) -> Option<String> {
        const SOON: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
        if self.expired_at(now) {
            Some(format!(
                "key store entry {:?} ({}): certificate expired at {}; import the provider's new PKCS#12",
                self.alias, self.subject, self.not_after_text
            ))
        } else if self
            .not_after
            .duration_since(now)
            .is_ok_and(|left| left < SOON)
        {
            Some(format!(
                "key store entry {:?} ({}): certificate expires at {}; ask the provider for a new one",
                self.alias, self.subject, self.not_after_text
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for EntryInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\tsubject={}\tnotAfter={}",
            self.alias, self.subject, self.not_after_text
        )
    }
}
