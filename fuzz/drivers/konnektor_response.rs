//! Every Konnektor SOAP response parser and the service directory (connector.sds) on the same
//! arbitrary bytes: a hostile or broken Konnektor yields typed errors, never a panic.
use komle_core::konnektor::{
    Limits, ServiceDirectory, decrypt_document, encrypt_document, envelope, get_cards,
    get_job_number, get_pin_status, read_card_certificate, sign_document, verify_document,
    verify_pin,
};

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    let _ = decrypt_document::parse(data);
    let _ = encrypt_document::parse(data);
    if let Ok(cards) = get_cards::parse(data) {
        let _ = cards.smb();
        let _ = cards.hbas().count();
    }
    if let Ok(job) = get_job_number::parse(data) {
        assert!(get_job_number::is_valid_job_number(&job));
    }
    let _ = get_pin_status::parse(data);
    let _ = verify_pin::parse(data);
    let _ = read_card_certificate::parse(data);
    let _ = sign_document::parse(data);
    if let Ok(v) = verify_document::parse(data) {
        let _ = v.signer();
        let _ = v.signing_time();
    }
    let _ = envelope::payload_name(data);
    let _ = envelope::check_envelope(data, &Limits::default());
    if let Ok(sds) = ServiceDirectory::parse(data) {
        let _ = sds.is_ecc_capable();
        let _ = sds.endpoints();
    }
    if let Err(e) = sign_document::parse(data) {
        let _ = (
            e.gematik_code(),
            e.is_reported_by_konnektor(),
            e.to_string(),
        );
    }
}
