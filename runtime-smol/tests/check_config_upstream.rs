//! `--check-config` and the `[upstream]` allow-list: a malformed pattern is exit code 2 with
//! one line naming the key; a configuration without the list is valid but says, naming the
//! key, that every login will be refused.

mod example_files;

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("komle-cm.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_komle-cm"))
        .args(["--config", path.to_str().unwrap(), "--check-config"])
        .output()
        .expect("run komle-cm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example with real files (kept alive by the returned directory).
fn example() -> (example_files::InstalledExample, String) {
    let installed = example_files::install();
    let text = installed.text.clone();
    (installed, text)
}

#[test]
fn a_2010_malformed_allow_list_pattern_exits_2_with_one_line_naming_the_key() {
    let (_files, text) = example();
    let text = text.replace(
        "smtp = [\"*.kim.example:465\"]",
        "smtp = [\"*.kim.example:*\"]",
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        err,
        "config error: [upstream] smtp: \"*.kim.example:*\": \"*\" as port is not allowed; \
         list each port\n"
    );
}

#[test]
fn a_2010_missing_allow_list_is_valid_but_warns_naming_the_key() {
    let (_files, text) = example();
    let text = text
        .replace("smtp = [\"*.kim.example:465\"]", "")
        .replace("pop3 = [\"*.kim.example:995\"]", "");
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "config ok\n");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("warning: [upstream] smtp: not set, every SMTP login is refused"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("warning: [upstream] pop3: not set, every POP3 login is refused"),
        "{err}"
    );
}

#[test]
fn the_example_configuration_checks_without_warnings() {
    let (_files, text) = example();
    let (code, out, err) = check(&text);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "config ok\n", ""));
}
