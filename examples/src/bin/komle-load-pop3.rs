//! `komle-load-pop3 [MB] [IDLE] [CLIENTS] [PER_CLIENT]` (defaults 25, 1000, 200, 5): starts
//! `komle-demo --precomputed-konnektor --pop3-large MB` (the binary next to this one; build both with `cargo build
//! --release -p komle-demo -p komle-examples`) and measures the POP3 side in one run, each
//! figure against a baseline from the same run:
//!
//! - RETR of an MB-sized KOM-LE message through komle-cm (decrypt + verify by the simulator,
//!   answered from its memo after the first pass, so the Konnektor's own crypto drops out)
//!   vs the same *encrypted* message straight from the demo's POP3 mail service, median of 5;
//! - RETR of an MB-sized plain mail through vs straight (isolates the relaying cost);
//! - memory per idle POP3 session at komle-cm (TLS up, greeted, silent);
//! - CLIENTS concurrent clients x PER_CLIENT sessions USER/PASS/STAT/RETR 1/QUIT of the small
//!   KOM-LE message, p50/p99 per command through vs straight and the added latency.
//!
//! Prints a markdown block. Bounded in count and time, loopback only.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use komle_examples::load::{insecure_client, percentile, rss_kib};
use komle_examples::load_pop3::{self, COMMANDS};

const REPS: usize = 5;

fn fail(what: &str, e: String) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mb = args.first().copied().unwrap_or(25).clamp(1, 40);
    let idle = args.get(1).copied().unwrap_or(1000).min(1900);
    let clients = args.get(2).copied().unwrap_or(200).min(500);
    let per_client = args.get(3).copied().unwrap_or(5).min(50);
    let cm = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("komle-demo")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!("komle-demo not found next to komle-load-pop3: build -p komle-demo too");
            std::process::exit(2)
        });
    let mut child = Command::new(&cm)
        .args([
            "--port",
            "0",
            "--precomputed-konnektor",
            "--pop3-large",
            &mb.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot start {}: {e}", cm.display());
            std::process::exit(1)
        });
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (mut proxy, mut server, mut login) = (None, None, None);
    for line in lines.by_ref().take(400).map_while(Result::ok) {
        let field = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_owned())
        };
        if let Some(v) = field("Mail service (POP3S):") {
            server = v.parse::<SocketAddr>().ok();
        }
        if let Some(v) = field("komle-cm POP3 proxy (implicit TLS):") {
            proxy = v.parse::<SocketAddr>().ok();
        }
        if let Some(v) = field("pop3 user") {
            login = Some(v);
        }
        if line.contains("pop3s://") {
            break;
        }
    }
    let (Some(proxy), Some(server), Some(login)) = (proxy, server, login) else {
        eprintln!("could not read the demo's POP3 addresses");
        let _ = child.kill();
        std::process::exit(1)
    };
    let user = login.split('#').next().unwrap_or_default().to_owned();
    let tls = insecure_client();
    let password = "demo";
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    println!("```text");
    println!("komle-load-pop3 {mb} {idle} {clients} {per_client}  (komle-demo pid {pid})");
    // 1. Idle sessions at komle-cm: TLS up, greeted, then silent. First, so the RSS delta is
    // not blurred by the allocator returning the large messages' buffers.
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid).unwrap_or(0);
    let held: Vec<_> = (0..idle)
        .filter_map(|_| load_pop3::connect(proxy, &tls).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(pid).unwrap_or(0);
    println!(
        "{} idle POP3 sessions at komle-cm: RSS {before} KiB -> {after} KiB, {:.1} KiB per session",
        held.len(),
        after.saturating_sub(before) as f64 / held.len().max(1) as f64
    );
    drop(held);
    std::thread::sleep(Duration::from_secs(1));

    // 2. Large messages: 2 = KOM-LE, 3 = plain; straight and through alternate per repetition.
    for (n, what) in [(2, "KOM-LE (decrypt + verify)"), (3, "plain (relay only)")] {
        let (mut straight, mut through) = (Vec::new(), Vec::new());
        let (mut in_size, mut out_size) = (0, 0);
        for _ in 0..REPS {
            let (d, m) = load_pop3::timed_retr(server, &tls, &user, password, n)
                .unwrap_or_else(|e| fail("straight RETR", e));
            straight.push(d);
            in_size = m.len();
            let (d, opened) = load_pop3::timed_retr(proxy, &tls, &login, password, n)
                .unwrap_or_else(|e| fail("RETR through komle-cm", e));
            through.push(d);
            out_size = opened.len();
            let ok = if n == 2 {
                let needle = b"X-KIM-DecryptionResult: 00";
                opened.windows(needle.len()).any(|w| w == needle)
            } else {
                opened == m
            };
            if !ok {
                fail("RETR through komle-cm", "unexpected content".into());
            }
        }
        let (s, t) = (
            load_pop3::median(&mut straight),
            load_pop3::median(&mut through),
        );
        println!(
            "RETR {what}: {in_size} B on the server, {out_size} B to the client; median of {REPS}: straight {:.0} ms, through komle-cm {:.0} ms, ratio {:.2}x",
            ms(s),
            ms(t),
            t.as_secs_f64() / s.as_secs_f64()
        );
    }
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_default();
    println!(
        "demo process peak RSS after the large messages (VmHWM, MiniPop3 and simulator included): {hwm}"
    );

    // 3. Concurrent small sessions: RETR 1 is the demo's small KOM-LE message.
    let run = |addr: SocketAddr, user: String| {
        let tls = tls.clone();
        load_pop3::run_clients(clients, per_client, move || {
            load_pop3::timed_session(addr, &tls, &user, password)
        })
    };
    let direct_run = run(server, user.clone());
    let proxied_run = run(proxy, login.clone());
    let (mut direct, df, dt) = (direct_run.per_step, direct_run.failures, direct_run.wall);
    let (mut proxied, pf, pt) = (proxied_run.per_step, proxied_run.failures, proxied_run.wall);
    let n = (clients * per_client) as f64;
    println!(
        "{clients} clients x {per_client} sessions (USER/PASS/STAT/RETR 1/QUIT): straight {:.0} sessions/s ({df} failed), through komle-cm {:.0} sessions/s ({pf} failed), time ratio {:.2}x",
        n / dt.as_secs_f64(),
        n / pt.as_secs_f64(),
        pt.as_secs_f64() / dt.as_secs_f64()
    );
    for r in direct_run.reasons.iter().chain(&proxied_run.reasons) {
        println!("  failure: {r}");
    }
    println!("```");
    println!();
    println!(
        "| command | straight p50 | komle-cm p50 | added p50 | straight p99 | komle-cm p99 | added p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, c) in COMMANDS.iter().enumerate() {
        let (d50, p50) = (
            percentile(&mut direct[i], 50),
            percentile(&mut proxied[i], 50),
        );
        let (d99, p99) = (
            percentile(&mut direct[i], 99),
            percentile(&mut proxied[i], 99),
        );
        println!(
            "| {c} | {:.2} | {:.2} | {:+.2} | {:.2} | {:.2} | {:+.2} |",
            ms(d50),
            ms(p50),
            ms(p50) - ms(d50),
            ms(d99),
            ms(p99),
            ms(p99) - ms(d99),
        );
    }
    println!("(ms)");
    let _ = child.kill();
    let _ = child.wait();
}
