//! The KAS client against the KAS simulator over mutual TLS: upload, HEAD, download and
//! decrypt, the 507 quota answer (A_22419-01 → 521), 404, 403, 429 (A_22412-01 → 4013),
//! forced 500 (A_19363-03 → 451), a client without certificate, and CM_KAS_TIMEOUT.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_core::kas::*;
use komle_core::secret::Password;
use komle_service::kas_client::*;
use komle_service::kas_seal_pipeline::{SealUploadError, seal_while_uploading};

fn client(sim: &KasSim, basic: Option<(&str, &str)>) -> KasClient {
    let (chain, key) = sim.tls.client_identity();
    KasClient::new(KasClientSettings {
        base_url: sim.base_url(),
        timeout: DEFAULT_KAS_TIMEOUT,
        roots: vec![sim.tls.ca_der.clone()],
        client_chain: chain,
        client_key: key,
        basic: basic.map(|(u, p)| (u.to_owned(), Password::new(p))),
    })
    .expect("client builds")
}

fn mail(len: usize) -> Vec<u8> {
    let mut m =
        b"From: a@x.kim.telematik\r\nTo: b@y.kim.telematik\r\nSubject: big\r\n\r\n".to_vec();
    m.extend((0..len).map(|i| b"0123456789abcdef\r\n"[i % 18]));
    m
}

/// Seals and uploads `plain`; returns the structure for the KOM-LE message.
fn upload(c: &KasClient, plain: &[u8], recipients: &[String]) -> Result<KimAttachment, KasError> {
    let key = KasKey::from_bytes([0x5a; 32]);
    let mut data = plain.to_vec();
    let sealed = seal_while_uploading(&mut data, &key, GcmIv([3; 12]), |body, data_len| {
        c.add_attachment(Upload {
            message_id: "<big@x.kim.telematik>",
            recipients,
            expires: "Thu, 08 Dec 2022 15:48:35 +0200",
            data_len,
            data: body,
        })
    });
    match sealed {
        Ok((link, sealed)) => Ok(KimAttachment::new(link, key, sealed.hash, sealed.size)),
        Err(SealUploadError::Upload(e)) => Err(e),
        Err(e) => panic!("sealing failed: {e:?}"),
    }
}

fn download(c: &KasClient, att: &KimAttachment, recipient: &str) -> Result<Vec<u8>, KasOpenError> {
    let mut body = c
        .read_attachment(&att.link, recipient, stored_size(att.size))
        .map_err(|e| e.open_error())?;
    let mut opener = MailDataOpener::new(att);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|_| KasOpenError::DownloadFailed)?;
        if n == 0 {
            break;
        }
        opener.update(&buf[..n], &mut out)?;
    }
    opener.finish()?;
    Ok(out)
}

#[test]
fn a_19363_a_19370_upload_head_download_decrypt_round_trip_over_mutual_tls() {
    let sim = KasSim::start(KasSimConfig::default()).expect("KAS starts");
    let c = client(&sim, None);
    let plain = mail(3 * 1024 * 1024 + 5);
    let rcpt = vec![
        "b@y.kim.telematik".to_owned(),
        "c@z.kim.telematik".to_owned(),
    ];
    let att = upload(&c, &plain, &rcpt).expect("201");
    assert!(
        att.link
            .starts_with(&format!("{}/attachment/", sim.base_url()))
    );
    let id = att.link.rsplit('/').next().expect("id");
    let stored = sim.stored(id).expect("stored");
    assert_eq!(stored.recipients, rcpt);
    assert_eq!(stored.message_id, "<big@x.kim.telematik>");
    assert_eq!(stored.data.len() as u64, stored_size(plain.len() as u64));
    assert!(
        !stored.data.windows(16).any(|w| w == b"0123456789abcdef"),
        "the KAS holds ciphertext only"
    );

    assert_eq!(
        c.head_attachment(&att.link, "C@z.kim.telematik"),
        Ok(stored_size(plain.len() as u64))
    );
    let back = download(&c, &att, "b@y.kim.telematik").expect("downloads and verifies");
    assert!(back == plain, "byte-identical");

    // The same link with a forged hash: 4012 after a complete download.
    let mut forged = att.clone();
    forged.hash[0] ^= 1;
    assert_eq!(
        download(&c, &forged, "b@y.kim.telematik"),
        Err(KasOpenError::HashMismatch)
    );
    // Another key: 4007.
    let mut wrong_key = att.clone();
    wrong_key.key = KasKey::from_bytes([1; 32]);
    assert_eq!(
        download(&c, &wrong_key, "b@y.kim.telematik"),
        Err(KasOpenError::Decryption)
    );
}

#[test]
fn a_19370_unknown_link_404_foreign_recipient_403_and_a_22412_429_is_4013() {
    let sim = KasSim::start(KasSimConfig {
        max_downloads: 1,
        ..KasSimConfig::default()
    })
    .expect("KAS starts");
    let c = client(&sim, None);
    let att = upload(&c, &mail(1000), &["b@y.kim.telematik".to_owned()]).expect("201");
    let unknown = format!(
        "{}/attachment/00000000-0000-4000-8000-000000000000",
        sim.base_url()
    );
    assert_eq!(
        c.head_attachment(&unknown, "b@y.kim.telematik"),
        Err(KasError::Status(404))
    );
    let mut missing = att.clone();
    missing.link = unknown;
    assert_eq!(
        download(&c, &missing, "b@y.kim.telematik"),
        Err(KasOpenError::DownloadFailed)
    );
    assert_eq!(
        c.read_attachment(&att.link, "mallory@evil.kim.telematik", 1 << 20)
            .err(),
        Some(KasError::Status(403))
    );
    assert_eq!(
        c.head_attachment(&att.link, "mallory@evil.kim.telematik"),
        Err(KasError::Status(404)),
        "HEAD reveals nothing to a foreign recipient"
    );
    download(&c, &att, "b@y.kim.telematik").expect("first download");
    let err = c
        .read_attachment(&att.link, "b@y.kim.telematik", 1 << 20)
        .err()
        .expect("second download refused");
    assert_eq!(err, KasError::Status(429));
    assert_eq!(err.open_error(), KasOpenError::TooManyDownloads);
    assert_eq!(err.open_error().code(), "4013");
}

#[test]
fn a_22419_quota_507_is_521_a_19363_other_failures_451_and_size_limit_413() {
    let sim = KasSim::start(KasSimConfig {
        quota: 150_000,
        max_mail_size: 120_000,
        ..KasSimConfig::default()
    })
    .expect("KAS starts");
    let c = client(&sim, None);
    let rcpt = ["b@y.kim.telematik".to_owned()];
    upload(&c, &mail(100_000), &rcpt).expect("within quota");
    let err = upload(&c, &mail(100_000), &rcpt).expect_err("over quota");
    assert_eq!(err, KasError::Status(507));
    assert_eq!(err.send_error(), KasSendError::QuotaExceeded);
    assert!(err.send_error().reply().starts_with(b"521 "));
    assert!(err.send_error().resets_upstream());

    let err = upload(&c, &mail(130_000), &rcpt).expect_err("over the size limit");
    assert_eq!(err, KasError::Status(413));
    assert!(err.send_error().reply().starts_with(b"451 "));

    sim.force_add_status(&[500]);
    let err = upload(&c, &mail(10), &rcpt).expect_err("forced 500");
    assert_eq!(err, KasError::Status(500));
    assert!(err.send_error().reply().starts_with(b"451 "));
    assert_eq!(sim.stored_count(), 1);
}

#[test]
fn basic_credentials_are_checked_for_add_and_delete() {
    let sim = KasSim::start(KasSimConfig {
        accounts: vec![("a@x.kim.telematik".into(), "geheim".into())],
        ..KasSimConfig::default()
    })
    .expect("KAS starts");
    let rcpt = ["b@y.kim.telematik".to_owned()];
    let wrong = client(&sim, Some(("a@x.kim.telematik", "falsch")));
    assert_eq!(
        upload(&wrong, &mail(10), &rcpt).err(),
        Some(KasError::Status(401))
    );
    let right = client(&sim, Some(("a@x.kim.telematik", "geheim")));
    let att = upload(&right, &mail(10), &rcpt).expect("201");
    assert_eq!(
        wrong.delete_attachment(&att.link),
        Err(KasError::Status(401))
    );
    assert_eq!(right.delete_attachment(&att.link), Ok(()));
    assert_eq!(
        right.delete_attachment(&att.link),
        Err(KasError::Status(404))
    );
    assert_eq!(sim.stored_count(), 0);
}

#[test]
fn a_19362_a_client_without_certificate_is_refused_by_tls() {
    let sim = KasSim::start(KasSimConfig::default()).expect("KAS starts");
    // Another CA's client certificate: the KAS's verifier refuses the handshake.
    let other = komle_conformance::kas_sim::KasTls::generate().expect("tls");
    let (chain, key) = other.client_identity();
    let c = KasClient::new(KasClientSettings {
        base_url: sim.base_url(),
        timeout: Duration::from_secs(5),
        roots: vec![sim.tls.ca_der.clone()],
        client_chain: chain,
        client_key: key,
        basic: None,
    })
    .expect("builds");
    let err = upload(&c, &mail(10), &["b@y.kim.telematik".to_owned()]).expect_err("refused");
    assert!(matches!(err, KasError::Transport(_)), "{err:?}");
    assert!(err.send_error().reply().starts_with(b"451 "));
    assert_eq!(sim.stored_count(), 0);
}

#[test]
fn cm_kas_timeout_gives_up_on_a_silent_kas() {
    // Accepts TCP and never answers (no TLS handshake).
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let sim = KasSim::start(KasSimConfig::default()).expect("KAS starts");
    let (chain, key) = sim.tls.client_identity();
    let c = KasClient::new(KasClientSettings {
        base_url: format!("https://{addr}/attachments/v2.4"),
        timeout: Duration::from_millis(400),
        roots: vec![sim.tls.ca_der.clone()],
        client_chain: chain,
        client_key: key,
        basic: None,
    })
    .expect("builds");
    let start = Instant::now();
    let err = c
        .head_attachment(
            &format!("https://{addr}/attachments/v2.4/attachment/x"),
            "b@y",
        )
        .expect_err("times out");
    assert!(matches!(err, KasError::Transport(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
}

/// Every request the KAS client sends validates against AttachmentService.yaml: required
/// header and path parameters, the multipart form's required fields (recipients exploded, one
/// per part), the attachment part's required headers, an exact Content-Length (A_22427-01),
/// and Basic credentials where the yaml's `security` asks for them.
#[test]
fn a_22427_every_request_sent_validates_against_attachment_service_yaml() {
    use yaml_rust2::{Yaml, YamlLoader};
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .map(|a| a.join("shared/spec/kim15/openapi/AttachmentService.yaml"))
        .find(|p| p.is_file())
        .expect("AttachmentService.yaml beside the workspace");
    let doc = YamlLoader::load_from_str(&std::fs::read_to_string(path).expect("readable"))
        .expect("parses")
        .pop()
        .expect("one document");

    let sim = KasSim::start(KasSimConfig {
        accounts: vec![("a@x.kim.telematik".into(), "geheim".into())],
        ..KasSimConfig::default()
    })
    .expect("KAS starts");
    let c = client(&sim, Some(("a@x.kim.telematik", "geheim")));
    let rcpt = [
        "b@y.kim.telematik".to_owned(),
        "c@z.kim.telematik".to_owned(),
    ];
    let att = upload(&c, &mail(70_000), &rcpt).expect("201");
    c.head_attachment(&att.link, "b@y.kim.telematik")
        .expect("200");
    download(&c, &att, "b@y.kim.telematik").expect("200");
    c.delete_attachment(&att.link).expect("200");

    let recorded = sim.recorded();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    for req in &recorded {
        let (route, id) = komle_conformance::kas_sim::routes::route(&req.method, &req.path)
            .unwrap_or_else(|| panic!("{} {} is a yaml operation", req.method, req.path));
        let op = &doc["paths"][route.path][route.method];
        let what = format!("{} {}", route.method, route.path);
        for p in op["parameters"].as_vec().into_iter().flatten() {
            if p["required"].as_bool() != Some(true) {
                continue;
            }
            let name = p["name"].as_str().expect("name");
            match p["in"].as_str() {
                Some("header") => assert!(
                    req.headers.contains(&name.to_ascii_lowercase()),
                    "{what}: header {name}"
                ),
                Some("path") => assert!(
                    id.as_deref().is_some_and(|i| !i.is_empty()),
                    "{what}: {name}"
                ),
                other => panic!("{what}: parameter in {other:?} not checked"),
            }
        }
        if !op["security"].is_badvalue() {
            assert!(
                req.headers.contains(&"authorization".to_owned()),
                "{what}: Basic"
            );
        }
        let form = &op["requestBody"]["content"]["multipart/form-data"];
        if form.is_badvalue() {
            assert!(req.form_fields.is_empty(), "{what}: no body expected");
            continue;
        }
        for f in form["schema"]["required"].as_vec().expect("required") {
            let f = f.as_str().expect("field");
            assert!(
                req.form_fields.iter().any(|x| x == f),
                "{what}: form field {f}"
            );
        }
        let props = form["schema"]["properties"].as_hash().expect("properties");
        for f in &req.form_fields {
            assert!(
                props.contains_key(&Yaml::String(f.clone())),
                "{what}: unknown field {f}"
            );
        }
        assert_eq!(
            req.form_fields
                .iter()
                .filter(|f| *f == "recipients")
                .count(),
            rcpt.len(),
            "one recipients part per address (exploded)"
        );
        for (h, spec) in form["encoding"]["attachment"]["headers"]
            .as_hash()
            .expect("headers")
        {
            if spec["required"].as_bool() == Some(true) {
                let h = h.as_str().expect("name").to_ascii_lowercase();
                assert!(
                    req.attachment_headers.contains(&h),
                    "{what}: attachment header {h}"
                );
            }
        }
        assert!(
            req.content_length_exact,
            "{what}: Content-Length is the whole body"
        );
    }
}

/// The two calls the session drivers make: `store_mail_data` after DATA (the mail sealed in
/// place while it is uploaded) and `fetch_into` on RETR (streamed into a sink), for a 20 MiB mail,
/// plus a HEAD size that does not match the structure (4006) and a tampered object (4007).
#[test]
fn a_19357_a_19374_store_mail_data_and_fetch_into_round_trip_a_20_mib_mail() {
    let sim = KasSim::start(KasSimConfig::default()).expect("KAS starts");
    let c = client(&sim, None);
    let plain = mail(20 * 1024 * 1024);
    assert_eq!(route(plain.len() as u64, None), Ok(SendRoute::Kas));

    // After DATA: sealed in place while it is uploaded.
    let key = KasKey::from_bytes([0x33; 32]);
    let mut data = plain.clone();
    let rcpt = ["b@y.kim.telematik".to_owned()];
    let expires = expires(1_662_731_220, None);
    let meta = kas_client_meta(&rcpt, &expires);
    let att = c
        .store_mail_data(meta, &mut data, &key, GcmIv([0x44; 12]))
        .expect("stored");
    assert!(data != plain, "the buffer now holds ciphertext");
    drop(data);

    let mut sink = Vec::new();
    let n = c
        .fetch_into(&att, "b@y.kim.telematik", &mut sink)
        .expect("verified");
    assert_eq!(n, plain.len() as u64);
    assert!(sink == plain, "byte-identical");

    let mut wrong_size = att.clone();
    wrong_size.size += 1;
    assert_eq!(
        c.fetch_into(&wrong_size, "b@y.kim.telematik", &mut Vec::new()),
        Err(KasOpenError::DownloadFailed)
    );
    let mut wrong_key = att.clone();
    wrong_key.key = KasKey::from_bytes([0; 32]);
    assert_eq!(
        c.fetch_into(&wrong_key, "b@y.kim.telematik", &mut Vec::new()),
        Err(KasOpenError::Decryption)
    );
}

fn kas_client_meta<'a>(rcpt: &'a [String], expires: &'a str) -> MailMeta<'a> {
    MailMeta {
        message_id: "<big@x.kim.telematik>",
        recipients: rcpt,
        expires,
    }
}

#[test]
fn a_22416_get_limits_reports_the_account_and_a_19355_routes_by_max_mail_size() {
    let sim = KasSim::start(KasSimConfig {
        accounts: vec![("a@x.kim.telematik".into(), "geheim".into())],
        quota: 1_000_000,
        max_mail_size: 734_003_200,
        data_time_to_live: 30,
        ..KasSimConfig::default()
    })
    .expect("KAS starts");
    let c = client(&sim, Some(("a@x.kim.telematik", "geheim")));
    upload(&c, &mail(1000), &["b@y.kim.telematik".to_owned()]).expect("201");
    let limits = c.get_limits(&sim.limits_url()).expect("200");
    assert_eq!(limits.max_mail_size, Some(734_003_200));
    assert_eq!(limits.data_time_to_live_days, Some(30));
    assert_eq!(limits.quota, Some(1_000_000));
    assert!(limits.remain_quota.is_some_and(|r| r < 1_000_000 - 1000));
    assert_eq!(
        route(734_003_201, Some(&limits)),
        Err(KasSendError::TooLarge {
            size: 734_003_201,
            max: 734_003_200
        })
    );
    let wrong = client(&sim, Some(("a@x.kim.telematik", "falsch")));
    assert_eq!(
        wrong.get_limits(&sim.limits_url()),
        Err(KasError::Status(401))
    );
}
