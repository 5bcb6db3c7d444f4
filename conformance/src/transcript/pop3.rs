//! The POP3 side of the transcripts: `Pop3Config` options, the POP3 events (`opened`,
//! `open-failed …`) and how [`Pop3Action`]s are shown.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use komle_core::pop3::{
    OpenFailure, OpenJob, OpenedMessage, Pop3Action, Pop3Config, Pop3Event, Pop3Session,
};
use komle_core::secret::SecretBytes;
use komle_core::upstream_allow::UpstreamAllowList;

use super::grammar::{ConnectionEvent, push_lines};
use super::{Payload, Replay};

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

/// A [`Pop3Session`] driven by a transcript.
pub(super) struct Pop3Replay(Pop3Session);

impl Pop3Replay {
    pub(super) fn start(options: &[(String, String)], now: Instant) -> Result<Self, String> {
        Ok(Self(Pop3Session::new(config(options)?, now)))
    }
}

impl Replay for Pop3Replay {
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
                Pop3Action::SendToClient(b) => push_lines(observed, "M", &b),
                Pop3Action::SendToUpstream(b) => push_lines(observed, "U", &b),
                Pop3Action::ConnectUpstream { host, port } => {
                    observed.push_back(format!("A: connect {host}:{port}"))
                }
                Pop3Action::Open(job) => {
                    observed.push_back(format!("A: open login={}", login(&job)));
                    push_lines(observed, "J", job.message.as_slice());
                }
                Pop3Action::CloseClient => observed.push_back("A: close-client".into()),
                Pop3Action::CloseUpstream => observed.push_back("A: close-upstream".into()),
            }
        }
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
    s
}

fn event(spec: &str, payload: &mut Payload) -> Result<Pop3Event, String> {
    if let Some(common) = ConnectionEvent::parse(spec)? {
        return Ok(match common {
            ConnectionEvent::Connected => Pop3Event::UpstreamConnected,
            ConnectionEvent::ConnectFailed(reason) => Pop3Event::UpstreamFailed { reason },
            ConnectionEvent::ClientClosed => Pop3Event::ClientClosed,
            ConnectionEvent::UpstreamClosed => Pop3Event::UpstreamClosed,
        });
    }
    let (kind, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    Ok(match kind {
        "opened" if rest.is_empty() => Pop3Event::Opened(Ok(OpenedMessage {
            message: SecretBytes::from(core::mem::take(&mut payload.message)),
        })),
        "open-failed" => Pop3Event::Opened(Err(OpenFailure {
            reason: rest.trim().to_owned(),
        })),
        other => return Err(format!("unknown POP3 event {other:?}")),
    })
}
