//! The SMTP side of the transcripts: `SmtpConfig` options, the SMTP events
//! (`recipient …`, `protect-failed …`, `protected …`) and how [`SmtpAction`]s are shown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use komle_core::secret::SecretBytes;
use komle_core::smtp::{
    Notice, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpAction, SmtpConfig,
    SmtpEvent, SmtpSession,
};
use komle_core::upstream_allow::UpstreamAllowList;

use super::grammar::{ConnectionEvent, push_lines};
use super::{Payload, Replay};

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

/// An [`SmtpSession`] driven by a transcript.
pub(super) struct SmtpReplay(SmtpSession);

impl SmtpReplay {
    pub(super) fn start(options: &[(String, String)], now: Instant) -> Result<Self, String> {
        Ok(Self(SmtpSession::new(config(options)?, now)))
    }
}

impl Replay for SmtpReplay {
    fn client_data(&mut self, bytes: &[u8], now: Instant) {
        self.0.handle_client_data(bytes, now);
    }

    fn upstream_data(&mut self, bytes: &[u8], now: Instant) {
        self.0.handle_upstream_data(bytes, now);
    }

    fn event(&mut self, spec: &str, payload: &mut Payload, now: Instant) -> Result<(), String> {
        let ev = event(spec, payload)?;
        self.0.handle_event(ev, now);
        Ok(())
    }

    fn timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn drain(&mut self, observed: &mut VecDeque<String>) {
        while let Some(a) = self.0.poll_action() {
            match a {
                SmtpAction::SendToClient(b) => push_lines(observed, "M", &b),
                SmtpAction::SendToUpstream(b) => push_lines(observed, "U", &b),
                SmtpAction::ConnectUpstream { host, port } => {
                    observed.push_back(format!("A: connect {host}:{port}"))
                }
                SmtpAction::CheckRecipient { address } => {
                    observed.push_back(format!("A: check-recipient {address}"))
                }
                SmtpAction::Protect(job) => {
                    observed.push_back(format!(
                        "A: protect from=<{}> to={}",
                        job.envelope_from,
                        job.recipients.join(",")
                    ));
                    push_lines(observed, "J", job.message.as_slice());
                }
                SmtpAction::CloseClient => observed.push_back("A: close-client".into()),
                SmtpAction::CloseUpstream => observed.push_back("A: close-upstream".into()),
            }
        }
    }
}

fn event(spec: &str, payload: &mut Payload) -> Result<SmtpEvent, String> {
    if let Some(common) = ConnectionEvent::parse(spec)? {
        return Ok(match common {
            ConnectionEvent::Connected => SmtpEvent::UpstreamConnected,
            ConnectionEvent::ConnectFailed(reason) => SmtpEvent::UpstreamFailed { reason },
            ConnectionEvent::ClientClosed => SmtpEvent::ClientClosed,
            ConnectionEvent::UpstreamClosed => SmtpEvent::UpstreamClosed,
        });
    }
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
            SmtpEvent::RecipientChecked { address, verdict }
        }
        "protect-failed" => SmtpEvent::Protected(Err(ProtectionFailure {
            reason: spec["protect-failed".len()..].trim().to_owned(),
        })),
        "protected" => {
            let mut recipients = Vec::new();
            let mut notice_route = None;
            for w in words {
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
            SmtpEvent::Protected(Ok(ProtectedMessage {
                message: SecretBytes::from(core::mem::take(&mut payload.message)),
                recipients,
                notice,
            }))
        }
        other => return Err(format!("unknown SMTP event {other:?}")),
    })
}
