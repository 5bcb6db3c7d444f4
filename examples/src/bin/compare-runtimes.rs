//! `cargo run --release -p komle-examples --bin compare-runtimes [SIZE_MB] [SESSIONS]`
//!
//! One large message and then SESSIONS concurrent small-message sessions, each through the smol
//! daemon's listener and through the tokio listener, on the same embedded environment
//! (Konnektor simulator without latency, in-process MTA). Prints times and tokio/smol ratios.

#![forbid(unsafe_code)]

use std::time::Duration;

use komle_examples::compare;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(25);
    let sessions: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let both = match compare::start(sessions + 16) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1);
        }
    };
    let (mut smol, mut tokio) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for (addr, out) in [(both.smol, &mut smol), (both.tokio, &mut tokio)] {
            match compare::send(&both.env, addr, mb * 1024 * 1024) {
                Ok((t, true)) => out.push(t),
                other => {
                    eprintln!("large message failed: {other:?}");
                    std::process::exit(1);
                }
            }
        }
    }
    let (s, t) = (median(smol), median(tokio));
    println!(
        "{mb} MB message, median of 3: smol {:.2} s, tokio {:.2} s, tokio/smol {:.2}",
        s.as_secs_f64(),
        t.as_secs_f64(),
        t.as_secs_f64() / s.as_secs_f64()
    );
    let (st, sok) = compare::concurrent(&both.env, both.smol, sessions);
    let (tt, tok) = compare::concurrent(&both.env, both.tokio, sessions);
    println!(
        "{sessions} concurrent sessions: smol {:.2} s ({sok} ok), tokio {:.2} s ({tok} ok), tokio/smol {:.2}",
        st.as_secs_f64(),
        tt.as_secs_f64(),
        tt.as_secs_f64() / st.as_secs_f64()
    );
}
