//! The `konnektor-sim` binary: starts, prints its URL, exports its TLS CA, and answers curl.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the simulator process when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_serves_connector_sds_and_injected_faults_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_konnektor-sim"))
            .args(["--rsa-only", "--fault", "GetJobNumber=4011", "--export"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    assert!(
        url.starts_with("https://127.0.0.1:") && url.ends_with("/connector.sds"),
        "{url}"
    );
    let card = lines.next().unwrap().unwrap();
    assert!(card.starts_with("card SMCB-1 SMC-B"), "{card}");
    let ca = dir.path().join("tls-ca.pem");
    assert!(dir.path().join("SMCB-1-osig-0.prv.pem").is_file());

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sds = String::from_utf8(out.stdout).unwrap();
    assert!(sds.contains("Version=\"7.4.0\""), "{sds}");

    let base = url.trim_end_matches("/connector.sds");
    let body = "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>\
<s:GetJobNumber xmlns:s=\"http://ws.gematik.de/conn/SignatureService/v7.4\">\
<c:Context xmlns:c=\"http://ws.gematik.de/conn/ConnectorContext/v2.0\" \
xmlns:k=\"http://ws.gematik.de/conn/ConnectorCommon/v5.0\"><k:MandantId>m</k:MandantId>\
<k:ClientSystemId>cs</k:ClientSystemId><k:WorkplaceId>wp</k:WorkplaceId></c:Context>\
</s:GetJobNumber></S:Body></S:Envelope>";
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: text/xml",
            "--data-binary",
            body,
            "--cacert",
        ])
        .arg(&ca)
        .arg(format!("{base}/SignatureService"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("\n500"), "{text}");
    assert!(text.contains("<GERROR:Code>4011</GERROR:Code>"), "{text}");
}
