//! SASL LOGIN: the server asks `Username:` and `Password:` (base64), the client answers each
//! with a base64 line.

/// `Username:` in base64, the first LOGIN challenge.
pub const USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// `Password:` in base64, the second LOGIN challenge.
pub const PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{decode_b64, encode_b64};

    #[test]
    fn a_2009_login_challenges_decode_to_the_prompts() {
        assert_eq!(
            decode_b64(USERNAME_CHALLENGE.as_bytes()).unwrap(),
            b"Username:"
        );
        assert_eq!(
            decode_b64(PASSWORD_CHALLENGE.as_bytes()).unwrap(),
            b"Password:"
        );
        assert_eq!(encode_b64(b"Password:"), PASSWORD_CHALLENGE);
    }
}
