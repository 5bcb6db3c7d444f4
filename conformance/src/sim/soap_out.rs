//! Writing SOAP 1.1 responses and faults.
//!
//! WHY fixed prefixes: we are the server; the client must resolve namespaces anyway, so the
//! simulator writes the prefixes gematik's examples use, declared on the envelope.

use super::xml::escape;

pub const NS_CONN: &str = "http://ws.gematik.de/conn/ConnectorCommon/v5.0";
pub const NS_CCTX: &str = "http://ws.gematik.de/conn/ConnectorContext/v2.0";
pub const NS_EVT: &str = "http://ws.gematik.de/conn/EventService/v7.2";
pub const NS_CARD: &str = "http://ws.gematik.de/conn/CardService/v8.1";
pub const NS_CARDCMN: &str = "http://ws.gematik.de/conn/CardServiceCommon/v2.0";
pub const NS_CERT: &str = "http://ws.gematik.de/conn/CertificateService/v6.0";
pub const NS_CERTCMN: &str = "http://ws.gematik.de/conn/CertificateServiceCommon/v2.0";
/// Prefix shared by SignatureService 7.4 and 7.5 namespaces.
pub const NS_SIG_PREFIX: &str = "http://ws.gematik.de/conn/SignatureService/v7.";
/// Prefix shared by EncryptionService 6.x namespaces.
pub const NS_CRYPT_PREFIX: &str = "http://ws.gematik.de/conn/EncryptionService/v6.";
pub const NS_DSS: &str = "urn:oasis:names:tc:dss:1.0:core:schema";
pub const NS_VR: &str = "urn:oasis:names:tc:dss-x:1.0:profiles:verificationreport:schema#";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_GERROR: &str = "http://ws.gematik.de/tel/error/v2.0";

/// The namespace URI of a service for a dotted version (`7.5.6` → `…/v7.5`).
pub fn service_ns(prefix_without_minor: &str, version: &str) -> String {
    let minor = version.split('.').nth(1).unwrap_or("0");
    format!("{prefix_without_minor}{minor}")
}

/// Wraps a payload element in a SOAP 1.1 envelope.
pub fn envelope(payload: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{payload}</soap:Body></soap:Envelope>"
    )
    .into_bytes()
}

/// `CONN:Status` with result OK (the CONN prefix must be declared by the caller).
pub fn status_ok() -> &'static str {
    "<CONN:Status><CONN:Result>OK</CONN:Result></CONN:Status>"
}

/// A SOAP 1.1 fault with a gematik `GERROR:Error` detail (TelematikError.xsd).
pub fn fault(code: u32, text: &str, timestamp: &str, client_fault: bool) -> Vec<u8> {
    let faultcode = if client_fault {
        "soap:Client"
    } else {
        "soap:Server"
    };
    let text = escape(text);
    envelope(&format!(
        "<soap:Fault><faultcode>{faultcode}</faultcode><faultstring>{text}</faultstring><detail>\
<GERROR:Error xmlns:GERROR=\"{NS_GERROR}\"><GERROR:MessageID>sim-{code}</GERROR:MessageID>\
<GERROR:Timestamp>{timestamp}</GERROR:Timestamp><GERROR:Trace><GERROR:EventID/>\
<GERROR:Instance/><GERROR:LogReference/><GERROR:CompType>Konnektor</GERROR:CompType>\
<GERROR:Code>{code}</GERROR:Code><GERROR:Severity>Error</GERROR:Severity>\
<GERROR:ErrorType>Technical</GERROR:ErrorType><GERROR:ErrorText>{text}</GERROR:ErrorText>\
</GERROR:Trace></GERROR:Error></detail></soap:Fault>"
    ))
}

/// `xs:dateTime` in UTC for Unix seconds.
pub fn xs_date_time(unix: u64) -> String {
    match der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix)) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds()
        ),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_time_formats_utc() {
        assert_eq!(xs_date_time(1_640_995_200), "2022-01-01T00:00:00Z");
        assert_eq!(xs_date_time(1_780_272_001), "2026-06-01T00:00:01Z");
    }

    #[test]
    fn service_namespace_uses_major_minor() {
        assert_eq!(
            service_ns("http://ws.gematik.de/conn/SignatureService/v7.", "7.5.6"),
            "http://ws.gematik.de/conn/SignatureService/v7.5"
        );
    }

    #[test]
    fn fault_escapes_text_and_carries_the_code() {
        let f = String::from_utf8(fault(4253, "a<b", "2022-01-01T00:00:00Z", false)).unwrap();
        assert!(f.contains("<GERROR:Code>4253</GERROR:Code>"));
        assert!(f.contains("a&lt;b"));
        assert!(!f.contains("a<b"));
    }
}
