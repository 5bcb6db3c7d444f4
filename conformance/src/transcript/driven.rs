//! Transcript replay through the production session driver ([`komle_service::driver::drive`]):
//! the same loop that runs on smol and tokio, here over [`MemRuntime`], an in-memory runtime
//! with a virtual clock. The client and the upstream server are in-memory streams whose bytes
//! become the `M:` / `U:` lines, closing them the `A: close-…` lines; the upstream connect and
//! the jobs wait for the transcript's `E:` events; `T:` moves the virtual clock and fires the
//! driver's timer.
//!
//! What only the session itself can be shown (events nobody asked for, a connect reason the
//! driver hides from the client on purpose) is marked `O: replay session-only` and replayed by
//! [`super::run`] alone.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use komle_core::proxy_session::{Job, JobResult};
use komle_service::contracts::BoxFuture;
use komle_service::driver::{self, DriverContext, SessionSummary};
use komle_service::jobs::JobRunner;
use komle_service::runtime::Runtime;
use komle_service::tls_io::ConnectError;
use rustls::ClientConfig;

use super::grammar::{ConnectionEvent, push_lines};
use super::{Payload, PayloadKind, Splitter, Step, Transcript, Words, chunks};

/// Everything the in-memory runtime shares between the driver and the runner.
#[derive(Default)]
struct World {
    now: Option<Instant>,
    /// Deadlines of the timers alive now (dropped timers are removed).
    sleeps: Vec<(u64, Instant)>,
    next_sleep: u64,
    /// What the module did, as transcript lines.
    lines: VecDeque<String>,
    /// Reads waiting for the client / upstream side, one chunk per read; `None` = EOF.
    client_in: VecDeque<Option<Vec<u8>>>,
    upstream_in: VecDeque<Option<Vec<u8>>>,
    /// A connect the driver waits for, and the transcript's answer.
    connect_pending: bool,
    /// The Konnektor's verdict on the next connection's server certificate
    /// (`E: server-cert-rejected …`); `None`: accepted.
    server_verdict: Option<komle_core::konnektor::ServerCertRejected>,
    connect_answer: Option<Result<(), String>>,
    /// The module holds an upstream connection.
    upstream_live: bool,
    /// Jobs handed out, waiting for their `E:` answer.
    jobs: Vec<PendingJob>,
    /// Problems found while the driver ran (a job the protocol does not have).
    errors: Vec<String>,
    /// Counts every change, so the runner knows when the driver is idle.
    version: u64,
}

struct PendingJob {
    id: u64,
    kind: JobKind,
    answer: Option<JobResult>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum JobKind {
    Check(String),
    Protect,
    Open,
    DiscardKasData,
}

impl JobKind {
    fn of(job: &Job) -> JobKind {
        match job {
            Job::CheckRecipient { address } => JobKind::Check(address.clone()),
            Job::Protect(_) => JobKind::Protect,
            Job::DiscardKasData { .. } => JobKind::DiscardKasData,
            _ => JobKind::Open,
        }
    }

    fn answers(&self, result: &JobResult) -> bool {
        match (self, result) {
            (JobKind::Check(a), JobResult::RecipientChecked { address, .. }) => a == address,
            (JobKind::Protect, JobResult::Protected(_)) => true,
            (JobKind::Open, JobResult::Opened(_)) => true,
            (JobKind::DiscardKasData, JobResult::KasDataDiscarded) => true,
            _ => false,
        }
    }
}

/// The in-memory [`Runtime`]: virtual clock, in-memory upstream.
#[derive(Clone)]
pub struct MemRuntime {
    world: Arc<Mutex<World>>,
}

impl MemRuntime {
    fn new(start: Instant) -> MemRuntime {
        let world = World {
            now: Some(start),
            ..World::default()
        };
        MemRuntime {
            world: Arc::new(Mutex::new(world)),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl World {
    fn now(&self) -> Instant {
        self.now.unwrap_or_else(Instant::now)
    }
}

/// A timer of the virtual clock.
struct Sleep {
    world: Arc<Mutex<World>>,
    id: u64,
    at: Instant,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if w.now() >= self.at {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.sleeps.retain(|(id, _)| *id != self.id);
    }
}

impl Runtime for MemRuntime {
    type Upstream = MemStream;

    fn now(&self) -> Instant {
        self.world().now()
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()> {
        let mut w = self.world();
        w.next_sleep += 1;
        let id = w.next_sleep;
        w.sleeps.push((id, at));
        w.version += 1;
        Box::pin(Sleep {
            world: self.world.clone(),
            id,
            at,
        })
    }

    fn connect_upstream(
        &self,
        _tls: Arc<ClientConfig>,
        host: String,
        port: u16,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<MemStream, ConnectError>> {
        {
            let mut w = self.world();
            w.lines.push_back(format!("A: connect {host}:{port}"));
            w.connect_pending = true;
            w.connect_answer = None;
            w.upstream_in.clear();
            w.version += 1;
        }
        Box::pin(Connecting {
            world: self.world.clone(),
            done: false,
        })
    }

    fn server_certificate(_: &MemStream) -> Option<Vec<u8>> {
        // Every in-memory server "has" a certificate; [`MemServerCheck`] judges it.
        Some(Vec::new())
    }
}

/// The Konnektor's check of the server certificate as the transcript decides it: accepted,
/// unless the event that answered the connect was `server-cert-rejected`.
struct MemServerCheck {
    world: Arc<Mutex<World>>,
}

impl driver::ServerCertificateVerifier for MemServerCheck {
    fn verify(
        self: Arc<Self>,
        _end_entity_der: Vec<u8>,
        _context: komle_core::konnektor::CallContext,
        _konnektor_id: Option<komle_core::login_name::KonnektorId>,
    ) -> BoxFuture<'static, Result<(), komle_core::konnektor::ServerCertRejected>> {
        let verdict = self
            .world
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .server_verdict
            .take();
        Box::pin(async move { verdict.map_or(Ok(()), Err) })
    }
}

/// A connect waiting for the transcript's `E: connected` / `E: connect-failed`. Dropped
/// before that (the module abandons the attempt), it is the `A: close-upstream` of the
/// session.
struct Connecting {
    world: Arc<Mutex<World>>,
    done: bool,
}

impl Future for Connecting {
    type Output = Result<MemStream, ConnectError>;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = {
            let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            let answer = w.connect_answer.take();
            if answer.is_some() {
                w.connect_pending = false;
                w.version += 1;
            }
            answer
        };
        match answer {
            Some(Ok(())) => {
                self.done = true;
                Poll::Ready(Ok(MemStream::upstream(&self.world)))
            }
            Some(Err(reason)) => {
                self.done = true;
                Poll::Ready(Err(ConnectError::Tcp(reason)))
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if !self.done {
            let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            w.connect_pending = false;
            w.lines.push_back("A: close-upstream".into());
            w.version += 1;
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Upstream,
}

/// The module's end of the client or upstream connection.
pub struct MemStream {
    world: Arc<Mutex<World>>,
    side: Side,
}

impl MemStream {
    /// A fresh upstream connection; the bytes the transcript's server sends go to it.
    fn upstream(world: &Arc<Mutex<World>>) -> MemStream {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        w.upstream_live = true;
        w.upstream_in.clear();
        MemStream {
            world: world.clone(),
            side: Side::Upstream,
        }
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        if let Side::Upstream = self.side {
            let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            w.upstream_live = false;
            w.upstream_in.clear();
        }
    }
}

impl AsyncRead for MemStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        let queue = match self.side {
            Side::Client => &mut w.client_in,
            Side::Upstream => &mut w.upstream_in,
        };
        match queue.front_mut() {
            None => Poll::Pending,
            Some(None) => Poll::Ready(Ok(0)),
            Some(Some(chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    queue.pop_front();
                }
                w.version += 1;
                Poll::Ready(Ok(n))
            }
        }
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        let marker = match self.side {
            Side::Client => "M",
            Side::Upstream => "U",
        };
        push_lines(&mut w.lines, marker, buf);
        w.version += 1;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        let line = match self.side {
            Side::Client => "A: close-client",
            Side::Upstream => "A: close-upstream",
        };
        w.lines.push_back(line.into());
        w.version += 1;
        Poll::Ready(Ok(()))
    }
}

/// Hands the session's jobs to the transcript and waits for its `E:` answer.
struct MemJobs {
    world: Arc<Mutex<World>>,
    show: fn(Job, &mut VecDeque<String>) -> Result<(), String>,
}

impl JobRunner for MemJobs {
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
        let id = {
            let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
            let kind = JobKind::of(&job);
            let mut lines = VecDeque::new();
            if let Err(e) = (self.show)(job, &mut lines) {
                w.errors.push(e);
            }
            w.lines.extend(lines);
            w.version += 1;
            let id = w.version;
            w.jobs.push(PendingJob {
                id,
                kind,
                answer: None,
            });
            id
        };
        let world = self.world.clone();
        Box::pin(futures_lite::future::poll_fn(move |_| {
            let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
            let Some(i) = w.jobs.iter().position(|j| j.id == id) else {
                return Poll::Pending;
            };
            match w.jobs[i].answer.take() {
                Some(result) => {
                    w.jobs.remove(i);
                    w.version += 1;
                    Poll::Ready(result)
                }
                None => Poll::Pending,
            }
        }))
    }
}

/// Polls `fut` until it makes no more progress (or completes).
fn settle<F: Future<Output = SessionSummary> + ?Sized>(
    fut: Pin<&mut F>,
    rt: &MemRuntime,
) -> Result<Option<SessionSummary>, String> {
    let mut fut = fut;
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        let before = rt.world().version;
        if let Poll::Ready(summary) = fut.as_mut().poll(&mut cx) {
            return Ok(Some(summary));
        }
        if rt.world().version == before {
            return Ok(None);
        }
    }
    Err("the driver does not settle".into())
}

/// Replays `t` through the production driver; `split` cuts each input into reads.
pub(super) fn replay_driven<W: Words>(t: &Transcript, split: Splitter<'_>) -> Result<(), String> {
    let start = Instant::now();
    let session = W::start(&t.options, start).map_err(|e| format!("{}: {e}", t.name))?;
    let rt = MemRuntime::new(start);
    let ctx = DriverContext {
        upstream_tls: komle_service::tls::client_config(None)
            .map_err(|e| format!("TLS config: {e}"))?,
        connect_timeout: Duration::from_secs(3600),
        client_write_timeout: Duration::from_secs(3600),
        upstream_write_timeout: Duration::from_secs(3600),
        jobs: Arc::new(MemJobs {
            world: rt.world.clone(),
            show: W::show_job,
        }),
        upstream_name: "upstream",
        server_check: Some(Arc::new(MemServerCheck {
            world: rt.world.clone(),
        })),
    };
    let client = MemStream {
        world: rt.world.clone(),
        side: Side::Client,
    };
    let mut fut = Box::pin(driver::drive(&rt, session, client, &ctx, "transcript"));
    let mut summary: Option<SessionSummary> = None;
    let mut payload = Payload::default();
    let step_settle =
        |fut: Pin<&mut _>, summary: &mut Option<SessionSummary>| -> Result<(), String> {
            if summary.is_none() {
                *summary = settle(fut, &rt)?;
            }
            let errors = std::mem::take(&mut rt.world().errors);
            match errors.first() {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        };
    step_settle(fut.as_mut(), &mut summary).map_err(|e| format!("{}: {e}", t.name))?;
    for (n, step) in &t.steps {
        let at = || format!("{}:{} (driven)", t.name, n);
        let is_input = matches!(
            step,
            Step::Client(_) | Step::Upstream(_) | Step::Event(_) | Step::Advance(_)
        );
        if is_input && !rt.world().lines.is_empty() {
            return Err(format!(
                "{}: module output not expected by the transcript: {:?}",
                at(),
                rt.world().lines
            ));
        }
        match step {
            Step::Client(bytes) | Step::Upstream(bytes) => {
                let to_client = matches!(step, Step::Client(_));
                for (i, chunk) in chunks(bytes, split).into_iter().enumerate() {
                    {
                        let mut w = rt.world();
                        // Later reads of the step after the module closed the connection go
                        // nowhere, as on a socket; the step itself needs a connection.
                        if !to_client && !w.upstream_live && i > 0 {
                            break;
                        }
                        if !to_client && !w.upstream_live {
                            return Err(format!(
                                "{}: server bytes without a connection (mark the transcript session-only)",
                                at()
                            ));
                        }
                        let q = if to_client {
                            &mut w.client_in
                        } else {
                            &mut w.upstream_in
                        };
                        q.push_back(Some(chunk.to_vec()));
                        w.version += 1;
                    }
                    step_settle(fut.as_mut(), &mut summary)
                        .map_err(|e| format!("{}: {e}", at()))?;
                }
            }
            Step::Event(e) => {
                match ConnectionEvent::parse(e).map_err(|m| format!("{}: {m}", at()))? {
                    Some(ConnectionEvent::Connected) => {
                        answer_connect(&rt, Ok(())).map_err(|m| format!("{}: {m}", at()))?
                    }
                    Some(ConnectionEvent::ConnectFailed(reason)) => {
                        answer_connect(&rt, Err(reason)).map_err(|m| format!("{}: {m}", at()))?
                    }
                    Some(ConnectionEvent::ServerCertRejected(r)) => {
                        rt.world().server_verdict = Some(r);
                        answer_connect(&rt, Ok(())).map_err(|m| format!("{}: {m}", at()))?
                    }
                    Some(ConnectionEvent::ClientClosed) => rt.world().client_in.push_back(None),
                    Some(ConnectionEvent::UpstreamClosed) => rt.world().upstream_in.push_back(None),
                    None => {
                        let result =
                            W::job_result(e, &mut payload).map_err(|m| format!("{}: {m}", at()))?;
                        let mut w = rt.world();
                        let Some(job) = w
                            .jobs
                            .iter_mut()
                            .find(|j| j.answer.is_none() && j.kind.answers(&result))
                        else {
                            return Err(format!("{}: no job waits for {e:?}", at()));
                        };
                        job.answer = Some(result);
                    }
                }
                rt.world().version += 1;
                step_settle(fut.as_mut(), &mut summary).map_err(|e| format!("{}: {e}", at()))?;
            }
            Step::Payload(PayloadKind::Message, l) => payload.message.extend_from_slice(l),
            Step::Payload(PayloadKind::Notice, l) => payload.notice.extend_from_slice(l),
            Step::Advance(d) => {
                {
                    let mut w = rt.world();
                    let now = w.now() + *d;
                    w.now = Some(now);
                    w.version += 1;
                }
                step_settle(fut.as_mut(), &mut summary).map_err(|e| format!("{}: {e}", at()))?;
            }
            Step::Expect(want) => match rt.world().lines.pop_front() {
                Some(got) if &got == want => {}
                Some(got) => return Err(format!("{}: expected {want:?}, got {got:?}", at())),
                None => return Err(format!("{}: expected {want:?}, got nothing", at())),
            },
            Step::ExpectTimeout(want) => {
                let w = rt.world();
                let got = w
                    .sleeps
                    .iter()
                    .map(|(_, at)| *at)
                    .min()
                    .map(|t| t - w.now());
                if summary.is_none() && got != *want {
                    return Err(format!("{}: timer {got:?}, expected {want:?}", at()));
                }
            }
            Step::ExpectFinished => match &summary {
                Some(s) if s.stalled => return Err(format!("{}: driver stalled", at())),
                Some(s) if s.end.is_none() => {
                    return Err(format!("{}: finished without Ended", at()));
                }
                Some(_) => {}
                None => return Err(format!("{}: session not finished", at())),
            },
            Step::ExpectEnded(want) => match summary.as_ref().and_then(|s| s.end) {
                Some(got) if got.as_str() == want => {}
                got => return Err(format!("{}: ended {got:?}, expected {want}", at())),
            },
        }
    }
    let w = rt.world();
    if !w.lines.is_empty() {
        return Err(format!(
            "{} (driven): module output after the end of the transcript: {:?}",
            t.name, w.lines
        ));
    }
    Ok(())
}

fn answer_connect(rt: &MemRuntime, answer: Result<(), String>) -> Result<(), String> {
    let mut w = rt.world();
    if !w.connect_pending {
        return Err("no connect waits for this event (mark the transcript session-only)".into());
    }
    w.connect_answer = Some(answer);
    Ok(())
}
