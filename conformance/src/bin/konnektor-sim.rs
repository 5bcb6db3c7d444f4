//! `konnektor-sim`: runs the Konnektor simulator over HTTPS with a generated demo setup (one
//! test CA, an SM-B `SMCB-1` and an HBA `HBA-1`), prints its URL and serves until killed.
//!
//! Flags (each also readable from the environment variable in brackets):
//!   --bind ADDR            listen address, default 127.0.0.1:0          \[KONNEKTOR_SIM_BIND\]
//!   --now UNIX_SECONDS     fixed "now" for validity checks and signingTime
//!   --rsa-only             offer SignatureService 7.4.0 / EncryptionService 6.0.1 (no ECC)
//!   --latency OP=MS        delay answers of OP (e.g. SignDocument=500); repeatable
//!   --fault OP=CODE|stall|drop   inject a failure for OP; repeatable
//!   --client-ca FILE.pem   require client certificates issued by this CA
//!   --basic-auth USER      require HTTP Basic auth; password from KONNEKTOR_SIM_PASSWORD
//!   --export DIR           write the demo CA, card certificates/keys and the TLS CA as PEM
//!
//! Passwords are never printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use komle_conformance::sim::demo::demo_setup;
use komle_conformance::sim::keys::pem_to_der;
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::{Fault, Operation, ServiceVersions, Simulator};

fn usage() -> ExitCode {
    eprintln!(
        "usage: konnektor-sim [--bind ADDR] [--now SECS] [--rsa-only] [--latency OP=MS]... \
[--fault OP=CODE|stall|drop]... [--client-ca FILE] [--basic-auth USER] [--export DIR]"
    );
    ExitCode::from(2)
}

fn parse_op(s: &str) -> Option<Operation> {
    Operation::from_request_name(s)
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let now_sys = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut now: Option<u64> = None;
    let mut tls = TlsOptions::default();
    if let Ok(b) = std::env::var("KONNEKTOR_SIM_BIND") {
        tls.bind = b.parse().ok();
    }
    let mut rsa_only = false;
    let mut latency = Vec::new();
    let mut faults = Vec::new();
    let mut export: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        let mut value = || args.next();
        match a.as_str() {
            "--bind" => match value().and_then(|v| v.parse().ok()) {
                Some(addr) => tls.bind = Some(addr),
                None => return usage(),
            },
            "--now" => match value().and_then(|v| v.parse().ok()) {
                Some(n) => now = Some(n),
                None => return usage(),
            },
            "--rsa-only" => rsa_only = true,
            "--latency" => {
                let Some((op, ms)) = value().and_then(|v| {
                    let (o, m) = v.split_once('=')?;
                    Some((parse_op(o)?, m.parse::<u64>().ok()?))
                }) else {
                    return usage();
                };
                latency.push((op, Duration::from_millis(ms)));
            }
            "--fault" => {
                let Some((op, f)) = value().and_then(|v| {
                    let (o, f) = v.split_once('=')?;
                    let fault = match f {
                        "stall" => Fault::Stall,
                        "drop" => Fault::Drop,
                        code => Fault::SoapFault {
                            code: code.parse().ok()?,
                            text: "injected fault".into(),
                        },
                    };
                    Some((parse_op(o)?, fault))
                }) else {
                    return usage();
                };
                faults.push((op, f));
            }
            "--client-ca" => {
                let Some(der) = value()
                    .and_then(|f| std::fs::read_to_string(f).ok())
                    .and_then(|p| pem_to_der(&p).ok())
                else {
                    return usage();
                };
                tls.client_ca_der.push(der);
            }
            "--basic-auth" => {
                let Some(user) = value() else { return usage() };
                let Ok(pw) = std::env::var("KONNEKTOR_SIM_PASSWORD") else {
                    eprintln!("--basic-auth needs KONNEKTOR_SIM_PASSWORD in the environment");
                    return ExitCode::from(2);
                };
                tls.basic_auth = Some((user, pw));
            }
            "--export" => match value() {
                Some(d) => export = Some(PathBuf::from(d)),
                None => return usage(),
            },
            _ => return usage(),
        }
    }

    let setup = match demo_setup(now.unwrap_or(now_sys)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot generate demo keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = setup.config.clone();
    config.now_unix = now;
    if rsa_only {
        config.versions = ServiceVersions::rsa_only();
    }
    config.latency.extend(latency);
    config.faults.extend(faults);
    let cards = config.cards.clone();
    let server = match SimServer::start(Simulator::new(config), tls) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = export {
        let mut files = vec![
            ("tls-ca.pem".to_string(), server.ca_pem.clone()),
            (
                "card-ca.pem".to_string(),
                pem("CERTIFICATE", &setup.ca.cert_der),
            ),
        ];
        for card in &cards {
            let keys = card
                .osig
                .iter()
                .map(|k| ("osig", k))
                .chain(card.enc.iter().map(|k| ("enc", k)));
            for (i, (kind, k)) in keys.enumerate() {
                let stem = format!("{}-{kind}-{i}", card.handle);
                files.push((format!("{stem}.pem"), pem("CERTIFICATE", &k.cert_der)));
                files.push((
                    format!("{stem}.prv.pem"),
                    pem("PRIVATE KEY", &k.private_key_pkcs8_der),
                ));
            }
        }
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| {
            files
                .iter()
                .try_for_each(|(n, c)| std::fs::write(dir.join(n), c))
        }) {
            eprintln!("cannot export to {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{}/connector.sds", server.base_url());
    for card in &cards {
        println!(
            "card {} {} {}",
            card.handle,
            card.kind.as_str(),
            card.telematik_id
        );
    }
    loop {
        std::thread::park();
    }
}
