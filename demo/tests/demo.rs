//! `komle-demo --once` really sends through the proxy, and what reached the mail service
//! opens with the recipient's card to the mail that was sent; fetched through the POP3 proxy it
//! arrives decrypted and verified.

#[test]
fn demo_round_trip_signs_encrypts_delivers_and_opens() {
    let mut out = Vec::new();
    komle_demo::demo::run(
        &komle_demo::demo::DemoOptions {
            once: true,
            ..Default::default()
        },
        &mut out,
    )
    .expect("demo runs");
    let out = String::from_utf8(out).unwrap();
    for needle in [
        "S: 235 2.7.0 Authentication successful",
        "S: 250 2.0.0 Ok: queued",
        "Subject: KOM-LE-Nachricht",
        "X-KOM-LE-Version: 1.0",
        "smime-type=authenticated-enveloped-data",
        "DecryptDocument: ok",
        "VerifyDocument: Valid",
        "| Subject: Befund Frau S. Muster",
        "| anbei der Befund. Dies ist eine Demo-Nachricht.",
        "C: RETR 1",
        "| X-KIM-DecryptionResult: 00",
        "| X-KIM-IntegrityCheckResult: 01",
        "komle-cm POP3 proxy (implicit TLS): 127.0.0.1:",
        "--url 'pop3s://",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The password never appears in the printed dialog.
    assert!(!out.contains("AUTH PLAIN AG"), "{out}");
    assert!(out.contains("C: PASS <password>"), "{out}");
    assert!(!out.contains("PASS demo"), "{out}");
}
