//! komle-tokio's own listener loop applies `max_sessions_per_address` like komle-smol's: a
//! client address over its limit gets `421 4.3.2` while overall slots are free, and the slot
//! comes back when the session ends.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use komle_demo::embedded::{Embedded, EmbeddedOptions, ProxyClient};
use komle_tokio::KomleService;

fn line(io: &mut ProxyClient) -> String {
    let mut l = String::new();
    let _ = io.read_line(&mut l);
    l
}

fn connect(env: &Embedded, addr: SocketAddr) -> ProxyClient {
    env.client(addr, Duration::from_secs(20)).unwrap()
}

#[test]
fn tokio_listener_refuses_an_address_over_its_limit_and_gives_the_slot_back() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let service = KomleService::from_parts(
        env.proxy_tls.server_config(),
        env.session_context.clone(),
        8,
    )
    .with_max_sessions_per_address(Some(1));
    let stats = service.stats();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { service.serve_smtp(listener, std::future::pending()).await });

    let mut first = connect(&env, addr);
    assert!(line(&mut first).starts_with("220 "));
    let mut second = connect(&env, addr);
    let r = line(&mut second);
    assert!(r.starts_with("421 4.3.2"), "{r}");
    assert_eq!(stats.sessions_refused.load(Ordering::Relaxed), 1);

    first.get_mut().write_all(b"QUIT\r\n").unwrap();
    assert!(line(&mut first).starts_with("221"));
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        let mut again = connect(&env, addr);
        if line(&mut again).starts_with("220 ") {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "the address's slot was never given back");
}
