//! Replays every crasher the fuzzers found (`fuzz/regressions/<target>/*`) through the very
//! driver the fuzz target runs (`fuzz/drivers/<target>.rs`), so a fixed crash stays fixed under
//! plain `cargo test` without a nightly toolchain or libFuzzer. Also dumps the Konnektor XML
//! fixtures as seeds for `fuzz/seed.sh` (ignored test, run on demand).

#[path = "../../fuzz/drivers/directory_certificate.rs"]
mod directory_certificate;
#[path = "konnektor_fixtures.rs"]
mod fixtures;
#[path = "../../fuzz/drivers/konnektor_response.rs"]
mod konnektor_response;
#[path = "../../fuzz/drivers/login_name.rs"]
mod login_name;
#[path = "../../fuzz/drivers/pop3_codec.rs"]
mod pop3_codec;
#[path = "../../fuzz/drivers/pop3_relay.rs"]
mod pop3_relay;
#[path = "../../fuzz/drivers/pop3_session.rs"]
mod pop3_session;
#[path = "../../fuzz/drivers/smime_open.rs"]
mod smime_open;
#[path = "../../fuzz/drivers/smtp_data.rs"]
mod smtp_data;
#[path = "../../fuzz/drivers/smtp_relay.rs"]
mod smtp_relay;
#[path = "../../fuzz/drivers/smtp_reply.rs"]
mod smtp_reply;
#[path = "../../fuzz/drivers/smtp_session.rs"]
mod smtp_session;

use std::path::{Path, PathBuf};

/// A fuzz driver: one input, panics on a finding.
type Driver = fn(&[u8]);

const TARGETS: &[(&str, Driver)] = &[
    ("directory_certificate", directory_certificate::run),
    ("konnektor_response", konnektor_response::run),
    ("login_name", login_name::run),
    ("pop3_codec", pop3_codec::run),
    ("pop3_relay", pop3_relay::run),
    ("pop3_session", pop3_session::run),
    ("smime_open", smime_open::run),
    ("smtp_data", smtp_data::run),
    ("smtp_relay", smtp_relay::run),
    ("smtp_reply", smtp_reply::run),
    ("smtp_session", smtp_session::run),
];

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

/// Every recorded crasher, per target, runs without a panic or a failed invariant.
#[test]
fn fuzz_regressions_replay_without_panic() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let Ok(dir) = std::fs::read_dir(regressions().join(target)) else {
            continue;
        };
        for file in dir {
            let path = file.expect("directory entry").path();
            let input = std::fs::read(&path).expect("readable regression input");
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            replayed += 1;
        }
    }
    // Guards against a moved directory silently replaying nothing.
    let recorded = std::fs::read_dir(regressions())
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_dir(t.path()).ok())
                .map(|f| f.count())
                .sum::<usize>()
        })
        .unwrap_or(0);
    assert_eq!(
        replayed, recorded,
        "a regression directory has no matching target"
    );
}

/// The session drivers' invariants (issue 15: exactly one `Ended`, last, once finished;
/// nothing to a closed client) on pseudo-random interleavings, so they run even without
/// recorded crashers: a fixed-seed generator, short inputs with commands both sessions know.
#[test]
fn session_drivers_hold_their_invariants_on_random_interleavings() {
    const WORDS: &[&[u8]] = &[
        b"EHLO c\r\n",
        b"QUIT\r\n",
        b"NOOP\r\n",
        b"USER a@b.de#127.0.0.1:1110#1#KOM_LE#7\r\n",
        b"PASS x\r\n",
        b"+OK\r\n",
        b"220 mta\r\n",
        b"CAPA\r\n",
    ];
    let mut seed: u64 = 0x1505_2026;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..2000 {
        let mut input = Vec::new();
        for _ in 0..next() % 12 {
            let word = WORDS[next() % WORDS.len()];
            input.push((next() % 256) as u8);
            input.push(word.len() as u8);
            input.extend_from_slice(word);
        }
        smtp_session::run(&input);
        pop3_session::run(&input);
    }
}

/// The Konnektor fixtures (valid answers, faults, warnings, the service directory) written as
/// seed files into `$KOMLE_FUZZ_SEEDS`; run by `fuzz/seed.sh`.
#[test]
#[ignore = "writes seed files; run by fuzz/seed.sh"]
fn dump_konnektor_seeds() {
    let dir = PathBuf::from(std::env::var("KOMLE_FUZZ_SEEDS").expect("KOMLE_FUZZ_SEEDS set"));
    let cert = fixtures::bytes(64, 1);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("fault", fixtures::fault(4085, "PIN gesperrt")),
        (
            "read_card_certificate",
            fixtures::envelope(&fixtures::read_card_certificate_payload(&cert)),
        ),
        (
            "get_job_number",
            fixtures::envelope(&fixtures::get_job_number_payload("ABC-123")),
        ),
        (
            "sign_document",
            fixtures::envelope(&fixtures::sign_document_payload(
                "http://ws.gematik.de/conn/SignatureService/v7.5",
                &cert,
            )),
        ),
        (
            "encrypt_document",
            fixtures::envelope(&fixtures::crypt_payload("EncryptDocumentResponse", &cert)),
        ),
        (
            "decrypt_document",
            fixtures::envelope(&fixtures::crypt_payload("DecryptDocumentResponse", &cert)),
        ),
        (
            "verify_document",
            fixtures::envelope(&fixtures::verify_document_payload(
                "VALID",
                &cert,
                fixtures::STATUS_OK,
            )),
        ),
        (
            "verify_document_warning",
            fixtures::envelope(&fixtures::verify_document_payload(
                "INCONCLUSIVE",
                &cert,
                &fixtures::status_warning(4264),
            )),
        ),
        ("get_cards", fixtures::envelope(fixtures::GET_CARDS_PAYLOAD)),
        (
            "get_pin_status",
            fixtures::envelope(fixtures::GET_PIN_STATUS_PAYLOAD),
        ),
        (
            "verify_pin",
            fixtures::envelope(fixtures::VERIFY_PIN_PAYLOAD),
        ),
        ("connector_sds", fixtures::default_sds()),
    ];
    std::fs::create_dir_all(&dir).expect("seed directory");
    for (name, bytes) in seeds {
        konnektor_response::run(&bytes);
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}
