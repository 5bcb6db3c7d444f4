//! Property tests of the login-name grammar of gemSpec_CM_KOMLE V1.16 (A_21519-02 SMTP,
//! A_21518-02 POP3, A_21457/A_21517 KonnektorId): generated names with and without the
//! optional fields parse back to exactly the fields they were built from.

use komle_core::login_name::{KonnektorId, LoginGrammar, LoginName, LoginNameError};
use proptest::prelude::*;

fn field() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

proptest! {
    #[test]
    fn a_21518_02_pop3_optional_fields_keep_their_positions(
        user in "[a-z]{1,8}@[a-z]{1,8}\\.de",
        mandant in field(), cs in field(), wp in field(),
        user_id in proptest::option::of(field()),
        konn in proptest::option::of(field()),
    ) {
        let mut name = format!("{user}#mail.example:995#{mandant}#{cs}#{wp}");
        match (&user_id, &konn) {
            (None, None) => {}
            (Some(u), None) => name.push_str(&format!("#{u}")),
            (None, Some(k)) => name.push_str(&format!("#*#{k}")),
            (Some(u), Some(k)) => name.push_str(&format!("#{u}#{k}")),
        }
        let n = LoginName::parse_pop3(&name).unwrap();
        prop_assert_eq!(&n.user, &user);
        prop_assert_eq!(n.port, 995);
        prop_assert_eq!(&n.mandant_id, &mandant);
        prop_assert_eq!(&n.client_system_id, &cs);
        prop_assert_eq!(&n.workplace_id, &wp);
        prop_assert_eq!(n.user_id, user_id);
        prop_assert_eq!(n.konnektor_id.map(|k| k.as_str().to_owned()), konn);
    }

    #[test]
    fn a_21519_02_smtp_sixth_field_is_always_the_konnektor_id(
        wp in field(), konn in field(), extra in proptest::option::of(field()),
    ) {
        let mut name = format!("u@p.de#mta.example:465#1#KOM_LE#{wp}#{konn}");
        if let Some(e) = &extra {
            name.push_str(&format!("#{e}"));
        }
        let n = LoginName::parse_smtp(&name).unwrap();
        prop_assert_eq!(n.user_id, None);
        prop_assert_eq!(n.konnektor_id, Some(KonnektorId::new(&konn).unwrap()));
    }

    #[test]
    fn a_21519_02_a_21518_02_any_input_parses_or_names_the_missing_part(s in "\\PC{0,80}") {
        for g in [LoginGrammar::Smtp, LoginGrammar::Pop3] {
            match LoginName::parse_for(g, &s) {
                Ok(n) => {
                    prop_assert!(!n.user.is_empty());
                    if let Some(k) = n.konnektor_id {
                        prop_assert!(!k.as_str().contains('#') && k.as_str() != "*");
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}

#[test]
fn a_21457_incomplete_smtp_name_with_konnektor_id_is_still_incomplete() {
    assert_eq!(
        LoginName::parse_smtp("u#h:25#M#C"),
        Err(LoginNameError::MissingWorkplaceId)
    );
}
