//! The POP3 side of the transcripts: `Pop3Config` options, the POP3 events (`opened`,
//! `open-failed …`) and how its jobs are shown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage, Pop3Config, Pop3Session};
use komle_core::proxy_session::{Job, JobResult};
use komle_core::secret::SecretBytes;
use komle_core::upstream_allow::UpstreamAllowList;

use super::grammar::push_lines;
use super::{Payload, Words};

/// The POP3 servers the transcripts name in their login names, allowed by default.
pub const TRANSCRIPT_SERVERS: &[&str] = &["pop.komle.de:995", "pop.k.de:995"];

/// The default configuration with `O:` settings applied (every `Pop3Config` field except
/// `greeting` by its name; timeouts in seconds). The servers the transcripts log into are
/// allowed ([`TRANSCRIPT_SERVERS`]) unless `O: upstream_allow` gives another list
/// (space-separated patterns, or `none`).
pub fn config(options: &[(String, String)]) -> Result<Pop3Config, String> {
    let mut c = Pop3Config {
        upstream_allow: UpstreamAllowList::parse(TRANSCRIPT_SERVERS.iter().copied())
            .map_err(|(p, e)| format!("{p}: {e}"))?,
        ..Pop3Config::default()
    };
    for (k, v) in options {
        let bad = || format!("bad value for {k}: {v}");
        let secs = || v.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
        match k.as_str() {
            "greeting" => c.greeting = v.clone(),
            "max_line_length" => c.max_line_length = v.parse().map_err(|_| bad())?,
            "max_reply_line_length" => c.max_reply_line_length = v.parse().map_err(|_| bad())?,
            "max_message_size" => c.max_message_size = v.parse().map_err(|_| bad())?,
            "max_commands_before_auth" => {
                c.max_commands_before_auth = v.parse().map_err(|_| bad())?
            }
            "max_failed_logins" => c.max_failed_logins = v.parse().map_err(|_| bad())?,
            "max_pipelined_commands" => c.max_pipelined_commands = v.parse().map_err(|_| bad())?,
            "server_response_timeout" => c.server_response_timeout = secs()?,
            "server_idle_timeout" => c.server_idle_timeout = secs()?,
            "client_idle_timeout" => c.client_idle_timeout = secs()?,
            "upstream_allow" if v == "none" => c.upstream_allow = UpstreamAllowList::deny_all(),
            "upstream_allow" => {
                c.upstream_allow = UpstreamAllowList::parse(v.split_whitespace())
                    .map_err(|(p, e)| format!("upstream_allow {p}: {e}"))?
            }
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(c)
}

/// The POP3 words of the transcripts: its configuration, its job results and jobs.
pub(super) struct Pop3Words;

impl Words for Pop3Words {
    type Session = Pop3Session;

    fn start(options: &[(String, String)], now: Instant) -> Result<Pop3Session, String> {
        Ok(Pop3Session::new(config(options)?, now))
    }

    fn job_result(spec: &str, payload: &mut Payload) -> Result<JobResult, String> {
        job_result(spec, payload)
    }

    fn show_job(job: Job, observed: &mut VecDeque<String>) -> Result<(), String> {
        match job {
            Job::Open(job) => {
                observed.push_back(format!("A: open login={}", login(&job)));
                push_lines(observed, "J", job.message.as_slice());
            }
            other => return Err(format!("no POP3 job: {other:?}")),
        }
        Ok(())
    }
}

/// The login name the job carries, written as the client wrote it (A_2032): whose keys open
/// the message and in which card context.
fn login(job: &OpenJob) -> String {
    let l = &job.login;
    let mut s = format!(
        "{}#{}:{}#{}#{}#{}",
        l.user, l.host, l.port, l.mandant_id, l.client_system_id, l.workplace_id
    );
    if let Some(id) = &l.user_id {
        s.push('#');
        s.push_str(id);
    }
    // A_21517: the KonnektorId in its position, `*` standing for an absent UserId.
    if let Some(k) = &l.konnektor_id {
        if l.user_id.is_none() {
            s.push_str("#*");
        }
        s.push('#');
        s.push_str(k.as_str());
    }
    s
}

/// The POP3 job results: `opened`, `open-failed …`.
fn job_result(spec: &str, payload: &mut Payload) -> Result<JobResult, String> {
    let (kind, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    Ok(match kind {
        "opened" if rest.is_empty() => JobResult::Opened(Ok(OpenedMessage {
            message: SecretBytes::from(core::mem::take(&mut payload.message)),
        })),
        "open-failed" => JobResult::Opened(Err(OpenFailure {
            reason: rest.trim().to_owned(),
        })),
        other => return Err(format!("unknown POP3 event {other:?}")),
    })
}
