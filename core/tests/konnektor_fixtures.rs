//! Realistic Konnektor responses written from the gematik schemas (conn/, tel/, ext/), shared by
//! the `konnektor_*` tests via `#[path]`. Each uses different prefixes on purpose: a Konnektor
//! chooses its own, and the parsers must only look at namespace URIs. `konnektor_schema`
//! validates every payload here against the XSDs, so the fixtures cannot drift from the schemas.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Wraps a payload into a SOAP 1.1 envelope with the `S` prefix (as JAX-WS does).
pub fn envelope(payload: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<S:Envelope xmlns:S=\"{SOAP}\"><S:Header/><S:Body>{payload}</S:Body></S:Envelope>"
    )
    .into_bytes()
}

/// base64 in 76-column lines with CRLF, and one `&#13;` reference, as some SOAP stacks send it.
pub fn wrapped_base64(data: &[u8]) -> String {
    let b64 = STANDARD.encode(data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("&#13;\n")
}

/// Deterministic pseudo-random bytes standing in for DER/CMS (parsers never look inside).
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

pub fn tel_error(prefix: &str, code: i64, severity: &str, text: &str) -> String {
    let p = prefix;
    format!(
        "<{p}:Error xmlns:{p}=\"http://ws.gematik.de/tel/error/v2.0\">\
<{p}:MessageID>0f6c8b26-2f7b-4a53-9d4e-3a3f2a1c9b11</{p}:MessageID>\
<{p}:Timestamp>2026-11-27T10:15:00.000+01:00</{p}:Timestamp>\
<{p}:Trace><{p}:EventID>E-1</{p}:EventID><{p}:Instance>KON-1</{p}:Instance>\
<{p}:LogReference>L-77</{p}:LogReference><{p}:CompType>KON</{p}:CompType>\
<{p}:Code>{code}</{p}:Code><{p}:Severity>{severity}</{p}:Severity>\
<{p}:ErrorType>Technical</{p}:ErrorType><{p}:ErrorText>{text}</{p}:ErrorText>\
<{p}:Detail Encoding=\"text/plain\">detail</{p}:Detail></{p}:Trace>\
<{p}:Trace><{p}:EventID/><{p}:Instance/><{p}:LogReference/><{p}:CompType>KON</{p}:CompType>\
<{p}:Code>4000</{p}:Code><{p}:Severity>Error</{p}:Severity>\
<{p}:ErrorType>Technical</{p}:ErrorType><{p}:ErrorText>inner cause</{p}:ErrorText></{p}:Trace>\
</{p}:Error>"
    )
}

/// A SOAP fault as the Konnektor sends it for gematik errors.
pub fn fault(code: i64, text: &str) -> Vec<u8> {
    let payload = format!(
        "<S:Fault><faultcode>S:Server</faultcode><faultstring>{text}</faultstring>\
<detail>{}</detail></S:Fault>",
        tel_error("ns4", code, "Error", text)
    );
    envelope(&payload)
}

pub const GET_CARDS_PAYLOAD: &str = "<ns6:GetCardsResponse xmlns:ns6=\"http://ws.gematik.de/conn/EventService/v7.2\" \
xmlns:ns2=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:ns3=\"http://ws.gematik.de/conn/CardService/v8.1\" \
xmlns:ns5=\"http://ws.gematik.de/conn/CardServiceCommon/v2.0\">\
<ns2:Status><ns2:Result>OK</ns2:Result></ns2:Status>\
<ns3:Cards>\
<ns3:Card><ns2:CardHandle>EGK-7</ns2:CardHandle><ns5:CardType>EGK</ns5:CardType>\
<ns5:Iccsn>80276883110000012345</ns5:Iccsn><ns5:CtId>CT1</ns5:CtId><ns5:SlotId>1</ns5:SlotId>\
<ns3:InsertTime>2026-11-27T08:00:00Z</ns3:InsertTime></ns3:Card>\
<ns3:Card><ns2:CardHandle>SMB-1</ns2:CardHandle><ns5:CardType>SMC-B</ns5:CardType>\
<ns5:Iccsn>80276883110000054321</ns5:Iccsn><ns5:CtId>CT1</ns5:CtId><ns5:SlotId>2</ns5:SlotId>\
<ns3:InsertTime>2026-11-27T07:00:00Z</ns3:InsertTime>\
<ns3:CardHolderName>Praxis Dr. M&#252;ller &amp; Partner</ns3:CardHolderName>\
<ns3:CertificateExpirationDate>2029-01-31</ns3:CertificateExpirationDate></ns3:Card>\
<ns3:Card><ns2:CardHandle>HBA-3</ns2:CardHandle><ns5:CardType>HBA</ns5:CardType>\
<ns5:CtId>CT2</ns5:CtId><ns5:SlotId>1</ns5:SlotId>\
<ns3:InsertTime>2026-11-27T07:30:00Z</ns3:InsertTime><ns3:CardHolderName>Dr. Eva Muster</ns3:CardHolderName></ns3:Card>\
</ns3:Cards></ns6:GetCardsResponse>";

pub fn read_card_certificate_payload(cert: &[u8]) -> String {
    format!(
        "<CERT:ReadCardCertificateResponse xmlns:CERT=\"http://ws.gematik.de/conn/CertificateService/v6.0\" \
xmlns:CONN=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:CERTCMN=\"http://ws.gematik.de/conn/CertificateServiceCommon/v2.0\">\
<CONN:Status><CONN:Result>OK</CONN:Result></CONN:Status>\
<CERTCMN:X509DataInfoList><CERTCMN:X509DataInfo><CERTCMN:CertRef>C.ENC</CERTCMN:CertRef>\
<CERTCMN:X509Data><CERTCMN:X509IssuerSerial>\
<CERTCMN:X509IssuerName>CN=GEM.SMCB-CA24 TEST-ONLY,OU=Institution des Gesundheitswesens-CA der Telematikinfrastruktur,O=gematik GmbH NOT-VALID,C=DE</CERTCMN:X509IssuerName>\
<CERTCMN:X509SerialNumber>1034953504625805</CERTCMN:X509SerialNumber></CERTCMN:X509IssuerSerial>\
<CERTCMN:X509SubjectName>CN=Praxis Dr. Mustermann TEST-ONLY,C=DE</CERTCMN:X509SubjectName>\
<CERTCMN:X509Certificate>{}</CERTCMN:X509Certificate></CERTCMN:X509Data></CERTCMN:X509DataInfo>\
</CERTCMN:X509DataInfoList></CERT:ReadCardCertificateResponse>",
        wrapped_base64(cert)
    )
}

pub fn get_job_number_payload(job: &str) -> String {
    format!(
        "<a:GetJobNumberResponse xmlns:a=\"http://ws.gematik.de/conn/SignatureService/v7.5\"><a:JobNumber>{job}</a:JobNumber></a:GetJobNumberResponse>"
    )
}

pub fn sign_document_payload(sig_ns: &str, signed: &[u8]) -> String {
    format!(
        "<ns3:SignDocumentResponse xmlns:ns3=\"{sig_ns}\" xmlns:ns2=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:ns4=\"urn:oasis:names:tc:dss:1.0:core:schema\">\
<ns3:SignResponse RequestID=\"KIM-1\"><ns2:Status><ns2:Result>OK</ns2:Result></ns2:Status>\
<ns4:SignatureObject><ns4:Base64Signature Type=\"urn:ietf:rfc:5652\">{}</ns4:Base64Signature></ns4:SignatureObject>\
</ns3:SignResponse></ns3:SignDocumentResponse>",
        wrapped_base64(signed)
    )
}

/// Encrypt/Decrypt responses: the default namespace is the EncryptionService's.
pub fn crypt_payload(element: &str, data: &[u8]) -> String {
    let doc = format!(
        "<c:Document xmlns:c=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><d:Base64Data xmlns:d=\"urn:oasis:names:tc:dss:1.0:core:schema\">{}</d:Base64Data></c:Document>",
        wrapped_base64(data)
    );
    let status = "<s:Status xmlns:s=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><s:Result>OK</s:Result></s:Status>";
    format!(
        "<{element} xmlns=\"http://ws.gematik.de/conn/EncryptionService/v6.1\">{status}{doc}</{element}>"
    )
}

pub const VALID: &str = "urn:oasis:names:tc:dss:1.0:detail:valid";

pub fn verify_document_payload(high: &str, signer_cert: &[u8], status: &str) -> String {
    let v = |name: &str| format!("<vr:{name}><vr:ResultMajor>{VALID}</vr:ResultMajor></vr:{name}>");
    let id = "<vr:CertificateIdentifier><ds:X509IssuerName>CN=GEM.SMCB-CA24 TEST-ONLY,C=DE</ds:X509IssuerName>\
<ds:X509SerialNumber>1034953504625805</ds:X509SerialNumber></vr:CertificateIdentifier>";
    format!(
        "<SIG:VerifyDocumentResponse xmlns:SIG=\"http://ws.gematik.de/conn/SignatureService/v7.5\" \
xmlns:CONN=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" \
xmlns:vr=\"urn:oasis:names:tc:dss-x:1.0:profiles:verificationreport:schema#\" \
xmlns:dss=\"urn:oasis:names:tc:dss:1.0:core:schema\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" \
xmlns:xades=\"http://uri.etsi.org/01903/v1.3.2#\">\
{status}\
<SIG:VerificationResult><SIG:HighLevelResult>{high}</SIG:HighLevelResult>\
<SIG:TimestampType>SYSTEM_TIMESTAMP</SIG:TimestampType><SIG:Timestamp>2026-11-27T10:00:00Z</SIG:Timestamp></SIG:VerificationResult>\
<SIG:OptionalOutputs><vr:VerificationReport><vr:IndividualReport>\
<vr:SignedObjectIdentifier><vr:SignedProperties><vr:SignedSignatureProperties>\
<xades:SigningTime>2026-11-27T09:58:00Z</xades:SigningTime></vr:SignedSignatureProperties></vr:SignedProperties></vr:SignedObjectIdentifier>\
<dss:Result><dss:ResultMajor>{VALID}</dss:ResultMajor>\
<dss:ResultMinor>urn:oasis:names:tc:dss:1.0:resultminor:valid:signature:OnAllDocuments</dss:ResultMinor></dss:Result>\
<vr:Details><vr:DetailedSignatureReport>{formatok}\
<vr:SignatureOK>{sigmath}</vr:SignatureOK>\
<vr:CertificatePathValidity>{summary}{id}<vr:PathValidityDetail><vr:CertificateValidity>{id}\
<vr:Subject>CN=Praxis Dr. Mustermann TEST-ONLY,C=DE</vr:Subject>{chain}{period}{ext}\
<vr:CertificateValue>{cert}</vr:CertificateValue><vr:SignatureOK>{sigmath}</vr:SignatureOK>\
<vr:CertificateStatus>{certstatus}</vr:CertificateStatus></vr:CertificateValidity>{anchor}</vr:PathValidityDetail>\
</vr:CertificatePathValidity></vr:DetailedSignatureReport></vr:Details>\
</vr:IndividualReport></vr:VerificationReport></SIG:OptionalOutputs></SIG:VerifyDocumentResponse>",
        formatok = v("FormatOK"),
        sigmath = v("SigMathOK"),
        summary = v("PathValiditySummary"),
        chain = v("ChainingOK"),
        period = v("ValidityPeriodOK"),
        ext = v("ExtensionsOK"),
        certstatus = v("CertStatusOK"),
        anchor = v("TrustAnchor"),
        cert = wrapped_base64(signer_cert),
    )
}

pub const STATUS_OK: &str = "<CONN:Status><CONN:Result>OK</CONN:Result></CONN:Status>";

pub fn status_warning(code: i64) -> String {
    format!(
        "<CONN:Status><CONN:Result>Warning</CONN:Result>{}</CONN:Status>",
        tel_error("GERROR", code, "Warning", "OCSP nicht erreichbar")
    )
}

pub const GET_PIN_STATUS_PAYLOAD: &str = "<p:GetPinStatusResponse xmlns:p=\"http://ws.gematik.de/conn/CardService/v8.1\" \
xmlns:q=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><q:Status><q:Result>OK</q:Result></q:Status>\
<p:PinStatus>VERIFIABLE</p:PinStatus><p:LeftTries>3</p:LeftTries></p:GetPinStatusResponse>";

pub const VERIFY_PIN_PAYLOAD: &str = "<p:VerifyPinResponse xmlns:p=\"http://ws.gematik.de/conn/CardService/v8.1\" \
xmlns:q=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\" xmlns:r=\"http://ws.gematik.de/conn/CardServiceCommon/v2.0\">\
<q:Status><q:Result>OK</q:Result></q:Status><r:PinResult>REJECTED</r:PinResult><r:LeftTries>2</r:LeftTries></p:VerifyPinResponse>";

/// A `connector.sds` as a PTV4+ Konnektor publishes it (two SignatureService versions).
pub fn connector_sds(sig_versions: &[(&str, &str)], enc_version: &str) -> Vec<u8> {
    let version = |ns: &str, v: &str, path: &str| {
        format!(
            "<SI:Version TargetNamespace=\"{ns}\" Version=\"{v}\"><SI:Abstract>x</SI:Abstract>\
<SI:Endpoint Location=\"http://192.168.1.2/{path}\"/><SI:EndpointTLS Location=\"https://192.168.1.2:443/{path}\"/>\
<SI:WSDL Location=\"https://192.168.1.2/{path}.wsdl\"/></SI:Version>"
        )
    };
    let sigs: String = sig_versions
        .iter()
        .map(|(ns, v)| version(ns, v, &format!("ws/SignatureService/{v}")))
        .collect();
    let service = |name: &str, versions: String| {
        format!(
            "<SI:Service Name=\"{name}\"><SI:Abstract>{name}</SI:Abstract><SI:Versions>{versions}</SI:Versions></SI:Service>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<ConnectorServices xmlns=\"http://ws.gematik.de/conn/ServiceDirectory/v3.1\" \
xmlns:SI=\"http://ws.gematik.de/conn/ServiceInformation/v2.0\" \
xmlns:PI=\"http://ws.gematik.de/int/version/ProductInformation/v1.1\">\
<PI:ProductInformation><PI:InformationDate>2026-11-01T00:00:00Z</PI:InformationDate>\
<PI:ProductTypeInformation><PI:ProductType>Konnektor</PI:ProductType><PI:ProductTypeVersion>5.0.0</PI:ProductTypeVersion></PI:ProductTypeInformation>\
<PI:ProductIdentification><PI:ProductVendorID>TEST</PI:ProductVendorID><PI:ProductCode>KON</PI:ProductCode>\
<PI:ProductVersion><PI:Local><PI:HWVersion>1.0.0</PI:HWVersion><PI:FWVersion>5.0.0</PI:FWVersion></PI:Local></PI:ProductVersion></PI:ProductIdentification>\
<PI:ProductMiscellaneous><PI:ProductVendorName>Test</PI:ProductVendorName><PI:ProductName>Test-Konnektor</PI:ProductName></PI:ProductMiscellaneous>\
</PI:ProductInformation>\
<TLSMandatory>true</TLSMandatory><ClientAutMandatory>false</ClientAutMandatory>\
<SI:ServiceInformation>{}{}{}{}{}</SI:ServiceInformation></ConnectorServices>",
        service("SignatureService", sigs),
        service(
            "EncryptionService",
            version("http://ws.gematik.de/conn/EncryptionService/v6.1", enc_version, "ws/EncryptionService")
        ),
        service(
            "CertificateService",
            version("http://ws.gematik.de/conn/CertificateService/v6.0", "6.0.1", "ws/CertificateService")
        ),
        service(
            "EventService",
            version("http://ws.gematik.de/conn/EventService/v7.2", "7.2.1", "ws/EventService")
        ),
        service(
            "CardService",
            version("http://ws.gematik.de/conn/CardService/v8.1", "8.1.2", "ws/CardService")
        ),
    )
    .into_bytes()
}

pub fn default_sds() -> Vec<u8> {
    connector_sds(
        &[
            ("http://ws.gematik.de/conn/SignatureService/v7.4", "7.4.2"),
            ("http://ws.gematik.de/conn/SignatureService/v7.5", "7.5.5"),
        ],
        "6.1.2",
    )
}
