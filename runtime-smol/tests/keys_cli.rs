//! `komle-cm keys import|list|remove` as an operator runs it (KOM-LE-A_2065, A_18783):
//! passwords from the environment or piped to stdin, never arguments; wrong passwords are one
//! line on stderr and exit code 2.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use komle_conformance::pki::{TestPki, pkcs12};

/// Runs `komle-cm keys ARGS` with only the given password variables and `stdin`.
fn keys(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_komle-cm"));
    cmd.arg("keys")
        .args(args)
        .env_remove("KOMLE_KEYSTORE_PASSWORD")
        .env_remove("KOMLE_PKCS12_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run komle-cm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn provider_file(dir: &Path) -> String {
    let now = SystemTime::now();
    let pki = TestPki::generate(now).unwrap();
    let set = pki.cm_tls(now).unwrap();
    let path = dir.join("provider.p12");
    std::fs::write(
        &path,
        pkcs12(&set.valid, &[&set.ca], "x", "transport").unwrap(),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

const BOTH: [(&str, &str); 2] = [
    ("KOMLE_PKCS12_PASSWORD", "transport"),
    ("KOMLE_KEYSTORE_PASSWORD", "store-pw"),
];

#[test]
fn a_18783_import_list_remove_with_passwords_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = provider_file(dir.path());
    let store = dir.path().join("keys.p12");
    let s = store.to_str().unwrap();
    let import = ["import", "--store", s, "--alias", "kim", "--pkcs12", &p12];
    let (code, out, err) = keys(&import, &BOTH, "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("imported kim\tsubject=CN=KOM-LE Clientmodul cm-tls TEST-ONLY"),
        "{out}"
    );
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Importing the same alias again is refused without --replace.
    let (code, _, err) = keys(&import, &BOTH, "");
    assert_eq!(code, 2);
    assert!(err.contains("exists already"), "{err}");

    let (code, out, err) = keys(&["list", "--store", s], &BOTH[1..], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("notAfter=") && !out.contains("EXPIRED"),
        "{out}"
    );

    let (code, out, err) = keys(&["remove", "--store", s, "--alias", "kim"], &BOTH[1..], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("removed kim\t"), "{out}");
    let (code, out, _) = keys(&["list", "--store", s], &BOTH[1..], "");
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn a_18783_wrong_passwords_exit_2_with_exactly_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = provider_file(dir.path());
    let store = dir.path().join("keys.p12");
    let s = store.to_str().unwrap();
    let import = ["import", "--store", s, "--alias", "kim", "--pkcs12", &p12];

    let wrong_p12 = [
        ("KOMLE_PKCS12_PASSWORD", "falsch"),
        ("KOMLE_KEYSTORE_PASSWORD", "store-pw"),
    ];
    let (code, out, err) = keys(&import, &wrong_p12, "");
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err, format!("error: {p12}: wrong PKCS#12 password\n"));
    assert!(!store.exists());

    assert_eq!(keys(&import, &BOTH, "").0, 0);
    let (code, out, err) = keys(
        &["list", "--store", s],
        &[("KOMLE_KEYSTORE_PASSWORD", "falsch")],
        "",
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        format!("error: {s}: wrong key store password (or the store was modified)\n")
    );

    // No password anywhere and nothing on stdin: one line, exit 2.
    let (code, _, err) = keys(&["list", "--store", s], &[], "");
    assert_eq!(code, 2);
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
    assert!(err.contains("key store password is empty"), "{err}");

    // A store others can read is refused.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = keys(&["list", "--store", s], &BOTH[1..], "");
    assert_eq!(code, 2);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_2065_passwords_can_be_piped_and_are_no_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let p12 = provider_file(dir.path());
    let store = dir.path().join("keys.p12");
    let s = store.to_str().unwrap();
    // PKCS#12 password first, then the store password, one line each.
    let import = ["import", "--store", s, "--alias", "kim", "--pkcs12", &p12];
    let (code, out, err) = keys(&import, &[], "transport\nstore-pw\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("imported kim\t"), "{out}");
    let (code, out, _) = keys(&["list", "--store", s], &[], "store-pw\n");
    assert_eq!(code, 0);
    assert!(out.starts_with("kim\t"), "{out}");
    let (code, _, err) = keys(&["list", "--store", s, "--password", "store-pw"], &[], "");
    assert_eq!(code, 2, "{err}");
}
