//! `komle-demo`: the whole sending and receiving path on an embedded default, without any
//! system package.
//!
//! In-process and on 127.0.0.1: a test PKI with practices and their cards, the Konnektor
//! simulator (HTTPS, real CMS cryptography) holding those cards, a directory made of the PKI, a
//! small SMTPS and POP3S mail service, and komle-cm's SMTP and POP3 proxies in front of it. The
//! demo sends a sample mail through the SMTP proxy, shows the KOM-LE message as it reached the
//! mail service, opens it again with the recipient's card, fetches it through the POP3 proxy
//! (see [`demo_pop3`](crate::demo_pop3)), and keeps serving so curl or Thunderbird can be
//! pointed at it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::world::SINGLE_CARD;
use komle_core::konnektor::{decrypt_document, verify_document};
use komle_core::login_name::LoginName;
use komle_core::sasl::plain;
use komle_core::secret::Password;
use rustls::pki_types::ServerName;

use crate::embedded::{Embedded, EmbeddedOptions};
use crate::embedded_pop3::Pop3Options;
use komle_service::konnektor_http::KonnektorHttp;

/// Password of the demo account at the embedded mail service.
pub const DEMO_PASSWORD: &str = crate::embedded::PASSWORD;

/// Options of the demo; the default: any free ports, serve on, no large messages.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Port of the SMTP proxy (0: any free port).
    pub smtp_port: u16,
    /// Stop after showing the round trip instead of serving on.
    pub once: bool,
    /// Benchmarks: the Konnektor simulator answers repeated crypto requests from a memo (see
    /// `EmbeddedOptions::precomputed_konnektor`); `--precomputed-konnektor`.
    pub precomputed_konnektor: bool,
    /// Port of the POP3 proxy (0: any free port).
    pub pop3_port: u16,
    /// Also put a KOM-LE message and a plain mail of this many MB into the POP3 maildrop (as
    /// messages 2 and 3) for the load tool; 0: none.
    pub pop3_large_mb: usize,
    /// KIM 1.5: also send a mail of this many MB through the proxy; over 15 MiB it goes via
    /// the KAS simulator (`--large N`); 0: none.
    pub large_mb: usize,
    /// Benchmarks: also start the protocol-floor relay (`floor_relay`) on a free port and
    /// print its address; `--floor-relay`.
    pub floor_relay: bool,
    /// KIM 1.5 without the scripted large mail: the KAS simulator behind the proxy and SIZE
    /// raised to the KAS limit (`--kas`), for the KAS timing tool (`komle-load-kas`). Implied
    /// by a `large_mb` over 0.
    pub kas: bool,
}

/// Why the demo could not run.
#[derive(Debug)]
pub struct DemoError(pub String);

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError(format!("{what}: {e}"))
}

/// Runs the demo; output goes to `out` so it can be tested.
pub fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    let say = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    say(
        out,
        "KOM-LE Clientmodul demo: everything runs in this process on 127.0.0.1.",
    );
    // A port in use would otherwise surface as a bare "Address already in use" from deep in
    // the start-up; say which port and which option picks another.
    for (port, option) in [
        (options.smtp_port, "--port"),
        (options.pop3_port, "--pop3-port"),
    ] {
        if port != 0 {
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
                DemoError(format!(
                    "127.0.0.1:{port} cannot be used ({e}); choose another port with {option} N"
                ))
            })?;
        }
    }
    say(out, "Generating the test PKI and the practices' cards ...");
    let mut env = Embedded::start(&EmbeddedOptions {
        smtp_port: options.smtp_port,
        // Enough for load tests against the demo (1,000 idle sessions in BENCHMARKS.md).
        max_sessions: 2000,
        precomputed_konnektor: options.precomputed_konnektor,
        // The load tools (which start the demo in this mode) measure the mail service alone
        // with a client that has no C.CM.TLS-CS.
        mail_service_admits_clients_without_certificate: options.precomputed_konnektor,
        kas: options.kas || options.large_mb > 0,
        pop3: Some(Pop3Options {
            port: options.pop3_port,
            max_sessions: 2000,
            ..Pop3Options::default()
        }),
        ..EmbeddedOptions::default()
    })
    .map_err(|e| DemoError(e.to_string()))?;
    let world = env.world.clone();
    let sender = world.pki.sender.address.clone();
    let recipient = world.pki.single.address.clone();
    say(
        out,
        &format!(
            "Konnektor simulator: {} (ECC capable: {})",
            env.sim.base_url(),
            env.endpoints.ecc_capable
        ),
    );
    if options.precomputed_konnektor {
        say(
            out,
            "Konnektor simulator answers repeated Sign/Encrypt/Decrypt/VerifyDocument requests from memory (--precomputed-konnektor: benchmarks only)",
        );
    }
    say(out, &format!("Mail service (SMTPS): {}", env.mta.addr()));
    if let Some(kas) = &env.kas {
        say(
            out,
            &format!(
                "KOM-LE Attachment Service (KAS simulator, mutual TLS): {}",
                kas.base_url()
            ),
        );
    }
    if let Some(pop3) = &env.pop3 {
        say(out, &format!("Mail service (POP3S): {}", pop3.addr()));
    }
    say(
        out,
        if options.precomputed_konnektor {
            "Mail service verifies komle-cm's TLS client certificate (C.CM.TLS-CS from its key store, A_2074) and admits the load tools' clients without one (--precomputed-konnektor: benchmarks only); the Konnektor checks the mail service's certificate (VerifyCertificate, A_2075-01)"
        } else {
            "Mail service requires komle-cm's TLS client certificate (C.CM.TLS-CS from its key store, A_2074); the Konnektor checks the mail service's certificate (VerifyCertificate, A_2075-01)"
        },
    );
    let proxy_addr = env.proxy_addr;
    say(
        out,
        &format!("komle-cm SMTP proxy (implicit TLS): {proxy_addr}"),
    );
    if options.floor_relay {
        let floor = crate::floor_relay::start(crate::floor_relay::FloorServices {
            server_tls: env.proxy_tls.server_config(),
            upstream_tls: env.mail_service_tls.upstream.clone(),
            checker: env.session_context.checker.clone(),
            protector: env.session_context.protector.clone(),
        })
        .map_err(|e| DemoError(format!("protocol floor relay: {e}")))?;
        say(
            out,
            &format!("Protocol floor relay (benchmarks only): {floor}"),
        );
    }
    let (konnektor, endpoints, mta, cm_tls) =
        (&env.konnektor, &env.endpoints, &env.mta, &env.proxy_tls);
    let login = env.login();
    say(out, "");
    say(
        out,
        &format!("1. Sending a mail from {sender} to {recipient} through the proxy:"),
    );
    let mail = sample_mail(&sender, &recipient);
    send(proxy_addr, cm_tls, &login, &sender, &recipient, &mail, out)?;

    let received = mta.received();
    let Some(delivered) = received.first() else {
        return Err(DemoError("the mail service received nothing".into()));
    };
    say(out, "");
    say(
        out,
        "2. The message as it reached the mail service (KOM-LE S/MIME, A_2193):",
    );
    show_outer(&delivered.data, out);

    say(out, "");
    say(
        out,
        &format!("3. Opening it again with the recipient's card ({SINGLE_CARD}):"),
    );
    open(konnektor, endpoints, &delivered.data, out)?;

    say(out, "");
    say(
        out,
        &format!(
            "4. The mail service keeps it for {recipient}; fetching it through komle-cm's POP3 proxy:"
        ),
    );
    crate::demo_pop3::fetch_through_proxy(&env, &delivered.data, out)?;
    if options.pop3_large_mb > 0 {
        crate::demo_pop3::add_large_messages(&env, options.pop3_large_mb)?;
        say(
            out,
            &format!(
                "POP3 maildrop: 1 = the message above, 2 = a {} MB KOM-LE message, 3 = a {} MB plain mail",
                options.pop3_large_mb, options.pop3_large_mb
            ),
        );
    }

    if options.large_mb > 0 {
        say(out, "");
        large_round_trip(&env, options.large_mb, out)?;
    }

    say(out, "");
    if options.once {
        say(
            out,
            "Try it yourself: run `komle-demo` without --once, it keeps serving like this:",
        );
    } else {
        say(out, "Try it yourself while this runs (Ctrl-C to stop):");
    }
    say(
        out,
        &format!("  proxy      smtps://127.0.0.1:{}", proxy_addr.port()),
    );
    say(out, &format!("  user       {login}"));
    say(out, &format!("  password   {DEMO_PASSWORD}"));
    say(
        out,
        &format!(
            "  recipients {recipient}, {} (others have no usable certificate)",
            world.pki.old_and_new_card.address
        ),
    );
    let ca_path = std::env::temp_dir().join(format!("komle-cm-demo-ca-{}.pem", std::process::id()));
    let _ = std::fs::write(&ca_path, &cm_tls.ca_pem);
    // curl splits --user at the first colon, and the login name has one (host:port): give
    // the credentials percent-encoded in the URL instead. The mail comes from a here-document,
    // so the command works as printed, with no file to create first.
    let encoded = percent_encode(&login);
    say(
        out,
        &format!(
            "  curl --ssl-reqd --cacert {} --url 'smtps://{encoded}:{DEMO_PASSWORD}@127.0.0.1:{}' --mail-from {sender} --mail-rcpt {recipient} --upload-file - <<'MAIL'",
            ca_path.display(),
            proxy_addr.port()
        ),
    );
    for line in hand_mail(&sender, &recipient).lines() {
        say(out, line);
    }
    say(out, "MAIL");
    if let (Some(pop3_proxy), Some(pop3_login)) = (env.pop3_addr, env.pop3_login()) {
        say(
            out,
            &format!("komle-cm POP3 proxy (implicit TLS): {pop3_proxy}"),
        );
        say(out, &format!("  pop3 user  {pop3_login}"));
        say(
            out,
            &format!(
                "  curl --ssl-reqd --cacert {} --url 'pop3s://{}:{DEMO_PASSWORD}@127.0.0.1:{}/1'",
                ca_path.display(),
                percent_encode(&pop3_login),
                pop3_proxy.port()
            ),
        );
        say(
            out,
            &format!(
                "  (mail sent to {recipient} through the proxy shows up here as message 2, 3, ...)"
            ),
        );
    }
    if !options.once {
        // Benchmark mode: the load tools send hundreds of MB to the recipient; copying them
        // into the maildrop would cost the proxy's process time and memory mid-measurement.
        let hand_on = (!options.precomputed_konnektor).then_some(recipient.as_str());
        serve_until_stopped(&env, hand_on)?;
        say(out, "Stopped.");
    }
    env.stop();
    let _ = std::fs::remove_file(&ca_path);
    Ok(())
}

/// Serves until SIGINT or SIGTERM, handing every mail the demo's mail service receives for
/// `recipient` (if any) on to its POP3 maildrop, so what was sent by hand can be fetched by
/// hand. Returning (instead of dying on the signal) lets the caller remove the CA file it
/// wrote.
fn serve_until_stopped(env: &Embedded, recipient: Option<&str>) -> Result<(), DemoError> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let stop = Arc::new(AtomicBool::new(false));
    let mut signals =
        Signals::new([Signal::Int, Signal::Term]).map_err(err("catching SIGINT/SIGTERM"))?;
    let flag = stop.clone();
    std::thread::spawn(move || {
        smol::block_on(signals.next());
        flag.store(true, Ordering::SeqCst);
    });
    // The scripted round trip put the first message into the maildrop already.
    let mut handed_on = env.mta.received_count();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        // WHY the count first: `received()` copies every mail received so far, and a load
        // run leaves hundreds of MB there; copy only when something new came in.
        let Some(recipient) = recipient else { continue };
        if env.mta.received_count() == handed_on {
            continue;
        }
        let received = env.mta.received();
        for mail in received.iter().skip(handed_on) {
            let for_recipient = mail
                .recipients
                .iter()
                .any(|r| r.eq_ignore_ascii_case(recipient));
            if let (true, Some(pop3)) = (for_recipient, &env.pop3) {
                pop3.put(mail.data.clone());
            }
        }
        handed_on = received.len();
    }
    Ok(())
}

/// The mail the printed curl command sends (RFC 5322, CRLF added by the SMTP client).
fn hand_mail(from: &str, to: &str) -> String {
    format!(
        "From: <{from}>\nTo: <{to}>\nSubject: Von Hand gesendet\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\nDiese Nachricht wurde mit curl gesendet.\n"
    )
}

/// URL userinfo encoding for curl: everything but unreserved characters as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sample_mail(from: &str, to: &str) -> String {
    format!(
        "From: Praxis Dr. Mustermann <{from}>\r\nTo: <{to}>\r\nSubject: Befund Frau S. Muster\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <demo-1@komle.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSehr geehrte Kollegin,\r\n\r\nanbei der Befund. Dies ist eine Demo-Nachricht.\r\n\r\nMit freundlichen Gruessen\r\n"
    )
}

/// A small SMTP client over TLS that prints the dialog (password hidden).
fn send(
    proxy: SocketAddr,
    tls: &LoopbackTls,
    login: &str,
    from: &str,
    to: &str,
    mail: &str,
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    let sock = TcpStream::connect(proxy).map_err(err("connect to proxy"))?;
    sock.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(err("socket"))?;
    let name = ServerName::try_from("localhost").map_err(err("server name"))?;
    let conn = rustls::ClientConnection::new(tls.client_config(), name).map_err(err("TLS"))?;
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let auth = plain::encode_response(login, &Password::new(DEMO_PASSWORD));
    let steps: Vec<(String, String)> = vec![
        (String::new(), String::new()),
        ("EHLO demo-client".into(), "EHLO demo-client".into()),
        (
            format!("AUTH PLAIN {auth}"),
            "AUTH PLAIN <login name and password>".into(),
        ),
        (format!("MAIL FROM:<{from}>"), format!("MAIL FROM:<{from}>")),
        (format!("RCPT TO:<{to}>"), format!("RCPT TO:<{to}>")),
        ("DATA".into(), "DATA".into()),
        (format!("{mail}."), "<the mail> .".into()),
        ("QUIT".into(), "QUIT".into()),
    ];
    for (send, shown) in steps {
        if !send.is_empty() {
            let _ = writeln!(out, "   C: {shown}");
            io.get_mut()
                .write_all(format!("{send}\r\n").as_bytes())
                .map_err(err("write"))?;
        }
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).map_err(err("read"))? == 0 {
                return Err(DemoError("the proxy closed the connection".into()));
            }
            let _ = writeln!(out, "   S: {}", line.trim_end());
            if line.as_bytes().get(3) != Some(&b'-') {
                if line.starts_with('4') || line.starts_with('5') {
                    return Err(DemoError(format!("the proxy refused: {}", line.trim_end())));
                }
                break;
            }
        }
    }
    Ok(())
}

/// KIM 1.5 (gemSpec_CM_KOMLE V1.16 §3.2): a mail of `mb` MB through the SMTP proxy; over
/// 15 MiB its data go encrypted onto the KAS and only the small KOM-LE message reaches the mail
/// service; opening that message fetches, decrypts and checks the data again.
fn large_round_trip(env: &Embedded, mb: usize, out: &mut dyn Write) -> Result<(), DemoError> {
    let world = &env.world;
    let (sender, recipient) = (&world.pki.sender.address, &world.pki.single.address);
    let mut mail = format!(
        "From: Praxis Dr. Mustermann <{sender}>\r\nTo: <{recipient}>\r\nSubject: Grosse Nachricht ({mb} MB)\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMessage-ID: <demo-large@komle.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    let mut i = 0u64;
    while mail.len() < mb * 1_000_000 {
        mail.push_str(&format!(
            "Zeile {i:09}: Bilddaten-Platzhalter fuer die Demo grosser Nachrichten\r\n"
        ));
        i += 1;
    }
    let _ = writeln!(
        out,
        "5. KIM 1.5: sending a {} byte mail (over 15 MiB goes via the KOM-LE Attachment Service):",
        mail.len()
    );
    send(
        env.proxy_addr,
        &env.proxy_tls,
        &env.login(),
        sender,
        recipient,
        &mail,
        out,
    )?;
    let received = env.mta.received();
    let Some(delivered) = received.last() else {
        return Err(DemoError("the mail service received nothing".into()));
    };
    let stored = env.kas.as_ref().map_or(0, |k| k.stored_count());
    let _ = writeln!(
        out,
        "   The mail service got {} bytes; the KAS holds {stored} encrypted object(s). Outer header:",
        delivered.data.len()
    );
    let text = String::from_utf8_lossy(&delivered.data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    for l in head.lines().filter(|l| {
        l.starts_with("X-KOM-LE-Version")
            || l.starts_with("X-KIM-KAS-Size")
            || l.starts_with("Expires")
    }) {
        let _ = writeln!(out, "   {l}");
    }
    let login = env
        .pop3_login()
        .ok_or_else(|| DemoError("the demo runs without POP3".into()))?;
    let job = komle_core::pop3::OpenJob {
        login: LoginName::parse(&login).map_err(|_| DemoError("POP3 login name".into()))?,
        message: komle_core::secret::SecretBytes::from(delivered.data.clone()),
    };
    let opened = smol::block_on(komle_service::contracts::Opener::open(
        env.opener.as_ref(),
        job,
    ))
    .map_err(|f| DemoError(format!("opening: {}", f.reason)))?;
    let opened = opened.message.as_slice();
    let body = &mail.as_bytes()[mail.find("\r\n\r\n").map_or(0, |p| p + 4)..];
    let intact = opened
        .windows(body.len().min(4096))
        .any(|w| w == &body[..body.len().min(4096)])
        && opened
            .windows(256)
            .any(|w| w == &body[body.len().saturating_sub(256)..]);
    let _ = writeln!(
        out,
        "   Opened for {recipient}: {} bytes (the mail, the note and the PDF report); text from first to last line {}.",
        opened.len(),
        if intact { "intact" } else { "NOT intact" }
    );
    if !intact {
        return Err(DemoError("the large mail did not come back intact".into()));
    }
    Ok(())
}

fn show_outer(message: &[u8], out: &mut dyn Write) {
    let text = String::from_utf8_lossy(message);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    for l in head.lines() {
        let _ = writeln!(out, "   {l}");
    }
    let lines: Vec<&str> = body.lines().collect();
    let _ = writeln!(out);
    for l in lines.iter().take(3) {
        let _ = writeln!(out, "   {l}");
    }
    let _ = writeln!(
        out,
        "   ... ({} lines of base64, {} bytes in all)",
        lines.len(),
        message.len()
    );
}

/// DecryptDocument with the recipient's card, VerifyDocument, then the signed mail.
fn open(
    konnektor: &KonnektorHttp,
    endpoints: &komle_core::konnektor::KonnektorEndpoints,
    message: &[u8],
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(message);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let cms = base64::engine::general_purpose::STANDARD
        .decode(body.replace("\r\n", ""))
        .map_err(err("base64 body"))?;
    let context = LoginName::parse("demo#127.0.0.1:1#Praxis#KIM-Demo#Platz1")
        .map_err(err("context"))?
        .call_context();
    let req = decrypt_document::build(&decrypt_document::DecryptDocumentRequest {
        context: &context,
        card_handle: SINGLE_CARD,
        document: &cms,
    });
    let answer = konnektor
        .post_soap_blocking(&endpoints.encryption_service, req.soap_action, req.body)
        .map_err(err("DecryptDocument"))?;
    let plain = decrypt_document::parse(&answer)
        .map_err(err("DecryptDocument"))?
        .plaintext;
    let _ = writeln!(
        out,
        "   DecryptDocument: ok ({} bytes of signed data)",
        plain.len()
    );
    let head_end = plain
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| DemoError("decrypted entity has no header".into()))?;
    let signed = &plain[head_end + 4..];
    let vreq = verify_document::build(&verify_document::VerifyDocumentRequest {
        version: endpoints.signature_version,
        context: &context,
        signed_data: signed,
        return_report: true,
    });
    let answer = konnektor
        .post_soap_blocking(&endpoints.signature_service, vreq.soap_action, vreq.body)
        .map_err(err("VerifyDocument"))?;
    let verified = verify_document::parse(&answer).map_err(err("VerifyDocument"))?;
    let signer = verified
        .signer()
        .and_then(|s| s.subject.clone())
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        out,
        "   VerifyDocument: {:?} (signer {signer})",
        verified.high_level_result
    );
    let info = komle_core::smime::signed_data::inspect(signed).map_err(err("SignedData"))?;
    let _ = writeln!(
        out,
        "   The signed mail, as the recipient's client will see it:"
    );
    let content = String::from_utf8_lossy(&info.content);
    for l in content.lines() {
        let _ = writeln!(out, "   | {l}");
    }
    Ok(())
}
