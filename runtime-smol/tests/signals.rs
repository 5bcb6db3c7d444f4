//! SIGHUP never ends `komle-cm` (its default action would, exit 129, cutting mails in flight):
//! the real binary gets a HUP while a mail is half sent, the mail still gets its 250, the next
//! mail goes through, and one log line says what happened. The daemon re-reads its listener
//! certificate on HUP: new connections see the new one, a session open across the HUP goes on.

mod binary;

use std::time::Duration;

use binary::{DaemonBed, reply, say, signal, start_demo, tls_client};
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_smol::embedded::PASSWORD;

/// One mail through the demo's SMTP proxy; `during_data` runs after half the body was written.
/// Returns the reply to the final dot.
fn send(demo: &binary::Demo, subject: &str, during_data: impl FnOnce()) -> String {
    let mut io = tls_client(demo.smtp_port, &demo.ca_pem).unwrap();
    assert!(reply(&mut io).starts_with("220"));
    assert!(say(&mut io, "EHLO signal-test").starts_with("250"));
    let auth = plain::encode_response(&demo.login, &Password::new(PASSWORD));
    assert!(say(&mut io, &format!("AUTH PLAIN {auth}")).starts_with("235"));
    assert!(say(&mut io, &format!("MAIL FROM:<{}>", demo.sender)).starts_with("250"));
    let r = say(&mut io, &format!("RCPT TO:<{}>", demo.recipient));
    assert!(r.starts_with("250"), "{r}");
    assert!(say(&mut io, "DATA").starts_with("354"));
    let head = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\r\nErster Teil.\r\n",
        demo.sender, demo.recipient
    );
    use std::io::Write;
    io.get_mut().write_all(head.as_bytes()).unwrap();
    io.get_mut().flush().unwrap();
    during_data();
    io.get_mut().write_all(b"Zweiter Teil.\r\n.\r\n").unwrap();
    let done = reply(&mut io);
    let _ = say(&mut io, "QUIT");
    done
}

#[test]
fn sighup_leaves_the_demo_serving_and_a_mail_in_flight_gets_its_250() {
    let mut demo = start_demo(false);
    let pid = demo.process.pid();
    let final_reply = send(&demo, "in flight", || {
        signal(pid, "HUP");
        assert!(
            demo.process
                .stderr
                .wait_for("SIGHUP", Duration::from_secs(10)),
            "no log line for the HUP; stderr:\n{}",
            demo.process.stderr.text()
        );
    });
    assert!(final_reply.starts_with("250"), "{final_reply}");
    assert!(demo.process.still_running(), "the HUP ended the demo");
    // A second HUP, then a complete new mail.
    signal(pid, "HUP");
    let after = send(&demo, "after the HUP", || {});
    assert!(after.starts_with("250"), "{after}");
    assert!(demo.process.still_running());
    let log = demo.process.stderr.text();
    assert_eq!(
        log.matches("SIGHUP:").count(),
        2,
        "one line per HUP:\n{log}"
    );
}

#[test]
fn sighup_makes_the_daemon_reread_its_certificate_for_new_connections_only() {
    let bed = DaemonBed::new("");
    let mut daemon = bed.start(false);
    let first_ca = bed.ca_file("first-ca.pem", &bed.first.ca_pem);
    let mut open = tls_client(bed.smtp_port, &first_ca).unwrap();
    assert_eq!(reply(&mut open), "220 cm.test ESMTP\r\n");
    assert!(say(&mut open, "EHLO before-the-hup").starts_with("250"));

    // A renewed certificate from another CA replaces the files, then HUP.
    let second = komle_conformance::loopback_tls::LoopbackTls::generate("komle-cm second").unwrap();
    std::fs::write(bed.path("server.pem"), &second.server_cert_pem).unwrap();
    std::fs::write(bed.path("server.key"), &second.server_key_pem).unwrap();
    let second_ca = bed.ca_file("second-ca.pem", &second.ca_pem);
    signal(daemon.pid(), "HUP");
    assert!(
        daemon.stderr.wait_for(
            "SIGHUP: [tls] certificate/private_key re-read; [upstream] ca re-read;",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.stderr.text()
    );
    assert!(daemon.still_running(), "the HUP ended the daemon");

    let mut new = tls_client(bed.smtp_port, &second_ca).expect("new certificate presented");
    assert_eq!(reply(&mut new), "220 cm.test ESMTP\r\n");
    assert!(
        tls_client(bed.smtp_port, &first_ca).is_err(),
        "old certificate still presented to new connections"
    );
    // The session opened before the HUP is untouched.
    assert!(say(&mut open, "NOOP").starts_with("250"));
    assert!(say(&mut open, "QUIT").starts_with("221"));

    // A HUP whose files are broken keeps the last good certificate and says so.
    std::fs::write(bed.path("server.key"), "not a key").unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        daemon.stderr.wait_for(
            "[tls] certificate/private_key NOT re-read, previous kept",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.stderr.text()
    );
    let mut still = tls_client(bed.smtp_port, &second_ca).unwrap();
    assert_eq!(reply(&mut still), "220 cm.test ESMTP\r\n");

    // SIGTERM still ends it cleanly.
    signal(daemon.pid(), "TERM");
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr.text());
}
