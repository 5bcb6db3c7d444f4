//! `komle-load-kas [SIZES_MB] [REPS]` (defaults `25,100 3`): the KIM 1.5 figure of
//! BENCHMARKS.md (issue 17: "a 100 MB and a 25 MB mail through komle-cm with KAS vs the same
//! mail straight to the MTA, goal <= 1.5x the time").
//!
//! Starts `komle-demo --precomputed-konnektor --kas` (the binary next to this one; build both
//! with `cargo build --release -p komle-demo -p komle-examples`) and, for every size in
//! SIZES_MB (comma-separated, MB = 1,000,000 bytes, 16..=500: from 16 MB on a mail is over
//! 15 MiB and goes via the KAS, A_19357-02), sends the same plain-text mail REPS times
//! (1..=20) each way, alternating:
//! - straight: to the demo's mail service (SMTPS, AUTH), what a client without KOM-LE pays;
//! - through komle-cm: encrypted and uploaded to the demo's KAS simulator (mutual TLS), the
//!   small KOM-LE message signed and encrypted through the Konnektor simulator and sent to the
//!   same mail service; the time runs to komle-cm's final `250`.
//!
//! One untimed pass of each kind per size goes first (allocations, TLS session set-up).
//! Reported per size: the medians, the ratio (through / straight) and the demo process's peak
//! RSS growth per pass (VmHWM reset before each pass). The demo process also hosts the mail
//! service (which keeps every straight mail), the Konnektor simulator and the KAS simulator
//! (which keeps every uploaded object, about the mail's size): its growth is an upper bound
//! for komle-cm's own; komle-cm alone is measured by `runtime-smol/tests/e2e/kas.rs`.
//!
//! Progress goes to stderr; stdout ends with a markdown block for BENCHMARKS.md. Bounded in
//! count and size, loopback only. Example: `target/release/komle-load-kas 25,100 5`.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use komle_examples::big_message::{self, Passes, median};
use komle_examples::demo_process::DemoProcess;
use komle_examples::load;
use komle_examples::machine::{self, Machine};

/// Smallest size that is over 15 MiB (A_19357-02: the KAS route) in whole MB.
const MIN_MB: usize = 16;
/// The demo's KAS takes 500 MiB (gematik's reference KAS); stay below.
const MAX_MB: usize = 500;

fn fail(why: &str) -> ! {
    eprintln!("komle-load-kas: {why}");
    std::process::exit(1)
}

/// What was asked for on the command line.
struct Args {
    sizes_mb: Vec<usize>,
    reps: usize,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let sizes_mb = match args.first() {
        None => vec![25, 100],
        Some(list) => list
            .split(',')
            .map(|s| match s.trim().parse::<usize>() {
                Ok(mb) if (MIN_MB..=MAX_MB).contains(&mb) => Ok(mb),
                _ => Err(format!(
                    "size {s:?}: a whole number of MB from {MIN_MB} (over 15 MiB, the KAS route) to {MAX_MB}"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let reps = match args.get(1) {
        None => 3,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=20).contains(&n) => n,
            _ => return Err(format!("REPS {n:?}: 1 to 20")),
        },
    };
    if args.len() > 2 {
        return Err("usage: komle-load-kas [SIZES_MB, e.g. 25,100] [REPS]".into());
    }
    Ok(Args { sizes_mb, reps })
}

/// The figures of one size.
struct SizeResult {
    mb: usize,
    bytes: usize,
    warm_up: std::time::Duration,
    straight: Passes,
    through: Passes,
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&argv).unwrap_or_else(|e| fail(&e));

    let machine_info = Machine::read();
    let started_at = machine::utc_now();
    let load_start = machine::load_average();
    let demo = DemoProcess::start("komle-load-kas", &["--precomputed-konnektor", "--kas"])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let pid = demo.pid();
    let idle = machine::rss_and_peak_kib(pid).map_or(0, |(rss, _)| rss);
    let tls = load::insecure_client();
    let send = |addr: SocketAddr, user: &str, m: &[u8], tls: &Arc<rustls::ClientConfig>| {
        big_message::timed_send(addr, tls, user, "demo", &demo.sender, &demo.rcpt, m)
    };

    let mut results = Vec::new();
    for &mb in &args.sizes_mb {
        let mail = big_message::mail_of_size(&demo.sender, &demo.rcpt, mb * 1_000_000);
        eprintln!("{mb} MB ({} B) x {} ...", mail.len(), args.reps);
        let warm_up = send(demo.proxy, &demo.login, &mail, &tls)
            .unwrap_or_else(|e| fail(&format!("warm-up {mb} MB through komle-cm: {e}")));
        let _ = send(demo.mta, &demo.sender, &mail, &tls);
        let (mut straight, mut through) = (Passes::default(), Passes::default());
        for rep in 0..args.reps {
            straight.run(pid, || send(demo.mta, &demo.sender, &mail, &tls));
            through.run(pid, || send(demo.proxy, &demo.login, &mail, &tls));
            eprintln!(
                "  rep {}: straight {:?}, through komle-cm via the KAS {:?}",
                rep + 1,
                straight.times.last(),
                through.times.last()
            );
        }
        results.push(SizeResult {
            mb,
            bytes: mail.len(),
            warm_up,
            straight,
            through,
        });
    }
    let peak_total = machine::rss_and_peak_kib(pid).map_or(0, |(_, p)| p);
    let load_end = machine::load_average();
    drop(demo);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!("### komle-load-kas, {started_at}");
    println!();
    println!(
        "Machine: {} cores, MemTotal {:.1} GiB, CPU \"{}\", Linux {}; load average (1/5/15 min) {load_start} at start, {load_end} at end.",
        machine_info.cores,
        mib(machine_info.mem_total_kib) / 1024.0,
        machine_info.cpu_model,
        machine_info.kernel
    );
    let sizes: Vec<String> = args.sizes_mb.iter().map(usize::to_string).collect();
    println!(
        "`komle-load-kas {} {}`; komle-cm = `komle-demo --precomputed-konnektor --kas` (child process; it also hosts the mail service, the Konnektor simulator and the KAS simulator, which keeps every uploaded object in memory); straight = the same mail to the demo's mail service (SMTPS, AUTH). Time = connect to the final `250`.",
        sizes.join(","),
        args.reps
    );
    println!();
    println!(
        "| mail | straight to the MTA, median of {} | through komle-cm via the KAS | ratio | goal | demo peak RSS growth per pass: straight / through |",
        args.reps
    );
    println!("|---|---|---|---|---|---|");
    for r in &results {
        let (s, t) = (median(&r.straight.times), median(&r.through.times));
        println!(
            "| {} MB ({} B) | {:.3} s | {:.3} s | **{:.2}x** | <= 1.5x | {:.0} MiB / {:.0} MiB ({:.2}x the mail) |",
            r.mb,
            r.bytes,
            s.as_secs_f64(),
            t.as_secs_f64(),
            t.as_secs_f64() / s.as_secs_f64().max(1e-9),
            mib(r.straight.median_growth_kib()),
            mib(r.through.median_growth_kib()),
            mib(r.through.median_growth_kib()) * 1024.0 * 1024.0 / r.bytes as f64
        );
    }
    println!();
    let warm: Vec<String> = results
        .iter()
        .map(|r| format!("{} MB {:.3} s", r.mb, r.warm_up.as_secs_f64()))
        .collect();
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !(r.straight.failures.is_empty() && r.through.failures.is_empty()))
        .map(|r| {
            format!(
                "{} MB: straight {}, through {}{}",
                r.mb,
                r.straight.failures.len(),
                r.through.failures.len(),
                r.through
                    .failures
                    .first()
                    .or(r.straight.failures.first())
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    println!(
        "Untimed warm-up through komle-cm: {}. Demo process RSS at start {idle} KiB, VmHWM over the whole run {peak_total} KiB. Failures: {}.",
        warm.join(", "),
        if failures.is_empty() {
            "none".to_owned()
        } else {
            failures.join("; ")
        }
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn a_19357_sizes_must_take_the_kas_route_and_stay_bounded() {
        let a = args(&[]).expect("defaults");
        assert_eq!((a.sizes_mb, a.reps), (vec![25, 100], 3));
        let a = args(&["16,500", "20"]).expect("bounds");
        assert_eq!((a.sizes_mb, a.reps), (vec![16, 500], 20));
        // 15 MB is under 15 MiB: the 1.0 way, not what this tool measures.
        for bad in [
            &["15"][..],
            &["501"],
            &["25,x"],
            &["25", "0"],
            &["25", "21"],
            &["25", "3", "x"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }
}
