//! Fault injection through the real SMTP proxy (embedded environment, loopback only): the
//! client connection dropped at every protocol step, every Konnektor operation failing in
//! every way (SOAP fault, dropped connection, stall past the timeout), the directory down.
//! Invariant: a message reaches the mail service exactly when the client was told 250 for it;
//! otherwise the client got an error or nothing; and nothing is left behind (open file
//! descriptors return to their level, the proxy serves the next session).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use komle_conformance::sim::config::{Fault, Operation};
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD, ProxyClient};

type Tls = ProxyClient;

fn connect(env: &Embedded) -> Tls {
    env.client(env.proxy_addr, Duration::from_secs(60)).unwrap()
}

/// Reads one (multi-line) reply; `None` when the connection ended.
fn reply(io: &mut Tls) -> Option<String> {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        match io.read_line(&mut l) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return Some(all);
        }
    }
}

fn say(io: &mut Tls, line: &str) -> Option<String> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .ok()?;
    reply(io)
}

/// The client side of one message, as a list of steps; `stop_after` cuts the connection after
/// that many steps. Returns the reply to the final dot, if the client got that far.
fn session(env: &Embedded, to: &str, subject: &str, stop_after: usize) -> Option<String> {
    let mut io = connect(env);
    let greeting = reply(&mut io)?;
    assert!(greeting.starts_with("220"), "{greeting}");
    let auth = format!(
        "AUTH PLAIN {}",
        plain::encode_response(&env.login(), &Password::new(PASSWORD))
    );
    let from = env.world.pki.sender.address.clone();
    let steps: Vec<(String, &str)> = vec![
        ("EHLO fault-client".into(), "250"),
        (auth, "235"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".into(), "354"),
    ];
    for (i, (line, want)) in steps.iter().enumerate() {
        if i == stop_after {
            return None;
        }
        let r = say(&mut io, line)?;
        if !r.starts_with(want) {
            return Some(r);
        }
    }
    if stop_after == steps.len() {
        return None;
    }
    let head = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\n");
    io.get_mut().write_all(head.as_bytes()).ok()?;
    if stop_after == steps.len() + 1 {
        // Half a message, then gone.
        io.get_mut().write_all(b"Befund Teil 1\r\n").ok()?;
        return None;
    }
    io.get_mut()
        .write_all(b"Befund vollstaendig.\r\n.\r\n")
        .ok()?;
    let final_reply = reply(&mut io);
    let _ = say(&mut io, "QUIT");
    final_reply
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Waits until the fd count is back to at most `level` (+ slack for the test's own pooled
/// connections), or returns the count seen last.
fn settle_fds(level: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = open_fds();
        if n <= level + 4 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_2017_client_dropped_at_every_step_nothing_is_delivered_and_nothing_leaks() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let to = env.world.pki.single.address.clone();
    // One good message first, so caches and pools are warm for the fd baseline.
    let r = session(&env, &to, "warm-up", usize::MAX).unwrap();
    assert!(r.starts_with("250"), "{r}");
    let baseline_fds = settle_fds(open_fds());
    let before = env.mta.received().len();
    for round in 0..3 {
        for stop_after in 0..=6 {
            let r = session(&env, &to, &format!("drop-{round}-{stop_after}"), stop_after);
            assert!(r.is_none(), "step {stop_after}: {r:?}");
        }
    }
    // Every session above ended before its final dot: the MTA got nothing.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(env.mta.received().len(), before);
    let fds = settle_fds(baseline_fds);
    assert!(
        fds <= baseline_fds + 4,
        "file descriptors leaked: {baseline_fds} -> {fds}"
    );
    // The proxy still serves.
    let r = session(&env, &to, "after", usize::MAX).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(env.mta.received().len(), before + 1);
}

#[test]
fn a_2021_every_konnektor_operation_failing_in_every_way_gives_451_and_no_delivery() {
    let ops = [
        Operation::GetCards,
        Operation::GetJobNumber,
        Operation::SignDocument,
        Operation::EncryptDocument,
    ];
    let faults = [
        Fault::SoapFault {
            code: 4085,
            text: "injected".into(),
        },
        Fault::Drop,
        Fault::Stall,
    ];
    for op in ops {
        for fault in &faults {
            let env = Embedded::start(&EmbeddedOptions {
                konnektor_faults: vec![(op, fault.clone())],
                konnektor_timeout: Duration::from_secs(2),
                ..EmbeddedOptions::default()
            })
            .unwrap();
            let to = env.world.pki.single.address.clone();
            let started = Instant::now();
            let r = session(&env, &to, "fault", usize::MAX);
            let r = r.unwrap_or_else(|| panic!("{op:?}/{fault:?}: no reply"));
            assert!(r.starts_with("451 "), "{op:?}/{fault:?}: {r}");
            // The 451 names what failed on the way to the Konnektor, not a library's text.
            match fault {
                Fault::Stall => assert!(r.contains("keine Antwort in der Wartezeit"), "{r}"),
                Fault::Drop => assert!(
                    r.contains("Verbindung abgebrochen") || r.contains("keine Verbindung"),
                    "{op:?}: {r}"
                ),
                Fault::SoapFault { .. } => {}
            }
            assert!(
                env.mta.received().is_empty(),
                "{op:?}/{fault:?}: delivered although the client got {r}"
            );
            // A stalled Konnektor costs the timeout, not more.
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{op:?}/{fault:?}"
            );
        }
    }
}

#[test]
fn directory_outage_is_a_temporary_451_at_rcpt_and_recovers() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let to = env.world.pki.single.address.clone();
    env.directory
        .down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = session(&env, &to, "vzd-down", usize::MAX).unwrap();
    assert!(r.starts_with("451 4.4.3"), "{r}");
    assert!(env.mta.received().is_empty());
    env.directory
        .down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let r = session(&env, &to, "vzd-up", usize::MAX).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(env.mta.received().len(), 1);
}
