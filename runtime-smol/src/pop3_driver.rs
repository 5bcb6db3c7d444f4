//! Drives one `komle_core::pop3::Pop3Session` per client connection on smol.
//!
//! Like [`smtp_driver`](crate::smtp_driver), the driver only carries out the session's
//! [`Pop3Action`]s (write to the client or the POP3 server, connect to the server with implicit
//! TLS, open a retrieved message through the [`Opener`](komle_service::contracts::Opener), close a side) and feeds back whatever
//! happens first. All POP3 knowledge (replies, timeouts A_2038/A_2039, the RETR rewrite) stays
//! in core.
//!
//! The opening job runs as a future inside the session's task, so a client that drops mid-RETR
//! cancels it with the task and no decrypted content outlives the connection (A_2005).

use std::io;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future};
use komle_core::pop3::{OpenFailure, OpenedMessage, Pop3Action, Pop3Event, Pop3Session};
use komle_core::upstream_allow::UNREACHABLE_REASON;
use komle_service::contracts::BoxFuture;
use komle_service::session::{Pop3Context, Pop3Summary};

use crate::tls_stream::{self, ConnectError, UpstreamStream};

enum Completion {
    /// Boxed: a TLS stream is large.
    Upstream(Result<Box<UpstreamStream>, ConnectError>),
    Opened {
        result: Result<OpenedMessage, OpenFailure>,
        started: Instant,
        size: usize,
    },
}

enum Wake {
    Client(io::Result<usize>),
    Upstream(io::Result<usize>),
    Done(Completion),
    Timer,
}

const READ_CHUNK: usize = 64 * 1024;

/// Awaits `slot`'s future, pending forever when there is none; clears the slot when done.
async fn next_completion(slot: &mut Option<BoxFuture<'static, Completion>>) -> Completion {
    match slot.as_mut() {
        Some(f) => {
            let c = f.await;
            *slot = None;
            c
        }
        None => future::pending().await,
    }
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
    let mut upstream: Option<UpstreamStream> = None;
    // The core keeps at most one action outstanding at a time of each kind; connect and open
    // never overlap, so one slot per kind suffices.
    let mut connecting: Option<BoxFuture<'static, Completion>> = None;
    let mut opening: Option<BoxFuture<'static, Completion>> = None;
    let mut client_buf = vec![0u8; READ_CHUNK];
    let mut upstream_buf = vec![0u8; READ_CHUNK];

    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Pop3Action::SendToClient(bytes) => {
                    if client_open
                        && write_all(&mut client, &bytes, ctx.session.client_idle_timeout)
                            .await
                            .is_err()
                    {
                        client_open = false;
                        session.handle_event(Pop3Event::ClientClosed, ctx.clock.instant());
                    }
                }
                Pop3Action::SendToUpstream(bytes) => {
                    let failed = match upstream.as_mut() {
                        Some(u) => write_all(u, &bytes, ctx.session.server_response_timeout)
                            .await
                            .is_err(),
                        None => false,
                    };
                    if failed {
                        upstream = None;
                        session.handle_event(Pop3Event::UpstreamClosed, ctx.clock.instant());
                    }
                }
                Pop3Action::ConnectUpstream { host, port } => {
                    let config = ctx.upstream_tls.clone();
                    let timeout = ctx.connect_timeout;
                    connecting = Some(Box::pin(async move {
                        Completion::Upstream(
                            tls_stream::connect(config, &host, port, timeout)
                                .await
                                .map(Box::new),
                        )
                    }));
                }
                Pop3Action::Open(job) => {
                    let opener = ctx.opener.clone();
                    let size = job.message.len();
                    let started = ctx.clock.instant();
                    opening = Some(Box::pin(async move {
                        let result = opener.open(job).await;
                        Completion::Opened {
                            result,
                            started,
                            size,
                        }
                    }));
                }
                Pop3Action::CloseClient => {
                    if client_open {
                        let _ = client.close().await;
                        client_open = false;
                    }
                }
                Pop3Action::CloseUpstream => {
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
        if !client_open
            && upstream.is_none()
            && connecting.is_none()
            && opening.is_none()
            && deadline.is_none()
        {
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
            let done = async {
                Wake::Done(
                    future::or(
                        next_completion(&mut connecting),
                        next_completion(&mut opening),
                    )
                    .await,
                )
            };
            let timer = async {
                match deadline {
                    Some(at) => {
                        smol::Timer::at(at).await;
                        Wake::Timer
                    }
                    None => future::pending().await,
                }
            };
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
                session.handle_event(Pop3Event::ClientClosed, now);
            }
            Wake::Client(Ok(n)) => session.handle_client_data(&client_buf[..n], now),
            Wake::Upstream(Ok(0)) | Wake::Upstream(Err(_)) => {
                upstream = None;
                session.handle_event(Pop3Event::UpstreamClosed, now);
            }
            Wake::Upstream(Ok(n)) => session.handle_upstream_data(&upstream_buf[..n], now),
            Wake::Timer => session.handle_timeout(now),
            Wake::Done(Completion::Upstream(Ok(stream))) => {
                upstream = Some(*stream);
                session.handle_event(Pop3Event::UpstreamConnected, now);
            }
            Wake::Done(Completion::Upstream(Err(e))) => {
                log::warn!("session={id} POP3 server connection failed: {e}");
                // The client learns only that it failed: the cause (closed port, TLS, timeout)
                // would let it probe what is behind the allow-listed hosts; the log has it.
                let reason = UNREACHABLE_REASON.to_owned();
                session.handle_event(Pop3Event::UpstreamFailed { reason }, now);
            }
            Wake::Done(Completion::Opened {
                result,
                started,
                size,
            }) => {
                let ms = started.elapsed().as_millis();
                match &result {
                    Ok(m) => {
                        summary.messages_opened += 1;
                        log::info!(
                            "session={id} message opened in {ms} ms: {size} bytes in, {} bytes out",
                            m.message.len()
                        );
                    }
                    Err(f) => {
                        summary.open_failures += 1;
                        log::warn!(
                            "session={id} message not opened after {ms} ms: {}",
                            f.reason
                        );
                    }
                }
                session.handle_event(Pop3Event::Opened(result), now);
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
