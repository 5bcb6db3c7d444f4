//! The command line of `komle-cm` and the mapping of failures to exit codes.
//!
//! Exit codes: 0 success, 1 runtime failure (a listener could not bind, a certificate file could
//! not be read, ...), 2 bad command line or configuration. Init scripts and the integrator's
//! tests tell "fix the file" from "fix the machine" by that number alone.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{Config, ConfigError};

/// The KOM-LE Clientmodul (gemSpec_CM_KOMLE): an SMTP proxy that signs and encrypts outgoing
/// mail and a POP3 proxy that decrypts and verifies incoming mail, using the Konnektor and the
/// directory (VZD).
#[derive(Debug, Parser, PartialEq, Eq)]
#[command(
    name = "komle-cm",
    version,
    about,
    long_about = None,
    after_help = "Demo without any configuration or system package:\n  komle-demo [--port N] [--pop3-port N] [--pop3-large MB] [--once] [--precomputed-konnektor]\n(in-process Konnektor simulator, test PKI, directory and mail service; sends a sample mail through the SMTP proxy, opens it again and fetches it through the POP3 proxy; --precomputed-konnektor: the simulator answers repeated crypto requests from memory, for benchmarks)"
)]
pub struct Cli {
    /// Configuration file (TOML). See examples/komle-cm.toml for every key, its meaning and
    /// default.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,

    /// Read and validate the configuration, print "config ok" and exit (0 valid, 2 invalid).
    /// Nothing is started and no certificate files are opened.
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
    Runtime(RuntimeError),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(e) => e.fmt(f),
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
            crate::logging::init(config.log.level);
            // Before any session can bring a password or a mail into memory.
            if let Err(e) = crate::process_hardening::apply(core_dump_policy(&config)) {
                let e = RuntimeError(e.to_string());
                log::error!("{e}");
                eprintln!("{e}");
                return ExitCode::from(1);
            }
            match run(*config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    eprintln!("{e}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
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
        assert_eq!(e.to_string(), "config error: [tls] certificate: missing");
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
