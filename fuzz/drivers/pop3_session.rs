//! The POP3 session on an arbitrary interleaving of client bytes, server bytes, events and
//! time: it never panics, never sends to the client after closing it, and its timeout never
//! lies before the start; it ends with exactly one `Ended`, last.
use std::time::{Duration, Instant};

use komle_core::pop3::{OpenFailure, OpenedMessage, Pop3Config, Pop3Event, Pop3Session};
use komle_core::proxy_session::{Output, ProxySession};
use komle_core::secret::SecretBytes;
use komle_core::upstream_allow::UpstreamAllowList;

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    // The server of the seed scripts is allowed, so both the refusal and the proxy paths are
    // reachable.
    let config = Pop3Config {
        upstream_allow: UpstreamAllowList::parse(["127.0.0.1:1110"]).expect("valid pattern"),
        ..Pop3Config::default()
    };
    let mut s = Pop3Session::new(config, now);
    let mut closed_client = false;
    let mut ended = None;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = (tail.first().copied().unwrap_or(0) as usize).min(tail.len().saturating_sub(1));
        let chunk = tail.get(1..1 + len).unwrap_or(&[]);
        rest = tail.get(1 + len..).unwrap_or(&[]);
        match op % 10 {
            0..=2 => s.handle_client_data(chunk, now),
            3..=5 => s.handle_upstream_data(chunk, now),
            6 => s.handle_event(Pop3Event::UpstreamConnected, now),
            7 => s.handle_event(
                Pop3Event::Opened(if chunk.is_empty() {
                    Err(OpenFailure { reason: "x".into() })
                } else {
                    Ok(OpenedMessage {
                        message: SecretBytes::from(chunk),
                    })
                }),
                now,
            ),
            8 => {
                now += Duration::from_secs(chunk.first().copied().unwrap_or(1) as u64 * 10);
                s.handle_timeout(now);
            }
            _ => s.handle_event(
                match chunk.first().copied().unwrap_or(0) % 3 {
                    0 => Pop3Event::ClientClosed,
                    1 => Pop3Event::UpstreamClosed,
                    _ => Pop3Event::UpstreamFailed { reason: "x".into() },
                },
                now,
            ),
        }
        // Drained through the shared words: exactly one Ended, last, once finished.
        while let Some(o) = ProxySession::poll_output(&mut s) {
            assert!(ended.is_none(), "output after Ended: {o:?}");
            match o {
                Output::CloseClient => closed_client = true,
                Output::SendToClient(_) => assert!(!closed_client, "bytes after close"),
                Output::ConnectUpstream { port, .. } => assert_ne!(port, 0),
                Output::Ended { reason } => ended = Some(reason),
                _ => {}
            }
        }
        assert_eq!(
            s.is_finished(),
            ended.is_some(),
            "finished without Ended, or the reverse"
        );
        if let Some(t) = s.poll_timeout() {
            assert!(t >= start);
        }
    }
}
