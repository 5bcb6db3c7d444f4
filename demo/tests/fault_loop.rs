//! Fault injection loops through the real SMTP proxy (issue 9, "Robustness"): each of the
//! proxy's connections — client, MTA, Konnektor, directory (a real slapd) — is dropped or
//! stalled at every protocol step in turn, one full client session per step.
//!
//! A [`FaultRelay`] sits on the connection under test (in front of the proxy for the client,
//! in front of the upstream otherwise) and breaks the path at the k-th chunk in one direction
//! (a TLS record; a read for plain LDAP); k counts up until the session runs past the last
//! chunk and the fault no longer fires. Client, MTA and Konnektor faults strike once; the
//! directory's strike from chunk k on (an outage), since its client heals a one-off break by
//! reconnecting. After every faulted session:
//!
//! - the invariant holds: the client was told 250 for the message <=> the MTA has it exactly
//!   once; otherwise the client got a 4xx reply (the faults are transient) and the MTA has
//!   nothing new. The one exception is the window of RFC 1047 (RFC 5321 §6.1): the path to
//!   sender breaks while the 250 for the final dot is on the wire (MTA to proxy, or proxy to
//!   client). The MTA has the message, the client never saw the 250 and will send again — a
//!   duplicate, never a loss. The test admits exactly that case (checked by time: the relay
//!   swallowed a chunk after the MTA started writing its 250) and requires that it occurs
//!   exactly once in each loop over the replies on those two legs. On the client leg the
//!   client may also just see the connection end (the fault cut it);
//! - everything settles: no proxy session task, no MTA session, no relayed per-session
//!   connection left; and the proxy serves the next, fault-free session normally (recovery).
//!
//! After a loop the leftovers are counted: open file descriptors back to their level after
//! the warm-up, pooled Konnektor/LDAP connections not more than after the warm-up, and live
//! heap bytes (counting global allocator below) within [`HEAP_SLACK`] of the
//! warm-up level plus the messages the MTA keeps.
//!
//! Timeouts are cut to half a second (a second for the Konnektor) so a stall costs that, not
//! minutes. The tests in this
//! file run one after another (a lock): fd and heap counts are process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use komle_conformance::fault_relay::{Chunking, Direction, FaultKind, FaultRelay, Fired, Plan};
use komle_conformance::mini_mta::Received;
use komle_conformance::slapd::Slapd;
use komle_conformance::world::World;
use komle_core::sasl::plain;
use komle_core::secret::Password;
use komle_core::smtp::SmtpConfig;
use komle_demo::embedded::{Embedded, EmbeddedOptions, PASSWORD, ProxyClient};
use komle_service::ldap::LdapSettings;

// ---------------------------------------------------------------------------------------------
// Counting live heap bytes.

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE_HEAP: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What live heap may grow by over a loop without counting as a leak: lazily filled pools
/// and caches of ring, rustls, ureq, ldap3 and the test harness itself (measured: 25-65 KB).
/// A session task left behind holds at least its two 16 KiB read buffers; one per iteration
/// over the 40-90 iterations of a leg's loops exceeds it.
const HEAP_SLACK: isize = 512 * 1024;

// ---------------------------------------------------------------------------------------------
// The client.

type Tls = ProxyClient;

/// How long the client waits for any reply: far above every timeout of the proxy (about a
/// second here), so running into it means the proxy hung.
const CLIENT_PATIENCE: Duration = Duration::from_secs(30);

/// What the client saw of one message.
#[derive(Debug)]
enum Outcome {
    /// 250 for the final dot.
    Accepted,
    /// An error reply at `step`; the session ended there.
    Refused { step: &'static str, reply: String },
    /// The connection ended at `step` without a reply.
    Closed { step: &'static str },
}

fn connect(env: &Embedded, addr: SocketAddr) -> Tls {
    env.client(addr, CLIENT_PATIENCE).unwrap()
}

/// Reads one (multi-line) reply; `None` when the connection ended. Panics when the proxy
/// does not answer within [`CLIENT_PATIENCE`]: a hang is a failure, never an outcome.
fn reply(io: &mut Tls, step: &str) -> Option<String> {
    let mut all = String::new();
    loop {
        let mut l = String::new();
        match io.read_line(&mut l) {
            Ok(0) => return None,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no reply at {step} within {CLIENT_PATIENCE:?}: the proxy hung")
            }
            Err(_) => return None,
            Ok(_) => {}
        }
        all.push_str(&l);
        if l.as_bytes().get(3) != Some(&b'-') {
            return Some(all);
        }
    }
}

/// One full client session with `login` towards the proxy at `addr` (or a relay in front of
/// it): greeting, EHLO, AUTH, MAIL, RCPT, DATA, message, final dot, QUIT.
fn session(env: &Embedded, addr: SocketAddr, login: &str) -> Outcome {
    let mut io = connect(env, addr);
    let from = env.world.pki.sender.address.clone();
    let to = env.world.pki.single.address.clone();
    let auth = format!(
        "AUTH PLAIN {}",
        plain::encode_response(login, &Password::new(PASSWORD))
    );
    let steps: [(&'static str, Option<String>, &str); 6] = [
        ("greeting", None, "220"),
        ("EHLO", Some("EHLO fault-loop".into()), "250"),
        ("AUTH", Some(auth), "235"),
        ("MAIL", Some(format!("MAIL FROM:<{from}>")), "250"),
        ("RCPT", Some(format!("RCPT TO:<{to}>")), "250"),
        ("DATA", Some("DATA".into()), "354"),
    ];
    for (step, line, want) in steps {
        if let Some(line) = line
            && io
                .get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .is_err()
        {
            return Outcome::Closed { step };
        }
        let Some(r) = reply(&mut io, step) else {
            return Outcome::Closed { step };
        };
        if !r.starts_with(want) {
            quit(&mut io);
            return Outcome::Refused { step, reply: r };
        }
    }
    let message = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Befund\r\n\r\nBefund vollstaendig.\r\n.\r\n"
    );
    let step = "final dot";
    if io.get_mut().write_all(message.as_bytes()).is_err() {
        return Outcome::Closed { step };
    }
    let Some(r) = reply(&mut io, step) else {
        return Outcome::Closed { step };
    };
    quit(&mut io);
    if r.starts_with("250") {
        Outcome::Accepted
    } else {
        Outcome::Refused { step, reply: r }
    }
}

/// Says QUIT and reads the answer, if the connection still lets it.
fn quit(io: &mut Tls) {
    if io.get_mut().write_all(b"QUIT\r\n").is_ok() {
        let _ = reply(io, "QUIT");
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting and counting.

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Polls `done` for up to 10 s; true once it held.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the session is over everywhere: no proxy task, no MTA session, and, for a
/// relay on a per-session connection (client, MTA), no relayed connection. Panics with what
/// is left otherwise.
fn settle(env: &Embedded, target: &Target, what: &str) {
    let per_session = matches!(target.leg, Leg::Client | Leg::Mta).then_some(target.relay);
    let quiet = || {
        env.live_connections.load(Ordering::SeqCst) == 0
            && env.mta.open_sessions() == 0
            && per_session.is_none_or(|r| r.open_connections() == 0)
    };
    assert!(
        eventually(quiet),
        "{what}: left behind: {} proxy session(s), {} MTA session(s), {:?} relayed connection(s)",
        env.live_connections.load(Ordering::SeqCst),
        env.mta.open_sessions(),
        per_session.map(FaultRelay::open_connections)
    );
}

/// Levels after the warm-up, to compare with after the loop.
struct Baseline {
    fds: usize,
    heap: isize,
    messages: usize,
    /// Pooled connections through the relay under test (Konnektor, LDAP keep theirs).
    relay_connections: usize,
}

fn baseline(env: &Embedded, relay: &FaultRelay) -> Baseline {
    let fds = open_fds();
    let messages = env.mta.received_count();
    let relay_connections = relay.open_connections();
    Baseline {
        fds,
        heap: LIVE_HEAP.load(Ordering::SeqCst),
        messages,
        relay_connections,
    }
}

/// Counts what the loop left behind against the warm-up levels.
fn assert_nothing_left_behind(env: &Embedded, relay: &FaultRelay, base: &Baseline) {
    assert!(
        eventually(|| open_fds() <= base.fds),
        "file descriptors leaked: {} after the warm-up, {} now",
        base.fds,
        open_fds()
    );
    assert!(
        eventually(|| relay.open_connections() <= base.relay_connections),
        "relayed connections left open: {} after the warm-up, {} now",
        base.relay_connections,
        relay.open_connections()
    );
    // The MTA keeps what it received: that is not a leak.
    let kept: usize = env.mta.received()[base.messages..]
        .iter()
        .map(|m| m.data.len() + m.from.len() + m.recipients.iter().map(String::len).sum::<usize>())
        .sum();
    let kept = (kept + (env.mta.received_count() - base.messages) * size_of::<Received>()) as isize;
    let grown = LIVE_HEAP.load(Ordering::SeqCst) - base.heap - kept;
    assert!(
        grown <= HEAP_SLACK,
        "live heap grew by {grown} bytes over the loop (beyond {kept} bytes of received mail); \
         slack is {HEAP_SLACK}"
    );
    eprintln!(
        "left behind: fds {} -> {}, heap {:+} bytes beyond the received mail, relayed connections {} -> {}",
        base.fds,
        open_fds(),
        grown,
        base.relay_connections,
        relay.open_connections()
    );
}

// ---------------------------------------------------------------------------------------------
// The loop and its invariant.

/// The connection of the proxy the relay under test sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// Mail client to proxy: the relay is in front of the proxy.
    Client,
    /// Proxy to MTA.
    Mta,
    /// Proxy to Konnektor (HTTPS, pooled).
    Konnektor,
    /// Proxy to the directory (LDAP, kept open).
    Directory,
}

impl Leg {
    /// Whether the leg carries a 250 for the final dot towards the message's sender, which
    /// can be lost on the way (the RFC 1047 window).
    fn carries_the_250(self) -> bool {
        matches!(self, Leg::Client | Leg::Mta)
    }
}

/// The relay under test and how the client reaches the proxy.
struct Target<'a> {
    leg: Leg,
    relay: &'a FaultRelay,
    /// Where the client connects: the proxy, or the relay on the client leg.
    addr: SocketAddr,
    login: String,
    /// Whether the path stays broken from the fault on ([`Plan::lasting`]).
    lasting: bool,
}

/// The invariant for one faulted session; returns whether it was the RFC 1047 window (MTA
/// has the message, client not told 250).
fn assert_invariant(
    what: &str,
    leg: Leg,
    outcome: &Outcome,
    delivered: &[Received],
    fired: Option<Fired>,
) -> bool {
    match outcome {
        Outcome::Accepted => {
            assert_eq!(
                delivered.len(),
                1,
                "{what}: client told 250, the MTA has {} cop(ies)",
                delivered.len()
            );
            return false;
        }
        Outcome::Refused { step, reply } => assert!(
            reply.starts_with('4'),
            "{what}: a transient fault must give a transient reply, got at {step}: {reply}"
        ),
        // On the client leg the fault itself may cut the client off; behind the proxy a
        // broken upstream must be answered.
        Outcome::Closed { .. } if leg == Leg::Client => {}
        Outcome::Closed { step } => {
            panic!("{what}: connection closed at {step} without a reply")
        }
    }
    if delivered.is_empty() {
        return false;
    }
    // Not told 250, yet delivered: only the lost 250 of the MTA may do that.
    let lost_250 = leg.carries_the_250()
        && delivered.len() == 1
        && fired.is_some_and(|f| {
            f.plan.direction == Direction::ToClient && f.at >= delivered[0].acknowledged_at
        });
    assert!(
        lost_250,
        "{what}: client got {outcome:?}, the MTA has {} cop(ies), fault {fired:?}",
        delivered.len()
    );
    true
}

/// Runs the loop for one relay, fault kind and direction; returns the iterations and how many
/// were the RFC 1047 window.
fn fault_loop(
    env: &Embedded,
    target: &Target,
    kind: FaultKind,
    direction: Direction,
) -> (usize, usize) {
    let mut windows = 0;
    for chunk in 0.. {
        let what = format!("{:?} {kind:?} {direction:?} chunk {chunk}", target.leg);
        assert!(chunk < 400, "{what}: the fault keeps firing");
        target.relay.arm(Some(Plan {
            direction,
            chunk,
            kind,
            lasting: target.lasting,
        }));
        let before = env.mta.received_count();
        let outcome = session(env, target.addr, &target.login);
        settle(env, target, &what);
        let fired = target.relay.fired();
        target.relay.arm(None);
        let delivered = env.mta.received()[before..].to_vec();
        let window = assert_invariant(&what, target.leg, &outcome, &delivered, fired);
        windows += usize::from(window);
        eprintln!(
            "  {what}: {outcome:?}, delivered {}{}",
            delivered.len(),
            if window { " (lost 250)" } else { "" }
        );
        if fired.is_none() {
            // The session ran past the last chunk: it was fault-free.
            assert!(matches!(outcome, Outcome::Accepted), "{what}: {outcome:?}");
            return (chunk, windows);
        }
        // Recovery: the next session is served normally.
        let before = env.mta.received_count();
        let next = session(env, target.addr, &target.login);
        settle(env, target, &what);
        assert!(
            matches!(next, Outcome::Accepted),
            "{what}: the session after the fault got {next:?}"
        );
        assert_eq!(env.mta.received_count(), before + 1, "{what}: recovery");
    }
    unreachable!()
}

/// All four loops (drop/stall x both directions) on one leg, with the counts around them.
fn all_loops(env: &Embedded, target: &Target) {
    let leg = target.leg;
    // Warm-up: pools, caches and lazily built state exist before the baseline is taken.
    for _ in 0..2 {
        let o = session(env, target.addr, &target.login);
        assert!(matches!(o, Outcome::Accepted), "warm-up: {o:?}");
        settle(env, target, "warm-up");
    }
    let base = baseline(env, target.relay);
    let started = Instant::now();
    for kind in [FaultKind::Drop, FaultKind::Stall] {
        for direction in Direction::BOTH {
            let t = Instant::now();
            let (steps, windows) = fault_loop(env, target, kind, direction);
            eprintln!(
                "{leg:?} {kind:?} {direction:?}: {steps} chunks, {windows} lost 250(s), {:.1} s",
                t.elapsed().as_secs_f64()
            );
            assert!(steps > 0, "the relay saw no {direction:?} chunk at all");
            // The 250 for the final dot crosses the relay in one chunk towards the sender:
            // breaking the path there is the one lost-250 case, and it must occur.
            let expected = usize::from(leg.carries_the_250() && direction == Direction::ToClient);
            assert_eq!(
                windows, expected,
                "{leg:?} {kind:?} {direction:?}: lost 250s"
            );
        }
    }
    eprintln!(
        "{leg:?}: all loops in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_nothing_left_behind(env, target.relay, &base);
}

/// How long the proxy waits for a peer that stalls here (A_2016 MTA response, MTA connect,
/// client idle, TLS handshake, LDAP): every stall costs this once. The peers are in-process
/// threads or a local slapd that answer within milliseconds, so it is still far above a
/// normal answer.
const STALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Timeouts cut so that a stall costs a fraction of a second, not minutes. The Konnektor gets
/// a second: its answers carry real cryptography (tens of milliseconds in a debug build).
fn short_timeouts() -> EmbeddedOptions {
    EmbeddedOptions {
        session: SmtpConfig {
            mta_response_timeout: STALL_TIMEOUT,
            client_idle_timeout: STALL_TIMEOUT,
            ..SmtpConfig::default()
        },
        connect_timeout: STALL_TIMEOUT,
        handshake_timeout: STALL_TIMEOUT,
        konnektor_timeout: Duration::from_secs(1),
        ..EmbeddedOptions::default()
    }
}

/// The test PKI and cards, generated once for all tests of this file.
fn world() -> Arc<World> {
    static WORLD: OnceLock<Arc<World>> = OnceLock::new();
    WORLD
        .get_or_init(|| Arc::new(World::generate(SystemTime::now()).unwrap()))
        .clone()
}

/// The tests share process-wide counters (fds, heap): one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_2016_client_connection_dropped_or_stalled_at_every_step_250_only_when_delivered_once() {
    let _serial = serial();
    let env = Embedded::start_with_world(world(), &short_timeouts()).unwrap();
    let relay = FaultRelay::start(env.proxy_addr, Chunking::TlsRecords).unwrap();
    let target = Target {
        leg: Leg::Client,
        relay: &relay,
        addr: relay.addr(),
        login: env.login(),
        lasting: false,
    };
    all_loops(&env, &target);
}

#[test]
fn a_2016_mta_connection_dropped_or_stalled_at_every_step_250_only_when_delivered_once() {
    let _serial = serial();
    let options = EmbeddedOptions {
        mta_relay: true,
        ..short_timeouts()
    };
    let env = Embedded::start_with_world(world(), &options).unwrap();
    let relay = env.mta_relay.as_ref().expect("started with an MTA relay");
    let target = Target {
        leg: Leg::Mta,
        relay,
        addr: env.proxy_addr,
        login: env.login_via(relay.addr()),
        lasting: false,
    };
    all_loops(&env, &target);
}

#[test]
fn a_2021_konnektor_connection_dropped_or_stalled_at_every_step_no_delivery_without_250() {
    let _serial = serial();
    let env = Embedded::start_with_world(
        world(),
        &EmbeddedOptions {
            konnektor_relay: true,
            ..short_timeouts()
        },
    )
    .unwrap();
    let target = Target {
        leg: Leg::Konnektor,
        relay: env.konnektor_relay.as_ref().unwrap(),
        addr: env.proxy_addr,
        login: env.login(),
        lasting: false,
    };
    all_loops(&env, &target);
}

#[test]
fn a_2176_directory_connection_lost_or_stalled_from_every_step_on_no_delivery_without_250() {
    let _serial = serial();
    let world = world();
    let slapd = Slapd::start_with_pki(&world.pki, false).unwrap();
    let slapd_addr: SocketAddr = slapd.url().trim_start_matches("ldap://").parse().unwrap();
    let relay = FaultRelay::start(slapd_addr, Chunking::Reads).unwrap();
    let mut ldap = LdapSettings::new(&format!("ldap://{}", relay.addr()), slapd.base_dn());
    ldap.timeout = STALL_TIMEOUT;
    let env = Embedded::start_with_world(
        world,
        &EmbeddedOptions {
            ldap: Some(ldap),
            // Every RCPT check and every message asks the directory.
            cache_lifetime: Duration::ZERO,
            ..short_timeouts()
        },
    )
    .unwrap();
    let target = Target {
        leg: Leg::Directory,
        relay: &relay,
        addr: env.proxy_addr,
        login: env.login(),
        // The directory client reconnects once when a kept connection breaks, which heals
        // every one-off fault (tried: all sessions got 250). An outage from step k on is what
        // must reach the client as 451.
        lasting: true,
    };
    all_loops(&env, &target);
}
