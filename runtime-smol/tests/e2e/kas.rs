//! KIM 1.5 through komle-cm (gemSpec_CM_KOMLE V1.16 §3.2): a mail over 15 MiB is encrypted and
//! stored on the KAS, the small KOM-LE message travels through Postfix and Dovecot, and the
//! recipient's POP3 session through komle-cm gets the client mail back; KAS failures reach the
//! client with the spec's replies.
//!
//! The KAS bed: [`KasBed`] starts the KAS simulator and a real DNS server (dnsmasq) whose
//! DNS-SD records (PTR/SRV/TXT, A_19361-01) lead to it, writes its CA and the Clientmodul's
//! client identity as PEM files and gives komle-cm the `[kas]` section with only
//! `discovery_domain` and `dns_server`: every case here finds the KAS the way a practice's
//! komle-cm does. The mail side is [`crate::common::TestBed`].

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::clients::{self, Submission};
use crate::common::{Options, TestBed, header_of, password, world};
use komle_conformance::kas_sim::{KasSim, KasSimConfig};
use komle_conformance::servers::dnsmasq::{DnsRecords, Dnsmasq};
use komle_conformance::slapd::Slapd;

const DELIVERY: Duration = Duration::from_secs(120);

/// The KAS simulator, the DNS server that names it and the test bed whose komle-cm uses it.
struct KasBed {
    kas: KasSim,
    bed: TestBed,
    found: KasByDnsSd,
}

/// How komle-cm finds and reaches `kas`: a dnsmasq with its DNS-SD records (A_19361-01: PTR,
/// SRV, TXT for the KAS and the account manager under `kim.test`), its CA and the client
/// identity as PEM files, and the `[kas]` section naming only `discovery_domain` and
/// `dns_server`. Shared by the KAS bed and the discovery test (`e2e/kas_dnssd.rs`).
pub(crate) struct KasByDnsSd {
    pub(crate) dns: Dnsmasq,
    pub(crate) kas_section: String,
    _files: tempfile::TempDir,
}

impl KasByDnsSd {
    /// Records with `ttl` seconds; `timeout` is `[kas] timeout`.
    pub(crate) fn start(kas: &KasSim, ttl: u32, timeout: &str) -> KasByDnsSd {
        let port = kas_port(kas);
        let records = DnsRecords::new()
            .ttl(ttl)
            .local_domain("kim.test")
            .and_then(|r| r.ptr("_kas._tcp.kim.test", "kas.provider.kim.test"))
            .and_then(|r| r.srv("kas.provider.kim.test", "localhost", port, 0, 0))
            .and_then(|r| r.txt("kas.provider.kim.test", &["txtvers=1", "path=/"]))
            .and_then(|r| r.ptr("_accmgr._tcp.kim.test", "am.provider.kim.test"))
            .and_then(|r| r.srv("am.provider.kim.test", "localhost", port, 0, 0))
            .expect("DNS-SD records");
        let dns = Dnsmasq::start(&records).expect("dnsmasq");
        let files = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let p = files.path().join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        let ca = write("kas-ca.pem", &kas.tls.ca_pem);
        let cert = write("kas-client.pem", &kas.tls.client_cert_pem);
        let key = write("kas-client.key", &kas.tls.client_key_pem);
        let kas_section = format!(
            "\n[kas]\ndiscovery_domain = \"kim.test\"\ndns_server = \"{}\"\nca = \"{}\"\n\
             client_certificate = \"{}\"\nclient_key = \"{}\"\ntimeout = \"{timeout}\"\n",
            dns.addr(),
            ca.display(),
            cert.display(),
            key.display()
        );
        KasByDnsSd {
            dns,
            kas_section,
            _files: files,
        }
    }
}

/// The KAS simulator's port (its SRV record's target port).
pub(crate) fn kas_port(kas: &KasSim) -> u16 {
    kas.base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the KAS base URL")
}

impl KasBed {
    fn start() -> KasBed {
        let kas = KasSim::start(KasSimConfig::default()).expect("KAS simulator");
        let found = KasByDnsSd::start(&kas, 300, "10s");
        let extra_config = found.kas_section.clone();
        let bed = TestBed::start_with(Options {
            pop3: true,
            extra_config,
            ..Options::default()
        });
        KasBed { kas, bed, found }
    }
}

/// Sets `address`'s komLeData in the running slapd (A_19356-06, A_23512): `1.5+` opts in.
fn set_kom_le_data(slapd: &Slapd, uid: &str, value: &str) {
    crate::common::ldap_modify(
        slapd,
        uid,
        &format!("replace: komLeData\nkomLeData: {value}\n"),
    );
}

/// A text mail of at least `size` bytes with `marker` in its Message-ID.
fn large_mail(from: &str, to: &str, marker: &str, size: usize) -> Vec<u8> {
    let mut mail = format!(
        "From: Praxis <{from}>\r\nTo: <{to}>\r\nSubject: Gross {marker}\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    .into_bytes();
    let mut i = 0u64;
    while mail.len() < size {
        mail.extend_from_slice(
            format!("Zeile {i:09} Kalium 4,1 mmol/l {marker} abcdefghijklmnopqrstuvwxyz\r\n")
                .as_bytes(),
        );
        i += 1;
    }
    mail
}

fn send(bed: &TestBed, from: &str, to: &str, mail: &[u8]) -> clients::Run {
    let login = bed.login(from);
    let pw = password(from);
    clients::curl(
        &Submission {
            server: bed.smtp_addr(),
            ca: bed.cm_ca_path(),
            user: &login,
            password: &pw,
            from,
            rcpts: &[to],
        },
        mail,
        &[],
    )
}

/// RETR 1 through komle-cm's POP3 side with curl; the message as curl prints it.
fn retr(bed: &TestBed, user: &str) -> Vec<u8> {
    let pop3 = bed.pop3_addr().expect("POP3 listener");
    let url = format!(
        "pop3s://{}:{}@127.0.0.1:{}/1",
        clients::percent_encode(&bed.pop3_login(user)),
        clients::percent_encode(&password(user)),
        pop3.port()
    );
    let out = Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--max-time", "300", "--cacert"])
        .arg(bed.cm_ca_path())
        .arg("--url")
        .arg(&url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        bed.log()
    );
    out.stdout
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn body_of(mail: &[u8]) -> &[u8] {
    let at = find(mail, b"\r\n\r\n").expect("header end") + 4;
    &mail[at..]
}

fn rss(bed: &TestBed) -> u64 {
    bed.cm_peak_rss_kib().unwrap_or(0)
}

/// Size of the headline mail: issue 17's "Done when" asks for 100 MB end to end.
const HEADLINE_SIZE: usize = 100_000_000;

/// The headline case (issue 17): a 100 MB client mail through komle-cm, the KAS and both mail
/// servers, and back through komle-cm's POP3 side byte-identical apart from the note and the
/// result headers. komle-cm's VmHWM (idle, after the send, after the RETR) and the wall times
/// are printed for BENCHMARKS.md; no memory bound is asserted here (streaming is its own
/// issue), only what must hold: one object on the KAS of the mail's size, only the small
/// KOM-LE message through the MTA, every byte of the client mail back.
///
/// The one 100 MB round trip per runtime in CI (debug build, 2 cores): the other KAS cases use
/// 16 MiB mails.
#[test]
fn a_19357_a_19363_a_19370_100_mb_sent_and_retrieved_through_komle_cm_via_the_kas() {
    let k = KasBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5+,{to}"));
    let idle = rss(&k.bed);
    let marker = "kas-e2e-100mb";
    let mail = large_mail(&from, &to, marker, HEADLINE_SIZE);
    let t = Instant::now();
    let run = send(&k.bed, &from, &to, &mail);
    let sent_in = t.elapsed();
    assert!(run.success, "{}\n{}", run.transcript, k.bed.log());
    let after_send = rss(&k.bed);
    assert_eq!(k.kas.stored_count(), 1, "the mail data lie on the KAS");
    assert!(
        k.found.dns.queries_for("_kas._tcp.kim.test") >= 1,
        "the KAS was found by DNS-SD (A_19361-01)"
    );
    let stored = k.bed.wait_delivered(&to, marker, 1, DELIVERY);
    let head = header_of(&stored[0]);
    assert!(head.contains("X-KOM-LE-Version: 1.5"), "{head}");
    assert!(
        head.contains(&format!("X-KIM-KAS-Size: {}", mail.len())),
        "A_23467: {head}"
    );
    assert!(
        stored[0].len() < 1_000_000,
        "only the small KOM-LE message travels: {}",
        stored[0].len()
    );
    let t = Instant::now();
    let got = retr(&k.bed, &to);
    let retr_in = t.elapsed();
    let after_retr = rss(&k.bed);
    let head = header_of(&got);
    assert!(head.contains("X-KIM-DecryptionResult: 00"), "{head}");
    assert!(head.contains("X-KIM-IntegrityCheckResult: 01"), "{head}");
    // The client mail's header fields come back as the client wrote them.
    let client_head = header_of(&mail);
    for field in client_head.split("\r\n").filter(|f| {
        ["From:", "To:", "Subject:", "Date:", "Message-ID:"]
            .iter()
            .any(|name| f.starts_with(name))
    }) {
        assert!(head.contains(field), "{field} missing in\n{head}");
    }
    // Its body, all 100 MB, byte for byte and exactly once.
    let body = body_of(&mail);
    let at = find(&got, body).unwrap_or_else(|| {
        panic!(
            "the client mail's body does not arrive byte-identical ({} bytes received, {} sent)",
            got.len(),
            mail.len()
        )
    });
    assert!(
        find(
            &got[at + body.len()..],
            format!("Zeile {:09}", 0).as_bytes()
        )
        .is_none(),
        "the body arrives once"
    );
    assert!(
        find(&got[at + body.len()..], b"Die Nachricht wurde entschl").is_some(),
        "the note follows the client's text"
    );
    eprintln!(
        "KAS e2e {} B: send {sent_in:?}, RETR {retr_in:?} ({} B received); komle-cm VmHWM \
         idle {idle} KiB, after send {after_send} KiB, after RETR {after_retr} KiB",
        mail.len(),
        got.len()
    );
}

#[test]
fn a_19357_a_14_mib_mail_still_goes_the_1_0_way() {
    let k = KasBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5+,{to}"));
    let marker = "kas-e2e-14mib";
    let run = send(
        &k.bed,
        &from,
        &to,
        &large_mail(&from, &to, marker, 14 * 1024 * 1024),
    );
    assert!(run.success, "{}\n{}", run.transcript, k.bed.log());
    let stored = k.bed.wait_delivered(&to, marker, 1, DELIVERY);
    let head = header_of(&stored[0]);
    assert!(head.contains("X-KOM-LE-Version: 1.0"), "{head}");
    assert!(!head.contains("X-KIM-KAS-Size"), "{head}");
    assert_eq!(k.kas.stored_count(), 0);
}

#[test]
fn a_22419_kas_507_is_521_and_a_19363_kas_down_is_451_and_a_23512_refusal_is_4018() {
    let mut k = KasBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5+,{to}"));
    let size = 16 * 1024 * 1024;
    // A_22419-01: quota exhausted.
    k.kas.force_add_status(&[507]);
    let run = send(
        &k.bed,
        &from,
        &to,
        &large_mail(&from, &to, "kas-e2e-507", size),
    );
    assert_eq!(run.last_code(), Some(521), "{}", run.transcript);
    // A_23512: sent while the recipient had opted in, fetched after the opt-in was withdrawn.
    let run = send(
        &k.bed,
        &from,
        &to,
        &large_mail(&from, &to, "kas-e2e-4018", size),
    );
    assert!(run.success, "{}\n{}", run.transcript, k.bed.log());
    k.bed.wait_delivered(&to, "kas-e2e-4018", 1, DELIVERY);
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5,{to}"));
    let got = retr(&k.bed, &to);
    let head = header_of(&got);
    assert!(head.contains("X-KIM-Fehlermeldung: 4018"), "{head}");
    assert!(
        find(&got, b"Zeile 000000001").is_none(),
        "nothing was fetched"
    );
    // A_19363-03: the KAS cannot be reached.
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5+,{to}"));
    k.kas.stop();
    let run = send(
        &k.bed,
        &from,
        &to,
        &large_mail(&from, &to, "kas-e2e-down", size),
    );
    assert_eq!(run.last_code(), Some(451), "{}", run.transcript);
    k.bed
        .assert_not_delivered(&to, "kas-e2e-down", Duration::from_secs(2));
}

/// A_19372-03 through komle-cm: the KAS returns data that decrypt under the key but do not
/// match `hash`; the POP3 client gets the mail with its content replaced and code 4012, never
/// the unchecked data.
#[test]
fn a_19372_hash_mismatch_on_retr_is_the_4012_replacement() {
    use komle_conformance::inprocess;
    use komle_conformance::sim::simulator::Simulator;
    use komle_core::kas::{GcmIv, cipher};
    use komle_core::login_name::LoginName;
    use komle_core::open::{Reception, Step};
    use komle_core::secret::SecretBytes;
    use komle_core::smime::DeliveryOptions;

    let k = KasBed::start();
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    set_kom_le_data(&k.bed.slapd, &world().pki.single.uid, &format!("1.5+,{to}"));
    let marker = "kas-e2e-hash";
    let run = send(
        &k.bed,
        &from,
        &to,
        &large_mail(&from, &to, marker, 16 * 1024 * 1024),
    );
    assert!(run.success, "{}\n{}", run.transcript, k.bed.log());
    let stored = k.bed.wait_delivered(&to, marker, 1, DELIVERY);
    // The recipient's side up to the KIM-Attachment structure, in process, to learn the key.
    let sim = Simulator::new(world().sim_config.clone());
    let login = LoginName::parse(&crate::common::login_via(
        &to,
        std::net::SocketAddr::from(([127, 0, 0, 1], 995)),
    ))
    .expect("login name");
    let job = komle_core::pop3::OpenJob {
        login,
        message: SecretBytes::from(crate::common::to_crlf(&stored[0])),
    };
    let mut r = Reception::new(
        job,
        inprocess::endpoints(&sim),
        std::time::SystemTime::now(),
        DeliveryOptions::default(),
    )
    .with_kas();
    let mut cards = Default::default();
    let fetch = loop {
        match r.step() {
            Step::Call(c) => r.konnektor_answer(
                &mut cards,
                sim.handle(c.request.soap_action, &c.request.body).body,
            ),
            Step::FetchKas(f) => break f,
            Step::Done(_) => panic!("the stored message carries no KIM-Attachment structure"),
        }
    };
    let size = usize::try_from(fetch.attachment.size).expect("size");
    let other =
        cipher::seal(&fetch.attachment.key, GcmIv([3; 12]), &vec![b'y'; size]).expect("seals");
    let id = fetch.attachment.link.rsplit('/').next().expect("object id");
    assert!(k.kas.replace_data(id, other));
    let got = retr(&k.bed, &to);
    let head = header_of(&got);
    assert!(head.contains("X-KIM-Fehlermeldung: 4012"), "{head}");
    assert!(find(&got, b"Sicherheitsverletzung").is_some());
    assert!(
        find(&got, b"yyyyyyyyyyyyyyyy").is_none(),
        "no unchecked data"
    );
}
