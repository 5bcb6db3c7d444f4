//! The `komle-cm` binary's exit codes and messages, as an init system sees them.

use std::path::Path;
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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/komle-cm.toml")
        .display()
        .to_string()
}

#[test]
fn check_config_accepts_the_example() {
    let (code, out, _) = komle_cm(&["--config", &example(), "--check-config"]);
    assert_eq!(code, 0);
    assert_eq!(out, "config ok\n");
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

#[test]
fn runtime_failure_exits_1() {
    // The example's certificate files do not exist on a test machine: a runtime error, not a
    // configuration error.
    let (code, _, err) = komle_cm(&["--config", &example(), "--log-level", "off"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: [tls]: /etc/komle-cm/server.pem: cannot open"),
        "{err}"
    );
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
