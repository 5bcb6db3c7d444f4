//! `komle-load [IDLE] [CLIENTS] [PER_CLIENT]` (defaults 1000, 200, 5): starts `komle-cm demo`
//! (the binary next to this one; build both with `cargo build --release -p komle-smol -p
//! komle-examples`) and measures, in one run: memory per idle SMTP session, and small-message
//! throughput with the time of every SMTP command through the proxy vs straight to the demo's
//! mail service. Bounded in count and time, loopback only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use komle_examples::load::{self, COMMANDS};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let idle = args.first().copied().unwrap_or(1000).min(1900);
    let clients = args.get(1).copied().unwrap_or(200).min(500);
    let per_client = args.get(2).copied().unwrap_or(5).min(50);
    let cm = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("komle-cm")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!("komle-cm not found next to komle-load: build -p komle-smol too");
            std::process::exit(2)
        });
    let mut child = Command::new(&cm)
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot start {}: {e}", cm.display());
            std::process::exit(1)
        });
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (mut proxy, mut mta, mut login, mut rcpt) = (None, None, None, None);
    for line in lines.by_ref().take(200).map_while(Result::ok) {
        let field = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_owned())
        };
        if let Some(v) = field("Mail service (SMTPS):") {
            mta = v.parse::<SocketAddr>().ok();
        }
        if let Some(v) = field("komle-cm SMTP proxy (implicit TLS):") {
            proxy = v.parse::<SocketAddr>().ok();
        }
        if let Some(v) = field("user") {
            login = Some(v);
        }
        if let Some(v) = field("recipients") {
            rcpt = v.split(',').next().map(|s| s.trim().to_owned());
        }
        if line.contains("curl --ssl-reqd") {
            break;
        }
    }
    let (Some(proxy), Some(mta), Some(login), Some(rcpt)) = (proxy, mta, login, rcpt) else {
        eprintln!("could not read the demo's addresses");
        let _ = child.kill();
        std::process::exit(1)
    };
    let sender = login.split('#').next().unwrap_or_default().to_owned();
    let tls = load::insecure_client();

    // Idle sessions: TLS up, greeted, then silent.
    std::thread::sleep(Duration::from_millis(500));
    let before = load::rss_kib(pid).unwrap_or(0);
    let held: Vec<_> = (0..idle)
        .filter_map(|_| load::connect(proxy, &tls).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let after = load::rss_kib(pid).unwrap_or(0);
    println!(
        "{} idle sessions: komle-cm RSS {before} KiB -> {after} KiB, {:.1} KiB per session",
        held.len(),
        (after.saturating_sub(before)) as f64 / held.len().max(1) as f64
    );
    drop(held);
    std::thread::sleep(Duration::from_secs(1));

    let run = |addr: SocketAddr, user: String| {
        let (tls, sender, rcpt) = (tls.clone(), sender.clone(), rcpt.clone());
        load::run_clients(clients, per_client, move || {
            load::timed_message(addr, &tls, &user, "demo", &sender, &rcpt)
        })
    };
    let (mut direct, df, dt) = run(mta, sender.clone());
    let (mut proxied, pf, pt) = run(proxy, login.clone());
    let n = (clients * per_client) as f64;
    println!(
        "{clients} clients x {per_client} messages: straight {:.0} msg/s ({df} failed), through komle-cm {:.0} msg/s ({pf} failed), ratio {:.2}",
        n / dt.as_secs_f64(),
        n / pt.as_secs_f64(),
        pt.as_secs_f64() / dt.as_secs_f64()
    );
    println!("command  p50 straight  p50 komle-cm  p99 straight  p99 komle-cm  (ms)");
    for (i, c) in COMMANDS.iter().enumerate() {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{c:<7}  {:>12.2}  {:>12.2}  {:>12.2}  {:>12.2}",
            ms(load::percentile(&mut direct[i], 50)),
            ms(load::percentile(&mut proxied[i], 50)),
            ms(load::percentile(&mut direct[i], 99)),
            ms(load::percentile(&mut proxied[i], 99)),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
