//! LIMITS.md: `max_sessions_per_address` and the `[upstream]` allow-list through the real
//! listeners of the embedded environment.
//!
//! - A client address over its own session limit is treated like a client over
//!   `max_sessions` (`421 4.3.2` / `-ERR [SYS/TEMP]`, then closed), while other slots are free;
//!   once its sessions end, however they end, the same address is served again (the slot
//!   accounting does not leak).
//! - A POP3 login naming a server outside the allow-list gets byte for byte the reply of a
//!   closed port, and the session stays in CONNECT.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use komle_core::pop3::Pop3Config;
use komle_core::upstream_allow::UpstreamAllowList;
use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD, ProxyClient};
use komle_demo::embedded_pop3::{Pop3Options, login_name};
use komle_smol::pop3_server::TOO_MANY_SESSIONS as POP3_TOO_MANY;
use komle_smol::smtp_server::TOO_MANY_SESSIONS as SMTP_TOO_MANY;

fn connect(env: &Embedded, addr: SocketAddr) -> ProxyClient {
    env.client(addr, Duration::from_secs(20)).unwrap()
}

/// The next line, or "" at the end of the connection.
fn line(io: &mut ProxyClient) -> String {
    let mut l = String::new();
    let _ = io.read_line(&mut l);
    l
}

fn say(io: &mut ProxyClient, text: &str) -> String {
    io.get_mut()
        .write_all(format!("{text}\r\n").as_bytes())
        .unwrap();
    line(io)
}

/// Connects until the greeting starts with `ok` (a slot is returned a moment after its
/// session's socket closes); panics if it never does.
fn served(env: &Embedded, addr: SocketAddr, ok: &str) -> ProxyClient {
    for _ in 0..50 {
        let mut c = connect(env, addr);
        if line(&mut c).starts_with(ok) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the freed slot was never given out again");
}

#[test]
fn pop3_over_max_sessions_per_address_gets_err_sys_temp_and_slots_come_back() {
    let env = Embedded::start(&EmbeddedOptions {
        pop3: Some(Pop3Options {
            max_sessions: 8,
            max_sessions_per_address: Some(2),
            ..Pop3Options::default()
        }),
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let addr = env.pop3_addr.expect("POP3 side started");
    let mut first = connect(&env, addr);
    assert!(line(&mut first).starts_with("+OK"));
    let mut second = connect(&env, addr);
    assert!(line(&mut second).starts_with("+OK"));
    // Six overall slots are free, but this address has its two.
    let mut third = connect(&env, addr);
    assert_eq!(line(&mut third).as_bytes(), POP3_TOO_MANY);
    assert_eq!(line(&mut third), "", "closed after the refusal");
    // The admitted sessions work; one ends with QUIT, one by the client going away.
    assert!(
        say(&mut first, "NOOP").starts_with("-ERR"),
        "answered in CONNECT"
    );
    assert!(say(&mut first, "QUIT").starts_with("+OK"));
    drop(second);
    let mut again = [served(&env, addr, "+OK"), served(&env, addr, "+OK")];
    for c in &mut again {
        assert!(say(c, "NOOP").starts_with("-ERR"), "answered in CONNECT");
    }
}

#[test]
fn smtp_over_max_sessions_per_address_gets_421_and_slots_come_back() {
    let env = Embedded::start(&EmbeddedOptions {
        max_sessions: 8,
        max_sessions_per_address: Some(1),
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let mut first = connect(&env, env.proxy_addr);
    assert!(line(&mut first).starts_with("220 "));
    let mut second = connect(&env, env.proxy_addr);
    assert_eq!(line(&mut second).as_bytes(), SMTP_TOO_MANY);
    assert_eq!(line(&mut second), "", "closed after the refusal");
    assert!(say(&mut first, "NOOP").starts_with("250"));
    drop(first);
    let mut again = served(&env, env.proxy_addr, "220 ");
    assert!(say(&mut again, "NOOP").starts_with("250"));
    // With the slot taken again, the address is refused again: the count is exact.
    let mut extra = connect(&env, env.proxy_addr);
    assert_eq!(line(&mut extra).as_bytes(), SMTP_TOO_MANY);
}

/// USER/PASS for `login`; the reply to PASS.
fn pop3_login(io: &mut ProxyClient, login: &str) -> String {
    assert!(say(io, &format!("USER {login}")).starts_with("+OK"));
    say(io, &format!("PASS {PASSWORD}"))
}

#[test]
fn a_2033_pop3_server_outside_the_allow_list_gets_the_closed_port_reply() {
    // A port nothing listens on, allowed: the reply of an unreachable server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A listening port that is not allowed: the proxy must never connect to it.
    let bait = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let env = Embedded::start(&EmbeddedOptions {
        pop3: Some(Pop3Options {
            session: Pop3Config {
                upstream_allow: UpstreamAllowList::parse([closed.to_string().as_str()]).unwrap(),
                ..Pop3Config::default()
            },
            ..Pop3Options::default()
        }),
        ..EmbeddedOptions::default()
    })
    .unwrap();
    let addr = env.pop3_addr.expect("POP3 side started");
    let user = env.world.pki.single.address.clone();

    let mut c = connect(&env, addr);
    assert!(line(&mut c).starts_with("+OK"));
    let unreachable = pop3_login(&mut c, &login_name(&user, closed.port()));
    let refused = pop3_login(
        &mut c,
        &login_name(&user, bait.local_addr().unwrap().port()),
    );
    assert_eq!(refused, unreachable);
    assert_eq!(
        refused,
        "-ERR Der POP3-Server ist nicht erreichbar: Verbindung fehlgeschlagen\r\n"
    );
    // Still in CONNECT, and the environment's own server (always allowed) works.
    let pop3 = env.pop3.as_ref().expect("POP3 server");
    let ok = pop3_login(&mut c, &login_name(&user, pop3.addr().port()));
    assert!(ok.starts_with("+OK"), "{ok}");
    assert_eq!(
        bait.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "the proxy must not even try to connect"
    );
}
