//! The TLS connection to the mail service end to end, with real Postfix and Dovecot:
//!
//! - KOM-LE-A_2075-01: after the handshake komle-cm has the Konnektor check the server's
//!   certificate (VerifyCertificate); INVALID — revoked, or from a CA the Konnektor does not
//!   know although `[upstream] ca` trusts it — aborts the connection: SMTP `454 4.7.0`, POP3
//!   `-ERR` (Tab_SMTP_Verbindung / Tab_POP3_Verbindung "Verbindung ... kann nicht aufgebaut
//!   werden"), and nothing reaches the MTA.
//! - KOM-LE-A_22348: a VALID verdict is cached; the next logins to the same servers (SMTP and
//!   POP3 share the certificate here) ask the Konnektor no more.
//! - KOM-LE-A_2074, A_2182-01: the mail service requires the C.CM.TLS-CS; komle-cm without it
//!   in the key store, or with an expired one, is refused (Postfix answers `421` instead of
//!   its greeting: the client gets `454`; Dovecot refuses the login: `-ERR`).

use std::time::Duration;

use crate::common::clients::{self, Run, Step, Submission};
use crate::common::{Options, ServerCertAtKonnektor, TestBed, password, world};
use komle_conformance::servers::client_certs::EXPIRED_ALIAS;
use komle_conformance::sim::config::Operation;

/// How long "not delivered" is watched after the client got its answer.
const SETTLE: Duration = Duration::from_secs(2);
const DELIVERY: Duration = Duration::from_secs(30);

/// The simulator's VerifyCertificate reason codes (its own, in TUC_KON_037's range; private to
/// `komle_conformance::sim`, so repeated here): revoked, and issuer not a trust anchor.
const REASON_REVOKED: u32 = 1047;
const REASON_UNKNOWN_ISSUER: u32 = 1036;

/// Tab_SMTP_Verbindung: the connection to the MTA cannot be established.
const SMTP_CANNOT_CONNECT: &str = "454 4.7.0 Temporary authentication failure";

fn mail(from: &str, to: &str, marker: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: TLS {marker}\r\nMessage-ID: <{marker}@komle.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInhalt {marker}\r\n"
    )
    .into_bytes()
}

/// One submission through komle-cm from the world's sender to `single`, marked `marker`.
fn send(bed: &TestBed, marker: &str) -> Run {
    let from = world().pki.sender.address.clone();
    let to = world().pki.single.address.clone();
    let login = bed.login(&from);
    let pw = password(&from);
    let rcpts = [to.as_str()];
    clients::curl(
        &Submission {
            server: bed.smtp_addr(),
            ca: bed.cm_ca_path(),
            user: &login,
            password: &pw,
            from: &from,
            rcpts: &rcpts,
        },
        &mail(&from, &to, marker),
        &[],
    )
}

/// A POP3 login through komle-cm as `single` (raw dialog: greeting, USER, PASS, then STAT).
fn pop3_login(bed: &TestBed) -> Run {
    let single = world().pki.single.address.clone();
    let user = format!("USER {}", bed.pop3_login(&single));
    let pass = format!("PASS {}", password(&single));
    let pop3 = bed.pop3_addr().expect("bed started with the POP3 listener");
    clients::raw(
        pop3,
        bed.cm_ca_path(),
        &[
            Step::Read,
            Step::Command(&user),
            Step::Command(&pass),
            Step::Command("STAT"),
        ],
    )
}

/// The SMTP login was refused with 454 and nothing was delivered.
fn assert_smtp_refused(bed: &TestBed, run: &Run, marker: &str) {
    assert!(!run.success, "{}", run.transcript);
    assert_eq!(
        run.finals().last().copied(),
        Some(SMTP_CANNOT_CONNECT),
        "{}\n{}",
        run.transcript,
        bed.log()
    );
    assert!(!run.codes().contains(&235), "{:?}", run.replies);
    bed.assert_not_delivered(&world().pki.single.address, marker, SETTLE);
}

/// The POP3 login (PASS) got `-ERR` and no mailbox command was served.
fn pop3_pass_and_stat(bed: &TestBed, run: &Run) -> (String, String) {
    assert_eq!(run.replies.len(), 4, "{}\n{}", run.transcript, bed.log());
    assert!(run.replies[0].starts_with("+OK"), "{:?}", run.replies);
    assert!(run.replies[1].starts_with("+OK"), "{:?}", run.replies);
    let (pass, stat) = (run.replies[2].clone(), run.replies[3].clone());
    assert!(pass.starts_with("-ERR"), "PASS: {pass}\n{}", bed.log());
    assert!(
        stat.starts_with("-ERR"),
        "STAT after a refused login: {stat}"
    );
    (pass, stat)
}

/// INVALID from the Konnektor: the SMTP and POP3 logins are refused with the spec's replies,
/// the reason names the Konnektor's code, no protection step ran and Postfix saw no AUTH.
fn assert_invalid_server_certificate_refused(bed: &TestBed, marker: &str, reason_code: u32) {
    let run = send(bed, marker);
    assert_smtp_refused(bed, &run, marker);
    let (pass, _) = pop3_pass_and_stat(bed, &pop3_login(bed));
    assert_eq!(
        pass,
        format!(
            "-ERR Der POP3-Server ist nicht erreichbar: \
             TLS-Serverzertifikat vom Konnektor als ungueltig bewertet (Code {reason_code})"
        )
    );
    assert!(
        bed.konnektor_calls(Operation::VerifyCertificate) >= 2,
        "one check per refused login (INVALID is never cached): {:?}",
        bed.sim.simulator().call_log()
    );
    for op in [Operation::SignDocument, Operation::EncryptDocument] {
        assert_eq!(bed.konnektor_calls(op), 0, "{op:?} without a usable MTA");
    }
    let postfix = bed.servers.postfix_log_tail();
    assert!(
        !postfix.contains("sasl_username="),
        "the credentials never reached Postfix:\n{postfix}"
    );
    let log = bed.log();
    assert!(
        log.contains("server certificate not accepted"),
        "the log says why: {log}"
    );
}

#[test]
fn kom_le_a_2075_01_revoked_server_certificate_refuses_smtp_454_and_pop3_err() {
    let bed = TestBed::start_with(Options {
        pop3: true,
        mail_servers_at_konnektor: ServerCertAtKonnektor::Revoked,
        ..Options::default()
    });
    assert_invalid_server_certificate_refused(&bed, "revoked-mta", REASON_REVOKED);
}

#[test]
fn kom_le_a_2075_01_server_ca_unknown_to_the_konnektor_is_refused_though_the_ca_file_trusts_it() {
    let bed = TestBed::start_with(Options {
        pop3: true,
        mail_servers_at_konnektor: ServerCertAtKonnektor::UnknownCa,
        ..Options::default()
    });
    assert_invalid_server_certificate_refused(&bed, "unknown-ca-mta", REASON_UNKNOWN_ISSUER);
}

#[test]
fn kom_le_a_22348_valid_server_certificate_is_checked_once_then_cached() {
    let bed = TestBed::start_with(Options {
        pop3: true,
        ..Options::default()
    });
    let to = world().pki.single.address.clone();
    for marker in ["cached-first", "cached-second"] {
        let run = send(&bed, marker);
        assert!(run.success, "{}\n{}", run.transcript, bed.log());
        bed.wait_delivered(&to, marker, 1, DELIVERY);
    }
    assert_eq!(
        bed.konnektor_calls(Operation::VerifyCertificate),
        1,
        "the second login to the same MTA uses the cached VALID verdict: {:?}",
        bed.sim.simulator().call_log()
    );
    // Dovecot presents the same certificate (one test CA, one server certificate): the POP3
    // login is served from the same cache.
    let run = pop3_login(&bed);
    assert_eq!(run.replies.len(), 4, "{}\n{}", run.transcript, bed.log());
    assert!(run.replies[2].starts_with("+OK"), "{:?}", run.replies);
    assert!(run.replies[3].starts_with("+OK 2 "), "{:?}", run.replies);
    assert_eq!(bed.konnektor_calls(Operation::VerifyCertificate), 1);
}

/// komle-cm with `client_identity` unset (or naming `identity`) in front of servers that
/// require the C.CM.TLS-CS: the server certificate is fine, the servers refuse the client.
fn assert_client_refused(identity: Option<&'static str>, marker: &str) {
    let bed = TestBed::start_with(Options {
        pop3: true,
        client_identity: identity,
        ..Options::default()
    });
    let run = send(&bed, marker);
    assert_smtp_refused(&bed, &run, marker);
    let postfix = bed.servers.postfix_log_tail();
    let why = match identity {
        None => "No client certificate presented",
        Some(_) => "Client certificate not trusted",
    };
    assert!(
        postfix.contains(why),
        "Postfix refused for the client certificate:\n{postfix}"
    );
    let (pass, _) = pop3_pass_and_stat(&bed, &pop3_login(&bed));
    assert!(!pass.contains("TLS-Serverzertifikat"), "{pass}");
}

#[test]
fn kom_le_a_2074_without_client_certificate_the_mail_service_refuses_smtp_454_pop3_err() {
    assert_client_refused(None, "no-client-cert");
}

#[test]
fn kom_le_a_2074_expired_client_certificate_is_refused_smtp_454_pop3_err() {
    assert_client_refused(Some(EXPIRED_ALIAS), "expired-client-cert");
}
