//! The KIM 1.5 fields of the outer message (gemSpec_CM_KOMLE V1.16 §3.1).
//!
//! - A_21388-01: `X-KIM-CMVersion` (`<VendorID>_<product version>`), `X-KIM-PTVersion` (the
//!   product type version) and `X-KIM-KONVersion` (the Konnektor's product information,
//!   `<ProductName><ProductType><ProductTypeVersion><HWVersion><FWVersion>`), in the outer
//!   header only; same-named fields of the client's mail are not copied outward.
//! - `X-KOM-LE-Version` (gemSMIME_KOMLE KOM-LE-A_2100-02): the version the receiving
//!   Clientmodul needs. A message without KAS content is a KIM 1.0 message (`1.0`, which every
//!   Clientmodul opens; a 1.0 module refuses `1.5` with 4008); one whose content lies on the
//!   KAS is `1.5`. The recipients' `komLeData` versions (A_19356-06, cached per A_22340) are
//!   kept by the pipeline for the KAS decision (only `1.5+` recipients get KAS messages) and
//!   for the sender check of A_21387-01, not for this header.
//! - A_22417: `Expires` = sending time (Konnektor-synchronised, A_2230) + the account's
//!   `dataTimeToLive`, written when that TTL is known (from the Account Manager's getLimits,
//!   A_22416, or configured).

use core::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::konnektor::xml_tree::{Limits, Tree};
use crate::smime::date::rfc5322;
use crate::smime::outer::OuterFields;

/// Namespace of `PI:ProductInformation` in `connector.sds` (ProductInformation.xsd v1.1).
const PI: &str = "http://ws.gematik.de/int/version/ProductInformation/v1.1";

/// The product type version of this Clientmodul (KIM 1.5).
pub const PRODUCT_TYPE_VERSION: &str = "1.5.0";
/// The vendor id used until the operator's own is configured (`[a-zA-Z0-9_]{1,5}`).
pub const DEFAULT_VENDOR_ID: &str = "KOMLE";
/// The inner fields the module sets itself: never copied from the client's mail.
pub const MODULE_FIELDS: [&str; 3] = ["X-KIM-CMVersion", "X-KIM-PTVersion", "X-KIM-KONVersion"];

/// Inner `X-KIM-*` fields the outer header never copies: the module's own and
/// `X-KIM-KAS-Size`, which only the KAS branch writes (A_23467) so that a client cannot make a
/// 1.0 message look like KAS content to the receiver.
const OUTER_REPLACED: [&str; 4] = [
    "X-KIM-CMVersion",
    "X-KIM-PTVersion",
    "X-KIM-KONVersion",
    "X-KIM-KAS-Size",
];

/// A value that does not fit A_21388-01's pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KimHeaderError {
    /// VendorID: 1–5 of `[a-zA-Z0-9_]`.
    VendorId,
    /// Product or product type version: `N.N.N` (1–2 digits each), optional `-0`…`-255`.
    Version,
    /// Konnektor version: printable ASCII only (it goes into a header line).
    KonnektorVersion,
}

impl fmt::Display for KimHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VendorId => "VendorID must be 1 to 5 of [a-zA-Z0-9_] (A_21388-01)",
            Self::Version => "version must be N.N.N with an optional -0..-255 (A_21388-01)",
            Self::KonnektorVersion => "Konnektor version must be printable ASCII",
        })
    }
}

impl std::error::Error for KimHeaderError {}

/// What the sending side writes into the outer header beyond KOM-LE 1.0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KimSendInfo {
    cm_version: String,
    pt_version: String,
    konnektor_version: Option<String>,
    data_time_to_live: Option<Duration>,
}

impl Default for KimSendInfo {
    /// [`DEFAULT_VENDOR_ID`], this crate's version, [`PRODUCT_TYPE_VERSION`]; no Konnektor
    /// version and no TTL until known.
    fn default() -> Self {
        Self {
            cm_version: format!("{DEFAULT_VENDOR_ID}_{}", env!("CARGO_PKG_VERSION")),
            pt_version: PRODUCT_TYPE_VERSION.to_owned(),
            konnektor_version: None,
            data_time_to_live: None,
        }
    }
}

impl KimSendInfo {
    /// Checks the values against A_21388-01's patterns.
    pub fn new(
        vendor_id: &str,
        product_version: &str,
        product_type_version: &str,
    ) -> Result<Self, KimHeaderError> {
        let vendor_ok = (1..=5).contains(&vendor_id.len())
            && vendor_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !vendor_ok {
            return Err(KimHeaderError::VendorId);
        }
        if !is_version(product_version) || !is_version(product_type_version) {
            return Err(KimHeaderError::Version);
        }
        Ok(Self {
            cm_version: format!("{vendor_id}_{product_version}"),
            pt_version: product_type_version.to_owned(),
            konnektor_version: None,
            data_time_to_live: None,
        })
    }

    /// The Konnektor's version for `X-KIM-KONVersion` (see [`konnektor_version_from_sds`]).
    pub fn with_konnektor_version(mut self, version: &str) -> Result<Self, KimHeaderError> {
        if version.is_empty() || !version.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(KimHeaderError::KonnektorVersion);
        }
        self.konnektor_version = Some(version.to_owned());
        Ok(self)
    }

    /// The account's `dataTimeToLive` (A_22416) for `Expires` (A_22417).
    pub fn with_data_time_to_live(mut self, ttl: Duration) -> Self {
        self.data_time_to_live = Some(ttl);
        self
    }

    /// The `X-KIM-CMVersion` value.
    pub fn cm_version(&self) -> &str {
        &self.cm_version
    }

    /// The header lines (CRLF each) for a message sent at `now`.
    pub fn outer_lines(&self, now: SystemTime) -> Vec<u8> {
        let mut out = format!(
            "X-KIM-CMVersion: {}\r\nX-KIM-PTVersion: {}\r\n",
            self.cm_version, self.pt_version
        );
        if let Some(k) = &self.konnektor_version {
            out.push_str(&format!("X-KIM-KONVersion: {k}\r\n"));
        }
        if let Some(ttl) = self.data_time_to_live {
            let sent = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            out.push_str(&format!(
                "Expires: {}\r\n",
                rfc5322(sent.saturating_add(ttl))
            ));
        }
        out.into_bytes()
    }
}

/// The `X-KOM-LE-Version` of a message (KOM-LE-A_2100-02): `1.5` only with KAS content.
pub fn outer_version(kas_content: bool) -> &'static str {
    if kas_content { "1.5" } else { "1.0" }
}

/// The outer fields for one message.
pub fn outer_fields<'a>(version: &'a str, lines: &'a [u8]) -> OuterFields<'a> {
    OuterFields {
        kom_le_version: version,
        extra_lines: lines,
        replaces: &OUTER_REPLACED,
    }
}

/// `X-KIM-KONVersion` from the Konnektor's `connector.sds` (`PI:ProductInformation`):
/// `<ProductName><ProductType><ProductTypeVersion><HWVersion><FWVersion>` (A_21388-01).
/// `None` when the directory carries no complete product information.
pub fn konnektor_version_from_sds(sds: &[u8]) -> Option<String> {
    let tree = Tree::parse(sds, &Limits::DEFAULT).ok()?;
    let pi = tree.root().descendant(PI, "ProductInformation")?;
    let text = |path: &[&str]| -> Option<String> {
        let mut node = pi;
        for name in path {
            node = node.child(PI, name)?;
        }
        let t = node.text("PI").ok()?;
        let t = t.trim();
        (!t.is_empty()
            && t.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'<' && b != b'>'))
        .then(|| t.to_owned())
    };
    let parts = [
        text(&["ProductMiscellaneous", "ProductName"])?,
        text(&["ProductTypeInformation", "ProductType"])?,
        text(&["ProductTypeInformation", "ProductTypeVersion"])?,
        text(&[
            "ProductIdentification",
            "ProductVersion",
            "Local",
            "HWVersion",
        ])?,
        text(&[
            "ProductIdentification",
            "ProductVersion",
            "Local",
            "FWVersion",
        ])?,
    ];
    Some(parts.iter().map(|p| format!("<{p}>")).collect())
}

/// `[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}(-25[0-5]|-2[0-4][0-9]|-[0-1]?[0-9]?[0-9])?`
fn is_version(s: &str) -> bool {
    let (main, build) = match s.split_once('-') {
        Some((m, b)) => (m, Some(b)),
        None => (s, None),
    };
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    let parts: Vec<&str> = main.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| digits(p, 2))
        && build.is_none_or(|b| digits(b, 3) && b.parse::<u16>().is_ok_and(|n| n <= 255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_21388_01_patterns() {
        for ok in ["1.5.0", "2.1.2-8", "10.10.10-255", "0.1.0-007"] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in [
            "1.5",
            "1.5.0.1",
            "100.1.1",
            "1.5.0-256",
            "1.5.0-",
            "1.a.0",
            "1.5.0-1000",
        ] {
            assert!(!is_version(bad), "{bad}");
        }
        assert!(KimSendInfo::new("ABC_1", "2.1.2-8", "1.5.0-2").is_ok());
        assert_eq!(
            KimSendInfo::new("TOOLONG", "1.0.0", "1.5.0"),
            Err(KimHeaderError::VendorId)
        );
        assert_eq!(
            KimSendInfo::new("V-1", "1.0.0", "1.5.0"),
            Err(KimHeaderError::VendorId)
        );
        assert_eq!(
            KimSendInfo::new("V1", "1.0", "1.5.0"),
            Err(KimHeaderError::Version)
        );
        // The default must satisfy the pattern too.
        let d = KimSendInfo::default();
        let (vendor, version) = d.cm_version().split_once('_').unwrap();
        assert!(KimSendInfo::new(vendor, version, PRODUCT_TYPE_VERSION).is_ok());
    }

    #[test]
    fn a_21388_01_a_22417_outer_lines_exact() {
        let info = KimSendInfo::new("ABC", "2.1.2-8", "1.5.0-2")
            .unwrap()
            .with_konnektor_version(
                "<secunet konnektor 2.0.0><Konnektor PTV4Plus><4.80.3><2.0.0><4.10.1>",
            )
            .unwrap()
            .with_data_time_to_live(Duration::from_secs(90 * 86_400));
        // 2026-12-07 14:00:00 UTC + 90 days = 2027-03-07 14:00:00 UTC.
        let now = UNIX_EPOCH + Duration::from_secs(1_796_652_000);
        assert_eq!(
            String::from_utf8(info.outer_lines(now)).unwrap(),
            "X-KIM-CMVersion: ABC_2.1.2-8\r\n\
             X-KIM-PTVersion: 1.5.0-2\r\n\
             X-KIM-KONVersion: <secunet konnektor 2.0.0><Konnektor PTV4Plus><4.80.3><2.0.0><4.10.1>\r\n\
             Expires: Sun, 07 Mar 2027 14:00:00 +0000\r\n"
        );
        let plain = KimSendInfo::new("ABC", "1.0.0", "1.5.0").unwrap();
        assert_eq!(
            String::from_utf8(plain.outer_lines(now)).unwrap(),
            "X-KIM-CMVersion: ABC_1.0.0\r\nX-KIM-PTVersion: 1.5.0\r\n"
        );
        assert_eq!(
            plain.with_konnektor_version("a\r\nBcc: x"),
            Err(KimHeaderError::KonnektorVersion)
        );
    }

    #[test]
    fn a_21388_01_konnektor_version_from_connector_sds() {
        let sds = br#"<?xml version="1.0" encoding="UTF-8"?>
<CONN:ConnectorServices xmlns:CONN="http://ws.gematik.de/conn/ServiceDirectory/v3.1" xmlns:PI="http://ws.gematik.de/int/version/ProductInformation/v1.1">
 <PI:ProductInformation>
  <PI:InformationDate>2026-01-01T00:00:00Z</PI:InformationDate>
  <PI:ProductTypeInformation><PI:ProductType>Konnektor</PI:ProductType><PI:ProductTypeVersion>4.80.3</PI:ProductTypeVersion></PI:ProductTypeInformation>
  <PI:ProductIdentification><PI:ProductVendorID>SECU</PI:ProductVendorID><PI:ProductCode>K</PI:ProductCode>
   <PI:ProductVersion><PI:Local><PI:HWVersion>2.0.0</PI:HWVersion><PI:FWVersion>4.10.1</PI:FWVersion></PI:Local></PI:ProductVersion>
  </PI:ProductIdentification>
  <PI:ProductMiscellaneous><PI:ProductVendorName>secunet</PI:ProductVendorName><PI:ProductName>secunet konnektor 2.0.0</PI:ProductName></PI:ProductMiscellaneous>
 </PI:ProductInformation>
</CONN:ConnectorServices>"#;
        assert_eq!(
            konnektor_version_from_sds(sds).as_deref(),
            Some("<secunet konnektor 2.0.0><Konnektor><4.80.3><2.0.0><4.10.1>")
        );
        let without = br#"<CONN:ConnectorServices xmlns:CONN="http://ws.gematik.de/conn/ServiceDirectory/v3.1"/>"#;
        assert_eq!(konnektor_version_from_sds(without), None);
        assert_eq!(konnektor_version_from_sds(b"<kaputt"), None);
    }

    #[test]
    fn a_2100_02_outer_version_is_1_5_only_with_kas_content() {
        assert_eq!(outer_version(false), "1.0");
        assert_eq!(outer_version(true), "1.5");
    }
}
