//! Opening a retrieved message (gemSpec_CM_KOMLE §3.3) as a sans-IO pipeline: it turns a
//! [`OpenJob`](crate::pop3::OpenJob) from the POP3 session into what the client gets, asking the
//! runtime for Konnektor calls along the way.
//!
//! ```text
//!  not KOM-LE ───────────────────────────────────────────────────► unchanged (A_2040)
//!  KOM-LE ─► recipient-emails names the user? ── no ─► error mail 01, no Konnektor call
//!            │ yes                                      (A_2043–A_2045, §3.4.4.2.1)
//!            ▼
//!            GetCards ─► card cache hit, ICCSN listed? ── no ─► ReadCardCertificate per card
//!            │ yes (A_2060)                                    until one matches (A_2061)
//!            ▼                                                 none: error mail 01 (A_2062)
//!            GetPinStatus ─► VerifyPin if VERIFIABLE (§3.8.4) ─► DecryptDocument ─► VerifyDocument
//!                  │ not unlockable (A_2063)      │ fails                 │
//!                  ▼                              ▼                       ▼
//!            error mail with the original (A_2046, A_2047-02)   mail with notes + PDF (A_2050-05)
//!                                                               or warning (A_23165)
//! ```
//!
//! The runtime loop is the same as for [`crate::protect`] (the words of
//! [`crate::konnektor::call`]): call [`Reception::step`], perform the [`Step`], feed the body
//! to [`Reception::konnektor_answer`] or the typed transport failure to
//! [`Reception::transport_failed`], together with the process-wide [`CardCache`], until
//! [`Step::Done`]. A second `step()` before the answer, or an answer nobody asked for, ends
//! the pipeline with a failure.
//!
//! # Which card decrypts (gemSpec_CM_KOMLE §3.4.4.2.1, §3.8.4)
//!
//! 1. The fetching user's address is the POP3 login name's part before the first `#`
//!    (KOM-LE-A_2044). The unprotected recipient-emails attribute of the AuthEnvelopedData
//!    names, per address, the certificates (IssuerAndSerialNumber) the message was encrypted
//!    for; only those named for the user's address count (A_2043, A_2059). None: decryption
//!    counts as failed (§3.4.4.2.1, 1.16: „Wenn es keinen RecipientIdentifier gibt, der dem
//!    POP3-Nutzernamen des Empfängers entspricht, wird die Entschlüsselung als fehlgeschlagen
//!    betrachtet“), the user gets the A_2046 error mail with `X-KIM-DecryptionResult: 01` and
//!    the encrypted original, and no Konnektor call is made: another user's key is never
//!    tried (A_2045).
//! 2. GetCards lists the cards of the call context. Candidates are every SM-B and, only when
//!    the login name carries a UserId (needed for HBA access, §3.4.2.2), the HBAs.
//! 3. The [`CardCache`] maps (address, certificate ID) to the ICCSN of the card found earlier
//!    (A_2060); a hit whose ICCSN GetCards still lists is used without further calls. Entries
//!    live for `TTL_EMAIL_ICCSN` (Tab_Konf_Param: 30 days, [`TTL_EMAIL_ICCSN`]), measured in
//!    the pipeline's `now`.
//! 4. Otherwise ReadCardCertificate (C.ENC) is asked of each candidate in GetCards order until
//!    one card's certificate is among the user's certificate IDs; that assignment is cached
//!    (A_2061). No such card: error mail 01 (A_2062). A card whose certificate cannot be read
//!    is skipped; no answer at all is 03.
//! 5. Only that card is unlocked (GetPinStatus/VerifyPin, PIN.SMC or PIN.CH, A_2063) and asked
//!    to decrypt. A message for the practice's address opens with the SM-B, one for a
//!    physician's address with that physician's HBA (in the session that carries the UserId).
//!
//! Tests: `open_pipeline::a_2043_a_2059_message_for_hba_user_a_opens_only_with_a_card_in_a_session`,
//! `open_pipeline::a_2045_other_users_of_the_practice_get_01_and_a_card_is_never_used_for_them`,
//! `open_pipeline::a_2045_message_for_a_and_b_is_opened_by_each_with_the_own_card`,
//! `open_pipeline::a_2059_message_for_the_practice_address_opens_with_the_smb`,
//! `open_pipeline::a_2062_hba_user_without_user_id_gets_01_and_no_decryption`,
//! `open_pipeline::a_2060_a_2061_card_cache_is_used_within_ttl_email_iccsn_and_refreshed_after`,
//! `open_pipeline::a_2060_remembered_card_that_is_gone_is_not_used`; end to end with Dovecot:
//! `e2e_receive::a_2045_message_for_hba_user_opens_only_in_that_users_pop3_session`.
//!
//! Not covered: ReadCardCertificate is asked for the RSA C.ENC only (CertificateService 6.0.1
//! has no `Crypt` element); a message encrypted for a user's ECC certificate alone does not
//! find the card (01).
//!
//! # Every `X-KIM-*` value this module writes, and the test that produces it
//!
//! Tables: Tab_Fehlertext_Entschl (A_2047-02) and Tab_Verm_Sig_Prüf (A_2050-05, A_23165) of
//! gemSpec_CM_KOMLE 1.16; `X…` are our vendor codes for errors outside them. `open_pipeline`
//! is `conformance/tests/open_pipeline.rs` (core pipeline + Konnektor simulator),
//! `smime_receive` is `core/tests/smime_receive.rs`, `fault_loop_pop3` is
//! `runtime-smol/tests/fault_loop_pop3.rs`.
//!
//! | Header | Value | When | Test |
//! |---|---|---|---|
//! | `X-KIM-DecryptionResult` | `00` | decrypted | `open_pipeline::a_2048_a_2179_protected_message_opens_with_note_headers_and_report` |
//! | `X-KIM-DecryptionResult` | `01` | no usable key: user not in recipient-emails, no card of the user, 4253, 4101, 4063, 4085 | `open_pipeline::a_2046_message_for_a_card_that_is_not_present_becomes_the_error_mail`, `open_pipeline::a_2045_other_users_of_the_practice_get_01_and_a_card_is_never_used_for_them` |
//! | `X-KIM-DecryptionResult` | `02` | not the KOM-LE profile; Konnektor 4115/4112 | `smime_receive::a_2046_truncated_cms_or_base64_yields_wrong_format_mail` |
//! | `X-KIM-DecryptionResult` | `03` | Konnektor not answering (GetCards, DecryptDocument) | `open_pipeline::a_2047_02_konnektor_not_answering_decrypt_document_is_03`, `fault_loop_pop3` |
//! | `X-KIM-DecryptionResult` | `X<code>` | other Konnektor code, e.g. `X4141` corrupted ciphertext | `open_pipeline::a_2047_02_corrupted_ciphertext_gets_a_vendor_code_not_key_not_found` |
//! | `X-KIM-DecryptionResult` | `X01` | DecryptDocument answer unreadable, no gematik code | `open_pipeline::a_2047_02_unreadable_decrypt_document_answer_is_x01` |
//! | `X-KIM-DecryptionResult` | `X02` | no card of the user could be unlocked (PIN blocked), A_2063 | `open_pipeline::a_2063_a_blocked_pin_abandons_decryption` |
//! | `X-KIM-IntegrityCheckResult` | `01` | VALID, profile, recipient-emails and headers match | `open_pipeline::a_2179_01_a_2050_05_notes_are_appended_to_the_text_for_01_and_07` |
//! | `X-KIM-IntegrityCheckResult` | `02` | 4115, or report: SigMathOK invalid / IncorrectSignature | `open_pipeline::a_2050_05_broken_signature_reported_only_in_the_report_is_02` |
//! | `X-KIM-IntegrityCheckResult` | `03` | 4253, or no signed data after decryption | `smime_receive::a_2048_plaintext_without_signed_data_gives_03` |
//! | `X-KIM-IntegrityCheckResult` | `04` | 4112, or signed data not in the profile | `open_pipeline::gematik_sample_05_decrypts_and_its_damaged_signed_data_is_reported_as_wrong_format` |
//! | `X-KIM-IntegrityCheckResult` | `05` | 4206, or report: path invalid (forged, expired, revoked signer) | `open_pipeline::a_2050_05_a_23165_forged_sender_certificate_is_05_and_the_content_is_replaced` |
//! | `X-KIM-IntegrityCheckResult` | `06` | a Konnektor verdict or fault whose code the table does not place | `open_pipeline::a_23165_verify_document_fault_unreachable_and_unreadable_are_06_x01_x02` |
//! | `X-KIM-IntegrityCheckResult` | `07` | 4264 (status not checkable), signature and path fine | `open_pipeline::a_2179_01_a_2050_05_notes_are_appended_to_the_text_for_01_and_07` |
//! | `X-KIM-IntegrityCheckResult` | `08` | outer From/Sender/Reply-To/To/Cc differ from the signed inner | `smime_receive::a_2048_outer_header_differing_from_signed_inner_gives_08` |
//! | `X-KIM-IntegrityCheckResult` | `09` | signed and unprotected recipient-emails differ | `smime_receive::a_2048_unprotected_recipient_emails_differing_from_signed_gives_09` |
//! | `X-KIM-IntegrityCheckResult` | `X01` | VerifyDocument not answered | `open_pipeline::a_23165_verify_document_fault_unreachable_and_unreadable_are_06_x01_x02`, `fault_loop_pop3` |
//! | `X-KIM-IntegrityCheckResult` | `X02` | VerifyDocument answer unreadable, no gematik code | `open_pipeline::a_23165_verify_document_fault_unreachable_and_unreadable_are_06_x01_x02` |
//! | `X-KIM-Fehlermeldung` | `4008` | unsupported `X-KOM-LE-Version` (1.0 and 1.5 are supported, A_21391-02) | `smime_receive::unsupported_version_yields_error_mail_4008`, `kim15_receive::unknown_version_still_becomes_the_4008_mail` |
//! | `X-KIM-Fehlermeldung` | `4008` | KAS content announced by `X-KIM-KAS-Size` (A_23467) while no `[kas]` is configured (a pipeline without [`Reception::with_kas`]) | `kim15_receive::a_23467_a_23512_kas_content_is_typed_and_still_becomes_the_4008_mail` |
//! | `X-KIM-Fehlermeldung` | `4018` | KAS content over 15 MiB for a user without the `1.5+` opt-in (A_23512), checked before decryption | `kas_flow::a_23512_kas_message_for_a_user_without_opt_in_is_the_4018_mail` (komle-service) |
//! | `X-KIM-Fehlermeldung` | `4006`/`4013` | KAS download failed / refused with 429 (A_19370-04, A_22412-01): error mail with the received message | `kas_flow::a_19370_a_22412_download_refused_is_the_error_mail_with_the_code` |
//! | `X-KIM-Fehlermeldung` | `4007`/`4012` | KAS data do not decrypt / do not match `hash` (A_19371-04, A_19372-03): content replaced | `kas_flow::a_19372_mail_data_that_do_not_match_the_hash_become_the_4012_replacement` |
//!
//! A 1.5 message without KAS content opens like a 1.0 one
//! (`kim15_receive::a_21391_02_kim_1_5_message_without_kas_opens_with_its_results`). A
//! Konnektor refusing the call context (GetCards fault 4004–4006) is Tab_POP3_Verbindung's
//! `-ERR` ([`CONTEXT_REFUSED_REASON`]), not an error mail
//! (`kim15_receive::a_2037_01_tab_pop3_verbindung_konnektor_refusing_the_call_context_answers_err`).
//!
//! 01 and 07 append „Die Nachricht wurde entschlüsselt.“ and „Die Signatur wurde erfolgreich
//! geprüft.“ to the message text; every other integrity value replaces the content with
//! A_23165's warning unless [`DeliveryOptions::deliver_original_on_failure`] is set
//! (`smime_receive::a_23165_failed_check_replaces_the_content_unless_configured_to_deliver_it`,
//! `open_pipeline::a_23165_switch_delivers_the_original_with_the_failure_appended`).
//!
//! [`DeliveryOptions::deliver_original_on_failure`]: crate::smime::DeliveryOptions::deliver_original_on_failure

pub mod card_cache;
pub mod kas_content;
mod pipeline;
mod verification;

pub use card_cache::{CardCache, CertId, TTL_EMAIL_ICCSN};
pub use kas_content::{KasContent, KasEvidence};
pub use pipeline::{CONTEXT_REFUSED_REASON, KasFetch, Reception, Step};
pub use verification::verification_from;
