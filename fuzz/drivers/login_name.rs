//! The login-name grammar (A_2010) on arbitrary input: never panics, and what parses keeps
//! its fields free of the separator.
use komle_core::login_name::LoginName;

/// One fuzz input; shared by the fuzz target and `core/tests/fuzz_regressions.rs`.
pub fn run(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(n) = LoginName::parse(s)
    {
        assert!(!n.user.is_empty() && !n.user.contains('#'));
        assert!(n.port != 0);
        assert!(!n.workplace_id.contains('#'));
    }
}
