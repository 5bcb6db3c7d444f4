//! Unlocking the SM-B before signing (gemSpec_CM_KOMLE §3.8.1 activities 3 and 4,
//! KOM-LE-A_2058): GetPinStatus, VerifyPin when the PIN is verifiable (the user types it at
//! the card terminal), and a 451 text that says why when the card stays locked.

use super::{Protection, State};
use crate::konnektor::get_pin_status::{self, PinStatus};
use crate::konnektor::pin_request::{PIN_TYPE_SMC, PinRequest};
use crate::konnektor::verify_pin::{self, PinResult, VerifyPinResponse};

impl Protection {
    /// GetPinStatus/VerifyPin for the SM-B found by GetCards, PIN.SMC.
    pub(super) fn pin_request(&self) -> PinRequest<'_> {
        PinRequest {
            context: &self.context,
            card_handle: self.card_handle.as_deref().unwrap_or_default(),
            pin_type: PIN_TYPE_SMC,
        }
    }

    /// Activity 3: a verified PIN goes on to the signature, a verifiable one to VerifyPin;
    /// a blocked card or one without a PIN cannot be unlocked here (A_2058).
    pub(super) fn pin_status_answer(&mut self, body: &[u8]) {
        match get_pin_status::parse(body) {
            Ok(r) => match r.pin_status {
                Some(PinStatus::Verified) => self.state = State::AwaitingJobNumber,
                Some(PinStatus::Verifiable) => self.state = State::AwaitingPinVerification,
                Some(PinStatus::Blocked) => self.fail(
                    "Die SM-B ist gesperrt (PIN.SMC blockiert); die Nachricht kann nicht signiert werden",
                ),
                Some(PinStatus::TransportPin | PinStatus::EmptyPin) => self.fail(
                    "Fuer die SM-B ist noch keine PIN gesetzt (Transport-PIN); die Nachricht kann nicht signiert werden",
                ),
                None => self.fail(
                    "Der PIN-Status der SM-B ist unbekannt; die Nachricht kann nicht signiert werden",
                ),
            },
            Err(e) => self.fail_konnektor("GetPinStatus", &e),
        }
    }

    /// Activity 4: only `OK` unlocks the card; anything else abandons the signature (A_2058).
    pub(super) fn verify_pin_answer(&mut self, body: &[u8]) {
        match verify_pin::parse(body) {
            Ok(VerifyPinResponse {
                pin_result: PinResult::Ok,
                ..
            }) => self.state = State::AwaitingJobNumber,
            Ok(r) => self.fail(&pin_failure(&r)),
            Err(e) => self.fail_konnektor("VerifyPin", &e),
        }
    }
}

/// Why VerifyPin did not unlock the SM-B, for the 451 text (ASCII: it goes into an SMTP
/// reply).
fn pin_failure(r: &VerifyPinResponse) -> String {
    let why = match r.pin_result {
        PinResult::WasBlocked | PinResult::NowBlocked => "die PIN.SMC ist gesperrt".to_owned(),
        PinResult::TransportPin => "fuer die SM-B ist noch keine PIN gesetzt".to_owned(),
        PinResult::Rejected | PinResult::Error | PinResult::Ok => match r.left_tries {
            Some(n) => format!("die PIN-Eingabe ist fehlgeschlagen, noch {n} Versuche"),
            None => "die PIN-Eingabe ist fehlgeschlagen".to_owned(),
        },
    };
    format!(
        "Die SM-B konnte nicht freigeschaltet werden ({why}); die Nachricht kann nicht signiert werden"
    )
}
