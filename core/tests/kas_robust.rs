//! Bad input on the KAS paths gets a typed error, never a panic: arbitrary bytes as the
//! decrypted KOM-LE message, as the KIM-Attachment JSON, as the getLimits answer, as
//! downloaded mail data, and arbitrary chunkings of a received message for the x-kas scan.

use komle_core::kas::*;
use proptest::prelude::*;

fn attachment(size: u64) -> KimAttachment {
    KimAttachment::new(
        "https://kas.example/attachment/1".into(),
        KasKey::from_bytes([1; 32]),
        [2; 32],
        size,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_19369_arbitrary_bytes_never_panic_the_receive_side(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = kas_content(&bytes);
        let _ = KimAttachment::from_json(&bytes);
        let _ = AccountLimits::from_json(&bytes);
        let _ = receive::kas_size(&bytes);
        let _ = check_opt_in(&bytes, &[], "a@b");
        let _ = receive::replaced_body_mail(&bytes, KasOpenError::Decryption);
        let _ = large_messages_not_enabled_mail(&bytes, "a@b", 0);
        let mut opener = MailDataOpener::new(&attachment(bytes.len() as u64));
        let mut out = Vec::new();
        let fed = opener.update(&bytes, &mut out);
        // Random bytes are never authentic mail data.
        prop_assert!(fed.is_err() || opener.finish().is_err());
    }

    #[test]
    fn a_22341_scan_result_does_not_depend_on_chunking(
        body in proptest::collection::vec(prop_oneof![
            Just(b"Content-Disposition: x-kas\r\n".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
            Just(b"--b\r\n".to_vec()),
            Just(b"--b--\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b" folded\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..40),
        ], 0..40),
        cut in 1usize..50,
    ) {
        let mail: Vec<u8> = body.concat();
        let whole = kas_parts::scan(&mail);
        let mut scanner = KasPartScanner::new();
        for chunk in mail.chunks(cut) {
            scanner.feed(chunk);
        }
        prop_assert_eq!(scanner.finish(), whole);
    }
}
