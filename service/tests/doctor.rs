//! `komle-cm doctor`'s checks against real dependencies, some up and some down: the Konnektor
//! simulator (with the world's SM-Bs), OpenLDAP slapd with the test PKI, Postfix and Dovecot
//! (conformance::servers); a POP3 allow-list entry on a closed port and an NTP port nobody
//! answers on are down. Each down one is named on its own line, and only those fail.

use std::net::{TcpListener, UdpSocket};
use std::sync::OnceLock;
use std::time::SystemTime;

use komle_conformance::loopback_tls::LoopbackTls;
use komle_conformance::servers::{MailServers, User};
use komle_conformance::sim::server::{SimServer, TlsOptions};
use komle_conformance::sim::simulator::Simulator;
use komle_conformance::slapd::Slapd;
use komle_conformance::world::World;
use komle_service::config::Config;
use komle_service::doctor::checks::{self, CheckResult, Options, Verdict};

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World::generate(SystemTime::now()).expect("test world"))
}

/// A port that refuses connections (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let tls = LoopbackTls::generate("komle-cm").unwrap();
        std::fs::write(dir.path().join("server.pem"), &tls.server_cert_pem).unwrap();
        std::fs::write(dir.path().join("server.key"), &tls.server_key_pem).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn config(&self, rest: &str) -> Config {
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[tls]\ncertificate = \"{0}/server.pem\"\nprivate_key = \"{0}/server.key\"\n{rest}",
            self.dir.path().display()
        );
        Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

fn named<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} line in {results:#?}"))
}

fn report(results: &[CheckResult]) -> String {
    results.iter().map(|r| format!("{r}\n")).collect()
}

#[test]
fn doctor_names_each_down_dependency_and_passes_the_ones_that_are_up() {
    let w = world();
    let users: Vec<User> = [&w.pki.sender, &w.pki.single]
        .iter()
        .map(|p| User::new(p.address.clone(), "pw"))
        .collect();
    let servers = MailServers::start(&users).unwrap_or_else(|e| panic!("mail servers: {e}"));
    let slapd = Slapd::start_with_pki(&w.pki, false).unwrap_or_else(|e| panic!("slapd: {e:?}"));
    let sim = SimServer::start(Simulator::new(w.sim_config.clone()), TlsOptions::default())
        .unwrap_or_else(|e| panic!("Konnektor simulator: {e:?}"));
    // NTP: a UDP port that receives but never answers.
    let silent_ntp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let files = Files::new();
    let konnektor_ca = files.write("konnektor-ca.pem", &sim.ca_pem);
    let dead_pop3 = closed_port();
    let config = files.config(&format!(
        r#"
[upstream]
smtp = ["{smtps}"]
pop3 = ["{pop3s}", "127.0.0.1:{dead_pop3}"]
ca = "{mail_ca}"
[konnektor]
sds_url = "{sds}/connector.sds"
ca = "{konnektor_ca}"
timeout = "5s"
[directory]
url = "{ldap}"
base = "{base}"
[doctor]
sample_address = "{sample}"
context = "Mandant#ClientSystem#Workplace"
"#,
        smtps = servers.smtps_addr(),
        pop3s = servers.pop3s_addr(),
        mail_ca = servers.ca_pem_path().display(),
        sds = sim.base_url(),
        ldap = slapd.url(),
        base = slapd.base_dn(),
        sample = w.pki.single.address,
    ));
    let results = checks::run(
        &config,
        Options {
            ntp_port: silent_ntp.local_addr().unwrap().port(),
        },
    );
    let text = report(&results);

    for up in [
        "konnektor",
        "ecc",
        "sm-b",
        "sm-b pin",
        "directory",
        "listener certificate",
    ] {
        assert_eq!(named(&results, up).verdict, Verdict::Ok, "{up}:\n{text}");
    }
    assert!(
        named(&results, "konnektor")
            .detail
            .contains("SignatureService 7."),
        "{text}"
    );
    assert!(
        named(&results, "directory")
            .detail
            .contains(&format!("{}: 1 entry", w.pki.single.address)),
        "{text}"
    );
    let mta = named(&results, &format!("mta {}", servers.smtps_addr()));
    assert_eq!(mta.verdict, Verdict::Ok, "{text}");
    assert!(mta.detail.contains("greeting 220"), "{text}");
    let pop3 = named(&results, &format!("pop3 {}", servers.pop3s_addr()));
    assert_eq!(pop3.verdict, Verdict::Ok, "{text}");

    // The down ones, each named.
    let dead = named(&results, &format!("pop3 127.0.0.1:{dead_pop3}"));
    assert_eq!(dead.verdict, Verdict::Failed, "{text}");
    let time = named(&results, "time");
    assert_eq!(time.verdict, Verdict::Failed, "{text}");
    assert!(time.detail.contains("UDP/"), "{text}");
    assert_eq!(checks::failures(&results), 2, "{text}");
    // One line per check.
    assert!(
        results.iter().all(|r| !r.to_string().contains('\n')),
        "{text}"
    );
}

#[test]
fn doctor_names_konnektor_directory_and_mail_servers_when_all_are_down() {
    let files = Files::new();
    let config = files.config(&format!(
        r#"
[upstream]
smtp = ["127.0.0.1:{}", "*.kim.example:465"]
[konnektor]
sds_url = "https://127.0.0.1:{}/connector.sds"
timeout = "2s"
[directory]
url = "ldap://127.0.0.1:{}"
base = "dc=data,dc=vzd"
timeout = "2s"
"#,
        closed_port(),
        closed_port(),
        closed_port()
    ));
    let silent_ntp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let results = checks::run(
        &config,
        Options {
            ntp_port: silent_ntp.local_addr().unwrap().port(),
        },
    );
    let text = report(&results);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(failed.len(), 4, "{text}");
    assert_eq!(failed[0], "konnektor", "{text}");
    assert_eq!(failed[1], "directory", "{text}");
    assert_eq!(failed[2], "time", "{text}");
    assert!(failed[3].starts_with("mta 127.0.0.1:"), "{text}");
    // What depends on the Konnektor, wildcard entries and an empty POP3 list are skipped,
    // not failed.
    for skipped in ["ecc", "sm-b", "sm-b pin", "mta *.kim.example:465", "pop3"] {
        assert_eq!(
            named(&results, skipped).verdict,
            Verdict::Skipped,
            "{skipped}:\n{text}"
        );
    }
}
