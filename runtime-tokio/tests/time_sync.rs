//! KOM-LE-A_2230 on the tokio path: serving a listener starts the Konnektor time sync of the
//! shared assembly, so a `KomleService` keeps the Konnektor-corrected clock like `komle-cm`.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use komle_demo::embedded::{Embedded, EmbeddedOptions};
use komle_service::assembly::{Prepared, TimeSync};
use komle_service::limits::ServerLimits;
use komle_service::proxy_server::Proxy;
use komle_service::time_sync::{Clock, to_ntp};
use komle_tokio::KomleService;

/// Answers NTP requests with a clock `skew` ahead, until the test ends.
fn skewed_ntp_server(skew: Duration) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 48];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n != 48 {
                continue;
            }
            let now = || to_ntp(SystemTime::now() + skew);
            let mut reply = [0u8; 48];
            reply[0] = 0b00_100_100;
            reply[1] = 2;
            reply[24..32].copy_from_slice(&buf[40..48]);
            reply[32..40].copy_from_slice(&now().to_be_bytes());
            reply[40..48].copy_from_slice(&now().to_be_bytes());
            let _ = socket.send_to(&reply, peer);
        }
    });
    port
}

#[test]
fn a_2230_komle_service_syncs_the_clock_with_the_konnektor_when_it_serves() {
    let env = Embedded::start(&EmbeddedOptions::default()).unwrap();
    let port = skewed_ntp_server(Duration::from_secs(600));
    let clock = Arc::new(Clock::new());
    let limits = ServerLimits {
        max_sessions: 4,
        max_sessions_per_address: None,
        handshake_timeout: Duration::from_secs(10),
        grace: Duration::from_secs(1),
        proxy_protocol: false,
    };
    let mut prepared = Prepared::from_parts(
        env.proxy_tls.server_config(),
        Some((Proxy::from(env.session_context.clone()), limits)),
        None,
    );
    prepared.time_sync = Some(TimeSync {
        clock: clock.clone(),
        host: "127.0.0.1".into(),
        port,
        timeout: Duration::from_secs(5),
    });
    let service = KomleService::from_prepared(prepared);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    assert!(!clock.is_synced(), "nothing synced before serving");
    rt.spawn(async move { service.serve_smtp(listener, std::future::pending()).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !clock.is_synced() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(clock.is_synced(), "the tokio path never synced the clock");
    let ahead = clock
        .wall()
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs_f64();
    assert!(
        (ahead - 600.0).abs() < 1.0,
        "offset {ahead} s, expected 600 s"
    );
}
