//! The protocol-floor relay of the throughput benchmark (issue 15, `komle-demo --floor-relay`)
//! must really do the protocol's work, or komle-cm's time against it would flatter nobody but
//! lie: a mail sent through it reaches the mail service signed and encrypted (the same
//! Konnektor exchanges as komle-cm's), and a recipient without a certificate is refused.

use std::io::{BufRead, Write};
use std::time::Duration;

use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD, ProxyClient};
use komle_demo::floor_relay::{self, FloorServices};

fn reply(io: &mut ProxyClient) -> String {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        assert!(io.read_line(&mut l).unwrap() > 0, "closed after {all:?}");
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

fn say(io: &mut ProxyClient, text: &str) -> String {
    io.get_mut()
        .write_all(format!("{text}\r\n").as_bytes())
        .unwrap();
    reply(io)
}

#[test]
fn the_floor_relay_delivers_only_signed_and_encrypted_mail_and_checks_recipients() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let floor = floor_relay::start(FloorServices {
        server_tls: env.proxy_tls.server_config(),
        upstream_tls: env.mail_service_tls.upstream.clone(),
        checker: env.session_context.checker.clone(),
        protector: env.session_context.protector.clone(),
    })
    .unwrap();
    let sender = env.world.pki.sender.address.clone();
    let recipient = env.world.pki.single.address.clone();
    let mut io = env.client(floor, Duration::from_secs(60)).unwrap();
    assert!(reply(&mut io).starts_with("220"));
    assert!(say(&mut io, "EHLO bench").starts_with("250"));
    let auth = plain::encode_response(&env.login(), &Password::new(PASSWORD));
    assert!(say(&mut io, &format!("AUTH PLAIN {auth}")).starts_with("235"));
    assert!(say(&mut io, &format!("MAIL FROM:<{sender}>")).starts_with("250"));
    assert!(
        say(&mut io, "RCPT TO:<nobody@unknown.kim.telematik>").starts_with("550"),
        "no certificate, refused like komle-cm does (A_2176)"
    );
    assert!(say(&mut io, &format!("RCPT TO:<{recipient}>")).starts_with("250"));
    assert!(say(&mut io, "DATA").starts_with("354"));
    let body = "Befund: streng vertraulich, floor relay";
    let answer = say(
        &mut io,
        &format!("From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: floor\r\n\r\n{body}\r\n."),
    );
    assert!(answer.starts_with("250"), "{answer}");
    assert!(say(&mut io, "QUIT").starts_with("221"));

    let received = env.mta.received();
    assert_eq!(received.len(), 1);
    let data = String::from_utf8_lossy(&received[0].data);
    assert!(data.contains("application/pkcs7-mime"), "protected");
    assert!(!data.contains(body), "the plain text never reached the MTA");
    assert_eq!(received[0].recipients, vec![recipient]);
}
