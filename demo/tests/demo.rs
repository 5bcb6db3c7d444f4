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

/// `komle-demo --large 16`: a mail over 15 MiB goes via the KAS simulator (A_19357-02), the mail
/// service gets only the small KOM-LE 1.5 message with `X-KIM-KAS-Size` (A_23467), and opening
/// it fetches the whole mail back intact (A_19370-04).
#[test]
fn a_19357_demo_large_sends_via_the_kas_and_opens_intact() {
    let mut out = Vec::new();
    komle_demo::demo::run(
        &komle_demo::demo::DemoOptions {
            once: true,
            large_mb: 16,
            ..Default::default()
        },
        &mut out,
    )
    .expect("demo runs");
    let out = String::from_utf8(out).unwrap();
    for needle in [
        "5. KIM 1.5: sending a 16000",
        "the KAS holds 1 encrypted object(s)",
        "X-KOM-LE-Version: 1.5",
        "X-KIM-KAS-Size: 16000",
        "text from first to last line intact",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

/// `komle-demo --kas` (what `komle-load-kas` starts): the KAS simulator is behind the proxy and
/// named at start, the scripted large mail is not sent; without the flag there is no KAS.
#[test]
fn a_19357_demo_kas_flag_puts_the_kas_behind_the_proxy_without_the_scripted_mail() {
    let run = |kas: bool| {
        let mut out = Vec::new();
        komle_demo::demo::run(
            &komle_demo::demo::DemoOptions {
                once: true,
                kas,
                ..Default::default()
            },
            &mut out,
        )
        .expect("demo runs");
        String::from_utf8(out).unwrap()
    };
    let with = run(true);
    assert!(
        with.contains("KOM-LE Attachment Service (KAS simulator, mutual TLS): https://127.0.0.1:"),
        "{with}"
    );
    assert!(!with.contains("5. KIM 1.5"), "{with}");
    assert!(with.contains("S: 250 2.0.0 Ok: queued"), "{with}");
    let without = run(false);
    assert!(!without.contains("KOM-LE Attachment Service"), "{without}");
}
