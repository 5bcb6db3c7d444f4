//! The single entry point the POP3 proxy calls on RETR (gemSpec_CM_KOMLE §3.3).
//!
//! Pure and step-wise like [`super::send_plan`]:
//!
//! 1. [`on_retrieve`] with the retrieved message (dot-unstuffed): [`Retrieved::PassThrough`]
//!    (no KOM-LE message), [`Retrieved::Deliver`] (an error mail to hand out instead, e.g. 4008
//!    or a malformed CMS) or [`Retrieved::Decrypt`].
//! 2. DecryptDocument with [`Opening::cms`]. On failure deliver [`Opening::failed`]; on success
//!    call [`Opening::decrypted`] with the plaintext: either a mail to deliver (no signed-data
//!    inside) or [`Verifying`].
//! 3. VerifyDocument with [`Verifying::verify_input`], then [`Verifying::finish`] with the
//!    answer builds the mail for the client (A_2048, A_2050, A_2179, PDF report).
//!
//! Every input yields one of these results; nothing here panics on message data.

use super::auth_enveloped;
use super::integrity::{self, IntegrityCheckResult, Verification};
use super::opened_mail::{DeliveryOptions, opened_mail, opened_mail_in_place};
use super::receive::{self, DecryptionFailure, Incoming};
use super::recipient_emails::RecipientEmail;
use super::signed_data;
use super::signed_entity::{self, SignedCms};
use crate::secret::SecretBytes;

/// Result of step 1.
#[derive(Debug)]
pub enum Retrieved {
    /// Not a KOM-LE message: hand it to the client unchanged.
    PassThrough,
    /// Hand this generated mail to the client instead of the received one.
    Deliver(Vec<u8>),
    /// Decrypt with the Konnektor.
    Decrypt(Opening),
}

/// A KOM-LE message waiting for DecryptDocument.
#[derive(Debug)]
pub struct Opening {
    /// The AuthEnvelopedData for DecryptDocument. A caller that will not ask again (last card)
    /// may take it out once the request is built: nothing else reads it.
    pub cms: Vec<u8>,
    outer_header: Vec<u8>,
    unprotected: Option<Vec<RecipientEmail>>,
}

/// Step 1. `now` is Unix seconds (dates generated mails).
pub fn on_retrieve(mail: &[u8], now: i64) -> Retrieved {
    match receive::classify(mail) {
        Ok(Incoming::NotKomLe) => Retrieved::PassThrough,
        Ok(Incoming::UnsupportedVersion(v)) => {
            Retrieved::Deliver(receive::unsupported_version_mail(mail, &v, now))
        }
        Ok(Incoming::KomLe(m)) => match auth_enveloped::unprotected_recipient_emails(&m.cms) {
            Ok(unprotected) => Retrieved::Decrypt(Opening {
                cms: m.cms,
                outer_header: m.outer_header,
                unprotected,
            }),
            Err(_) => Retrieved::Deliver(receive::decryption_failed_mail(
                mail,
                DecryptionFailure::WrongFormat,
                "",
                now,
            )),
        },
        Err(_) => Retrieved::Deliver(receive::decryption_failed_mail(
            mail,
            DecryptionFailure::WrongFormat,
            "",
            now,
        )),
    }
}

/// Result of step 2.
#[derive(Debug)]
pub enum Decrypted {
    /// Verify with the Konnektor.
    Verify(Verifying),
    /// Deliver this mail (the plaintext held no signed-data entity: "wrong format").
    Deliver(Vec<u8>),
}

impl Opening {
    /// KOM-LE-A_2043..A_2045: the recipient-emails entries (issuer and serial of the encryption
    /// certificate) for the fetching `user`, so the caller decrypts only with that user's card
    /// and key. Empty when the message names no certificate for the user.
    pub fn entries_for(&self, user: &str) -> Vec<&RecipientEmail> {
        self.unprotected
            .iter()
            .flatten()
            .filter(|r| r.address.eq_ignore_ascii_case(user))
            .collect()
    }

    /// The mail to deliver when DecryptDocument failed; `received` is the message as retrieved,
    /// `user` the fetching user's address (named in the advice to forward it to oneself).
    pub fn failed(
        &self,
        received: &[u8],
        failure: DecryptionFailure,
        user: &str,
        now: i64,
    ) -> Vec<u8> {
        receive::decryption_failed_mail(received, failure, user, now)
    }

    /// Step 2 with DecryptDocument's plaintext (the signed-data entity, sample 03). The
    /// plaintext is wiped when the [`Verifying`] is dropped (A_2005); the AuthEnvelopedData is
    /// freed here, nothing reads it after decryption.
    pub fn decrypted(
        mut self,
        plaintext: Vec<u8>,
        now: i64,
        options: DeliveryOptions,
    ) -> Decrypted {
        let plaintext = SecretBytes::from(plaintext);
        self.cms = Vec::new();
        match signed_entity::locate(plaintext.as_slice()) {
            Ok(cms) => Decrypted::Verify(Verifying {
                plaintext,
                cms,
                opening: self,
            }),
            Err(_) => Decrypted::Deliver(opened_mail(
                &self.outer_header,
                None,
                IntegrityCheckResult::NoSignature,
                None,
                "Die entschlüsselte Nachricht enthält keine signierten Daten.",
                now,
                options,
            )),
        }
    }
}

/// A decrypted message waiting for VerifyDocument.
#[derive(Debug)]
pub struct Verifying {
    plaintext: SecretBytes,
    cms: SignedCms,
    opening: Opening,
}

impl Verifying {
    /// The SignedData for VerifyDocument.
    pub fn verify_input(&self) -> &[u8] {
        self.cms.bytes(self.plaintext.as_slice())
    }

    /// Step 3: checks (A_2048) and builds the mail for the client.
    pub fn finish(
        &self,
        verification: &Verification,
        now: i64,
        options: DeliveryOptions,
    ) -> Vec<u8> {
        self.finish_with_content(verification, now, options, None)
    }

    /// The signed inner mail (the message/rfc822 entity), when it can be read: the KAS branch
    /// looks for the KIM-Attachment structure in it (A_19369-02).
    pub fn inner_mail(&self) -> Option<Vec<u8>> {
        let info = signed_data::inspect(self.verify_input()).ok()?;
        let range = signed_entity::unwrap_rfc822(&info.content).ok()?;
        Some(info.content[range].to_vec())
    }

    /// [`Verifying::finish`], the checks made on the signed inner mail as always, but the
    /// delivered content taken from `content` when given: the client mail fetched from the
    /// KAS (A_19370-04) or the replacement mail of a failed download (A_19371-04, A_19372-03).
    pub fn finish_with_content(
        &self,
        verification: &Verification,
        now: i64,
        options: DeliveryOptions,
        content: Option<&[u8]>,
    ) -> Vec<u8> {
        self.finish_with(verification, now, options, content.map(Content::Borrowed))
    }

    /// [`Verifying::finish_with_content`] for the client mail fetched from the KAS, taken by
    /// value: the delivered mail is built in its buffer
    /// ([`super::opened_mail::opened_mail_in_place`]), so a large mail is held once
    /// (issue 17).
    pub fn finish_with_fetched(
        &self,
        verification: &Verification,
        now: i64,
        options: DeliveryOptions,
        content: SecretBytes,
    ) -> Vec<u8> {
        self.finish_with(verification, now, options, Some(Content::Owned(content)))
    }

    fn finish_with(
        &self,
        verification: &Verification,
        now: i64,
        options: DeliveryOptions,
        content: Option<Content<'_>>,
    ) -> Vec<u8> {
        let outer = &self.opening.outer_header;
        let fail = |detail: &str| {
            opened_mail(
                outer,
                None,
                IntegrityCheckResult::WrongFormat,
                Some(verification),
                detail,
                now,
                options,
            )
        };
        let Ok(info) = signed_data::inspect(self.verify_input()) else {
            return fail("Die signierten Daten sind kein gültiges CMS-SignedData.");
        };
        let Ok(range) = signed_entity::unwrap_rfc822(&info.content) else {
            return fail("Der signierte Inhalt ist keine message/rfc822-Einheit.");
        };
        let inner = &info.content[range];
        let result = integrity::check(
            verification,
            &info,
            self.opening.unprotected.as_deref(),
            outer,
            inner,
        );
        let detail = if result == IntegrityCheckResult::HeadersDiffer {
            format!(
                "Abweichende Kopfzeilen: {}",
                integrity::differing_headers(outer, inner).join(", ")
            )
        } else {
            String::new()
        };
        match content {
            Some(Content::Owned(mut fetched)) => opened_mail_in_place(
                outer,
                core::mem::take(fetched.as_mut_vec()),
                result,
                Some(verification),
                &detail,
                now,
                options,
            ),
            Some(Content::Borrowed(c)) => opened_mail(
                outer,
                Some(c),
                result,
                Some(verification),
                &detail,
                now,
                options,
            ),
            None => opened_mail(
                outer,
                Some(inner),
                result,
                Some(verification),
                &detail,
                now,
                options,
            ),
        }
    }
}

/// The content a [`Verifying`] delivers instead of the signed inner mail.
enum Content<'a> {
    Borrowed(&'a [u8]),
    /// Wiped on drop if an early failure does not use it.
    Owned(SecretBytes),
}
