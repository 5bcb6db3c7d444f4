//! The in-process demo MTA speaks enough SMTP over TLS for the Clientmodul, and keeps exactly
//! what it was given.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::mini_mta::MiniMta;
use rustls::pki_types::ServerName;

fn dialog(tls: &LoopbackTls, mta: &MiniMta, script: &[(&str, &str)]) -> Vec<String> {
    let sock = TcpStream::connect(mta.addr()).unwrap();
    let conn = rustls::ClientConnection::new(
        tls.client_config(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut io = BufReader::new(rustls::StreamOwned::new(conn, sock));
    let mut replies = Vec::new();
    let read_reply = |io: &mut BufReader<_>| {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            BufRead::read_line(io, &mut l).unwrap();
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    replies.push(read_reply(&mut io));
    for (send, expect_prefix) in script {
        io.get_mut().write_all(send.as_bytes()).unwrap();
        if !expect_prefix.is_empty() {
            let r = read_reply(&mut io);
            assert!(r.starts_with(expect_prefix), "{send:?} -> {r:?}");
            replies.push(r);
        }
    }
    replies
}

#[test]
fn mini_mta_authenticates_and_stores_unstuffed_messages() {
    let tls = LoopbackTls::generate("mini-mta").unwrap();
    let mta = MiniMta::start("127.0.0.1:0", tls.server_config(), "u@komle.de", "pw").unwrap();
    // \0u@komle.de\0pw and \0u@komle.de\0wrong
    dialog(
        &tls,
        &mta,
        &[
            ("EHLO t\r\n", "250-demo-mta"),
            ("MAIL FROM:<u@komle.de>\r\n", "530"),
            ("AUTH PLAIN AHVAa29tbGUuZGUAd3Jvbmc=\r\n", "535"),
            ("AUTH PLAIN AHVAa29tbGUuZGUAcHc=\r\n", "235"),
            ("MAIL FROM:<u@komle.de>\r\n", "250"),
            ("RCPT TO:<a@komle.de>\r\n", "250"),
            ("RCPT TO:<b@komle.de> NOTIFY=NEVER\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: t\r\n\r\n..dot\r\n.\r\n", "250"),
            ("QUIT\r\n", "221"),
        ],
    );
    let got = mta.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "u@komle.de");
    assert_eq!(got[0].recipients, vec!["a@komle.de", "b@komle.de"]);
    assert_eq!(got[0].data, b"Subject: t\r\n\r\n.dot\r\n");
}
