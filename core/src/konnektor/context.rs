//! The Konnektor call context (`CCTX:Context`).
//!
//! It comes from the login name (`user#host:port#MandantId#ClientSystemId#WorkplaceId[#UserId]`,
//! gemSpec_CM_KOMLE §3.2.2.2/§3.3.2.2) and accompanies every Konnektor call; `UserId` is needed
//! only when a HBA is used.

use super::xml_writer::XmlOut;

/// Mandant, client system, workplace and optional user for one Konnektor call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallContext {
    pub mandant_id: String,
    pub client_system_id: String,
    pub workplace_id: String,
    pub user_id: Option<String>,
}

impl CallContext {
    /// Writes `CCTX:Context`; the caller's element must declare the `CCTX` and `CONN` prefixes.
    pub(crate) fn write(&self, out: &mut XmlOut) {
        out.start("CCTX:Context");
        out.text_element("CONN:MandantId", &self.mandant_id);
        out.text_element("CONN:ClientSystemId", &self.client_system_id);
        out.text_element("CONN:WorkplaceId", &self.workplace_id);
        if let Some(user) = &self.user_id {
            out.text_element("CONN:UserId", user);
        }
        out.end("CCTX:Context");
    }
}
