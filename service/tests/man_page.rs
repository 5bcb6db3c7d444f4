//! packaging/komle-cm.8, the man page the Debian package installs, is generated from the clap
//! definitions of `komle-cm` and `komle-cm keys` plus the sections clap does not know (files,
//! signals, exit status). This test fails when the committed page is out of date with the
//! command line; `UPDATE_MAN_PAGE=1 cargo test -p komle-service --test man_page` rewrites it.

use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;
use komle_service::cli::{Cli, KeysCli};

/// The key store subcommands' introduction (their options follow from clap).
const KEY_STORE: &str = r#".SH "KEY STORE"
\fBkomle\-cm keys\fR \fIimport\fR|\fIlist\fR|\fIremove\fR \fB\-\-store\fR \fIFILE\fR ...
manages the password\-protected PKCS#12 key store holding the KIM provider's TLS client
certificate (KOM\-LE\-A_2065, A_18783). Passwords never go on the command line: the store
password comes from \fB\-\-password\-file\fR or KOMLE_KEYSTORE_PASSWORD, the PKCS#12 password
from KOMLE_PKCS12_PASSWORD, else both are asked for. Exit status 0 done, 2 wrong password,
alias or file permissions, 1 I/O failure.
"#;

/// What the options do not say: where things live, how the daemon is driven, what it returns.
const EXTRA: &str = r#".SH FILES
.TP
\fI/etc/komle\-cm/komle\-cm.toml\fR
The configuration (every key documented in the file itself). Check it with
\fBkomle\-cm \-\-config\fR \fIFILE\fR \fB\-\-check\-config\fR.
.TP
\fI/etc/komle\-cm/keys.p12\fR
The key store ([keys] store), mode 0600, owned by the user komle\-cm.
.TP
\fI/etc/komle\-cm/keystore\-password\fR
The key store password, mode 0600, owned by root; the systemd unit hands it to the daemon as
the credential \fIkeystore\-password\fR (LoadCredential=), read from
\fI/run/credentials/komle\-cm.service/keystore\-password\fR ([keys] password_file).
.TP
\fI/usr/lib/systemd/system/komle\-cm.service\fR
The hardened systemd unit: user komle\-cm, only CAP_NET_BIND_SERVICE (ports 465 and 995),
read\-only system, no core dumps.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Re\-reads the listener certificate (its files or its key store entry, [tls] identity), the
upstream trust and the client certificate from the key store for new connections; sessions in flight continue. Listen addresses, limits and timeouts
need a restart.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting at once; running sessions may finish within [timeouts] shutdown_grace, then
they are cut off.
.SH "EXIT STATUS"
0 success, 1 runtime failure (a listener could not bind, a file could not be read), 2 bad
command line or configuration.
.SH "SEE ALSO"
README.md and LIMITS.md in \fI/usr/share/doc/komle\-cm\fR; gemSpec_CM_KOMLE (gematik).
"#;

fn render() -> String {
    let cmd = Cli::command();
    let man = Man::new(cmd).section("8").manual("System Administration");
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    out.extend_from_slice(KEY_STORE.as_bytes());
    // The key store subcommands, each with its synopsis and options, from the `komle-cm keys`
    // parser: one subsection each on this page.
    let keys = KeysCli::command();
    for sub in keys.get_subcommands() {
        let name = format!("komle-cm keys {}", sub.get_name());
        let sub_man = Man::new(sub.clone().bin_name(name.clone())).section("8");
        let mut part = Vec::new();
        sub_man.render_synopsis_section(&mut part).unwrap();
        sub_man.render_description_section(&mut part).unwrap();
        sub_man.render_options_section(&mut part).unwrap();
        let part = String::from_utf8(part)
            .unwrap()
            .replacen(".SH SYNOPSIS", &format!(".SS \"{name}\""), 1)
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", "");
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn man_page_is_generated_from_the_command_line_and_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/komle-cm.8");
    let page = render();
    // The page documents every option of both parsers.
    for option in [
        "\\-\\-config",
        "\\-\\-check\\-config",
        "\\-\\-log\\-level",
        "\\-\\-store",
        "\\-\\-password\\-file",
        "\\-\\-alias",
        "\\-\\-pkcs12",
        "\\-\\-replace",
    ] {
        assert!(page.contains(option), "man page lacks {option}");
    }
    if std::env::var_os("UPDATE_MAN_PAGE").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "{} is out of date with the command line: run UPDATE_MAN_PAGE=1 cargo test -p komle-service --test man_page",
        path.display()
    );
}
