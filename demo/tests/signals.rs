//! SIGHUP never ends the demo (its default action would, exit 129, cutting mails in flight):
//! the real `komle-demo` binary gets a HUP while a mail is half sent, the mail still gets its
//! 250, the next mail goes through, and one log line says what happened. (The daemon's reload
//! on HUP is `runtime-smol/tests/signals.rs`.)

#[path = "../../runtime-smol/tests/binary/mod.rs"]
mod binary;
mod demo_process;

use std::time::Duration;

use binary::{reply, say, signal, tls_client};
use demo_process::start_demo;
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::PASSWORD;

/// One mail through the demo's SMTP proxy; `during_data` runs after half the body was written.
/// Returns the reply to the final dot.
fn send(demo: &demo_process::Demo, subject: &str, during_data: impl FnOnce()) -> String {
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
