//! No log record carries message content or a password, at trace level, through the whole
//! sending and receiving path (A_2005; examples/komle-cm.toml promises it).
//!
//! One test process installs the daemon's filter ([`ContentSafe`]) in front of a capturing
//! sink with the global level at trace, and a second sink before the filter sees the uncapped
//! stream. Then a mail whose subject and body carry a content canary goes through the SMTP
//! proxy (directory, Konnektor simulator over HTTPS, mail service), comes back through the
//! POP3 proxy (RETR: decrypted and verified by the Konnektor), and the account password is a
//! second canary. Every captured record (target, module, file, message) is searched for the
//! canaries in plain, base64 at all three alignments, hex (lower and upper, also with the
//! spaces of a hex dump removed), quoted-printable; hex-dump rows as ureq-proto writes them
//! (16 bytes per record) are decoded and joined first, so a canary split across rows is found
//! too. Controls: the filtered stream holds our own records, the filter dropped library
//! records, and the same search over the uncapped stream finds the content canary.

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::{Embedded, EmbeddedOptions, ProxyClient};
use komle_demo::embedded_pop3::Pop3Options;
use komle_service::logging::{ContentSafe, is_own_target};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// In the subject and the body. `=` makes its quoted-printable form differ.
const CONTENT: &str = "Kanarienvogel-7Q3x=Befundinhalt";
/// The account password at the mail service (SMTP AUTH and POP3 PASS).
const SECRET: &str = "Passwortkanarie-9vX=geheim";

#[derive(Clone, Debug)]
struct Captured {
    level: Level,
    target: String,
    module: String,
    file: String,
    message: String,
}

struct Capture(&'static Mutex<Vec<Captured>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let c = Captured {
            level: record.level(),
            target: record.target().to_owned(),
            module: record.module_path().unwrap_or_default().to_owned(),
            file: record.file().unwrap_or_default().to_owned(),
            message: record.args().to_string(),
        };
        if let Ok(mut v) = self.0.lock() {
            v.push(c);
        }
    }
    fn flush(&self) {}
}

/// The uncapped stream first, then the daemon's filter.
struct Tee {
    raw: Capture,
    filtered: &'static ContentSafe<Capture>,
}

impl Log for Tee {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        self.raw.log(record);
        self.filtered.log(record);
    }
    fn flush(&self) {}
}

static RAW: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
static FILTERED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// Every form in which `canary` could show up in a log line.
fn needles(canary: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = canary.as_bytes();
    let mut n = vec![("plain".to_owned(), bytes.to_vec())];
    for k in 0..3usize {
        // base64 of the canary preceded by k bytes: drop the characters that also encode the
        // prefix and a last character that also encodes what follows.
        let mut shifted = vec![0u8; k];
        shifted.extend_from_slice(bytes);
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&shifted);
        let start = (4 * k).div_ceil(3);
        let end = 8 * shifted.len() / 6;
        n.push((format!("base64+{k}"), b64.as_bytes()[start..end].to_vec()));
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    n.push(("hex".into(), hex.clone().into_bytes()));
    n.push(("HEX".into(), hex.to_uppercase().into_bytes()));
    let qp: String = canary
        .chars()
        .map(|c| {
            if c == '=' {
                "=3D".to_owned()
            } else {
                c.to_string()
            }
        })
        .collect();
    if qp != canary {
        n.push(("quoted-printable".into(), qp.into_bytes()));
    }
    n
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A ureq-proto hex-dump row ("3c3f 786d ... --  <?xm..."): its bytes.
fn hex_row(message: &str) -> Option<Vec<u8>> {
    let groups: Vec<&str> = message.get(..40)?.split(' ').take(8).collect();
    if groups.len() != 8 || groups.iter().any(|g| g.len() != 4) {
        return None;
    }
    let mut out = Vec::new();
    for g in groups {
        for pair in [&g[..2], &g[2..]] {
            if pair == "--" {
                return Some(out);
            }
            out.push(u8::from_str_radix(pair, 16).ok()?);
        }
    }
    Some(out)
}

/// Where the canary was found: (what, which encoding) for every hit.
fn search(records: &[Captured], canary: &str) -> Vec<String> {
    let needles = needles(canary);
    let mut hits = Vec::new();
    let mut dump = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let squeezed: String = r.message.chars().filter(|c| !c.is_whitespace()).collect();
        for (field, hay) in [
            ("target", r.target.as_str()),
            ("module", r.module.as_str()),
            ("file", r.file.as_str()),
            ("message", r.message.as_str()),
            ("message without whitespace", squeezed.as_str()),
        ] {
            for (how, needle) in &needles {
                if contains(hay.as_bytes(), needle) {
                    hits.push(format!("record {i} ({}) {field}: {how}", r.target));
                }
            }
        }
        if let Some(bytes) = hex_row(&r.message) {
            dump.extend_from_slice(&bytes);
        }
    }
    let unwrapped: Vec<u8> = dump
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    for (what, hay) in [
        ("hex dumps joined", &dump),
        ("hex dumps joined, unwrapped", &unwrapped),
    ] {
        for (how, needle) in &needles {
            if contains(hay, needle) {
                hits.push(format!("{what}: {how}"));
            }
        }
    }
    hits
}

fn line(io: &mut ProxyClient) -> String {
    let mut l = String::new();
    let _ = io.read_line(&mut l);
    l
}

fn smtp(io: &mut ProxyClient, command: &str) -> String {
    io.get_mut()
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    let mut all = String::new();
    loop {
        let l = line(io);
        all.push_str(&l);
        if l.is_empty() || l.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

/// SMTP send through the proxy, then RETR of the delivered message through the POP3 proxy;
/// returns what the POP3 client got.
fn full_round_trip(env: &Embedded) -> String {
    let from = env.world.pki.sender.address.clone();
    let to = env.world.pki.single.address.clone();
    let mut io = env.client(env.proxy_addr, Duration::from_secs(60)).unwrap();
    assert!(line(&mut io).starts_with("220"));
    assert!(smtp(&mut io, "EHLO canary").starts_with("250"));
    let auth = plain::encode_response(&env.login(), &Password::new(SECRET));
    let r = smtp(&mut io, &format!("AUTH PLAIN {auth}"));
    assert!(r.starts_with("235"), "{r}");
    assert!(smtp(&mut io, &format!("MAIL FROM:<{from}>")).starts_with("250"));
    let r = smtp(&mut io, &format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{r}");
    assert!(smtp(&mut io, "DATA").starts_with("354"));
    let mail = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Befund {CONTENT}\r\n\r\nSehr geehrte Kollegin,\r\n{CONTENT}\r\nMit Gruessen\r\n."
    );
    let r = smtp(&mut io, &mail);
    assert!(r.starts_with("250"), "{r}");
    let _ = smtp(&mut io, "QUIT");

    let delivered = env.mta.received().pop().expect("delivered").data;
    assert!(
        !contains(&delivered, CONTENT.as_bytes()),
        "encrypted on the way"
    );
    let pop3 = env.pop3.as_ref().expect("POP3 side");
    pop3.put(delivered);
    let addr = env.pop3_addr.expect("POP3 proxy");
    let mut io = env.client(addr, Duration::from_secs(60)).unwrap();
    assert!(line(&mut io).starts_with("+OK"));
    let login = env.pop3_login().unwrap();
    assert!(smtp(&mut io, &format!("USER {login}")).starts_with("+OK"));
    let r = smtp(&mut io, &format!("PASS {SECRET}"));
    assert!(r.starts_with("+OK"), "{r}");
    io.get_mut().write_all(b"RETR 1\r\n").unwrap();
    let mut fetched = String::new();
    loop {
        let l = line(&mut io);
        if l.is_empty() || l == ".\r\n" {
            break;
        }
        fetched.push_str(&l);
    }
    let _ = smtp(&mut io, "QUIT");
    fetched
}

#[test]
fn a_2005_no_log_record_carries_content_or_password_at_trace() {
    let filter: &'static ContentSafe<Capture> = Box::leak(Box::new(ContentSafe::new(
        Capture(&FILTERED),
        LevelFilter::Trace,
    )));
    let tee: &'static Tee = Box::leak(Box::new(Tee {
        raw: Capture(&RAW),
        filtered: filter,
    }));
    log::set_logger(tee).expect("the only logger of this test binary");
    log::set_max_level(LevelFilter::Trace);

    let env = Embedded::start(&EmbeddedOptions {
        pop3: Some(Pop3Options::default()),
        password: SECRET.to_owned(),
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let fetched = full_round_trip(&env);
    assert!(
        fetched.contains(CONTENT),
        "the round trip did not reach the plaintext (so the test proved nothing):\n{fetched}"
    );
    drop(env);
    log::logger().flush();

    let raw = RAW.lock().unwrap().clone();
    let filtered = FILTERED.lock().unwrap().clone();

    // The capture works and the cap did something.
    let own = filtered.iter().filter(|r| is_own_target(&r.target)).count();
    assert!(own > 0, "no record of our own targets passed the filter");
    let library_trace = raw
        .iter()
        .filter(|r| !is_own_target(&r.target) && r.level == Level::Trace)
        .count();
    assert!(
        library_trace > 0,
        "no library logged at trace: nothing to cap"
    );
    assert!(filter.capped() > 0, "the filter dropped nothing");
    assert!(
        filtered
            .iter()
            .all(|r| is_own_target(&r.target) || r.level <= Level::Warn),
        "a library record above warn passed"
    );

    // What the daemon would log: nothing of the content or the password.
    let content_hits = search(&filtered, CONTENT);
    let secret_hits = search(&filtered, SECRET);
    assert!(
        content_hits.is_empty(),
        "content in the log: {content_hits:?}"
    );
    assert!(
        secret_hits.is_empty(),
        "password in the log: {secret_hits:?}"
    );

    // Negative control: the search finds the content in the uncapped stream.
    let raw_content = search(&raw, CONTENT);
    let raw_secret = search(&raw, SECRET);
    eprintln!(
        "uncapped stream: {} records ({} library trace, {} of our own at trace); filter dropped {}; content found {}x ({:?}); password found {}x ({:?})",
        raw.len(),
        library_trace,
        raw.iter()
            .filter(|r| is_own_target(&r.target) && r.level == Level::Trace)
            .count(),
        filter.capped(),
        raw_content.len(),
        raw_content.iter().take(3).collect::<Vec<_>>(),
        raw_secret.len(),
        raw_secret.iter().take(3).collect::<Vec<_>>(),
    );
    assert!(
        !raw_content.is_empty(),
        "negative control: the uncapped library output should contain the content canary"
    );
}
