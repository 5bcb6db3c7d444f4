//! KIM 1.5 KAS pieces of the core against gematik's material in `shared/spec/kim15`: the
//! KIM-Attachment JSON against Attachment_schema.json, the samples-kas stages (structure, not
//! bytes: gematik cut the bodies), the A_23512 opt-in check with its error mail, and a whole
//! send → receive round trip through the core functions.

use std::path::{Path, PathBuf};

use base64::Engine;
use komle_core::kas::*;
use komle_core::smime::headers;

/// `<ancestor>/shared/spec/kim15` for the first ancestor that has it (CI and worktrees).
fn kim15() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest.ancestors() {
        let candidate = ancestor.join("shared/spec/kim15");
        if candidate.join("openapi/Attachment_schema.json").is_file() {
            return candidate;
        }
    }
    panic!("shared/spec/kim15 not found above {}", manifest.display());
}

fn read(rel: &str) -> Vec<u8> {
    let path = kim15().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn header_names(mail: &[u8]) -> Vec<String> {
    let head = headers::parse(mail).expect("header parses");
    let mut names: Vec<String> = head
        .fields
        .iter()
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn attachment() -> KimAttachment {
    KimAttachment::new(
        "https://kas.example/attachments/v2.4/attachment/abc".into(),
        KasKey::from_bytes([3; 32]),
        MailDataHash::new().finish(),
        u64::from(u32::MAX) + 1,
    )
}

/// Validates our JSON against Attachment_schema.json: the object has every property the
/// schema lists with the schema's type, nothing else, and satisfies `required`.
#[test]
fn a_19359_built_json_validates_against_attachment_schema() {
    let schema: serde_json::Value =
        serde_json::from_slice(&read("openapi/Attachment_schema.json")).expect("schema is JSON");
    let built = attachment().to_json().expect("builds");
    let value: serde_json::Value = serde_json::from_str(&built).expect("built JSON parses");
    assert_eq!(schema["type"], "object");
    assert!(value.is_object());
    let props = schema["properties"].as_object().expect("properties");
    for (name, spec) in props {
        let member = &value[name];
        let ok = match spec["type"].as_str().expect("type") {
            "string" => member.is_string(),
            "integer" => member.is_u64() || member.is_i64(),
            other => panic!("schema type {other} not handled by this check"),
        };
        assert!(ok, "{name} has the schema's type");
    }
    for required in schema["required"].as_array().expect("required") {
        let name = required.as_str().expect("name");
        assert!(value.get(name).is_some(), "{name} present");
    }
    assert_eq!(value.as_object().expect("object").len(), props.len());
}

#[test]
fn a_19359_gematik_stage_1_3_structure_parses_and_has_the_sample_header_set() {
    let sample = read("samples-kas/1_3_Client-Mail_hochgeladen.txt");
    let a = kas_content(&sample)
        .expect("one structure")
        .expect("KAS content");
    assert_eq!(a.size, 27_262_976);
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(a.hash),
        "Wc148UGImi84VG3H/fF+3x6ouGMknls6hf2wn0qcqjU="
    );

    // Our stage 1_3 from gematik's stage 1_2: the same header set, plus what A_23467 adds.
    let processed = read("samples-kas/1_2_Client-Mail_prozessiert.txt");
    let ours = kas_message(&processed, &a).expect("builds");
    let mut expected = header_names(&sample);
    expected.push("x-kim-kas-size".into());
    expected.push("content-transfer-encoding".into());
    expected.sort();
    assert_eq!(header_names(&ours), expected);
    let head = headers::parse(&ours).expect("parses");
    assert_eq!(
        KimAttachment::from_json(&ours[head.body..]).expect("body"),
        a
    );
    // Stage 2_2 (received, decrypted) is found as KAS content the same way.
    let received = read("samples-kas/2_2_KOM-LE-Mail_prozessiert.txt");
    assert_eq!(
        kas_content(&received).expect("one").map(|x| x.size),
        Some(27_262_976)
    );
}

#[test]
fn a_22341_gematik_client_mails_carry_no_kas_part_but_a_kas_message_resent_does() {
    for stage in [
        "1_1_Client-Mail_empfangen.txt",
        "2_4_Client-Mail_finalisiert.txt",
    ] {
        assert_eq!(
            kas_parts::scan(&read(&format!("samples-kas/{stage}"))).count,
            0,
            "{stage}"
        );
    }
    let replay = read("samples-kas/1_3_Client-Mail_hochgeladen.txt");
    let mut scanner = KasPartScanner::new();
    for chunk in replay.chunks(3) {
        scanner.feed(chunk);
    }
    assert_eq!(scanner.finish().count, 1);
    assert!(
        KasSendError::ClientCarriesKasPart
            .reply()
            .starts_with(b"451 ")
    );
}

fn outer(kas_size: u64) -> Vec<u8> {
    let mut m = read("samples-kas/2_1_KOM-LE-Mail_empfangen.txt");
    let head = headers::parse(&m).expect("parses");
    let at = head.fields.last().expect("fields").range.end;
    m.splice(at..at, x_kim_kas_size_field(kas_size).into_bytes());
    m
}

#[test]
fn a_23512_over_15_mib_without_plus_yields_4018_mail_with_the_exact_subject() {
    let user = "user.test15@gematik.kim.telematik-test";
    let received = outer(KONNEKTOR_LIMIT + 1);
    let without = vec![format!("1.5,{user}")];
    assert_eq!(
        check_opt_in(&received, &without, user),
        Err(KasOpenError::LargeMessagesNotEnabled)
    );
    assert_eq!(
        check_opt_in(&received, &[format!("1.5+,{user}")], user),
        Ok(())
    );
    assert_eq!(
        check_opt_in(&outer(KONNEKTOR_LIMIT), &without, user),
        Ok(()),
        "15 MiB is no large message"
    );
    let plain = read("samples-kas/2_1_KOM-LE-Mail_empfangen.txt");
    assert_eq!(
        check_opt_in(&plain, &without, user),
        Ok(()),
        "no X-KIM-KAS-Size"
    );

    let mail = large_messages_not_enabled_mail(&received, user, 1_700_000_000);
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail)
        .expect("error mail parses");
    assert_eq!(
        parsed.subject(),
        Some(
            "Die KIM-Nachricht kann nicht empfangen werden, weil der Empfang großer Nachrichten nicht aktiviert wurde"
        )
    );
    assert_eq!(
        LARGE_MESSAGES_NOT_ENABLED_SUBJECT,
        parsed.subject().expect("subject")
    );
    let head = headers::parse(&mail).expect("parses");
    assert_eq!(
        head.value(&mail, "X-KIM-Fehlermeldung").as_deref(),
        Some("4018")
    );
    for copied in ["From", "To", "Date", "Message-ID"] {
        assert_eq!(
            head.value(&mail, copied),
            headers::parse(&received)
                .expect("p")
                .value(&received, copied),
            "{copied} copied"
        );
    }
    let text = String::from_utf8_lossy(&mail);
    assert!(text.contains("multipart/mixed"));
    assert!(text.contains("Content-Type: message/rfc822"));
    assert!(
        text.contains("MIAGCyqGSIb3DQEJEAEXoIAwg"),
        "the KOM-LE message is attached unchanged"
    );
    assert!(parsed.attachment(0).is_some(), "rfc822 part");
}

/// The whole core path with a 20 MiB mail: route → seal in chunks → KOM-LE message → (KAS) →
/// structure found → opt-in → open in other chunks → byte-identical client mail.
#[test]
fn a_19357_a_19374_round_trip_of_a_20_mib_mail_through_the_core_functions() {
    let mut client = b"From: a@x.kim.telematik\r\nTo: b@y.kim.telematik\r\nSubject: gross\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    client.extend(
        (0..20 * 1024 * 1024u32).map(|i| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123\r\n"[(i % 32) as usize]),
    );
    assert_eq!(route(client.len() as u64, None), Ok(SendRoute::Kas));
    assert_eq!(kas_parts::scan(&client).count, 0);

    let key = KasKey::from_bytes([0x42; 32]);
    let mut sealer = MailDataSealer::new(&key, GcmIv([7; 12]));
    let mut stored = sealer.prefix().to_vec();
    let mut buf = vec![0u8; 64 * 1024];
    for chunk in client.chunks(buf.len()) {
        let b = &mut buf[..chunk.len()];
        b.copy_from_slice(chunk);
        sealer.seal_chunk(b).expect("in bounds");
        stored.extend_from_slice(b);
    }
    let sealed = sealer.finish();
    stored.extend_from_slice(&sealed.tag);
    assert_eq!(stored.len() as u64, stored_size(client.len() as u64));

    let att = KimAttachment::new(
        "https://kas.x/attachment/1".into(),
        key,
        sealed.hash,
        sealed.size,
    );
    let kom_le = kas_message(&client, &att).expect("builds");
    assert!(kom_le.len() < 2048, "the KOM-LE message is small");

    let found = kas_content(&kom_le).expect("one").expect("KAS content");
    let mut opener = MailDataOpener::new(&found);
    let mut back = Vec::with_capacity(client.len());
    for chunk in stored.chunks(50_000) {
        opener.update(chunk, &mut back).expect("in bounds");
    }
    opener.finish().expect("tag and hash verify");
    assert!(back == client, "byte-identical client mail");
}
