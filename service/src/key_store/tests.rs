//! Key store round trips with PKCS#12 files made by the `openssl` CLI, as a provider would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::test_pki;

const P12_PW: &str = "transport-Passwort-1";
const STORE_PW: &str = "store-Passwort-2";

fn pw(s: &str) -> Password {
    Password::new(s)
}

/// The provider's file: the client key and certificate plus the CA, under `P12_PW`.
fn provider_p12(pki: &test_pki::TestPki) -> PathBuf {
    let out = pki.path("provider.p12");
    let status = Command::new("openssl")
        .args(["pkcs12", "-export", "-name", "provider-name", "-passout"])
        .arg(format!("pass:{P12_PW}"))
        .arg("-in")
        .arg(pki.client_cert())
        .arg("-inkey")
        .arg(pki.client_key())
        .arg("-certfile")
        .arg(pki.ca())
        .arg("-out")
        .arg(&out)
        .status()
        .expect("openssl CLI");
    assert!(status.success());
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The PKCS#8 key bytes openssl wrote for the client (PEM decoded).
fn client_key_der(pki: &test_pki::TestPki) -> Vec<u8> {
    crate::tls::load_private_key(&pki.client_key())
        .unwrap()
        .secret_der()
        .to_vec()
}

#[test]
fn a_18783_import_list_remove_round_trip() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");

    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    assert!(ks.list().is_empty());
    let info = ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    assert_eq!(info.alias, "kim");
    assert_eq!(info.subject, "CN=client");
    assert_eq!(info.issuer, "CN=KeyStore CA");
    assert_eq!(info.chain_len, 2, "leaf and CA from the provider's file");
    assert!(!info.expired_at(std::time::SystemTime::now()));
    ks.save().unwrap();

    // Reopened with the store password: the same entry, the key usable by rustls.
    let ks = KeyStore::open(&store, pw(STORE_PW)).unwrap();
    let listed = ks.list();
    assert_eq!(listed, vec![info.clone()]);
    let line = listed[0].to_string();
    assert!(
        line.starts_with("kim\tsubject=CN=client\tnotAfter=20"),
        "{line}"
    );
    let identity = ks.client_identity("kim").unwrap();
    assert_eq!(identity.chain().len(), 2);
    assert_eq!(identity.key().secret_der(), client_key_der(&pki).as_slice());
    let cert = crate::tls::load_certificates(&pki.client_cert()).unwrap();
    assert_eq!(identity.chain()[0], cert[0]);

    // A second entry, then remove the first.
    let mut ks = KeyStore::open(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("second", &p12, &pw(P12_PW), false)
        .unwrap();
    assert_eq!(ks.remove("kim").unwrap().alias, "kim");
    assert!(matches!(
        ks.remove("kim"),
        Err(KeyStoreError::UnknownAlias { .. })
    ));
    ks.save().unwrap();
    let ks = KeyStore::open(&store, pw(STORE_PW)).unwrap();
    let aliases: Vec<String> = ks.list().into_iter().map(|e| e.alias).collect();
    assert_eq!(aliases, ["second"]);
    assert!(matches!(
        ks.client_identity("kim"),
        Err(KeyStoreError::UnknownAlias { .. })
    ));
}

#[test]
fn a_2065_wrong_store_password_is_a_typed_error() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    ks.save().unwrap();
    let e = KeyStore::open(&store, pw("not-the-store-password")).unwrap_err();
    assert!(
        matches!(&e, KeyStoreError::WrongStorePassword { path } if path == &store),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 2);
    let line = e.to_string();
    assert!(line.contains("wrong key store password"), "{line}");
    assert!(!line.contains('\n'));
    // The provider's transport password does not open the store either.
    assert!(matches!(
        KeyStore::open(&store, pw(P12_PW)),
        Err(KeyStoreError::WrongStorePassword { .. })
    ));
    assert!(matches!(
        KeyStore::open(&store, pw("")),
        Err(KeyStoreError::EmptyPassword { .. })
    ));
}

#[test]
fn a_18783_wrong_pkcs12_password_is_a_typed_error() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    let e = ks
        .import_pkcs12("kim", &p12, &pw("wrong-transport-password"), false)
        .unwrap_err();
    assert!(
        matches!(&e, KeyStoreError::WrongPkcs12Password { path } if path == &p12),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().ends_with(": wrong PKCS#12 password"), "{e}");
    assert!(ks.list().is_empty());
    assert!(!store.exists(), "nothing written on a failed import");
    // Not a PKCS#12 at all.
    let e = ks
        .import_pkcs12("kim", &pki.client_cert(), &pw(P12_PW), false)
        .unwrap_err();
    assert!(matches!(e, KeyStoreError::MalformedPkcs12 { .. }), "{e:?}");
}

#[test]
fn a_2065_store_file_is_created_0600_and_holds_no_plain_key() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    ks.save().unwrap();
    assert_eq!(mode(&store), 0o600);
    // Saved again (replacing the file): still 0600, no temp file left behind.
    ks.save().unwrap();
    assert_eq!(mode(&store), 0o600);
    let names: Vec<_> = std::fs::read_dir(pki.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The key is encrypted in the file: its PKCS#8 bytes do not appear.
    let raw = std::fs::read(&store).unwrap();
    let key = client_key_der(&pki);
    assert!(!raw.windows(key.len()).any(|w| w == key.as_slice()));
    assert!(!raw.windows(16).any(|w| w == &key[key.len() - 16..]));
}

#[test]
fn a_2065_a_0644_store_is_refused_with_one_line() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    ks.save().unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = KeyStore::open(&store, pw(STORE_PW)).unwrap_err();
    assert!(
        matches!(e, KeyStoreError::InsecurePermissions { mode: 0o644, .. }),
        "{e:?}"
    );
    let line = e.to_string();
    assert!(
        line.contains("mode 0644") && line.contains("chmod 600"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    assert_eq!(e.exit_code(), 2);
    // Group-readable only is refused as well; 0400 is fine.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(KeyStore::open(&store, pw(STORE_PW)).is_err());
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        KeyStore::open(&store, pw(STORE_PW)).unwrap().list().len(),
        1
    );
}

#[test]
fn debug_output_has_no_key_bytes_or_passwords() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    let identity = ks.client_identity("kim").unwrap();
    let key = client_key_der(&pki);
    let tail = &key[key.len() - 8..];
    let decimal = format!("{tail:?}");
    let decimal = &decimal[1..decimal.len() - 1];
    let hex: String = tail.iter().map(|b| format!("{b:02x}")).collect();
    for text in [
        format!("{ks:?}"),
        format!("{ks:#?}"),
        format!("{identity:?}"),
        format!("{:?}", ks.list()),
        format!("{:?}", pw(STORE_PW)),
    ] {
        assert!(!text.contains(decimal), "{text}");
        assert!(!text.to_lowercase().contains(&hex), "{text}");
        assert!(!text.contains(STORE_PW) && !text.contains(P12_PW), "{text}");
    }
    assert!(format!("{identity:?}").contains("<redacted>"));
    assert!(format!("{ks:?}").contains("\"kim\""));
}

#[test]
fn aliases_are_checked_and_not_overwritten_silently() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let mut ks = KeyStore::open_or_create(&pki.path("keys.p12"), pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    assert!(matches!(
        ks.import_pkcs12("kim", &p12, &pw(P12_PW), false),
        Err(KeyStoreError::AliasExists { .. })
    ));
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), true).unwrap();
    assert_eq!(ks.list().len(), 1);
    for bad in ["", " kim", "kim\n", &"x".repeat(65)] {
        assert!(
            matches!(
                ks.import_pkcs12(bad, &p12, &pw(P12_PW), false),
                Err(KeyStoreError::InvalidAlias { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn the_store_is_a_standard_pkcs12_openssl_reads() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let store = pki.path("keys.p12");
    let mut ks = KeyStore::open_or_create(&store, pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    ks.save().unwrap();
    let out = Command::new("openssl")
        .args(["pkcs12", "-nokeys", "-passin"])
        .arg(format!("pass:{STORE_PW}"))
        .arg("-in")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The certificate bag is linked to the key bag by the localKeyId "komle-cm:kim".
    assert!(
        text.contains("localKeyID: 6B 6F 6D 6C 65 2D 63 6D 3A 6B 69 6D"),
        "{text}"
    );
    assert!(text.contains("subject=CN = client"), "{text}");
}

#[test]
fn password_file_must_be_private_and_gives_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "geheim\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        password::store_password(Some(&file)),
        Err(KeyStoreError::InsecurePermissions { .. })
    ));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        password::store_password(Some(&file)).unwrap().expose(),
        "geheim"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, "\n").unwrap();
    assert!(matches!(
        password::store_password(Some(&file)),
        Err(KeyStoreError::EmptyPassword { .. })
    ));
    let mut input = std::io::Cursor::new(b"typed-pw\r\nrest\n".to_vec());
    assert_eq!(
        password::read_line(&mut input, "PKCS#12 password")
            .unwrap()
            .expose(),
        "typed-pw"
    );
}

#[test]
fn expiry_is_reported_before_and_after_not_after() {
    let pki = test_pki::make("KeyStore CA");
    let p12 = provider_p12(&pki);
    let mut ks = KeyStore::open_or_create(&pki.path("keys.p12"), pw(STORE_PW)).unwrap();
    ks.import_pkcs12("kim", &p12, &pw(P12_PW), false).unwrap();
    let info = ks.info("kim").unwrap();
    let day = std::time::Duration::from_secs(86_400);
    // The test certificate is valid for 2 days: "expires" today, "expired" in 3 days.
    let soon = info.expiry_warning(std::time::SystemTime::now()).unwrap();
    assert!(
        soon.contains("expires at") && soon.contains("CN=client"),
        "{soon}"
    );
    let later = info
        .expiry_warning(std::time::SystemTime::now() + 3 * day)
        .unwrap();
    assert!(later.contains("expired at"), "{later}");
    assert_eq!(info.expiry_warning(info.not_after - 31 * day), None);
    assert!(matches!(
        ks.info("nope"),
        Err(KeyStoreError::UnknownAlias { .. })
    ));
}
