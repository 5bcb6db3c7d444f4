//! LIMITS.md: the POP3 proxy's session limit through the real listener. A client over
//! `max_sessions` still gets its TLS handshake and then `-ERR [SYS/TEMP]` (RFC 3206) before the
//! connection closes, so its mail program shows a reason and retries later; the slot is free
//! again as soon as the first session ends.

use std::io::{BufRead, Write};
use std::time::Duration;

use komle_demo::embedded::{Embedded, EmbeddedOptions, ProxyClient};
use komle_demo::embedded_pop3::Pop3Options;

type Tls = ProxyClient;

fn connect(env: &Embedded) -> Tls {
    let addr = env.pop3_addr.expect("POP3 side started");
    env.client(addr, Duration::from_secs(20)).unwrap()
}

/// The next line, or "" at the end of the connection.
fn line(io: &mut Tls) -> String {
    let mut l = String::new();
    let _ = io.read_line(&mut l);
    l
}

#[test]
fn pop3_sessions_over_the_limit_get_err_sys_temp_and_are_closed() {
    let env = Embedded::start(&EmbeddedOptions {
        pop3: Some(Pop3Options {
            max_sessions: 1,
            ..Pop3Options::default()
        }),
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let mut first = connect(&env);
    assert!(line(&mut first).starts_with("+OK"));
    let mut second = connect(&env);
    assert_eq!(
        line(&mut second),
        "-ERR [SYS/TEMP] Too many sessions, try again later\r\n"
    );
    assert_eq!(line(&mut second), "", "closed after the refusal");
    // The first session is unaffected; once it ends, a new client is served.
    first.get_mut().write_all(b"QUIT\r\n").unwrap();
    assert!(line(&mut first).starts_with("+OK"));
    let mut served = None;
    for _ in 0..50 {
        let mut third = connect(&env);
        let greeting = line(&mut third);
        if greeting.starts_with("+OK") {
            served = Some(greeting);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served.is_some(), "the freed slot was never given out again");
}
