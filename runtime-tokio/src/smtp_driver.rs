//! Drives one `komle_core::smtp::SmtpSession` per client connection on tokio.
//!
//! The same loop as `komle_smol::smtp_driver`, with tokio's sockets, TLS and timers: carry out
//! the session's actions, then wait for whatever comes first (client bytes, MTA bytes, a
//! finished directory/Konnektor job, the session's timer). All SMTP knowledge stays in core.

use komle_core::smtp::{
    ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction, SmtpEvent, SmtpSession,
};
use komle_service::session::{SessionContext, SessionSummary};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

const READ_CHUNK: usize = 16 * 1024;

use crate::io::{Upstream, connect, read_or_pending, sleep_or_pending, write_all};

/// Results of work running alongside the sockets.
enum Completion {
    Upstream(Result<Box<Upstream>, String>),
    Checked {
        address: String,
        verdict: RecipientVerdict,
    },
    Protected(Result<ProtectedMessage, ProtectionFailure>),
}

/// Runs one session over an established (TLS) client stream until the core says it is
/// finished. `id` only labels log lines.
pub async fn drive<S>(mut client: S, ctx: &SessionContext, id: &str) -> SessionSummary
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = SmtpSession::new(ctx.session.clone(), ctx.clock.instant());
    let mut summary = SessionSummary::default();
    let mut client_open = true;
    let mut upstream: Option<Box<Upstream>> = None;
    // Jobs run as tasks of this session's set: dropping the session aborts them all.
    let mut jobs: JoinSet<Completion> = JoinSet::new();
    let mut client_buf = vec![0u8; READ_CHUNK];
    let mut upstream_buf = vec![0u8; READ_CHUNK];

    loop {
        while let Some(action) = session.poll_action() {
            match action {
                SmtpAction::SendToClient(bytes) => {
                    if client_open
                        && !write_all(&mut client, &bytes, ctx.session.client_idle_timeout).await
                    {
                        client_open = false;
                        session.handle_event(SmtpEvent::ClientClosed, ctx.clock.instant());
                    }
                }
                SmtpAction::SendToUpstream(bytes) => {
                    let failed = match upstream.as_mut() {
                        Some(u) => !write_all(u, &bytes, ctx.session.mta_response_timeout).await,
                        None => false,
                    };
                    if failed {
                        upstream = None;
                        session.handle_event(SmtpEvent::UpstreamClosed, ctx.clock.instant());
                    }
                }
                SmtpAction::ConnectUpstream { host, port } => {
                    let (config, timeout) = (ctx.upstream_tls.clone(), ctx.connect_timeout);
                    jobs.spawn(async move {
                        Completion::Upstream(connect(config, host, port, timeout).await)
                    });
                }
                SmtpAction::CheckRecipient { address } => {
                    let checker = ctx.checker.clone();
                    jobs.spawn(async move {
                        let verdict = checker.check(&address).await;
                        Completion::Checked { address, verdict }
                    });
                }
                SmtpAction::Protect(job) => {
                    let protector = ctx.protector.clone();
                    jobs.spawn(async move { Completion::Protected(protector.protect(job).await) });
                }
                SmtpAction::CloseClient => {
                    if client_open {
                        let _ = client.shutdown().await;
                        client_open = false;
                    }
                }
                SmtpAction::CloseUpstream => {
                    if let Some(mut u) = upstream.take() {
                        let _ = u.shutdown().await;
                    }
                }
                // #[non_exhaustive]: an action of a newer core this driver does not know.
                other => log::warn!("action not handled by this driver: {other:?}"),
            }
        }
        if session.is_finished() {
            break;
        }
        let deadline = session.poll_timeout();
        if !client_open && upstream.is_none() && jobs.is_empty() && deadline.is_none() {
            summary.stalled = true;
            break;
        }
        let now_wake = tokio::select! {
            n = read_or_pending(client_open.then_some(&mut client), &mut client_buf) => Wake::Client(n),
            n = read_or_pending(upstream.as_deref_mut(), &mut upstream_buf) => Wake::Upstream(n),
            Some(done) = jobs.join_next(), if !jobs.is_empty() => match done {
                Ok(c) => Wake::Done(c),
                // A job that panicked or was aborted: treat like a failed protection.
                Err(_) => Wake::Done(Completion::Protected(Err(ProtectionFailure {
                    reason: "interner Fehler".into(),
                }))),
            },
            () = sleep_or_pending(deadline) => Wake::Timer,
        };
        let now = ctx.clock.instant();
        match now_wake {
            Wake::Client(0) => {
                client_open = false;
                session.handle_event(SmtpEvent::ClientClosed, now);
            }
            Wake::Client(n) => session.handle_client_data(&client_buf[..n], now),
            Wake::Upstream(0) => {
                upstream = None;
                session.handle_event(SmtpEvent::UpstreamClosed, now);
            }
            Wake::Upstream(n) => session.handle_upstream_data(&upstream_buf[..n], now),
            Wake::Timer => session.handle_timeout(now),
            Wake::Done(Completion::Upstream(Ok(stream))) => {
                upstream = Some(stream);
                session.handle_event(SmtpEvent::UpstreamConnected, now);
            }
            Wake::Done(Completion::Upstream(Err(reason))) => {
                log::warn!("session={id} MTA connection failed: {reason}");
                session.handle_event(SmtpEvent::UpstreamFailed { reason }, now);
            }
            Wake::Done(Completion::Checked { address, verdict }) => {
                session.handle_event(SmtpEvent::RecipientChecked { address, verdict }, now);
            }
            Wake::Done(Completion::Protected(result)) => {
                match &result {
                    Ok(_) => summary.messages_protected += 1,
                    Err(f) => {
                        summary.protection_failures += 1;
                        log::warn!("session={id} message not protected: {}", f.reason);
                    }
                }
                session.handle_event(SmtpEvent::Protected(result), now);
            }
        }
    }
    if client_open {
        let _ = client.shutdown().await;
    }
    if let Some(mut u) = upstream.take() {
        let _ = u.shutdown().await;
    }
    summary
}

enum Wake {
    Client(usize),
    Upstream(usize),
    Done(Completion),
    Timer,
}
