//! SASL PLAIN: `[authzid] NUL authcid NUL passwd`, base64 on the wire (RFC 4616).

use super::{Credentials, SaslError, decode_b64, encode_b64};
use crate::secret::Password;
use zeroize::Zeroize;

/// Server side: decodes a PLAIN response. An authorisation identity other than empty or equal
/// to the authentication identity is refused, since the Clientmodul cannot act for another user.
pub fn decode_response(line: &[u8]) -> Result<Credentials, SaslError> {
    let mut raw = decode_b64(line)?;
    let result = split(&raw);
    raw.zeroize();
    result
}

fn split(raw: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = raw.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() || (!authzid.is_empty() && authzid != authcid) {
        return Err(SaslError::Malformed);
    }
    let login = core::str::from_utf8(authcid).map_err(|_| SaslError::Malformed)?;
    let password = core::str::from_utf8(passwd).map_err(|_| SaslError::Malformed)?;
    Ok(Credentials {
        login: login.to_owned(),
        password: Password::new(password),
    })
}

/// Client side: the base64 initial response for `user` and `password`.
pub fn encode_response(user: &str, password: &Password) -> String {
    let mut raw = Vec::with_capacity(user.len() + password.expose().len() + 2);
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.expose().as_bytes());
    let out = encode_b64(&raw);
    raw.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2009_plain_round_trip() {
        let line = encode_response("u#h:1#M#C#W", &Password::new("pw"));
        let c = decode_response(line.as_bytes()).unwrap();
        assert_eq!(c.login, "u#h:1#M#C#W");
        assert_eq!(c.password.expose(), "pw");
    }

    #[test]
    fn a_2009_plain_rejects_foreign_authzid_and_garbage() {
        let foreign = encode_b64(b"admin\0user\0pw");
        assert_eq!(
            decode_response(foreign.as_bytes()),
            Err(SaslError::Malformed)
        );
        let same = encode_b64(b"user\0user\0pw");
        assert!(decode_response(same.as_bytes()).is_ok());
        assert_eq!(decode_response(b"!!!"), Err(SaslError::Malformed));
        assert_eq!(
            decode_response(encode_b64(b"nonul").as_bytes()),
            Err(SaslError::Malformed)
        );
        assert_eq!(decode_response(b"*"), Err(SaslError::Cancelled));
    }
}
