//! `connector.sds`: the Konnektor's ServiceDirectory v3.1 document.
//!
//! WHY configurable versions: the Clientmodul decides ECC capability from exactly these version
//! numbers (A_17464), so tests need Konnektoren on both sides of the threshold.

use super::config::ServiceVersions;
use super::soap_out::service_ns;
use super::xml::escape;

fn service(name: &str, ns_prefix: &str, version: &str, base_url: &str, path: &str) -> String {
    let ns = escape(&service_ns(ns_prefix, version));
    let version = escape(version);
    let url = escape(&format!("{base_url}/{path}"));
    format!(
        "<SI:Service Name=\"{name}\"><SI:Abstract>{name}</SI:Abstract><SI:Versions>\
<SI:Version TargetNamespace=\"{ns}\" Version=\"{version}\"><SI:Abstract>{name} {version}</SI:Abstract>\
<SI:EndpointTLS Location=\"{url}\"/></SI:Version></SI:Versions></SI:Service>"
    )
}

/// The ServiceDirectory for `versions`, all endpoints under `base_url` (`https://host:port`).
pub fn connector_sds(versions: &ServiceVersions, base_url: &str) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CONN:ConnectorServices \
xmlns:CONN=\"http://ws.gematik.de/conn/ServiceDirectory/v3.1\" \
xmlns:SI=\"http://ws.gematik.de/conn/ServiceInformation/v2.0\" \
xmlns:PI=\"http://ws.gematik.de/int/version/ProductInformation/v1.1\">\
<PI:ProductInformation><PI:InformationDate>2026-01-01T00:00:00Z</PI:InformationDate>\
<PI:ProductTypeInformation><PI:ProductType>Konnektor</PI:ProductType>\
<PI:ProductTypeVersion>5.0.0</PI:ProductTypeVersion></PI:ProductTypeInformation>\
<PI:ProductIdentification><PI:ProductVendorID>KOMLE</PI:ProductVendorID>\
<PI:ProductCode>SIM</PI:ProductCode><PI:ProductVersion><PI:Local><PI:HWVersion>1.0.0</PI:HWVersion>\
<PI:FWVersion>1.0.0</PI:FWVersion></PI:Local></PI:ProductVersion></PI:ProductIdentification>\
<PI:ProductMiscellaneous><PI:ProductVendorName>KOM-LE Konnektor-Simulator</PI:ProductVendorName>\
<PI:ProductName>konnektor-sim</PI:ProductName></PI:ProductMiscellaneous></PI:ProductInformation>\
<CONN:TLSMandatory>true</CONN:TLSMandatory><CONN:ClientAutMandatory>false</CONN:ClientAutMandatory>\
<SI:ServiceInformation>",
    );
    s.push_str(&service(
        "EventService",
        "http://ws.gematik.de/conn/EventService/v7.",
        &versions.event,
        base_url,
        "EventService",
    ));
    s.push_str(&service(
        "CertificateService",
        "http://ws.gematik.de/conn/CertificateService/v6.",
        &versions.certificate,
        base_url,
        "CertificateService",
    ));
    s.push_str(&service(
        "CardService",
        "http://ws.gematik.de/conn/CardService/v8.",
        "8.1.2",
        base_url,
        "CardService",
    ));
    s.push_str(&service(
        "SignatureService",
        "http://ws.gematik.de/conn/SignatureService/v7.",
        &versions.signature,
        base_url,
        "SignatureService",
    ));
    s.push_str(&service(
        "EncryptionService",
        "http://ws.gematik.de/conn/EncryptionService/v6.",
        &versions.encryption,
        base_url,
        "EncryptionService",
    ));
    s.push_str("</SI:ServiceInformation></CONN:ConnectorServices>");
    s
}
