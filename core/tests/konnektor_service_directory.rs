//! connector.sds parsing, endpoint choice and the A_17464 ECC capability rule.

#[path = "konnektor_fixtures.rs"]
mod fixtures;

use komle_core::konnektor::service_directory::{
    ServiceDirectory, ServiceVersion, SignatureServiceVersion,
};
use komle_core::konnektor::{KonnektorError, namespaces};

const SIG74: &str = "http://ws.gematik.de/conn/SignatureService/v7.4";
const SIG75: &str = "http://ws.gematik.de/conn/SignatureService/v7.5";

#[test]
fn parses_services_versions_and_tls_endpoints() {
    let sds = ServiceDirectory::parse(&fixtures::default_sds()).expect("parses");
    assert!(sds.tls_mandatory);
    assert!(!sds.client_aut_mandatory);
    assert_eq!(sds.services.len(), 5);
    let sig: Vec<_> = sds.versions_of("SignatureService").collect();
    assert_eq!(sig.len(), 2);
    assert_eq!(sig[1].version, Some(ServiceVersion::new(7, 5, 5)));
    assert_eq!(sig[1].target_namespace.as_deref(), Some(SIG75));
    assert_eq!(
        sig[1].endpoint_tls,
        "https://192.168.1.2:443/ws/SignatureService/7.5.5"
    );
    assert_eq!(
        sig[1].endpoint.as_deref(),
        Some("http://192.168.1.2/ws/SignatureService/7.5.5")
    );
}

#[test]
fn kom_le_a_2020_prefers_signature_service_7_5_and_uses_tls_endpoints() {
    let e = ServiceDirectory::parse(&fixtures::default_sds())
        .expect("parses")
        .endpoints()
        .expect("endpoints");
    assert_eq!(e.signature_version, SignatureServiceVersion::V7_5);
    assert_eq!(
        e.signature_service,
        "https://192.168.1.2:443/ws/SignatureService/7.5.5"
    );
    assert_eq!(
        e.encryption_service,
        "https://192.168.1.2:443/ws/EncryptionService"
    );
    assert_eq!(
        e.certificate_service,
        "https://192.168.1.2:443/ws/CertificateService"
    );
    assert_eq!(e.event_service, "https://192.168.1.2:443/ws/EventService");
    assert_eq!(
        e.card_service.as_deref(),
        Some("https://192.168.1.2:443/ws/CardService")
    );
}

#[test]
fn falls_back_to_7_4_when_7_5_is_not_offered() {
    let sds = fixtures::connector_sds(&[(SIG74, "7.4.2")], "6.1.2");
    let e = ServiceDirectory::parse(&sds)
        .expect("parses")
        .endpoints()
        .expect("endpoints");
    assert_eq!(e.signature_version, SignatureServiceVersion::V7_4);
    assert_eq!(e.signature_version.namespace(), namespaces::SIG_V7_4);
}

#[test]
fn unknown_signature_namespace_alone_is_not_usable() {
    let sds = fixtures::connector_sds(
        &[("http://ws.gematik.de/conn/SignatureService/v7.0", "7.0.0")],
        "6.1.2",
    );
    assert_eq!(
        ServiceDirectory::parse(&sds).expect("parses").endpoints(),
        Err(KonnektorError::NoUsableEndpoint("SignatureService"))
    );
}

#[test]
fn a_17464_ecc_capability_needs_sig_7_4_1_and_enc_6_1_1() {
    let cases = [
        (&[(SIG74, "7.4.1")][..], "6.1.1", true),
        (&[(SIG74, "7.4.0")][..], "6.1.2", false),
        (&[(SIG74, "7.4.2")][..], "6.1.0", false),
        (&[(SIG74, "7.3.9"), (SIG75, "7.5.0")][..], "6.1.1", true),
        (&[(SIG74, "7.4.2")][..], "6.1.2", true),
    ];
    for (sig, enc, expected) in cases {
        let sds = ServiceDirectory::parse(&fixtures::connector_sds(sig, enc)).expect("parses");
        assert_eq!(sds.is_ecc_capable(), expected, "{sig:?} {enc}");
        if let Ok(e) = sds.endpoints() {
            assert_eq!(e.ecc_capable, expected);
        }
    }
}

#[test]
fn version_ordering_is_numeric_not_lexical() {
    let v = |s| ServiceVersion::parse(s).expect("version");
    assert!(v("7.10.0") > v("7.9.9"));
    assert!(v("6.1") < v("6.1.1"));
    assert_eq!(v("7.5.3.1"), ServiceVersion::new(7, 5, 3));
    assert_eq!(ServiceVersion::parse("7.x"), None);
    assert_eq!(ServiceVersion::parse(""), None);
}

#[test]
fn missing_service_is_reported_by_name() {
    let sds = String::from_utf8(fixtures::default_sds())
        .expect("utf8")
        .replace("Name=\"EventService\"", "Name=\"OtherService\"");
    assert_eq!(
        ServiceDirectory::parse(sds.as_bytes())
            .expect("parses")
            .endpoints(),
        Err(KonnektorError::NoUsableEndpoint("EventService"))
    );
}

#[test]
fn wrong_root_and_hostile_input_are_errors() {
    assert!(matches!(
        ServiceDirectory::parse(b"<x:ConnectorServices xmlns:x=\"urn:other\"/>"),
        Err(KonnektorError::UnexpectedElement { .. })
    ));
    assert_eq!(
        ServiceDirectory::parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a/>"),
        Err(KonnektorError::Forbidden("DOCTYPE"))
    );
    let truncated = &fixtures::default_sds()[..500];
    assert!(matches!(
        ServiceDirectory::parse(truncated),
        Err(KonnektorError::Malformed { .. })
    ));
}
