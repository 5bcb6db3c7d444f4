//! The command line of `komle-cm` and the mapping of failures to exit codes.
//!
//! Exit codes: 0 success, 2 bad command line or configuration, or a start-up check that failed
//! (a file the configuration names is missing or holds the wrong thing, a listen port cannot be
//! bound: [`crate::doctor::preflight`], the same checks as `--check-config`), 1 a failure after
//! those checks passed. Every failure is printed once, one line per problem. Init scripts tell
//! "fix the configuration" (2: restarting will not help) from "the daemon failed" (1) by that
//! number alone.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use komle_core::secret::Password;

use crate::config::{Config, ConfigError};
use crate::key_store::{self, KeyStore, KeyStoreError, password};

/// The KOM-LE Clientmodul (gemSpec_CM_KOMLE): an SMTP proxy that signs and encrypts outgoing
/// mail and a POP3 proxy that decrypts and verifies incoming mail, using the Konnektor and the
/// directory (VZD).
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(
    name = "komle-cm",
    version,
    long_about = None,
    after_help = "Demo without any configuration or system package:\n  komle-demo [--port N] [--pop3-port N] [--pop3-large MB] [--once] [--precomputed-konnektor]\n(in-process Konnektor simulator, test PKI, directory and mail service; sends a sample mail through the SMTP proxy, opens it again and fetches it through the POP3 proxy; --precomputed-konnektor: the simulator answers repeated crypto requests from memory, for benchmarks)\n\nKey store (the provider's PKCS#12 with the TLS client certificate):\n  komle-cm keys import|list|remove --store FILE ...   (komle-cm keys --help)\n\nCheck every dependency (Konnektor, SM-B, directory, time, mail servers, certificate), one line each, exit code = failures:\n  komle-cm doctor --config FILE   (komle-cm doctor --help)"
)]
pub struct Cli {
    /// Configuration file (TOML). See examples/komle-cm.toml for every key, its meaning and
    /// default.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,

    /// Read and validate the configuration, open every file it names (certificates, keys,
    /// CAs, key store entry) and try each listen port; print "config ok" and exit (0 valid, 2
    /// invalid, one line per problem naming the key). A port in use is only a warning here
    /// (the running daemon holds it); at start it is an error. Nothing is started.
    #[arg(long)]
    pub check_config: bool,

    /// Override the log level from [log] level (off, error, warn, info, debug, trace).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<log::LevelFilter>,
}

/// Failures of a running daemon (exit code 1).
#[derive(Debug)]
pub struct RuntimeError(pub String);

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.0)
    }
}

impl std::error::Error for RuntimeError {}

/// Everything that can end `komle-cm`, with its exit code.
#[derive(Debug)]
pub enum Failure {
    Config(ConfigError),
    /// The start-up checks ([`crate::doctor::preflight`]): one per problem, at least one.
    Checks(Vec<ConfigError>),
    Runtime(RuntimeError),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) | Failure::Checks(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(e) => e.fmt(f),
            Failure::Checks(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            Failure::Runtime(e) => e.fmt(f),
        }
    }
}

/// What a parsed command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `--check-config`: the configuration is valid.
    Checked,
    /// Run the daemon with this configuration (log level already resolved).
    Run(Box<Config>),
}

/// Loads the configuration named on the command line; applies `--log-level`.
pub fn prepare(cli: &Cli) -> Result<Command, Failure> {
    let mut config = Config::load(&cli.config).map_err(Failure::Config)?;
    if let Some(level) = cli.log_level {
        config.log.level = level;
    }
    if cli.check_config {
        // Valid but risky settings (e.g. no [upstream] allow-list): one line each on stderr.
        for warning in config.warnings() {
            eprintln!("warning: {warning}");
        }
        let problems = crate::doctor::preflight::check_files(&config);
        if !problems.is_empty() {
            return Err(Failure::Checks(problems));
        }
        // The running daemon holds its own ports: said, but not a failure of the file.
        for busy in crate::doctor::preflight::check_ports(&config) {
            eprintln!("warning: {}: {}", busy.key, busy.problem);
        }
        Ok(Command::Checked)
    } else {
        Ok(Command::Run(Box::new(config)))
    }
}

/// `[process] allow_core_dumps` as the hardening policy (A_2005: forbidden by default).
pub fn core_dump_policy(config: &Config) -> crate::process_hardening::CoreDumps {
    if config.process.allow_core_dumps {
        crate::process_hardening::CoreDumps::Allowed
    } else {
        crate::process_hardening::CoreDumps::Forbidden
    }
}

/// The whole program: parse arguments, load the configuration, set up logging, hand the
/// configuration to `run`. Errors print as one line on stderr. Logging goes through
/// [`crate::logging::init`] (library targets capped) and core dumps are switched off
/// ([`crate::process_hardening`]) before `run` is called.
pub fn main_with(run: impl FnOnce(Config) -> Result<(), RuntimeError>) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap but succeed.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match prepare(&cli) {
        Ok(Command::Checked) => {
            println!("config ok");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => {
            crate::logging::init_with(config.log.level, config.log.format);
            // Before any session can bring a password or a mail into memory.
            if let Err(e) = crate::process_hardening::apply(core_dump_policy(&config)) {
                report_once(&RuntimeError(e.to_string()).to_string());
                return ExitCode::from(1);
            }
            if let Err(failure) = start_checks(&config) {
                report_once(&failure.to_string());
                return ExitCode::from(failure.exit_code());
            }
            match run(*config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report_once(&e.to_string());
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The checks of `--check-config` at start, the ports included: a failure is exit code 2.
pub fn start_checks(config: &Config) -> Result<(), Failure> {
    let mut problems = crate::doctor::preflight::check_files(config);
    problems.extend(crate::doctor::preflight::check_ports(config));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Checks(problems))
    }
}

/// Writes a fatal error exactly once: through the logger when it writes errors (so it has the
/// configured format and reaches the journal), else plainly on stderr (`[log] level = "off"`).
/// WHY: both used to happen, so every start-up error appeared twice.
fn report_once(text: &str) {
    if log::log_enabled!(target: "komle_service::cli", log::Level::Error) {
        for line in text.lines() {
            log::error!("{line}");
        }
    } else {
        eprintln!("{text}");
    }
}

/// `komle-cm doctor`: checks every dependency, one line each; the exit code is the number of
/// failed checks (0: all good).
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(
    name = "komle-cm doctor",
    version,
    long_about = None,
    after_help = "Checks: konnektor (connector.sds and service versions), ecc (A_17464), sm-b and sm-b pin (GetCards, GetPinStatus; needs [doctor] context), directory (bind and a lookup of [doctor] sample_address), time (NTP offset to the Konnektor, UDP/123), mta/pop3 (each [upstream] allow-list host: TLS with the client certificate and the greeting), listener certificate (days left).\nExit code: the number of failed checks; 2 with one line for a configuration that does not load."
)]
pub struct DoctorCli {
    /// Configuration file (TOML), the daemon's.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `komle-cm doctor ARGS...` (`args` without the program name and `doctor`).
pub fn doctor_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("komle-cm doctor")).chain(args);
    let cli = match DoctorCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Library warnings (TLS alerts) only; the report itself goes to stdout.
    crate::logging::init_with(log::LevelFilter::Error, config.log.format);
    let results = crate::doctor::checks::run(&config, crate::doctor::checks::Options::default());
    for r in &results {
        println!("{r}");
    }
    let failed = crate::doctor::checks::failures(&results);
    ExitCode::from(u8::try_from(failed).unwrap_or(u8::MAX))
}

/// `komle-cm keys ...`: the key store holding the provider's TLS client key and certificate
/// (KOM-LE-A_2065, A_18783). Passwords never go on the command line (every user sees it in
/// `ps`): the store password comes from --password-file or KOMLE_KEYSTORE_PASSWORD, else it is
/// asked for; the PKCS#12 password from KOMLE_PKCS12_PASSWORD, else it is asked for. Exit codes:
/// 0 done, 2 wrong password / alias / file permissions, 1 I/O failure.
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(name = "komle-cm keys", version, long_about = None)]
pub struct KeysCli {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The store file and where its password comes from.
#[derive(Debug, Args, PartialEq, Eq)]
pub struct StoreArgs {
    /// The key store (PKCS#12, created with mode 0600 by the first import).
    #[arg(long, value_name = "FILE")]
    pub store: PathBuf,
    /// File holding the store password (first line; owner-readable only). Default: the
    /// environment variable KOMLE_KEYSTORE_PASSWORD, else a prompt.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// What `komle-cm keys` does.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum KeysCommand {
    /// Import the key and certificate chain of the provider's PKCS#12 file under an alias
    /// (the PKCS#12 password from KOMLE_PKCS12_PASSWORD, else asked for on stdin).
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Name of the entry, the value of client_identity in the configuration.
        #[arg(long)]
        alias: String,
        /// The provider's password-protected PKCS#12 file.
        #[arg(long, value_name = "FILE")]
        pkcs12: PathBuf,
        /// Overwrite an existing entry with this alias.
        #[arg(long)]
        replace: bool,
    },
    /// List the entries: alias, subject, notAfter (never key material).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an entry.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        alias: String,
    },
}

/// Where `run_keys` gets a password the environment does not give: a prompt in the binary, a
/// fixed answer in tests.
pub type AskPassword<'a> = dyn FnMut(&str, &'static str) -> Result<Password, KeyStoreError> + 'a;

/// `komle-cm keys ARGS...` (`args` without the program name and `keys`): one line on stderr
/// and exit code 2 (1 for I/O) on failure.
pub fn keys_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("komle-cm keys")).chain(args);
    let cli = match KeysCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut ask = |prompt: &str, what: &'static str| key_store::prompt::ask(prompt, what);
    match run_keys(&cli.command, &mut std::io::stdout(), &mut ask) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Carries out one `keys` command, printing its result lines to `out`.
pub fn run_keys(
    command: &KeysCommand,
    out: &mut impl Write,
    ask: &mut AskPassword<'_>,
) -> Result<(), KeyStoreError> {
    let write_err = |e| KeyStoreError::Io {
        path: PathBuf::from("stdout"),
        action: "cannot write",
        source: e,
    };
    match command {
        KeysCommand::Import {
            store,
            alias,
            pkcs12,
            replace,
        } => {
            // The transport password first: it belongs to the file just received.
            let pkcs12_password =
                match password::from_env(password::PKCS12_PASSWORD_ENV, "PKCS#12 password")? {
                    Some(p) => p,
                    None => ask("PKCS#12 password: ", "PKCS#12 password")?,
                };
            let mut ks = KeyStore::open_or_create(&store.store, store_password(store, ask)?)?;
            let info = ks.import_pkcs12(alias, pkcs12, &pkcs12_password, *replace)?;
            ks.save()?;
            writeln!(out, "imported {info}").map_err(write_err)?;
        }
        KeysCommand::List { store } => {
            let ks = KeyStore::open(&store.store, store_password(store, ask)?)?;
            let now = std::time::SystemTime::now();
            for info in ks.list() {
                let expired = if info.expired_at(now) {
                    "\tEXPIRED"
                } else {
                    ""
                };
                writeln!(out, "{info}{expired}").map_err(write_err)?;
            }
        }
        KeysCommand::Remove { store, alias } => {
            let mut ks = KeyStore::open(&store.store, store_password(store, ask)?)?;
            let info = ks.remove(alias)?;
            ks.save()?;
            writeln!(out, "removed {info}").map_err(write_err)?;
        }
    }
    Ok(())
}

fn store_password(store: &StoreArgs, ask: &mut AskPassword<'_>) -> Result<Password, KeyStoreError> {
    if store.password_file.is_some() {
        return password::store_password(store.password_file.as_deref());
    }
    match password::from_env(password::STORE_PASSWORD_ENV, "key store password")? {
        Some(p) => Ok(p),
        None => ask("key store password: ", "key store password"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn keys_cli_definition_is_consistent_and_takes_no_password_argument() {
        KeysCli::command().debug_assert();
        let cli = KeysCli::try_parse_from([
            "komle-cm keys",
            "import",
            "--store",
            "k.p12",
            "--alias",
            "kim",
            "--pkcs12",
            "p.p12",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            KeysCommand::Import { replace: false, .. }
        ));
        // Passwords on the command line are visible in ps: there is no such option.
        for extra in ["--password", "--pkcs12-password", "--store-password"] {
            assert!(
                KeysCli::try_parse_from(["komle-cm keys", "list", "--store", "k.p12", extra, "x"])
                    .is_err(),
                "{extra}"
            );
        }
    }

    /// A provider PKCS#12 made by openssl from the service's test PKI, password "transport".
    fn provider_p12(pki: &crate::test_pki::TestPki) -> PathBuf {
        let p12 = pki.path("provider.p12");
        let ok = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:transport"])
            .arg("-in")
            .arg(pki.client_cert())
            .arg("-inkey")
            .arg(pki.client_key())
            .arg("-out")
            .arg(&p12)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        p12
    }

    #[test]
    fn a_18783_keys_import_list_remove_through_the_cli() {
        let pki = crate::test_pki::make("CLI CA");
        let p12 = provider_p12(&pki);
        let pw_file = pki.path("store-pw");
        std::fs::write(&pw_file, "store-pw\n").unwrap();
        std::fs::set_permissions(
            &pw_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let store = || StoreArgs {
            store: pki.path("keys.p12"),
            password_file: Some(pw_file.clone()),
        };
        let mut asked = Vec::new();
        let mut ask = |prompt: &str, _: &'static str| {
            asked.push(prompt.to_owned());
            Ok(Password::new("transport"))
        };
        let mut out = Vec::new();
        let import = KeysCommand::Import {
            store: store(),
            alias: "kim".into(),
            pkcs12: p12.clone(),
            replace: false,
        };
        run_keys(&import, &mut out, &mut ask).unwrap();
        run_keys(&KeysCommand::List { store: store() }, &mut out, &mut ask).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("imported kim\tsubject=CN=client\tnotAfter="));
        assert!(lines[1].starts_with("kim\tsubject=CN=client\tnotAfter="));
        assert!(!text.contains("EXPIRED"));
        // Only the PKCS#12 password was asked for; the store password came from the file.
        assert_eq!(asked, ["PKCS#12 password: "]);

        let mut out = Vec::new();
        let mut ask = |_: &str, _: &'static str| Ok(Password::new("transport"));
        run_keys(
            &KeysCommand::Remove {
                store: store(),
                alias: "kim".into(),
            },
            &mut out,
            &mut ask,
        )
        .unwrap();
        run_keys(&KeysCommand::List { store: store() }, &mut out, &mut ask).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("removed kim\t"));
    }

    #[test]
    fn a_18783_wrong_passwords_are_exit_code_2_with_one_line() {
        let pki = crate::test_pki::make("CLI CA");
        let p12 = provider_p12(&pki);
        let pw_file = pki.path("store-pw");
        std::fs::write(&pw_file, "store-pw\n").unwrap();
        std::fs::set_permissions(
            &pw_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let store = StoreArgs {
            store: pki.path("keys.p12"),
            password_file: Some(pw_file.clone()),
        };
        let import = KeysCommand::Import {
            store,
            alias: "kim".into(),
            pkcs12: p12,
            replace: false,
        };
        let mut wrong = |_: &str, _: &'static str| Ok(Password::new("not-transport"));
        let e = run_keys(&import, &mut Vec::new(), &mut wrong).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: wrong PKCS#12 password",
                pki.path("provider.p12").display()
            )
        );
        let mut right = |_: &str, _: &'static str| Ok(Password::new("transport"));
        run_keys(&import, &mut Vec::new(), &mut right).unwrap();
        std::fs::write(&pw_file, "other-store-pw\n").unwrap();
        let list = KeysCommand::List {
            store: StoreArgs {
                store: pki.path("keys.p12"),
                password_file: Some(pw_file),
            },
        };
        let e = run_keys(&list, &mut Vec::new(), &mut right).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("wrong key store password"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn parses_config_and_check_flag() {
        let cli =
            Cli::try_parse_from(["komle-cm", "--config", "a.toml", "--check-config"]).unwrap();
        assert_eq!(cli.config, PathBuf::from("a.toml"));
        assert!(cli.check_config);
        assert!(
            Cli::try_parse_from(["komle-cm"]).is_err(),
            "--config is required"
        );
    }

    #[test]
    fn help_documents_every_option() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "--config",
            "--check-config",
            "--log-level",
            "examples/komle-cm.toml",
        ] {
            assert!(help.contains(needle), "help lacks {needle}");
        }
    }

    #[test]
    fn bad_config_is_exit_code_2_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[smtp]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let cli = Cli::try_parse_from(["komle-cm", "-c", path.to_str().unwrap()]).unwrap();
        let e = prepare(&cli).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "config error: [tls] certificate: missing (or identity = \"<alias>\" for a key store entry)"
        );
        let missing = Cli::try_parse_from(["komle-cm", "-c", "/nonexistent/x.toml"]).unwrap();
        let e = prepare(&missing).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .starts_with("config error: /nonexistent/x.toml: ")
        );
    }

    #[test]
    fn log_level_flag_overrides_file() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/komle-cm.toml");
        let cli = Cli::try_parse_from([
            "komle-cm",
            "--config",
            path.to_str().unwrap(),
            "--log-level",
            "debug",
        ])
        .unwrap();
        match prepare(&cli).unwrap() {
            Command::Run(c) => assert_eq!(c.log.level, log::LevelFilter::Debug),
            Command::Checked => panic!("not asked to check"),
        }
    }
}
