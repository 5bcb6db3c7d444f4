//! The KOM-LE login-name grammar (KOM-LE-A_2010, Abb_MTA_Nutzername; POP3: §3.3.2.2).
//!
//! A mail client cannot tell the Clientmodul where its MTA is or which card context to use, so
//! both ride in the user name:
//!
//! ```text
//! user#host:port#MandantId#ClientSystemId#WorkplaceId[#UserId][#…]
//! ```
//!
//! `host` is a DNS name, an IPv4 address or a bracketed IPv6 literal (`[2001:db8::1]:465`).
//! Fields after WorkplaceId are ignored on the SMTP side (A_2010); on the POP3 side the first of
//! them is the optional UserId of a professional card (HBA), where `*` means "not used".

use core::fmt;

/// A parsed login name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName {
    /// The real account name at the mail service (the part before the first `#`).
    pub user: String,
    /// Host of the MTA or POP3 server, without brackets for IPv6 literals.
    pub host: String,
    pub port: u16,
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    /// Sixth field, if present and not `*` (used by the POP3 side for an HBA).
    pub user_id: Option<String>,
}

/// Why a login name is incomplete; answered with 501 5.5.4 (SMTP) or -ERR (POP3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginNameError {
    MissingUser,
    MissingServerAddress,
    MissingPort,
    InvalidPort,
    InvalidHost,
    MissingMandantId,
    MissingClientSystemId,
    MissingWorkplaceId,
}

impl fmt::Display for LoginNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingUser => "Benutzername fehlt",
            Self::MissingServerAddress => {
                "Benutzername muss die Adresse und die Portnummer des Servers enthalten"
            }
            Self::MissingPort => "Benutzername muss die Portnummer des Servers enthalten",
            Self::InvalidPort => "Die Portnummer im Benutzernamen ist ungueltig",
            Self::InvalidHost => "Die Serveradresse im Benutzernamen ist ungueltig",
            Self::MissingMandantId => "Benutzername muss die MandantId enthalten",
            Self::MissingClientSystemId => "Benutzername muss die ClientSystemId enthalten",
            Self::MissingWorkplaceId => "Benutzername muss die WorkplaceId enthalten",
        })
    }
}

impl LoginName {
    /// Parses a login name (KOM-LE-A_2010).
    pub fn parse(s: &str) -> Result<Self, LoginNameError> {
        let mut fields = s.split('#');
        let user = fields.next().unwrap_or_default();
        if user.is_empty() {
            return Err(LoginNameError::MissingUser);
        }
        let server = fields.next().unwrap_or_default();
        if server.is_empty() {
            return Err(LoginNameError::MissingServerAddress);
        }
        let (host, port) = split_host_port(server)?;
        let mandant_id = required(fields.next(), LoginNameError::MissingMandantId)?;
        let client_system_id = required(fields.next(), LoginNameError::MissingClientSystemId)?;
        let workplace_id = required(fields.next(), LoginNameError::MissingWorkplaceId)?;
        let user_id = fields
            .next()
            .filter(|f| !f.is_empty() && *f != "*")
            .map(str::to_owned);
        Ok(Self {
            user: user.to_owned(),
            host,
            port,
            mandant_id,
            client_system_id,
            workplace_id,
            user_id,
        })
    }
}

impl LoginName {
    /// The Konnektor call context this login name carries (MandantId, ClientSystemId,
    /// WorkplaceId and, for a professional card, UserId).
    pub fn call_context(&self) -> crate::konnektor::CallContext {
        crate::konnektor::CallContext {
            mandant_id: self.mandant_id.clone(),
            client_system_id: self.client_system_id.clone(),
            workplace_id: self.workplace_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

fn required(field: Option<&str>, missing: LoginNameError) -> Result<String, LoginNameError> {
    match field {
        Some(f) if !f.is_empty() => Ok(f.to_owned()),
        _ => Err(missing),
    }
}

fn split_host_port(server: &str) -> Result<(String, u16), LoginNameError> {
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(LoginNameError::InvalidHost)?;
        if host.parse::<core::net::Ipv6Addr>().is_err() {
            return Err(LoginNameError::InvalidHost);
        }
        let port = after.strip_prefix(':').ok_or(LoginNameError::MissingPort)?;
        (host, port)
    } else {
        let (host, port) = server.rsplit_once(':').ok_or(LoginNameError::MissingPort)?;
        if host.contains(':') {
            // An IPv6 literal must be bracketed, otherwise the port is ambiguous.
            return Err(LoginNameError::InvalidHost);
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(LoginNameError::MissingServerAddress);
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(LoginNameError::InvalidHost);
    }
    if port.is_empty() {
        return Err(LoginNameError::MissingPort);
    }
    let port: u16 = port.parse().map_err(|_| LoginNameError::InvalidPort)?;
    if port == 0 {
        return Err(LoginNameError::InvalidPort);
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2010_spec_example() {
        let n = LoginName::parse("erik.mustermann@komle.de#mail.komle.de:465#1#KOM_LE#7").unwrap();
        assert_eq!(n.user, "erik.mustermann@komle.de");
        assert_eq!(n.host, "mail.komle.de");
        assert_eq!(n.port, 465);
        assert_eq!(n.mandant_id, "1");
        assert_eq!(n.client_system_id, "KOM_LE");
        assert_eq!(n.workplace_id, "7");
        assert_eq!(n.user_id, None);
    }

    #[test]
    fn a_2010_extra_fields_are_ignored_and_user_id_is_the_sixth() {
        let n = LoginName::parse("a@b.de#h:1#M#C#W#HBA-7#K1#more").unwrap();
        assert_eq!(n.user_id.as_deref(), Some("HBA-7"));
        let n = LoginName::parse("a@b.de#h:1#M#C#W#*#K1").unwrap();
        assert_eq!(n.user_id, None);
    }

    #[test]
    fn a_2010_ipv6_literal_and_ipv4_hosts() {
        let n = LoginName::parse("u#[2001:db8::1]:587#M#C#W").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("2001:db8::1", 587));
        let n = LoginName::parse("u#127.0.0.1:2465#M#C#W").unwrap();
        assert_eq!((n.host.as_str(), n.port), ("127.0.0.1", 2465));
        assert_eq!(
            LoginName::parse("u#2001:db8::1:587#M#C#W"),
            Err(LoginNameError::InvalidHost)
        );
        assert_eq!(
            LoginName::parse("u#[nonsense]:587#M#C#W"),
            Err(LoginNameError::InvalidHost)
        );
    }

    #[test]
    fn a_2010_missing_parts_are_reported_precisely() {
        use LoginNameError::*;
        let cases = [
            ("mustermann@komle.de", MissingServerAddress),
            ("#h:1#M#C#W", MissingUser),
            ("u#h#M#C#W", MissingPort),
            ("u#h:#M#C#W", MissingPort),
            ("u#h:99999#M#C#W", InvalidPort),
            ("u#h:0#M#C#W", InvalidPort),
            ("u#:25#M#C#W", MissingServerAddress),
            ("u#h:25", MissingMandantId),
            ("u#h:25#M", MissingClientSystemId),
            ("u#h:25#M#C", MissingWorkplaceId),
            ("u#h:25#M#C#", MissingWorkplaceId),
            ("u#h:25##C#W", MissingMandantId),
            ("u#ho st:25#M#C#W", InvalidHost),
        ];
        for (input, want) in cases {
            assert_eq!(LoginName::parse(input), Err(want), "{input}");
        }
    }
}
