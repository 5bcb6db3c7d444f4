//! Service discovery: `connector.sds` (ServiceDirectory v3.1 / ServiceInformation v2.0).
//!
//! The Clientmodul fetches `https://<konnektor>/connector.sds` and learns which service versions
//! the Konnektor offers and where (`EndpointTLS`; the Konnektor is always reached over TLS). It
//! decides from it whether the Konnektor is ECC capable (A_17464) and which SignatureService
//! namespace to speak (7.5 has `Crypt`, which KOM-LE-A_2020 sets to `RSA`).

use std::cmp::Ordering;
use std::fmt;

use super::error::KonnektorError;
use super::namespaces::{SDS, SI};
use super::xml_tree::{Limits, Tree};

/// A dotted service version such as `7.5.3`; missing parts count as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServiceVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> ServiceVersion {
        ServiceVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `major.minor[.patch[.more]]`; extra components are ignored.
    pub fn parse(s: &str) -> Option<ServiceVersion> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        Some(ServiceVersion::new(major, minor, patch))
    }
}

impl fmt::Display for ServiceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One `Version` of a service in `connector.sds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVersionEntry {
    /// The `Version` attribute, parsed; `None` if absent or not dotted numbers.
    pub version: Option<ServiceVersion>,
    /// The `TargetNamespace` attribute, if present.
    pub target_namespace: Option<String>,
    /// `EndpointTLS/@Location`.
    pub endpoint_tls: String,
    /// `Endpoint/@Location` (plain HTTP), if offered; KOM-LE never uses it.
    pub endpoint: Option<String>,
}

/// One `Service` in `connector.sds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    pub versions: Vec<ServiceVersionEntry>,
}

/// The parsed `connector.sds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDirectory {
    pub tls_mandatory: bool,
    pub client_aut_mandatory: bool,
    pub services: Vec<ServiceEntry>,
}

/// Which SignatureService schema to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureServiceVersion {
    /// SignatureService 7.4 (namespace `.../v7.4`, no `Crypt`).
    V7_4,
    /// SignatureService 7.5 (namespace `.../v7.5`, `Crypt` = `RSA` per KOM-LE-A_2020).
    V7_5,
}

impl SignatureServiceVersion {
    /// The XML namespace of this version.
    pub fn namespace(self) -> &'static str {
        match self {
            SignatureServiceVersion::V7_4 => super::namespaces::SIG_V7_4,
            SignatureServiceVersion::V7_5 => super::namespaces::SIG_V7_5,
        }
    }

    fn from_entry(entry: &ServiceVersionEntry) -> Option<SignatureServiceVersion> {
        match entry.target_namespace.as_deref() {
            Some(super::namespaces::SIG_V7_4) => return Some(SignatureServiceVersion::V7_4),
            Some(super::namespaces::SIG_V7_5) => return Some(SignatureServiceVersion::V7_5),
            Some(_) => return None,
            None => {}
        }
        match entry.version {
            Some(ServiceVersion {
                major: 7, minor: 4, ..
            }) => Some(SignatureServiceVersion::V7_4),
            Some(ServiceVersion {
                major: 7, minor: 5, ..
            }) => Some(SignatureServiceVersion::V7_5),
            _ => None,
        }
    }
}

/// The endpoints the Clientmodul uses, chosen from a [`ServiceDirectory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KonnektorEndpoints {
    pub signature_service: String,
    pub signature_version: SignatureServiceVersion,
    pub encryption_service: String,
    pub certificate_service: String,
    pub event_service: String,
    /// CardService 8.1 for GetPinStatus/VerifyPin; optional because sending works without it
    /// when the SM-B is already unlocked.
    pub card_service: Option<String>,
    /// A_17464: SignatureService ≥ 7.4.1 and EncryptionService ≥ 6.1.1.
    pub ecc_capable: bool,
}

/// Minimum SignatureService version for ECC (A_17464).
pub const ECC_MIN_SIGNATURE_SERVICE: ServiceVersion = ServiceVersion::new(7, 4, 1);
/// Minimum EncryptionService version for ECC (A_17464).
pub const ECC_MIN_ENCRYPTION_SERVICE: ServiceVersion = ServiceVersion::new(6, 1, 1);

impl ServiceDirectory {
    /// Parses `connector.sds` with default limits.
    pub fn parse(input: &[u8]) -> Result<ServiceDirectory, KonnektorError> {
        ServiceDirectory::parse_with_limits(input, &Limits::DEFAULT)
    }

    /// Parses `connector.sds` within `limits`.
    pub fn parse_with_limits(
        input: &[u8],
        limits: &Limits,
    ) -> Result<ServiceDirectory, KonnektorError> {
        let tree = Tree::parse(input, limits)?;
        let root = tree.root();
        if !root.is(SDS, "ConnectorServices") {
            return Err(KonnektorError::UnexpectedElement {
                expected: "ConnectorServices",
                found: root.qualified_name(),
            });
        }
        let boolean = |name: &str, what: &'static str| -> Result<bool, KonnektorError> {
            match root.child(SDS, name) {
                Some(n) => match n.text(what)?.as_str() {
                    "true" | "1" => Ok(true),
                    "false" | "0" => Ok(false),
                    _ => Err(KonnektorError::InvalidValue(what)),
                },
                None => Ok(true),
            }
        };
        let tls_mandatory = boolean("TLSMandatory", "TLSMandatory")?;
        let client_aut_mandatory = boolean("ClientAutMandatory", "ClientAutMandatory")?;
        let info = root.require(SI, "ServiceInformation", "ServiceInformation")?;
        let mut services = Vec::new();
        for service in info.children_named(SI, "Service") {
            let name = service
                .attr("Name")
                .ok_or(KonnektorError::MissingElement("Service/@Name"))?
                .to_owned();
            let mut versions = Vec::new();
            if let Some(vs) = service.child(SI, "Versions") {
                for v in vs.children_named(SI, "Version") {
                    let Some(tls) = v.child(SI, "EndpointTLS").and_then(|e| e.attr("Location"))
                    else {
                        // A version without TLS endpoint is unusable; EndpointTLS is mandatory.
                        continue;
                    };
                    versions.push(ServiceVersionEntry {
                        version: v.attr("Version").and_then(ServiceVersion::parse),
                        target_namespace: v.attr("TargetNamespace").map(str::to_owned),
                        endpoint_tls: tls.to_owned(),
                        endpoint: v
                            .child(SI, "Endpoint")
                            .and_then(|e| e.attr("Location"))
                            .map(str::to_owned),
                    });
                }
            }
            services.push(ServiceEntry { name, versions });
        }
        Ok(ServiceDirectory {
            tls_mandatory,
            client_aut_mandatory,
            services,
        })
    }

    /// All versions offered for service `name`.
    pub fn versions_of<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'s ServiceVersionEntry> {
        self.services
            .iter()
            .filter(move |s| s.name == name)
            .flat_map(|s| s.versions.iter())
    }

    /// Highest offered version of service `name`.
    pub fn highest_version(&self, name: &str) -> Option<ServiceVersion> {
        self.versions_of(name).filter_map(|v| v.version).max()
    }

    /// A_17464: the Konnektor supports ECC iff it offers SignatureService ≥ 7.4.1 and
    /// EncryptionService ≥ 6.1.1.
    pub fn is_ecc_capable(&self) -> bool {
        let at_least = |name: &str, min: ServiceVersion| {
            self.highest_version(name)
                .is_some_and(|v| v.cmp(&min) != Ordering::Less)
        };
        at_least("SignatureService", ECC_MIN_SIGNATURE_SERVICE)
            && at_least("EncryptionService", ECC_MIN_ENCRYPTION_SERVICE)
    }

    /// Best endpoint among versions of `name` with `major.minor` (or `target_namespace`).
    fn pick<'s>(
        &'s self,
        name: &'s str,
        major: u32,
        minor: u32,
        target_namespace: &'s str,
    ) -> Option<&'s ServiceVersionEntry> {
        self.versions_of(name)
            .filter(|v| match (&v.target_namespace, v.version) {
                (Some(ns), _) => ns == target_namespace,
                (None, Some(ver)) => ver.major == major && ver.minor == minor,
                (None, None) => false,
            })
            .max_by_key(|v| v.version)
    }

    /// Chooses the endpoints for the services the Clientmodul calls.
    pub fn endpoints(&self) -> Result<KonnektorEndpoints, KonnektorError> {
        use super::namespaces as ns;
        let (signature_version, signature_service) = self
            .versions_of("SignatureService")
            .filter_map(|v| SignatureServiceVersion::from_entry(v).map(|sv| (sv, v)))
            .max_by_key(|(sv, v)| (*sv == SignatureServiceVersion::V7_5, v.version))
            .map(|(sv, v)| (sv, v.endpoint_tls.clone()))
            .ok_or(KonnektorError::NoUsableEndpoint("SignatureService"))?;
        let encryption_service = self
            .pick("EncryptionService", 6, 1, ns::CRYPT)
            .ok_or(KonnektorError::NoUsableEndpoint("EncryptionService"))?
            .endpoint_tls
            .clone();
        let certificate_service = self
            .pick("CertificateService", 6, 0, ns::CERT)
            .ok_or(KonnektorError::NoUsableEndpoint("CertificateService"))?
            .endpoint_tls
            .clone();
        let event_service = self
            .pick("EventService", 7, 2, ns::EVT)
            .ok_or(KonnektorError::NoUsableEndpoint("EventService"))?
            .endpoint_tls
            .clone();
        let card_service = self
            .pick("CardService", 8, 1, ns::CARD)
            .map(|v| v.endpoint_tls.clone());
        Ok(KonnektorEndpoints {
            signature_service,
            signature_version,
            encryption_service,
            certificate_service,
            event_service,
            card_service,
            ecc_capable: self.is_ecc_capable(),
        })
    }
}
