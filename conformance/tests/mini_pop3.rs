//! MiniPop3 byte for byte: the dialogs the POP3 proxy and the load tool rely on (RFC 1939
//! states, dot-stuffing, UPDATE only at QUIT), and its fault hooks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::mini_pop3::{FaultAction, MiniPop3, Pop3Fault};
use rustls::pki_types::ServerName;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

const USER: &str = "single@komle.test";
const PW: &str = "geheim";

fn server() -> (MiniPop3, LoopbackTls) {
    let tls = LoopbackTls::generate("mini-pop3").unwrap();
    let s = MiniPop3::start("127.0.0.1:0", tls.server_config(), USER, PW).unwrap();
    (s, tls)
}

fn connect(s: &MiniPop3, tls: &LoopbackTls) -> Tls {
    let sock = TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let conn = rustls::ClientConnection::new(
        tls.client_config(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Reads exactly `want.len()` bytes and compares them: every dialog step states its full
/// reply, so a reply with extra bytes shows up as a mismatch in the next step.
fn expect(io: &mut Tls, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    io.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading {:?}: {e}", String::from_utf8_lossy(want)));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

fn say(io: &mut Tls, line: &str, want: &[u8]) {
    io.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    io.flush().unwrap();
    expect(io, want);
}

/// Reads until EOF (or error); what arrived.
fn rest(io: &mut Tls) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match io.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn user_pass_stat_list_uidl_retr_top_dele_quit_byte_exact() {
    let (s, tls) = server();
    let m1 = b"Subject: eins\r\n\r\nZeile\r\n.punkt\r\n".to_vec();
    let m2 = b"Subject: zwei\r\n\r\na\r\nb\r\nc\r\n".to_vec();
    let u1 = s.put(m1.clone());
    let u2 = s.put(m2.clone());
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(
        &mut io,
        "CAPA",
        b"+OK Capability list follows\r\nUSER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n.\r\n",
    );
    say(&mut io, "STAT", b"-ERR Unknown command.\r\n");
    say(&mut io, "PASS x", b"-ERR USER first\r\n");
    say(&mut io, &format!("USER {USER}"), b"+OK \r\n");
    say(
        &mut io,
        "PASS falsch",
        b"-ERR [AUTH] Authentication failed.\r\n",
    );
    say(&mut io, &format!("USER {USER}"), b"+OK \r\n");
    say(&mut io, &format!("PASS {PW}"), b"+OK Logged in.\r\n");
    let total = m1.len() + m2.len();
    say(&mut io, "STAT", format!("+OK 2 {total}\r\n").as_bytes());
    say(
        &mut io,
        "LIST",
        format!("+OK \r\n1 {}\r\n2 {}\r\n.\r\n", m1.len(), m2.len()).as_bytes(),
    );
    say(
        &mut io,
        "LIST 2",
        format!("+OK 2 {}\r\n", m2.len()).as_bytes(),
    );
    say(
        &mut io,
        "UIDL",
        format!("+OK \r\n1 {u1}\r\n2 {u2}\r\n.\r\n").as_bytes(),
    );
    // Dot-stuffed on the wire; the size is that of the unstuffed message.
    say(
        &mut io,
        "RETR 1",
        format!(
            "+OK {} octets\r\nSubject: eins\r\n\r\nZeile\r\n..punkt\r\n.\r\n",
            m1.len()
        )
        .as_bytes(),
    );
    say(
        &mut io,
        "TOP 2 1",
        b"+OK \r\nSubject: zwei\r\n\r\na\r\n.\r\n",
    );
    say(&mut io, "TOP 2 0", b"+OK \r\nSubject: zwei\r\n\r\n.\r\n");
    say(&mut io, "RETR 3", b"-ERR No such message.\r\n");
    say(&mut io, "RETR x", b"-ERR Invalid message number.\r\n");
    say(&mut io, "DELE 1", b"+OK Marked to be deleted.\r\n");
    say(&mut io, "RETR 1", b"-ERR No such message.\r\n");
    say(
        &mut io,
        "STAT",
        format!("+OK 1 {}\r\n", m2.len()).as_bytes(),
    );
    say(&mut io, "RSET", b"+OK \r\n");
    say(&mut io, "STAT", format!("+OK 2 {total}\r\n").as_bytes());
    say(&mut io, "DELE 2", b"+OK Marked to be deleted.\r\n");
    say(&mut io, "NOOP", b"+OK \r\n");
    // Counted once written: the reply to a later command shows it is.
    assert_eq!(s.retrievals(), 1);
    // Not yet deleted: RFC 1939 UPDATE happens at QUIT.
    assert_eq!(s.message_count(), 2);
    assert_eq!(s.deleted(), 0);
    say(&mut io, "QUIT", b"+OK Logging out.\r\n");
    assert!(rest(&mut io).is_empty(), "closed after QUIT");
    assert_eq!(s.deleted(), 1);
    assert_eq!(s.messages().len(), 1);
    assert_eq!(s.messages()[0].data, m1);
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    use base64::Engine as _;
    let (s, tls) = server();
    let good = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PW}"));
    let bad = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0nein"));
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(
        &mut io,
        "AUTH LOGIN",
        b"-ERR Unsupported authentication mechanism.\r\n",
    );
    say(
        &mut io,
        &format!("AUTH PLAIN {bad}"),
        b"-ERR [AUTH] Authentication failed.\r\n",
    );
    say(&mut io, "AUTH PLAIN", b"+ \r\n");
    say(&mut io, &good, b"+OK Logged in.\r\n");
    say(&mut io, "STAT", b"+OK 0 0\r\n");
    say(&mut io, "QUIT", b"+OK Logging out.\r\n");

    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(
        &mut io,
        &format!("AUTH PLAIN {good}"),
        b"+OK Logged in.\r\n",
    );
    // QUIT in AUTHORIZATION commits nothing; in TRANSACTION without DELE neither.
    say(&mut io, "QUIT", b"+OK Logging out.\r\n");
    assert_eq!(s.deleted(), 0);
}

#[test]
fn broken_connection_before_quit_deletes_nothing() {
    let (s, tls) = server();
    s.put(b"Subject: a\r\n\r\nx\r\n".to_vec());
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(&mut io, &format!("USER {USER}"), b"+OK \r\n");
    say(&mut io, &format!("PASS {PW}"), b"+OK Logged in.\r\n");
    say(&mut io, "DELE 1", b"+OK Marked to be deleted.\r\n");
    drop(io);
    wait_until(|| s.connections() == 0);
    assert_eq!(s.message_count(), 1);
    assert_eq!(s.deleted(), 0);
}

fn wait_until(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fault_before_command_drops_without_effect() {
    let (s, tls) = server();
    s.put(b"Subject: a\r\n\r\nx\r\n".to_vec());
    // Commands: 0 USER, 1 PASS, 2 DELE, 3 QUIT. Drop before QUIT is carried out.
    s.set_fault(Some(Pop3Fault {
        command: 3,
        in_reply: false,
        action: FaultAction::Drop,
    }));
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(&mut io, &format!("USER {USER}"), b"+OK \r\n");
    say(&mut io, &format!("PASS {PW}"), b"+OK Logged in.\r\n");
    say(&mut io, "DELE 1", b"+OK Marked to be deleted.\r\n");
    io.write_all(b"QUIT\r\n").unwrap();
    assert!(rest(&mut io).is_empty(), "no reply at all");
    assert_eq!(s.message_count(), 1, "QUIT never happened");
}

#[test]
fn fault_in_retr_reply_cuts_the_message_and_is_not_counted() {
    let (s, tls) = server();
    let body = "Zeile mit Inhalt\r\n".repeat(100);
    s.put(format!("Subject: a\r\n\r\n{body}").into_bytes());
    s.set_fault(Some(Pop3Fault {
        command: 2,
        in_reply: true,
        action: FaultAction::Drop,
    }));
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(&mut io, &format!("USER {USER}"), b"+OK \r\n");
    say(&mut io, &format!("PASS {PW}"), b"+OK Logged in.\r\n");
    io.write_all(b"RETR 1\r\n").unwrap();
    let got = rest(&mut io);
    assert!(got.starts_with(b"+OK "), "part of the reply arrives");
    assert!(!got.ends_with(b"\r\n.\r\n"), "but never its end");
    assert_eq!(s.retrievals(), 0);
}

#[test]
fn stall_keeps_the_connection_silent_until_the_client_leaves() {
    let (s, tls) = server();
    s.set_fault(Some(Pop3Fault {
        command: 0,
        in_reply: false,
        action: FaultAction::Stall,
    }));
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    io.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    io.write_all(b"CAPA\r\n").unwrap();
    let mut buf = [0u8; 16];
    let e = io.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    assert_eq!(s.connections(), 1);
    drop(io);
    wait_until(|| s.connections() == 0);
    // Cleared fault: the next connection is served normally.
    s.set_fault(None);
    let mut io = connect(&s, &tls);
    expect(&mut io, b"+OK MiniPop3 ready\r\n");
    say(&mut io, "QUIT", b"+OK Logging out.\r\n");
}
