//! SIGHUP never ends `komle-cm` (its default action would, exit 129, cutting mails in flight):
//! the daemon re-reads its listener certificate on HUP: new connections see the new one, a
//! session open across the HUP goes on. (The same for the demo binary is
//! `demo/tests/signals.rs`.)

mod binary;
mod daemon_bed;

use std::time::Duration;

use binary::{reply, say, signal, tls_client};
use daemon_bed::DaemonBed;

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
