//! The tokio runtime serves the same Clientmodul: a mail through its listener is protected and
//! delivered, extra sessions get 421, and shutdown returns (embedded environment, loopback).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD, ProxyClient};
use komle_tokio::KomleService;

fn client(env: &Embedded, addr: SocketAddr) -> ProxyClient {
    env.client(addr, Duration::from_secs(60)).unwrap()
}

fn reply<R: BufRead>(io: &mut R) -> String {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        if io.read_line(&mut l).unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

fn send_one(env: &Embedded, addr: SocketAddr) -> Vec<String> {
    let mut io = client(env, addr);
    let mut replies = vec![reply(&mut io)];
    let from = env.world.pki.sender.address.clone();
    let to = env.world.pki.single.address.clone();
    let auth = plain::encode_response(&env.login(), &Password::new(PASSWORD));
    for line in [
        "EHLO tokio-client".to_owned(),
        format!("AUTH PLAIN {auth}"),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{to}>"),
        "DATA".to_owned(),
        format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: tokio\r\n\r\nueber tokio\r\n."),
        "QUIT".to_owned(),
    ] {
        io.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        replies.push(reply(&mut io));
    }
    replies
}

#[test]
fn a_2019_tokio_listener_protects_and_delivers_like_the_daemon() {
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
    );
    let stats = service.stats();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        service
            .serve_smtp(listener, async {
                let _ = stop_rx.await;
            })
            .await
    });
    let replies = send_one(&env, addr);
    assert!(replies[0].starts_with("220 "), "{replies:?}");
    assert!(replies[2].starts_with("235 "), "{replies:?}");
    assert!(replies[6].starts_with("250 "), "final dot: {replies:?}");
    assert!(replies[7].starts_with("221 "), "{replies:?}");
    let got = env.mta.received();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(text.contains("X-KOM-LE-Version: 1.0"), "{text}");
    assert!(!text.contains("ueber tokio"), "content must be encrypted");
    // The counters are updated when the session task ends, which may be just after the
    // client read its 221.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.sessions_active.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats.messages_protected.load(Ordering::Relaxed), 1);
    let _ = stop_tx.send(());
    let cut = rt.block_on(server).unwrap().unwrap();
    assert_eq!(cut, 0);
}

#[test]
fn tokio_listener_refuses_sessions_over_the_limit_with_421() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let service = KomleService::from_parts(
        env.proxy_tls.server_config(),
        env.session_context.clone(),
        1,
    );
    let stats = service.stats();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { service.serve_smtp(listener, std::future::pending()).await });
    let mut first = client(&env, addr);
    assert!(reply(&mut first).starts_with("220 "));
    let mut second = client(&env, addr);
    let r = reply(&mut second);
    assert!(r.starts_with("421 4.3.2"), "{r}");
    assert_eq!(stats.sessions_refused.load(Ordering::Relaxed), 1);
    assert_eq!(stats.sessions_active.load(Ordering::Relaxed), 1);
}
