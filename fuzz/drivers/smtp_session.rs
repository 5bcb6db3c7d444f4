//! The SMTP session on an arbitrary interleaving of client bytes, MTA bytes, events and time:
//! it never panics, once closed it stays quiet, and it ends with exactly one `Ended`, last.
use std::time::{Duration, Instant};

use komle_core::proxy_session::{Job, Output, ProxySession};
use komle_core::secret::SecretBytes;
use komle_core::smtp::{
    ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpConfig, SmtpEvent, SmtpSession,
};
use komle_core::upstream_allow::UpstreamAllowList;

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    // The MTAs of the seed transcripts are allowed, so both the refusal and the proxy paths
    // are reachable.
    let config = SmtpConfig {
        upstream_allow: UpstreamAllowList::parse([
            "mail.komle.de:465",
            "127.0.0.1:2465",
            "[2001:db8::25]:465",
        ])
        .expect("valid patterns"),
        ..SmtpConfig::default()
    };
    let mut s = SmtpSession::new(config, now);
    let mut last_recipient = String::new();
    let mut ended = None;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = (tail.first().copied().unwrap_or(0) as usize).min(tail.len().saturating_sub(1));
        let chunk = tail.get(1..1 + len).unwrap_or(&[]);
        rest = tail.get(1 + len..).unwrap_or(&[]);
        match op % 10 {
            0..=2 => s.handle_client_data(chunk, now),
            3..=4 => s.handle_upstream_data(chunk, now),
            5 => s.handle_event(SmtpEvent::UpstreamConnected, now),
            6 => s.handle_event(
                SmtpEvent::RecipientChecked {
                    address: last_recipient.clone(),
                    verdict: match chunk.first().copied().unwrap_or(0) % 4 {
                        0 => RecipientVerdict::Usable,
                        1 => RecipientVerdict::NoValidCertificate,
                        2 => RecipientVerdict::ConflictingTelematikIds,
                        _ => RecipientVerdict::DirectoryUnavailable,
                    },
                },
                now,
            ),
            7 => s.handle_event(
                SmtpEvent::Protected(if chunk.is_empty() {
                    Err(ProtectionFailure { reason: "x".into() })
                } else {
                    Ok(ProtectedMessage {
                        message: SecretBytes::from(chunk),
                        recipients: vec![last_recipient.clone()],
                        notice: None,
                        kas_link: None,
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
                    0 => SmtpEvent::ClientClosed,
                    1 => SmtpEvent::UpstreamClosed,
                    _ => SmtpEvent::UpstreamFailed { reason: "x".into() },
                },
                now,
            ),
        }
        let mut closed_client = false;
        // Drained through the shared words: exactly one Ended, last, once finished.
        while let Some(o) = ProxySession::poll_output(&mut s) {
            assert!(ended.is_none(), "output after Ended: {o:?}");
            match o {
                Output::Run(Job::CheckRecipient { address }) => last_recipient = address,
                Output::CloseClient => closed_client = true,
                Output::SendToClient(_) => assert!(!closed_client, "bytes after close"),
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
