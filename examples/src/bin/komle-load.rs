//! `komle-load [IDLE] [CLIENTS] [PER_CLIENT] [BIG_MB] [BIG_REPS] [--profile]` (defaults 1000
//! 200 5 25 5; `--profile`: only the small-message rounds through komle-cm, for a profiler):
//! the daemon figures of BENCHMARKS.md section 2 (issue 9) in one invocation. Starts
//! `komle-demo --precomputed-konnektor` (the binary next to this one; build both with
//! `cargo build --release -p komle-demo -p komle-examples`) and measures, each against a
//! baseline in the same run:
//! 1. memory per idle SMTP session (TLS up, greeted),
//! 2. small-message throughput of CLIENTS concurrent clients x PER_CLIENT messages, and the
//!    p50/p99 time of every SMTP command, through komle-cm and straight to the demo's mail
//!    service; "added" = through minus straight. Also through the demo's protocol-floor relay
//!    (`komle-demo --floor-relay`, `komle_demo::floor_relay`): the same extra TLS login at the
//!    MTA, recipient check and Konnektor exchanges with nothing of komle-cm around them, so
//!    komle-cm's time is also given against the least the protocol needs (issue 15). Each of
//!    the three runs [`ROUNDS`] times, interleaved; the median wall time counts,
//! 3. one BIG_MB MB mail, BIG_REPS times: straight (same mail), straight (a plain message of
//!    the protected size) and through komle-cm; medians, ratios, and komle-cm's peak memory.
//!
//! The Konnektor simulator answers repeated crypto requests from memory (one untimed warm-up
//! pass per mail), so a Konnektor's own cost is excluded while the SOAP exchange over HTTPS
//! is not. Progress goes to stderr; stdout ends with a markdown block for BENCHMARKS.md.
//! Bounded in count and time, loopback only.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use komle_examples::big_message::{self, Passes, median};
use komle_examples::demo_process::DemoProcess;
use komle_examples::load::{self, COMMANDS};
use komle_examples::machine::{self, Machine};

/// Where the demo listens and who sends.
type Demo = DemoProcess;

fn start_demo() -> Demo {
    DemoProcess::start("komle-load", &["--precomputed-konnektor", "--floor-relay"])
        .unwrap_or_else(|e| fail(&e.to_string()))
}

fn fail(why: &str) -> ! {
    eprintln!("komle-load: {why}");
    std::process::exit(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Idle sessions: (held, RSS before, RSS after) in KiB.
fn idle_sessions(demo: &Demo, tls: &Arc<rustls::ClientConfig>, n: usize) -> (usize, u64, u64) {
    let pid = demo.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let before = load::rss_kib(pid).unwrap_or(0);
    let held: Vec<_> = (0..n)
        .filter_map(|_| load::connect(demo.proxy, tls).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let after = load::rss_kib(pid).unwrap_or(0);
    let count = held.len();
    drop(held);
    std::thread::sleep(Duration::from_secs(1));
    (count, before, after)
}

/// How often each small-message run (straight, floor, through komle-cm) is repeated.
const ROUNDS: usize = 3;

/// One run of `clients` x `per_client` small messages against `addr`.
struct Throughput {
    per_command: Vec<Vec<Duration>>,
    failures: usize,
    wall: Duration,
}

fn throughput(
    demo: &Demo,
    tls: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    user: &str,
    clients: usize,
    per_client: usize,
) -> Throughput {
    let (tls, user, from, to) = (
        tls.clone(),
        user.to_owned(),
        demo.sender.clone(),
        demo.rcpt.clone(),
    );
    let (per_command, failures, wall) = load::run_clients(clients, per_client, move || {
        load::timed_message(addr, &tls, &user, "demo", &from, &to)
    });
    Throughput {
        per_command,
        failures,
        wall,
    }
}

/// The run with the median wall time.
fn median_run(mut runs: Vec<Throughput>) -> Throughput {
    runs.sort_by_key(|r| r.wall);
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

fn main() {
    // `--profile`: after the warm-up, print komle-demo's PID, wait 3 s (attach a profiler
    // then, e.g. `perf record -F 999 -p PID`) and run only the rounds through komle-cm.
    let profile = std::env::args().any(|a| a == "--profile");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let idle = args.first().copied().unwrap_or(1000).min(1900);
    let clients = args.get(1).copied().unwrap_or(200).min(500);
    let per_client = args.get(2).copied().unwrap_or(5).min(50);
    let big_mb = args.get(3).copied().unwrap_or(25).clamp(1, 40);
    let big_reps = args.get(4).copied().unwrap_or(5).clamp(1, 20);

    let machine_info = Machine::read();
    let started_at = machine::utc_now();
    let load_start = machine::load_average();
    let demo = start_demo();
    let pid = demo.child.id();
    let tls = load::insecure_client();

    eprintln!("idle sessions: {idle} ...");
    let (held, rss_before, rss_after) = idle_sessions(&demo, &tls, idle);
    let per_session = rss_after.saturating_sub(rss_before) as f64 / held.max(1) as f64;

    eprintln!("throughput: {clients} clients x {per_client} messages ...");
    // Warm the Konnektor memo with the one small mail every client sends (untimed).
    if let Err(e) = load::timed_message(
        demo.proxy,
        &tls,
        &demo.login,
        "demo",
        &demo.sender,
        &demo.rcpt,
    ) {
        fail(&format!("warm-up message through komle-cm: {e}"));
    }
    if profile {
        eprintln!("komle-demo pid {pid}; through komle-cm only, in 3 s");
        std::thread::sleep(Duration::from_secs(3));
        for round in 0..ROUNDS {
            let run = throughput(&demo, &tls, demo.proxy, &demo.login, clients, per_client);
            eprintln!("  round {}: through komle-cm {:?}", round + 1, run.wall);
        }
        return;
    }
    let floor_addr = demo
        .floor
        .unwrap_or_else(|| fail("komle-demo printed no protocol-floor relay address"));
    // Interleaved rounds, so a change in the machine's load hits all three alike.
    let (mut straights, mut floors, mut throughs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        straights.push(throughput(
            &demo,
            &tls,
            demo.mta,
            &demo.sender,
            clients,
            per_client,
        ));
        floors.push(throughput(
            &demo,
            &tls,
            floor_addr,
            &demo.login,
            clients,
            per_client,
        ));
        throughs.push(throughput(
            &demo,
            &tls,
            demo.proxy,
            &demo.login,
            clients,
            per_client,
        ));
        eprintln!(
            "  round {}: straight {:?}, floor {:?}, through komle-cm {:?}",
            round + 1,
            straights[round].wall,
            floors[round].wall,
            throughs[round].wall
        );
    }
    let mut straight = median_run(straights);
    let mut floor = median_run(floors);
    let mut through = median_run(throughs);

    eprintln!("{big_mb} MB message x {big_reps} ...");
    let size = big_mb * 1024 * 1024;
    let mail = big_message::mail_of_size(&demo.sender, &demo.rcpt, size);
    let protected_size = big_message::mail_of_protected_size(&demo.sender, &demo.rcpt, size);
    let send = |addr: SocketAddr, user: &str, m: &[u8]| {
        big_message::timed_send(addr, &tls, user, "demo", &demo.sender, &demo.rcpt, m)
    };
    // Untimed warm-up: the first pass through komle-cm makes the simulator sign and encrypt
    // (and stores the answers); the straight ones warm the MTA's allocations alike.
    let warm_up = send(demo.proxy, &demo.login, &mail)
        .unwrap_or_else(|e| fail(&format!("warm-up {big_mb} MB through komle-cm: {e}")));
    let _ = send(demo.mta, &demo.sender, &mail);
    let _ = send(demo.mta, &demo.sender, &protected_size);
    let (mut same, mut bigger, mut proxied) =
        (Passes::default(), Passes::default(), Passes::default());
    for rep in 0..big_reps {
        same.run(pid, || send(demo.mta, &demo.sender, &mail));
        bigger.run(pid, || send(demo.mta, &demo.sender, &protected_size));
        proxied.run(pid, || send(demo.proxy, &demo.login, &mail));
        eprintln!(
            "  rep {}: straight {:?}, straight protected size {:?}, through komle-cm {:?}",
            rep + 1,
            same.times.last(),
            bigger.times.last(),
            proxied.times.last()
        );
    }
    let peak_total = machine::rss_and_peak_kib(pid).map_or(0, |(_, p)| p);
    let load_end = machine::load_average();
    drop(demo);

    // The markdown block.
    let (m_same, m_bigger, m_proxied) = (
        median(&same.times),
        median(&bigger.times),
        median(&proxied.times),
    );
    let n = (clients * per_client) as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!("### komle-load, {started_at}");
    println!();
    println!(
        "Machine: {} cores, MemTotal {:.1} GiB, CPU \"{}\", Linux {}; load average (1/5/15 min) {load_start} at start, {load_end} at end.",
        machine_info.cores,
        mib(machine_info.mem_total_kib) / 1024.0,
        machine_info.cpu_model,
        machine_info.kernel
    );
    println!(
        "`komle-load {idle} {clients} {per_client} {big_mb} {big_reps}`; komle-cm = `komle-demo --precomputed-konnektor` (child process; it also hosts the MiniMta and the Konnektor simulator); straight = the demo's MiniMta (SMTPS, AUTH)."
    );
    println!();
    println!("| figure | baseline (straight) | through komle-cm | ratio / per unit | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| {held} idle SMTP sessions (TLS up, greeted) | | RSS {rss_before} -> {rss_after} KiB | **{per_session:.1} KiB per session** | < 64 KB |"
    );
    println!(
        "| {big_mb} MB mail ({} B), median of {big_reps} | same mail {:.3} s | {:.3} s | **{:.2}x** | < 1.5x |",
        mail.len(),
        m_same.as_secs_f64(),
        m_proxied.as_secs_f64(),
        m_proxied.as_secs_f64() / m_same.as_secs_f64().max(1e-9)
    );
    println!(
        "| same, against a plain message of the protected size ({} B) | {:.3} s | {:.3} s | **{:.2}x** | (the proxy's own cost) |",
        protected_size.len(),
        m_bigger.as_secs_f64(),
        m_proxied.as_secs_f64(),
        m_proxied.as_secs_f64() / m_bigger.as_secs_f64().max(1e-9)
    );
    println!(
        "| peak RSS growth during one {big_mb} MB pass (median; VmHWM reset before each pass) | same mail {:.0} MiB, protected size {:.0} MiB | {:.0} MiB | {:.1}x the mail ({:.1}x beyond the straight pass) | |",
        mib(same.median_growth_kib()),
        mib(bigger.median_growth_kib()),
        mib(proxied.median_growth_kib()),
        mib(proxied.median_growth_kib()) / big_mb as f64,
        mib(proxied
            .median_growth_kib()
            .saturating_sub(same.median_growth_kib()))
            / big_mb as f64
    );
    println!(
        "| {clients} clients x {per_client} small messages, median of {ROUNDS} | {:.0} msg/s ({} failed) | {:.0} msg/s ({} failed) | {:.2}x the time | <= 1.5x |",
        n / straight.wall.as_secs_f64(),
        straight.failures,
        n / through.wall.as_secs_f64(),
        through.failures,
        through.wall.as_secs_f64() / straight.wall.as_secs_f64().max(1e-9)
    );
    println!(
        "| same, against the protocol floor (`komle-demo --floor-relay`) | floor {:.0} msg/s ({} failed; {:.2}x straight's time) | {:.0} msg/s | **{:.2}x the floor's time** | <= 1.2x |",
        n / floor.wall.as_secs_f64(),
        floor.failures,
        floor.wall.as_secs_f64() / straight.wall.as_secs_f64().max(1e-9),
        n / through.wall.as_secs_f64(),
        through.wall.as_secs_f64() / floor.wall.as_secs_f64().max(1e-9)
    );
    println!();
    println!(
        "Untimed warm-up pass of the {big_mb} MB mail through komle-cm (simulator signs and encrypts for real): {:.3} s. komle-cm's VmHWM over the whole run: {peak_total} KiB. Failures: straight {}, protected size {}, through {}{}.",
        warm_up.as_secs_f64(),
        same.failures.len(),
        bigger.failures.len(),
        proxied.failures.len(),
        proxied
            .failures
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!();
    println!(
        "Time per SMTP command with {clients} concurrent clients, ms (added = through komle-cm minus straight, per percentile; the floor's columns show how much of it the protocol itself needs):"
    );
    println!();
    println!(
        "| command | straight p50 | floor p50 | komle-cm p50 | **added p50** | straight p99 | floor p99 | komle-cm p99 | **added p99** |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, c) in COMMANDS.iter().enumerate() {
        let s50 = ms(load::percentile(&mut straight.per_command[i], 50));
        let f50 = ms(load::percentile(&mut floor.per_command[i], 50));
        let t50 = ms(load::percentile(&mut through.per_command[i], 50));
        let s99 = ms(load::percentile(&mut straight.per_command[i], 99));
        let f99 = ms(load::percentile(&mut floor.per_command[i], 99));
        let t99 = ms(load::percentile(&mut through.per_command[i], 99));
        println!(
            "| {c} | {s50:.2} | {f50:.2} | {t50:.2} | {:.2} | {s99:.2} | {f99:.2} | {t99:.2} | {:.2} |",
            t50 - s50,
            t99 - s99
        );
    }
}
