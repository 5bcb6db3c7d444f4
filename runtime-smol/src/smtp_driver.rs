//! Drives one `komle_core::smtp::SmtpSession` per client connection on smol.
//!
//! The driver is deliberately dumb: it carries out the session's [`SmtpAction`]s (write to the
//! client, write to the MTA, connect to the MTA with implicit TLS, ask the
//! [`RecipientChecker`](komle_service::contracts::RecipientChecker), ask the
//! [`Protector`](komle_service::contracts::Protector), close a side) and feeds back whatever happens
//! first — client bytes, MTA bytes, the result of an action, or the session's own timer. All
//! SMTP knowledge (replies, timeouts A_2016/A_2017, the protected hand-over) stays in core.
//!
//! Everything of one session runs in one task: the directory and Konnektor work is a set of
//! futures polled alongside the sockets, so dropping the task cancels all of it and nothing can
//! outlive the connection holding message content (A_2005).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future};
use komle_core::smtp::{
    ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction, SmtpEvent, SmtpSession,
};
use komle_service::contracts::BoxFuture;
use komle_service::session::{SessionContext, SessionSummary};

use crate::tls_stream::{self, ConnectError, UpstreamStream};

/// Results of work running alongside the sockets.
enum Completion {
    /// Boxed: a TLS stream is large and the other variants are not.
    Upstream(Result<Box<UpstreamStream>, ConnectError>),
    Checked {
        address: String,
        verdict: RecipientVerdict,
    },
    Protected {
        result: Result<ProtectedMessage, ProtectionFailure>,
        started: Instant,
        size: usize,
    },
}

/// What woke the loop.
enum Wake {
    Client(io::Result<usize>),
    Upstream(io::Result<usize>),
    Done(Completion),
    Timer,
}

/// Polls a set of futures, yielding the first that completes; pending forever when empty.
struct FirstOf<'a>(&'a mut Vec<BoxFuture<'static, Completion>>);

impl Future for FirstOf<'_> {
    type Output = Completion;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let set = &mut *self.0;
        for i in 0..set.len() {
            if let Poll::Ready(c) = set[i].as_mut().poll(cx) {
                drop(set.swap_remove(i));
                return Poll::Ready(c);
            }
        }
        Poll::Pending
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// Runs one session over an established (TLS) client stream until the core says it is
/// finished. `id` only labels log lines.
pub async fn drive<S>(mut client: S, ctx: &SessionContext, id: &str) -> SessionSummary
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = SmtpSession::new(ctx.session.clone(), ctx.clock.instant());
    let mut summary = SessionSummary::default();
    let mut client_open = true;
    let mut upstream: Option<UpstreamStream> = None;
    let mut pending: Vec<BoxFuture<'static, Completion>> = Vec::new();
    let mut client_buf = vec![0u8; READ_CHUNK];
    let mut upstream_buf = vec![0u8; READ_CHUNK];

    loop {
        while let Some(action) = session.poll_action() {
            match action {
                SmtpAction::SendToClient(bytes) => {
                    if client_open
                        && write_all(&mut client, &bytes, ctx.session.client_idle_timeout)
                            .await
                            .is_err()
                    {
                        client_open = false;
                        session.handle_event(SmtpEvent::ClientClosed, ctx.clock.instant());
                    }
                }
                SmtpAction::SendToUpstream(bytes) => {
                    let failed = match upstream.as_mut() {
                        Some(u) => write_all(u, &bytes, ctx.session.mta_response_timeout)
                            .await
                            .is_err(),
                        None => false,
                    };
                    if failed {
                        upstream = None;
                        session.handle_event(SmtpEvent::UpstreamClosed, ctx.clock.instant());
                    }
                }
                SmtpAction::ConnectUpstream { host, port } => {
                    let config = ctx.upstream_tls.clone();
                    let timeout = ctx.connect_timeout;
                    pending.push(Box::pin(async move {
                        Completion::Upstream(
                            tls_stream::connect(config, &host, port, timeout)
                                .await
                                .map(Box::new),
                        )
                    }));
                }
                SmtpAction::CheckRecipient { address } => {
                    let checker = ctx.checker.clone();
                    pending.push(Box::pin(async move {
                        let verdict = checker.check(&address).await;
                        Completion::Checked { address, verdict }
                    }));
                }
                SmtpAction::Protect(job) => {
                    let protector = ctx.protector.clone();
                    let size = job.message.len();
                    let started = ctx.clock.instant();
                    pending.push(Box::pin(async move {
                        let result = protector.protect(job).await;
                        Completion::Protected {
                            result,
                            started,
                            size,
                        }
                    }));
                }
                SmtpAction::CloseClient => {
                    if client_open {
                        let _ = client.close().await;
                        client_open = false;
                    }
                }
                SmtpAction::CloseUpstream => {
                    if let Some(mut u) = upstream.take() {
                        let _ = u.close().await;
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
        if !client_open && upstream.is_none() && pending.is_empty() && deadline.is_none() {
            // Nothing can ever wake the session again: end instead of leaking the task.
            summary.stalled = true;
            break;
        }

        let wake = {
            let client_read = async {
                if client_open {
                    Wake::Client(client.read(&mut client_buf).await)
                } else {
                    future::pending().await
                }
            };
            let upstream_read = async {
                match upstream.as_mut() {
                    Some(u) => Wake::Upstream(u.read(&mut upstream_buf).await),
                    None => future::pending().await,
                }
            };
            let done = async { Wake::Done(FirstOf(&mut pending).await) };
            let timer = async {
                match deadline {
                    Some(at) => {
                        smol::Timer::at(at).await;
                        Wake::Timer
                    }
                    None => future::pending().await,
                }
            };
            // `race` picks randomly among ready futures so a busy client cannot starve the
            // MTA side or the timer.
            future::race(
                future::race(client_read, upstream_read),
                future::race(done, timer),
            )
            .await
        };

        let now = ctx.clock.instant();
        match wake {
            Wake::Client(Ok(0)) | Wake::Client(Err(_)) => {
                client_open = false;
                session.handle_event(SmtpEvent::ClientClosed, now);
            }
            Wake::Client(Ok(n)) => session.handle_client_data(&client_buf[..n], now),
            Wake::Upstream(Ok(0)) | Wake::Upstream(Err(_)) => {
                upstream = None;
                session.handle_event(SmtpEvent::UpstreamClosed, now);
            }
            Wake::Upstream(Ok(n)) => session.handle_upstream_data(&upstream_buf[..n], now),
            Wake::Timer => session.handle_timeout(now),
            Wake::Done(Completion::Upstream(Ok(stream))) => {
                upstream = Some(*stream);
                session.handle_event(SmtpEvent::UpstreamConnected, now);
            }
            Wake::Done(Completion::Upstream(Err(e))) => {
                log::warn!("session={id} MTA connection failed: {e}");
                session.handle_event(
                    SmtpEvent::UpstreamFailed {
                        reason: e.to_string(),
                    },
                    now,
                );
            }
            Wake::Done(Completion::Checked { address, verdict }) => {
                session.handle_event(SmtpEvent::RecipientChecked { address, verdict }, now);
            }
            Wake::Done(Completion::Protected {
                result,
                started,
                size,
            }) => {
                let ms = started.elapsed().as_millis();
                match &result {
                    Ok(p) => {
                        summary.messages_protected += 1;
                        log::info!(
                            "session={id} message protected in {ms} ms: {size} bytes in, {} bytes out, {} recipient(s), notice={}",
                            p.message.len(),
                            p.recipients.len(),
                            p.notice.is_some()
                        );
                    }
                    Err(f) => {
                        summary.protection_failures += 1;
                        log::warn!(
                            "session={id} message not protected after {ms} ms: {}",
                            f.reason
                        );
                    }
                }
                session.handle_event(SmtpEvent::Protected(result), now);
            }
        }
    }
    if client_open {
        let _ = client.close().await;
    }
    if let Some(mut u) = upstream.take() {
        let _ = u.close().await;
    }
    summary
}

/// Writes and flushes within `limit`: a peer that stops reading must not hold the session
/// (and the message in it) forever.
async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> io::Result<()> {
    future::or(
        async {
            w.write_all(bytes).await?;
            w.flush().await
        },
        async {
            smol::Timer::after(limit).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
        },
    )
    .await
}
