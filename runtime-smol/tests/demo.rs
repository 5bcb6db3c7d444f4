//! `komle-cm demo --once` really sends through the proxy, and what reached the mail service
//! opens with the recipient's card to the mail that was sent.

#[test]
fn demo_round_trip_signs_encrypts_delivers_and_opens() {
    let mut out = Vec::new();
    komle_smol::demo::run(
        &komle_smol::demo::DemoOptions {
            smtp_port: 0,
            once: true,
            precomputed_konnektor: false,
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
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The password never appears in the printed dialog.
    assert!(!out.contains("AUTH PLAIN AG"), "{out}");
}
