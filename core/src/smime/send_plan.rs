//! The single entry point the SMTP proxy calls to protect a mail (gemSpec_CM_KOMLE §3.2.4).
//!
//! Pure and step-wise, because between the steps the proxy talks to the directory and the
//! Konnektor:
//!
//! 1. [`SendPlan::start`] with the mail (DATA, dot-unstuffed) and the envelope recipients:
//!    either [`SendStart::Forward`] (KOM-LE-A_2029: send the attached KOM-LE message as-is) or a
//!    plan whose [`SendPlan::addresses_to_look_up`] names the addresses to find encryption
//!    certificates for (recipients and sender, A_2025).
//! 2. [`SendPlan::with_certificates`] with the lookup results: removes unencryptable addresses
//!    (A_2028), prepares the notice to the sender (A_2024/A_2192), the recipient-emails attribute
//!    (A_2027) and the sign input (A_2019 step 1, sample 01).
//! 3. SignDocument with [`Protect::sign_input_parts`]; [`Protect::encrypt_input`] wraps the
//!    SignedData (step 2); EncryptDocument with it and [`Protect::encryption_certificates`];
//!    [`Protect::finish`] builds the outer message (step 4, A_2193).

use super::addresses;
use super::error::SmimeError;
use super::forward::forwarded_komle_message;
use super::headers;
use super::outer::build_outer;
use super::recipient_emails;
use super::sender_notice::{LeftOut, LeftOutReason, sender_notice};
use super::wrap::{SignInput, SignRest, sign_input, wrap_signed};
use crate::secret::SecretBytes;

/// Result of step 1.
#[derive(Debug)]
pub enum SendStart {
    /// KOM-LE-A_2029: hand these bytes (the forwarded KOM-LE message) to the MTA unchanged.
    Forward(Vec<u8>),
    /// Look up certificates, then continue with [`SendPlan::with_certificates`].
    Protect(SendPlan),
}

/// A mail waiting for its certificate lookups. It keeps the mail (wiped when dropped,
/// KOM-LE-A_2005) so that [`SendPlan::with_certificates`] can be run again when the Konnektor
/// refused cached certificates (Abbildung 8) without anyone keeping a second copy.
#[derive(Debug)]
pub struct SendPlan {
    mail: SecretBytes,
    sender: String,
    recipients: Vec<String>,
}

/// What the directory said about one address.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Valid encryption certificates (DER), all to be used (old and new card).
    Found(Vec<Vec<u8>>),
    /// None found or none valid.
    NoCertificate,
    /// Certificates found but with different Telematik-IDs.
    DifferentTelematikIds,
    /// The Konnektor refused every certificate found for the address at EncryptDocument
    /// (revoked, no path to a TI trust anchor) and the directory had no replacement
    /// (Abbildung 8).
    Refused,
}

/// Result of step 2.
#[derive(Debug)]
pub enum Prepared {
    /// Sign, encrypt and send.
    Protect(Protect),
    /// No recipient left to send to (A_2025): nothing is sent; the notice says why.
    NothingToSend {
        /// Plain notice to the sender (A_2024).
        sender_notice: Vec<u8>,
    },
}

/// A mail ready for SignDocument / EncryptDocument.
#[derive(Debug)]
pub struct Protect {
    /// The head of the sign input (see [`super::wrap::SignInput`]).
    sign_head: SecretBytes,
    /// The rest of the sign input when it is not the plan's mail from `sign_rest_from` on
    /// (line ends converted, or addresses removed from the header).
    sign_rest: Option<SecretBytes>,
    sign_rest_from: usize,
    /// DER of the recipient-emails attribute for SignDocument and EncryptDocument (A_2027).
    pub recipient_emails: Vec<u8>,
    /// All certificates to encrypt for (recipients and sender).
    pub encryption_certificates: Vec<Vec<u8>>,
    /// Envelope recipients to send the protected message to.
    pub recipients: Vec<String>,
    /// Notice to the sender when addresses were left out (A_2024).
    pub sender_notice: Option<Vec<u8>>,
    /// Header block of the protected copy (for the outer message).
    header: Vec<u8>,
}

impl SendPlan {
    /// Step 1. `envelope_recipients` are the RCPT TO addresses.
    pub fn start(mail: Vec<u8>, envelope_recipients: &[String]) -> Result<SendStart, SmimeError> {
        // Wiped on every way out (A_2005), kept only by the plan.
        let mail = SecretBytes::from(mail);
        if let Some(forwarded) = forwarded_komle_message(mail.as_slice()) {
            return Ok(SendStart::Forward(forwarded));
        }
        let sender = addresses::sender_address(mail.as_slice())?;
        Ok(SendStart::Protect(SendPlan {
            mail,
            sender,
            recipients: envelope_recipients.to_vec(),
        }))
    }

    /// The sender address (A_2022).
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Addresses to find encryption certificates for: the recipients and the sender (A_2025),
    /// each once (case-insensitive).
    pub fn addresses_to_look_up(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.recipients.iter().chain(std::iter::once(&self.sender)) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(a)) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Step 2. `lookups` answers [`SendPlan::addresses_to_look_up`]; an address without an
    /// answer counts as having no certificate. `now` (Unix seconds) dates the notice.
    ///
    /// Every address without a usable certificate, the sender's own included (KOM-LE-A_2028),
    /// is removed from the protected copy and named in the notice (A_2024, A_2192); the
    /// message is then encrypted for the others. Only when no recipient is left the result is
    /// [`Prepared::NothingToSend`] (A_2025).
    ///
    /// Borrows the plan: the only full-size buffer made is the sign input (plus the mail
    /// without the left-out addresses, freed before returning, when there are any).
    pub fn with_certificates(
        &self,
        lookups: &[(String, Lookup)],
        now: i64,
    ) -> Result<Prepared, SmimeError> {
        let find = |a: &str| {
            lookups
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                .map(|(_, l)| l)
        };
        let mut left_out = Vec::new();
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut recipients = Vec::new();
        for a in self.addresses_to_look_up() {
            match find(&a) {
                Some(Lookup::Found(certs)) if !certs.is_empty() => {
                    for c in certs {
                        pairs.push((a.clone(), c.clone()));
                    }
                    if self.recipients.iter().any(|r| r.eq_ignore_ascii_case(&a)) {
                        recipients.push(a);
                    }
                }
                Some(Lookup::DifferentTelematikIds) => left_out.push(LeftOut {
                    address: a,
                    reason: LeftOutReason::DifferentTelematikIds,
                }),
                Some(Lookup::Refused) => left_out.push(LeftOut {
                    address: a,
                    reason: LeftOutReason::CertificateRefused,
                }),
                _ => left_out.push(LeftOut {
                    address: a,
                    reason: LeftOutReason::NoCertificate,
                }),
            }
        }
        let mail = self.mail.as_slice();
        let head = headers::parse(mail)?;
        let notice = (!left_out.is_empty()).then(|| {
            sender_notice(
                &self.sender,
                &head.value(mail, "Subject").unwrap_or_default(),
                &head.value(mail, "Message-ID").unwrap_or_default(),
                &left_out,
                now,
            )
        });
        // A_2028 names the sender too: a sender without a usable certificate is removed from
        // From/Sender like a recipient and the message goes to the recipients; only A_2025
        // (no recipient at all) stops the send.
        if recipients.is_empty() {
            return Ok(Prepared::NothingToSend {
                sender_notice: notice.unwrap_or_default(),
            });
        }
        let removed: Vec<String> = left_out.iter().map(|l| l.address.clone()).collect();
        let without_removed = if removed.is_empty() {
            None
        } else {
            Some(SecretBytes::from(addresses::remove_addresses(
                mail, &removed,
            )?))
        };
        let protected = without_removed.as_ref().map_or(mail, SecretBytes::as_slice);
        let SignInput {
            head: sign_head,
            rest,
        } = sign_input(protected)?;
        let (sign_rest, sign_rest_from) = match rest {
            // The plan's own mail: the hot path, no copy.
            SignRest::Mail(from) if without_removed.is_none() => (None, from),
            SignRest::Mail(from) => (
                Some(SecretBytes::from(protected.get(from..).unwrap_or_default())),
                0,
            ),
            SignRest::Converted(bytes) => (Some(SecretBytes::from(bytes)), 0),
        };
        let sign_head = SecretBytes::from(sign_head);
        let pair_refs: Vec<(&str, &[u8])> = pairs
            .iter()
            .map(|(a, c)| (a.as_str(), c.as_slice()))
            .collect();
        let recipient_emails = recipient_emails::build(&pair_refs)?;
        let mut encryption_certificates: Vec<Vec<u8>> = Vec::new();
        for (_, c) in pairs {
            if !encryption_certificates.contains(&c) {
                encryption_certificates.push(c);
            }
        }
        let header = protected[..headers::parse(protected)?.end].to_vec();
        Ok(Prepared::Protect(Protect {
            sign_head,
            sign_rest,
            sign_rest_from,
            recipient_emails,
            encryption_certificates,
            recipients,
            sender_notice: notice,
            header,
        }))
    }
}

impl Protect {
    /// Step 1 of A_2019: the sign input (sample 01 form) in the two parts to be signed as one,
    /// for SignDocument. `plan` is the plan this was prepared from (the parts borrow its mail).
    pub fn sign_input_parts<'a>(&'a self, plan: &'a SendPlan) -> [&'a [u8]; 2] {
        let rest = match &self.sign_rest {
            Some(rest) => rest.as_slice(),
            None => plan
                .mail
                .as_slice()
                .get(self.sign_rest_from..)
                .unwrap_or_default(),
        };
        [self.sign_head.as_slice(), rest]
    }

    /// The whole sign input in one buffer (tests, benchmarks; the pipeline uses
    /// [`Protect::sign_input_parts`]).
    pub fn sign_input(&self, plan: &SendPlan) -> Vec<u8> {
        self.sign_input_parts(plan).concat()
    }

    /// Step 2 of A_2019: the signed-data MIME entity to pass to EncryptDocument.
    pub fn encrypt_input(&self, signed_cms: &[u8]) -> Vec<u8> {
        wrap_signed(signed_cms)
    }

    /// Step 4 / A_2193: the outer message for the MTA.
    pub fn finish(&self, encrypted_cms: &[u8]) -> Result<Vec<u8>, SmimeError> {
        build_outer(&self.header, encrypted_cms)
    }

    /// [`Protect::finish`] with the KIM 1.5 outer fields (A_21388-01, A_21387-01, A_22417).
    pub fn finish_with(
        &self,
        encrypted_cms: &[u8],
        fields: &super::outer::OuterFields<'_>,
    ) -> Result<Vec<u8>, SmimeError> {
        super::outer::build_outer_with(&self.header, encrypted_cms, fields)
    }
}
