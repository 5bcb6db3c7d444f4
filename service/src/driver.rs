//! The one session driver: runs any [`ProxySession`] (SMTP or POP3) over any [`Runtime`]
//! (smol, tokio, or the transcript runner's in-memory runtime with a virtual clock).
//!
//! The driver is deliberately dumb, like quinn's endpoint driver around quinn-proto: it
//! carries out the session's [`Output`]s (write to the client, write upstream, connect
//! upstream with implicit TLS, run a job, close a side) and feeds back whatever happens first
//! — client bytes, upstream bytes, a finished connect or job, or the session's own timer. All
//! protocol knowledge (replies, timeouts, what may go upstream) stays in `komle-core`.
//!
//! Everything of one session runs in one task: connects and jobs are futures polled alongside
//! the sockets, so dropping the task cancels all of it and nothing outlives the connection
//! holding message content (A_2005). Jobs do their blocking Konnektor/LDAP work and their
//! CPU-heavy steps on the `blocking` pool (see [`crate::services`]), never on this task's
//! executor thread.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future};
use komle_core::login_name::KonnektorId;
use komle_core::proxy_session::{EndReason, Input, Job, JobResult, Output, ProxySession};
use komle_core::upstream_allow::UNREACHABLE_REASON;
use rustls::ClientConfig;
use zeroize::Zeroize;

use crate::contracts::BoxFuture;
use crate::jobs::JobRunner;
use crate::runtime::{Runtime, within};
use crate::server_cert_check::NO_CERTIFICATE;
use komle_core::konnektor::{CallContext, ServerCertRejected};

/// What the driver needs besides the session: where and how to connect upstream, the write
/// limits and the job runner. One per listener, shared by its sessions.
#[derive(Clone)]
pub struct DriverContext {
    /// TLS towards the MTA or POP3 server (webpki roots + `[upstream] ca`).
    pub upstream_tls: Arc<ClientConfig>,
    /// Limit for TCP connect plus TLS handshake upstream.
    pub connect_timeout: Duration,
    /// Limit for one write (and flush) to the client: a client that stops reading must not
    /// hold the session and the message in it forever.
    pub client_write_timeout: Duration,
    /// Limit for one write (and flush) upstream.
    pub upstream_write_timeout: Duration,
    pub jobs: Arc<dyn JobRunner>,
    /// "MTA" or "POP3 server", for log lines.
    pub upstream_name: &'static str,
    /// The Konnektor's check of the server certificate after the TLS handshake (A_2075-01,
    /// A_22348); `None` leaves the configured CA as the only gate.
    pub server_check: Option<Arc<dyn ServerCertificateVerifier>>,
}

/// Checks an upstream server's certificate (the Konnektor's VerifyCertificate in production,
/// [`ServerCertificateCheck`](crate::server_cert_check::ServerCertificateCheck)).
pub trait ServerCertificateVerifier: Send + Sync {
    /// `Ok` when the server may be used for a session with this call context, asked of the
    /// Konnektor the login named (`None`: the default one).
    fn verify(
        self: Arc<Self>,
        end_entity_der: Vec<u8>,
        context: CallContext,
        konnektor_id: Option<KonnektorId>,
    ) -> BoxFuture<'static, Result<(), ServerCertRejected>>;
}

/// Why the upstream connection is not there.
enum ConnectFailure {
    /// TCP or TLS failed (logged with host and port where it happens): the client learns
    /// only that the server is unreachable.
    Connect,
    /// The Konnektor did not accept the server certificate (A_2075-01).
    Rejected(ServerCertRejected),
}

/// How a session ended, for the one log line per session and the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    /// Why the session ended, as the session reported it (`None`: it never said).
    pub end: Option<EndReason>,
    /// Messages protected and handed to the MTA, or opened and handed to the client.
    pub messages_done: u32,
    /// Protect or open jobs that failed (the client got 451 / `-ERR` / an error mail).
    pub messages_failed: u32,
    /// Recipient checks answered.
    pub recipients_checked: u32,
    /// The session ended without saying so because nothing could ever wake it again.
    pub stalled: bool,
}

/// A finished job, with what the timing line needs.
struct Completion {
    result: JobResult,
    started: Instant,
    what: JobLabel,
}

/// What woke the loop.
enum Wake<R: Runtime> {
    Client(io::Result<usize>),
    Upstream(io::Result<usize>),
    /// Boxed: a TLS stream is large and the other variants are not.
    Connected(Result<Box<R::Upstream>, ConnectFailure>),
    Done(Completion),
    Timer,
}

/// Polls a set of futures, yielding the first that completes; pending forever when empty.
struct FirstOf<'a, T>(&'a mut Vec<BoxFuture<'static, T>>);

impl<T> Future for FirstOf<'_, T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
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

const READ_CHUNK: usize = 64 * 1024;

/// Runs `session` over an established (TLS) client stream until the session says it is over.
/// `id` only labels log lines.
pub async fn drive<R, S, C>(
    runtime: &R,
    mut session: S,
    mut client: C,
    ctx: &DriverContext,
    id: &str,
) -> SessionSummary
where
    R: Runtime,
    S: ProxySession,
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut summary = SessionSummary::default();
    // Open until closed or a write fails; reading stops earlier, at the client's EOF (a client
    // may half-close after its last command and still wait for the replies and our close).
    let mut client_open = true;
    let mut client_reading = true;
    let mut upstream: Option<Box<R::Upstream>> = None;
    // The connect under way; dropping it (CloseUpstream) abandons the attempt.
    let mut connecting: Option<BoxFuture<'static, Result<Box<R::Upstream>, ConnectFailure>>> = None;
    let mut pending: Vec<BoxFuture<'static, Completion>> = Vec::new();
    let mut client_buf = vec![0u8; READ_CHUNK];
    let mut upstream_buf = vec![0u8; READ_CHUNK];

    loop {
        while let Some(output) = session.poll_output() {
            match output {
                Output::SendToClient(mut bytes) => {
                    let written = !client_open
                        || write_all(runtime, &mut client, &bytes, ctx.client_write_timeout).await;
                    // A delivered (decrypted) mail or a reply: wiped once written
                    // (A_2005, "buffers are wiped after use").
                    bytes.zeroize();
                    if !written {
                        client_open = false;
                        if client_reading {
                            client_reading = false;
                            session.handle_input(Input::ClientClosed, runtime.now());
                        }
                    }
                }
                Output::SendToUpstream(mut bytes) => {
                    let failed = match upstream.as_mut() {
                        Some(u) => !write_all(runtime, u, &bytes, ctx.upstream_write_timeout).await,
                        None => false,
                    };
                    // The protected message or AUTH credentials: wiped once written (A_2005).
                    bytes.zeroize();
                    if failed {
                        upstream = None;
                        session.handle_input(Input::UpstreamClosed, runtime.now());
                    }
                }
                Output::ConnectUpstream {
                    host,
                    port,
                    context,
                    konnektor_id,
                } => {
                    let attempt = runtime.connect_upstream(
                        ctx.upstream_tls.clone(),
                        host.clone(),
                        port,
                        ctx.connect_timeout,
                    );
                    let name = ctx.upstream_name;
                    let id = id.to_owned();
                    let check = ctx.server_check.clone();
                    connecting = Some(Box::pin(async move {
                        let stream = match attempt.await {
                            Ok(s) => s,
                            Err(e) => {
                                // Host and port name the misconfigured or unreachable server.
                                log::warn!(
                                    "session={id} {name} {host}:{port} connection failed: {e}"
                                );
                                return Err(ConnectFailure::Connect);
                            }
                        };
                        if let Some(check) = check {
                            let verdict = match R::server_certificate(&stream) {
                                Some(der) => check.verify(der, context, konnektor_id).await,
                                None => Err(NO_CERTIFICATE),
                            };
                            if let Err(r) = verdict {
                                log::warn!(
                                    "session={id} {name} {host}:{port} server certificate not accepted: {r}"
                                );
                                return Err(ConnectFailure::Rejected(r));
                            }
                        }
                        Ok(Box::new(stream))
                    }));
                }
                Output::Run(job) => {
                    let what = JobLabel::of(&job);
                    let started = runtime.now();
                    let work = ctx.jobs.run(job);
                    pending.push(Box::pin(async move {
                        Completion {
                            result: work.await,
                            started,
                            what,
                        }
                    }));
                }
                Output::CloseClient => {
                    // Nothing the client sends after our close is read.
                    client_reading = false;
                    if client_open {
                        let _ = within(
                            runtime,
                            runtime.now() + ctx.client_write_timeout,
                            client.close(),
                        )
                        .await;
                        client_open = false;
                    }
                }
                Output::CloseUpstream => {
                    connecting = None;
                    if let Some(mut u) = upstream.take() {
                        let _ = within(
                            runtime,
                            runtime.now() + ctx.upstream_write_timeout,
                            u.close(),
                        )
                        .await;
                    }
                }
                Output::Ended { reason } => summary.end = Some(reason),
                // #[non_exhaustive]: an output of a newer core this driver does not know.
                other => log::warn!("session={id} output not handled by this driver: {other:?}"),
            }
        }
        if session.is_finished() {
            break;
        }
        let deadline = session.poll_timeout();
        if !client_reading
            && upstream.is_none()
            && connecting.is_none()
            && pending.is_empty()
            && deadline.is_none()
        {
            // Nothing can ever wake the session again: end instead of leaking the task.
            summary.stalled = true;
            break;
        }

        let wake = {
            let client_read = async {
                if client_reading {
                    Wake::<R>::Client(client.read(&mut client_buf).await)
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
            let connect = async {
                match connecting.as_mut() {
                    Some(c) => Wake::Connected(c.await),
                    None => future::pending().await,
                }
            };
            let done = async { Wake::Done(FirstOf(&mut pending).await) };
            let timer = async {
                match deadline {
                    Some(at) => {
                        runtime.sleep_until(at).await;
                        Wake::Timer
                    }
                    None => future::pending().await,
                }
            };
            // `race` picks randomly among ready futures so a busy client cannot starve the
            // upstream side or the timer.
            future::race(
                future::race(client_read, upstream_read),
                future::race(future::race(connect, done), timer),
            )
            .await
        };

        let now = runtime.now();
        match wake {
            Wake::Client(Ok(0)) => {
                client_reading = false;
                session.handle_input(Input::ClientClosed, now);
            }
            Wake::Client(Err(_)) => {
                (client_reading, client_open) = (false, false);
                session.handle_input(Input::ClientClosed, now);
            }
            Wake::Client(Ok(n)) => session.handle_input(Input::ClientData(&client_buf[..n]), now),
            Wake::Upstream(Ok(0)) | Wake::Upstream(Err(_)) => {
                upstream = None;
                session.handle_input(Input::UpstreamClosed, now);
            }
            Wake::Upstream(Ok(n)) => {
                session.handle_input(Input::UpstreamData(&upstream_buf[..n]), now)
            }
            Wake::Timer => session.handle_input(Input::Timeout, now),
            Wake::Connected(Ok(stream)) => {
                connecting = None;
                upstream = Some(stream);
                session.handle_input(Input::UpstreamConnected, now);
            }
            Wake::Connected(Err(ConnectFailure::Rejected(r))) => {
                connecting = None;
                session.handle_input(r.to_input(), now);
            }
            Wake::Connected(Err(ConnectFailure::Connect)) => {
                connecting = None;
                // The client learns only that it failed: the cause (closed port, TLS,
                // timeout) would let it probe what is behind the allow-listed hosts; the log
                // line above has it.
                let reason = UNREACHABLE_REASON.to_owned();
                session.handle_input(Input::UpstreamFailed { reason }, now);
            }
            Wake::Done(Completion {
                result,
                started,
                what,
            }) => {
                let ms = now.saturating_duration_since(started).as_millis();
                what.log(id, ms, &result, &mut summary);
                session.handle_input(Input::JobDone(result), now);
            }
        }
    }
    if client_open {
        let _ = within(
            runtime,
            runtime.now() + ctx.client_write_timeout,
            client.close(),
        )
        .await;
    }
    if let Some(mut u) = upstream.take() {
        let _ = within(
            runtime,
            runtime.now() + ctx.upstream_write_timeout,
            u.close(),
        )
        .await;
    }
    client_buf.fill(0);
    upstream_buf.fill(0);
    summary
}

/// What a job was, for its timing line: the kind and the size of the message going in (no
/// content, no addresses).
#[derive(Clone, Copy)]
enum JobLabel {
    Check,
    Protect { size: usize },
    Open { size: usize },
    Other,
}

impl JobLabel {
    fn of(job: &Job) -> JobLabel {
        match job {
            Job::CheckRecipient { .. } => JobLabel::Check,
            Job::Protect(j) => JobLabel::Protect {
                size: j.message.len(),
            },
            Job::Open(j) => JobLabel::Open {
                size: j.message.len(),
            },
            _ => JobLabel::Other,
        }
    }

    /// The per-message timing log line and the summary's counters.
    fn log(self, id: &str, ms: u128, result: &JobResult, summary: &mut SessionSummary) {
        match (self, result) {
            (JobLabel::Protect { size }, JobResult::Protected(Ok(p))) => {
                summary.messages_done += 1;
                log::info!(
                    "session={id} message protected in {ms} ms: {size} bytes in, {} bytes out, {} recipient(s), notice={}",
                    p.message.len(),
                    p.recipients.len(),
                    p.notice.is_some()
                );
            }
            (JobLabel::Protect { .. }, JobResult::Protected(Err(f))) => {
                summary.messages_failed += 1;
                log::warn!(
                    "session={id} message not protected after {ms} ms: {}",
                    f.reason
                );
            }
            (JobLabel::Open { size }, JobResult::Opened(Ok(m))) => {
                summary.messages_done += 1;
                log::info!(
                    "session={id} message opened in {ms} ms: {size} bytes in, {} bytes out",
                    m.message.len()
                );
            }
            (JobLabel::Open { .. }, JobResult::Opened(Err(f))) => {
                summary.messages_failed += 1;
                log::warn!(
                    "session={id} message not opened after {ms} ms: {}",
                    f.reason
                );
            }
            (JobLabel::Check, _) => {
                summary.recipients_checked += 1;
                log::debug!("session={id} recipient checked in {ms} ms");
            }
            _ => {}
        }
    }
}

/// Writes and flushes within `limit`; false when the peer is gone or too slow.
async fn write_all<R: Runtime, W: AsyncWrite + Unpin>(
    runtime: &R,
    w: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> bool {
    let write = async {
        w.write_all(bytes).await?;
        w.flush().await
    };
    matches!(
        within(runtime, runtime.now() + limit, write).await,
        Some(Ok(()))
    )
}
