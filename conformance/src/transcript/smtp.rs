//! The SMTP side of the transcripts: `SmtpConfig` options, the SMTP events
//! (`recipient …`, `protect-failed …`, `protected …`) and how its jobs are shown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use komle_core::proxy_session::{Job, JobResult};
use komle_core::secret::SecretBytes;
use komle_core::smtp::{
    Notice, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpConfig, SmtpSession,
};
use komle_core::upstream_allow::UpstreamAllowList;

use super::grammar::push_lines;
use super::{Payload, Words};

/// The MTAs the SMTP transcripts name in their login names, allowed by default.
pub const TRANSCRIPT_MTAS: &[&str] = &["mail.komle.de:465", "127.0.0.1:2465", "[2001:db8::25]:465"];

/// The default configuration with `O:` settings applied. The MTAs the transcripts log into
/// are allowed ([`TRANSCRIPT_MTAS`]) unless `O: upstream_allow` gives another list
/// (space-separated patterns, or `none`).
pub fn config(options: &[(String, String)]) -> Result<SmtpConfig, String> {
    let mut c = SmtpConfig {
        upstream_allow: UpstreamAllowList::parse(TRANSCRIPT_MTAS.iter().copied())
            .map_err(|(p, e)| format!("{p}: {e}"))?,
        ..SmtpConfig::default()
    };
    for (k, v) in options {
        let bad = || format!("bad value for {k}: {v}");
        let secs = || v.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
        match k.as_str() {
            "hostname" => c.hostname = v.clone(),
            "max_message_size" => c.max_message_size = v.parse().map_err(|_| bad())?,
            "max_line_length" => c.max_line_length = v.parse().map_err(|_| bad())?,
            "max_commands_before_auth" => {
                c.max_commands_before_auth = v.parse().map_err(|_| bad())?
            }
            "max_failed_logins" => c.max_failed_logins = v.parse().map_err(|_| bad())?,
            "mta_response_timeout" => c.mta_response_timeout = secs()?,
            "mta_idle_timeout" => c.mta_idle_timeout = secs()?,
            "client_idle_timeout" => c.client_idle_timeout = secs()?,
            "upstream_allow" if v == "none" => c.upstream_allow = UpstreamAllowList::deny_all(),
            "upstream_allow" => {
                c.upstream_allow = UpstreamAllowList::parse(v.split_whitespace())
                    .map_err(|(p, e)| format!("upstream_allow {p}: {e}"))?
            }
            "data_timeout" => c.data_timeout = secs()?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(c)
}

/// The SMTP words of the transcripts: its configuration, its job results and jobs.
pub(super) struct SmtpWords;

impl Words for SmtpWords {
    type Session = SmtpSession;

    fn start(options: &[(String, String)], now: Instant) -> Result<SmtpSession, String> {
        Ok(SmtpSession::new(config(options)?, now))
    }

    fn job_result(spec: &str, payload: &mut Payload) -> Result<JobResult, String> {
        job_result(spec, payload)
    }

    fn show_job(job: Job, observed: &mut VecDeque<String>) -> Result<(), String> {
        match job {
            Job::CheckRecipient { address } => {
                observed.push_back(format!("A: check-recipient {address}"))
            }
            Job::Protect(job) => {
                let mut line = format!(
                    "A: protect from=<{}> to={}",
                    job.envelope_from,
                    job.recipients.join(",")
                );
                // A_21457: the Konnektor the login named travels with the job.
                if let Some(k) = &job.login.konnektor_id {
                    line.push_str(&format!(" konnektor={k}"));
                }
                observed.push_back(line);
                push_lines(observed, "J", job.message.as_slice());
            }
            Job::DiscardKasData { link } => {
                observed.push_back(format!("A: discard-kas-data {}", link.expose()))
            }
            other => return Err(format!("no SMTP job: {other:?}")),
        }
        Ok(())
    }
}

/// The SMTP job results: `recipient …`, `protect-failed …`, `protected …`,
/// `kas-data-discarded`.
fn job_result(spec: &str, payload: &mut Payload) -> Result<JobResult, String> {
    let mut words = spec.split(' ');
    let kind = words.next().unwrap_or_default();
    Ok(match kind {
        "recipient" => {
            let address = words.next().ok_or("recipient needs an address")?.to_owned();
            let verdict = match words.next() {
                Some("usable") => RecipientVerdict::Usable,
                Some("no-certificate") => RecipientVerdict::NoValidCertificate,
                Some("conflicting-ids") => RecipientVerdict::ConflictingTelematikIds,
                Some("directory-unavailable") => RecipientVerdict::DirectoryUnavailable,
                other => return Err(format!("unknown verdict {other:?}")),
            };
            JobResult::RecipientChecked { address, verdict }
        }
        "kas-data-discarded" => JobResult::KasDataDiscarded,
        "protect-failed" => JobResult::Protected(Err(ProtectionFailure {
            reason: spec["protect-failed".len()..].trim().to_owned(),
        })),
        "protected" => {
            let mut recipients = Vec::new();
            let mut notice_route = None;
            let mut kas_link = None;
            for w in words {
                if let Some(link) = w.strip_prefix("kas=") {
                    kas_link = Some(komle_core::kas::KasLink::new(link.to_owned()));
                    continue;
                }
                if let Some(k) = w.strip_prefix("keep=") {
                    recipients = k
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                } else if let Some(n) = w.strip_prefix("notice=") {
                    let (f, t) = n.split_once('>').ok_or("notice=FROM>TO")?;
                    notice_route = Some((f.to_owned(), t.to_owned()));
                } else {
                    return Err(format!("unknown word {w:?}"));
                }
            }
            let notice = notice_route.map(|(f, t)| Notice {
                envelope_from: f,
                recipient: t,
                message: SecretBytes::from(core::mem::take(&mut payload.notice)),
            });
            JobResult::Protected(Ok(ProtectedMessage {
                message: SecretBytes::from(core::mem::take(&mut payload.message)),
                recipients,
                notice,
                kas_link,
            }))
        }
        other => return Err(format!("unknown SMTP event {other:?}")),
    })
}
