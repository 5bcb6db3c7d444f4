//! `[admin] listen` of the running daemon `komle-cm`: `/metrics` scrapes in Prometheus text
//! format with HELP/TYPE, `/health` is 503 and names each dependency that is down (here the
//! directory and the time sync; the Konnektor simulator is up), and `[log] format = "json"`
//! writes one parseable JSON object per stderr line.

mod binary;
mod daemon_bed;

use std::time::Duration;

use daemon_bed::DaemonBed;

fn get(port: u16, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("admin endpoint answers");
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_scrape_and_health_names_what_is_down() {
    let admin = free_port();
    let bed = DaemonBed::new(&format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n"));
    // [log] is already in the bed's file: switch its format there.
    let text = std::fs::read_to_string(&bed.config)
        .unwrap()
        .replace("level = \"info\"", "level = \"info\"\nformat = \"json\"");
    std::fs::write(&bed.config, text).unwrap();
    let daemon = bed.start(false);
    assert!(
        daemon
            .stderr
            .wait_for("admin endpoint on", Duration::from_secs(30)),
        "{}",
        daemon.stderr.text()
    );

    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "# HELP komle_sessions_total ",
        "# TYPE komle_sessions_total counter\n",
        "# TYPE komle_konnektor_request_duration_seconds histogram\n",
        "# TYPE komle_directory_lookup_duration_seconds histogram\n",
        "# TYPE komle_konnektor_faults_total counter\n",
        "# TYPE komle_certificate_cache_hits_total counter\n",
    ] {
        assert!(metrics.contains(needle), "lacks {needle:?}:\n{metrics}");
    }
    // connector.sds was read at start: at least one Konnektor call was timed.
    let count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("komle_konnektor_request_duration_seconds_count "))
        .and_then(|v| v.parse().ok())
        .expect("histogram count");
    assert!(count >= 1, "{metrics}");

    let (status, health) = get(admin, "/health");
    assert_eq!(status, 503, "{health}");
    let lines: Vec<&str> = health.lines().collect();
    assert_eq!(lines.len(), 3, "{health}");
    assert!(
        lines[0].starts_with("konnektor: ok: connector.sds read"),
        "{health}"
    );
    assert!(
        lines[1].starts_with("directory: FAILED: ldap://127.0.0.1:1"),
        "{health}"
    );
    assert!(lines[2].starts_with("time sync: FAILED:"), "{health}");

    // The unreachable directory was said at start, as a warning naming the key.
    assert!(
        daemon.stderr.wait_for(
            "[directory] url ldap://127.0.0.1:1: not reachable at start",
            Duration::from_secs(15)
        ),
        "{}",
        daemon.stderr.text()
    );
    // Every stderr line so far is one JSON object with ts, level, target, msg.
    let err = daemon.stderr.text();
    assert!(!err.is_empty());
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        if v["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("[directory] url")
        {
            assert_eq!(v["level"], "WARN", "{line}");
        }
    }
}
