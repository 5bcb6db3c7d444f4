//! Namespace URIs of the Konnektor interfaces (gematik api-telematik, OPB5).
//!
//! Responses are matched on these URIs, never on prefixes: a Konnektor may pick any prefix it
//! likes, so only the resolved namespace identifies an element.

/// SOAP 1.1 envelope; the Konnektor speaks SOAP 1.1 only.
pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// ConnectorCommon v5.0: `CardHandle`, `Status`, `Document`, context members.
pub const CONN: &str = "http://ws.gematik.de/conn/ConnectorCommon/v5.0";
/// ConnectorContext v2.0: the `Context` element.
pub const CCTX: &str = "http://ws.gematik.de/conn/ConnectorContext/v2.0";
/// gematik error structure carried in SOAP faults and `Status`.
pub const GERROR: &str = "http://ws.gematik.de/tel/error/v2.0";
/// OASIS DSS core.
pub const DSS: &str = "urn:oasis:names:tc:dss:1.0:core:schema";
/// OASIS DSS-X verification report profile.
pub const VR: &str = "urn:oasis:names:tc:dss-x:1.0:profiles:verificationreport:schema#";
/// XAdES 1.3.2 (`SigningTime` inside the verification report).
pub const XADES: &str = "http://uri.etsi.org/01903/v1.3.2#";
/// XML digital signature (`X509IssuerName` and friends).
pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// SignatureService 7.4 (no `Crypt` element).
pub const SIG_V7_4: &str = "http://ws.gematik.de/conn/SignatureService/v7.4";
/// SignatureService 7.5 (`Crypt` element).
pub const SIG_V7_5: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";
/// EncryptionService 6.1 (6.1.1 and 6.1.2 share it).
pub const CRYPT: &str = "http://ws.gematik.de/conn/EncryptionService/v6.1";
/// CertificateService 6.0.
pub const CERT: &str = "http://ws.gematik.de/conn/CertificateService/v6.0";
/// CertificateServiceCommon 2.0 (`X509DataInfoList`).
pub const CERTCMN: &str = "http://ws.gematik.de/conn/CertificateServiceCommon/v2.0";
/// EventService 7.2 (`GetCards`).
pub const EVT: &str = "http://ws.gematik.de/conn/EventService/v7.2";
/// CardService 8.1 (`Cards`, `GetPinStatus`, `VerifyPin`).
pub const CARD: &str = "http://ws.gematik.de/conn/CardService/v8.1";
/// CardServiceCommon 2.0 (`CardType`, `PinTyp`, `PinResult`).
pub const CARDCMN: &str = "http://ws.gematik.de/conn/CardServiceCommon/v2.0";
/// ServiceDirectory 3.1 (`connector.sds` root).
pub const SDS: &str = "http://ws.gematik.de/conn/ServiceDirectory/v3.1";
/// ServiceInformation 2.0 (services, versions, endpoints in `connector.sds`).
pub const SI: &str = "http://ws.gematik.de/conn/ServiceInformation/v2.0";
