//! Drives one `komle_core::pop3::Pop3Session` per client connection on tokio: the same loop as
//! `komle_smol::pop3_driver`, with tokio's sockets, TLS and timers.

use komle_core::pop3::{OpenFailure, OpenedMessage, Pop3Action, Pop3Event, Pop3Session};
use komle_core::upstream_allow::UNREACHABLE_REASON;
use komle_service::session::{Pop3Context, Pop3Summary};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::io::{Upstream, connect, read_or_pending, sleep_or_pending, write_all};

const READ_CHUNK: usize = 64 * 1024;

enum Completion {
    Upstream(Result<Box<Upstream>, String>),
    Opened(Result<OpenedMessage, OpenFailure>),
}

enum Wake {
    Client(usize),
    Upstream(usize),
    Done(Completion),
    Timer,
}

/// Runs one session over an established (TLS) client stream until the core says it is
/// finished. `id` only labels log lines.
pub async fn drive<S>(mut client: S, ctx: &Pop3Context, id: &str) -> Pop3Summary
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Pop3Session::new(ctx.session.clone(), ctx.clock.instant());
    let mut summary = Pop3Summary::default();
    let mut client_open = true;
    let mut upstream: Option<Box<Upstream>> = None;
    // Jobs run as tasks of this session's set: dropping the session aborts them all.
    let mut jobs: JoinSet<Completion> = JoinSet::new();
    let mut client_buf = vec![0u8; READ_CHUNK];
    let mut upstream_buf = vec![0u8; READ_CHUNK];

    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Pop3Action::SendToClient(bytes) => {
                    if client_open
                        && !write_all(&mut client, &bytes, ctx.session.client_idle_timeout).await
                    {
                        client_open = false;
                        session.handle_event(Pop3Event::ClientClosed, ctx.clock.instant());
                    }
                }
                Pop3Action::SendToUpstream(bytes) => {
                    let failed = match upstream.as_mut() {
                        Some(u) => !write_all(u, &bytes, ctx.session.server_response_timeout).await,
                        None => false,
                    };
                    if failed {
                        upstream = None;
                        session.handle_event(Pop3Event::UpstreamClosed, ctx.clock.instant());
                    }
                }
                Pop3Action::ConnectUpstream { host, port } => {
                    let (config, timeout) = (ctx.upstream_tls.clone(), ctx.connect_timeout);
                    jobs.spawn(async move {
                        Completion::Upstream(connect(config, host, port, timeout).await)
                    });
                }
                Pop3Action::Open(job) => {
                    let opener = ctx.opener.clone();
                    jobs.spawn(async move { Completion::Opened(opener.open(job).await) });
                }
                Pop3Action::CloseClient => {
                    if client_open {
                        let _ = client.shutdown().await;
                        client_open = false;
                    }
                }
                Pop3Action::CloseUpstream => {
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
        let wake = tokio::select! {
            n = read_or_pending(client_open.then_some(&mut client), &mut client_buf) => Wake::Client(n),
            n = read_or_pending(upstream.as_deref_mut(), &mut upstream_buf) => Wake::Upstream(n),
            Some(done) = jobs.join_next(), if !jobs.is_empty() => match done {
                Ok(c) => Wake::Done(c),
                Err(_) => Wake::Done(Completion::Opened(Err(OpenFailure {
                    reason: "interner Fehler".into(),
                }))),
            },
            () = sleep_or_pending(deadline) => Wake::Timer,
        };
        let now = ctx.clock.instant();
        match wake {
            Wake::Client(0) => {
                client_open = false;
                session.handle_event(Pop3Event::ClientClosed, now);
            }
            Wake::Client(n) => session.handle_client_data(&client_buf[..n], now),
            Wake::Upstream(0) => {
                upstream = None;
                session.handle_event(Pop3Event::UpstreamClosed, now);
            }
            Wake::Upstream(n) => session.handle_upstream_data(&upstream_buf[..n], now),
            Wake::Timer => session.handle_timeout(now),
            Wake::Done(Completion::Upstream(Ok(stream))) => {
                upstream = Some(stream);
                session.handle_event(Pop3Event::UpstreamConnected, now);
            }
            Wake::Done(Completion::Upstream(Err(reason))) => {
                log::warn!("session={id} POP3 server connection failed: {reason}");
                // As in komle-smol: the client learns only that it failed, the log has why.
                let reason = UNREACHABLE_REASON.to_owned();
                session.handle_event(Pop3Event::UpstreamFailed { reason }, now);
            }
            Wake::Done(Completion::Opened(result)) => {
                match &result {
                    Ok(_) => summary.messages_opened += 1,
                    Err(f) => {
                        summary.open_failures += 1;
                        log::warn!("session={id} message not opened: {}", f.reason);
                    }
                }
                session.handle_event(Pop3Event::Opened(result), now);
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
