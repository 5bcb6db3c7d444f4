//! Opening received KOM-LE messages (gemSMIME_KOMLE): the MIME header parser, address
//! extraction and the CMS readers (SignedData, AuthEnvelopedData unauthAttrs, the
//! recipient-emails attribute) on arbitrary bytes; all of it is attacker-controlled mail.
use komle_core::smime::{
    addresses, auth_enveloped, ber, forward, headers, recipient_emails, signed_data,
};

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    if let Ok(head) = headers::parse(data) {
        for name in ["From", "To", "Cc", "Content-Type", "X-KOM-LE-Version"] {
            if let Some(v) = head.value(data, name) {
                let _ = headers::media_type(&v);
                let _ = headers::parameter(&v, "smime-type");
                let _ = addresses::addresses(v.as_bytes());
            }
            let _ = addresses::field_addresses(data, &head, name);
        }
    }
    let _ = addresses::sender_address(data);
    if let Ok(out) = addresses::remove_addresses(data, &["a@b.de".to_owned()]) {
        // Growth stays linear: a rewritten field gets a leading space, its items are joined
        // with commas (malformed lists such as `a:;b:;c` had none) and an unterminated group
        // gets its `;`, so each item of at least two bytes grows by at most two; an emptied
        // From becomes EMPTIED_FROM. (The bound was `+ 2` until a fuzz run found a CC field
        // of comma-less groups: fuzz/regressions/smime_open/remove_addresses_groups_without_commas.)
        assert!(out.len() <= 2 * data.len() + addresses::EMPTIED_FROM.len() + 2);
    }
    let _ = forward::forwarded_komle_message(data);
    if let Ok(info) = signed_data::inspect(data) {
        assert!(info.content.len() <= data.len());
        let _ = info.check_profile();
    }
    let _ = auth_enveloped::unprotected_recipient_emails(data);
    let _ = recipient_emails::parse(data);
    let _ = recipient_emails::parse_values(data);
    if let Ok((tlv, rest)) = ber::read(data) {
        assert!(rest.len() < data.len());
        let _ = tlv.octets();
        let _ = tlv.children().take(64).count();
    }
}
