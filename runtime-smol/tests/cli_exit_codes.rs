//! The `komle-cm` binary's exit codes and messages, as an init system sees them.

mod example_files;

use std::process::Command;

fn komle_cm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_komle-cm"))
        .args(args)
        .output()
        .expect("run komle-cm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example() -> String {
    example_files::example_path().display().to_string()
}

#[test]
fn check_config_accepts_the_example_when_its_files_exist() {
    let installed = example_files::install();
    let path = installed.write_config(&installed.text);
    let (code, out, err) = komle_cm(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "config ok\n", ""));
}

/// Issue 18: `--check-config` opens the files. The shipped example names files under
/// /etc/komle-cm that do not exist here: one line per file, naming its key, exit code 2.
#[test]
fn check_config_opens_the_files_and_names_each_missing_one() {
    let (code, out, err) = komle_cm(&["--config", &example(), "--check-config"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
    let keys: Vec<&str> = err
        .lines()
        .map(|l| {
            l.strip_prefix("config error: ")
                .and_then(|l| l.split(": /").next())
                .unwrap_or(l)
        })
        .collect();
    assert_eq!(
        keys,
        [
            "[tls] certificate",
            "[upstream] ca",
            "[upstream] client_identity",
            "[konnektor] ca",
            "[konnektor] client_certificate",
            "[konnektor] client_key",
            "[directory] ca",
        ],
        "{err}"
    );
}

#[test]
fn check_config_rejects_a_key_path_pointing_at_a_certificate() {
    let installed = example_files::install();
    let text = installed.text.replace("server.key", "server.pem");
    let path = installed.write_config(&text);
    let (code, _, err) = komle_cm(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("config error: [tls] private_key: ") && err.contains("no PRIVATE KEY"),
        "{err}"
    );
}

#[test]
fn smtp_and_pop3_on_one_port_exit_2_with_one_line() {
    let text = example_files::example_text().replace("127.0.0.1:9950", "127.0.0.1:4650");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = komle_cm(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "config error: [pop3] listen: 127.0.0.1:4650 is also [smtp] listen; each listener needs its own port\n"
    );
}

/// A port in use: a warning from `--check-config` (the running daemon holds its ports), a
/// start-up error naming the option, exit code 2, printed once.
#[test]
fn a_port_in_use_is_named_with_its_option_and_stops_the_start_with_2() {
    let installed = example_files::install();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let text = installed.text.replacen("127.0.0.1:0", &addr.to_string(), 1);
    let path = installed.write_config(&text);
    let (code, out, err) = komle_cm(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!((code, out.as_str()), (0, "config ok\n"), "{err}");
    assert!(
        err.starts_with(&format!("warning: [smtp] listen: {addr}: cannot bind: ")),
        "{err}"
    );
    let (code, _, err) = komle_cm(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("[smtp] listen: {addr}: cannot bind: ")),
        "{err}"
    );
}

#[test]
fn bad_config_exits_2_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("sds_url = ", "# sds_url = ");
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = komle_cm(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 2);
    assert_eq!(err, "config error: [konnektor] sds_url: missing\n");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let (code, _, err) = komle_cm(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
    let (code, out, _) = komle_cm(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--check-config"), "{out}");
}

/// Issue 18: a start-up error is exit code 2 (the README's promise for a bad configuration)
/// and appears once, whether the logger writes it or (level off) stderr does.
#[test]
fn start_up_failure_exits_2_printed_once() {
    let (code, _, err) = komle_cm(&["--config", &example(), "--log-level", "off"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("config error: [tls] certificate: /etc/komle-cm/server.pem: cannot open"),
        "{err}"
    );
    let (code, _, err) = komle_cm(&["--config", &example()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("[tls] certificate").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 7, "one line per missing file:\n{err}");
}

/// `komle-cm doctor`: one line per check, exit code = the number of failed ones. The example's
/// files exist here, its Konnektor, directory and mail servers do not.
#[test]
fn doctor_prints_one_line_per_check_and_exits_with_the_number_of_failures() {
    let installed = example_files::install();
    let text = installed
        .text
        .replace("konnektor.praxis.local", "127.0.0.1:1")
        .replace("ldaps://vzd.ti.local", "ldap://127.0.0.1:1")
        .replace("*.kim.example:465", "127.0.0.1:1")
        .replace("timeout = \"30s\"", "timeout = \"2s\"");
    let path = installed.write_config(&text);
    let (code, out, err) = komle_cm(&["doctor", "--config", path.to_str().unwrap()]);
    let failed = out.lines().filter(|l| l.starts_with("FAILED ")).count();
    assert!(failed >= 3, "{out}{err}");
    assert_eq!(code, failed as i32, "{out}{err}");
    for name in ["konnektor:", "directory:", "mta 127.0.0.1:1:"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("FAILED ") && l.contains(name)),
            "{name} not named:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok      listener certificate:")),
        "{out}"
    );
    let (code, _, err) = komle_cm(&["doctor", "--config", "/nonexistent.toml"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The demo left the daemon (the daemon links no simulator, test PKI or `rsa`): `komle-cm demo`
/// starts nothing, names the new command in one line and exits 2 like any bad command line.
#[test]
fn demo_subcommand_points_at_komle_demo_and_exits_2() {
    let (code, out, err) = komle_cm(&["demo", "--once"]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("komle-demo"), "{err}");
}
