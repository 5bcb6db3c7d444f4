//! Lifecycle of the server harness: fast start, clean stop (no leftover processes), the SMTP
//! side stoppable alone, parallel instances isolated, failures reported with log tails.

mod servers_support;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use komle_conformance::servers::{MailServers, ServerError, ServerProcess, User, closed_port};
use servers_support::*;

/// `pgrep -g PGID` finds nothing (pgrep exits 1 when no process matches).
fn group_is_gone(pgid: i32) -> bool {
    let out = Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .expect("pgrep");
    out.status.code() == Some(1)
}

fn refuses(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

#[test]
fn start_is_fast_and_drop_leaves_no_process_port_or_file() {
    let began = Instant::now();
    let s = start_two_users();
    let wall = began.elapsed();
    eprintln!(
        "harness startup: {:?} (reported {:?})",
        wall,
        s.startup_time()
    );
    // Typical is well under 3 s; the bound is loose because CI shares two cores.
    assert!(wall < Duration::from_secs(15), "startup took {wall:?}");
    assert!(s.startup_time() <= wall);

    let postfix = s.postfix_pgid().expect("postfix running");
    let dovecot = s.dovecot_pgid();
    assert!(
        !group_is_gone(postfix),
        "postfix group must exist while running"
    );
    assert!(
        !group_is_gone(dovecot),
        "dovecot group must exist while running"
    );
    let (smtps, pop3s, dir) = (s.smtps_addr(), s.pop3s_addr(), s.dir().to_path_buf());
    assert!(dir.join("mail").exists());

    drop(s);
    assert!(group_is_gone(postfix), "postfix helpers left behind");
    assert!(group_is_gone(dovecot), "dovecot helpers left behind");
    assert!(
        refuses(smtps) && refuses(pop3s),
        "ports must be closed after drop"
    );
    assert!(!dir.exists(), "temp dir (with all mail) must be removed");
}

#[test]
fn stop_smtp_closes_the_smtps_port_but_pop3_keeps_working() {
    let mut s = start_two_users();
    let pgid = s.postfix_pgid().expect("postfix running");
    s.stop_smtp();
    assert_eq!(s.postfix_pgid(), None);
    assert!(group_is_gone(pgid), "postfix helpers left behind");
    assert!(
        refuses(s.smtps_addr()),
        "SMTPS port must refuse connections"
    );

    let msg = message(BOB, &[ALICE], "after-smtp-stop");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl: couldn't connect: {}",
        text(&out)
    );

    s.deliver_lmtp(ALICE, &msg).expect("LMTP still works");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--ssl-reqd", "--max-time", "30", "--cacert"])
        .arg(s.ca_pem_path())
        .arg("--user")
        .arg(format!("{ALICE}:{ALICE_PW}"))
        .arg(format!("pop3s://127.0.0.1:{}/", s.pop3s_addr().port()));
    let list = run(cmd, b"");
    assert!(list.status.success(), "{}", text(&list));
    assert!(
        String::from_utf8_lossy(&list.stdout).starts_with("1 "),
        "{}",
        text(&list)
    );
    s.stop_smtp(); // idempotent
}

#[test]
fn closed_port_refuses_connections() {
    let addr = closed_port().expect("port");
    assert!(addr.ip().is_loopback());
    assert!(refuses(addr));
}

#[test]
fn parallel_instances_are_isolated() {
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let s = start_two_users();
                let marker = format!("instance-{i}");
                let msg = message(ALICE, &[BOB], &marker);
                let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
                assert!(out.status.success(), "{}", text(&out));
                let mails = s
                    .wait_for_messages(BOB, 1, Duration::from_secs(30))
                    .expect("delivered");
                // settle: a cross-talk delivery would show up as a second message
                std::thread::sleep(Duration::from_millis(500));
                let mails_after = s.maildir_messages(BOB).expect("maildir");
                assert_eq!(mails_after.len(), 1, "only this instance's mail");
                assert!(contains(&mails[0], marker.as_bytes()));
                (s.smtps_addr(), s.pop3s_addr(), s.dir().to_path_buf())
            })
        })
        .collect();
    let mut seen = Vec::new();
    for h in handles {
        let (smtps, pop3s, dir) = h.join().expect("instance thread");
        seen.push(smtps);
        seen.push(pop3s);
        assert!(!dir.exists());
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "every instance has its own ports");
}

#[test]
fn invalid_users_are_rejected_before_anything_starts() {
    for users in [
        vec![],
        vec![User::new("no-at-sign", "x")],
        vec![User::new("../etc@a.example", "x")],
        vec![User::new("a@b.example", "line\nbreak")],
    ] {
        match MailServers::start(&users) {
            Err(ServerError::InvalidInput(_)) => {}
            other => panic!("{users:?}: expected InvalidInput, got {other:?}"),
        }
    }
}

#[test]
fn a_server_that_dies_at_startup_is_reported_with_its_log_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo 'fatal: pretend config error' >&2; exit 3"]);
    let mut p = ServerProcess::spawn("pretend", cmd, &dir.path().join("console.log"), vec![])
        .expect("spawn");
    let err = p
        .wait_until("readiness", Duration::from_secs(10), || false)
        .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("pretend did not come up"), "{msg}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("fatal: pretend config error"), "{msg}");
}

#[test]
fn a_server_that_never_gets_ready_times_out_and_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("sh");
    // a child of the leader too: stop() must take the whole group
    cmd.args(["-c", "sleep 60 & echo waiting; wait"]);
    let mut p = ServerProcess::spawn("sleeper", cmd, &dir.path().join("console.log"), vec![])
        .expect("spawn");
    let pgid = p.pgid();
    let began = Instant::now();
    let err = p
        .wait_until("readiness", Duration::from_millis(300), || false)
        .expect_err("must time out");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("no readiness within"), "{err}");
    assert!(
        err.to_string().contains("waiting"),
        "log tail included: {err}"
    );
    drop(p);
    assert!(
        group_is_gone(pgid),
        "sleep child must be killed with its group"
    );
}

/// A fake harness instance: a temp dir with the harness prefix and a process group whose
/// leader's command line names the dir (as `master -c DIR/...` does).
fn fake_instance(owner: u32) -> (std::path::PathBuf, std::process::Child) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::Builder::new()
        .prefix(komle_conformance::servers::stale::DIR_PREFIX)
        .tempdir()
        .expect("tempdir")
        .keep();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 60 & wait; : {}", dir.display()))
        .process_group(0)
        .spawn()
        .expect("spawn group");
    let pgid = child.id();
    std::fs::write(
        dir.join("instance"),
        format!("owner={owner}\npgid={pgid}\n"),
    )
    .expect("record");
    (dir, child)
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn instances_of_dead_test_processes_are_reaped_and_live_ones_kept() {
    use komle_conformance::servers::stale::reap_stale;
    let dead_owner = {
        let mut c = Command::new("true").spawn().expect("spawn true");
        let pid = c.id();
        c.wait().expect("wait true");
        pid
    };
    let (stale_dir, mut stale_group) = fake_instance(dead_owner);
    let (live_dir, mut live_group) = fake_instance(std::process::id());
    let (stale_pgid, live_pgid) = (stale_group.id() as i32, live_group.id() as i32);

    reap_stale();
    assert!(
        wait_exit(&mut stale_group, Duration::from_secs(5)),
        "stale leader killed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_is_gone(stale_pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        group_is_gone(stale_pgid),
        "the stale group's sleep child is killed too"
    );
    assert!(!stale_dir.exists(), "stale dir removed");

    assert!(
        !group_is_gone(live_pgid),
        "an instance with a live owner is never touched"
    );
    assert!(live_dir.exists());
    // clean up the live fake instance ourselves
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{live_pgid}")])
        .status();
    assert!(wait_exit(&mut live_group, Duration::from_secs(5)));
    std::fs::remove_dir_all(&live_dir).expect("remove live fake dir");
}

#[test]
fn both_servers_start_and_deliver_without_config_warnings() {
    let s = start_two_users();
    let msg = message(ALICE, &[BOB], "clean-logs");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
    assert!(out.status.success(), "{}", text(&out));
    s.wait_for_messages(BOB, 1, Duration::from_secs(20))
        .expect("delivered");
    // Postfix logs the LMTP result just after Dovecot has stored the file: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut postfix = s.postfix_log_tail();
    while !postfix.contains("status=sent") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        postfix = s.postfix_log_tail();
    }
    assert!(postfix.contains("status=sent"), "{postfix}");
    for bad in ["warning:", "fatal:", "error:"] {
        assert!(!postfix.contains(bad), "Postfix logged {bad:?}:\n{postfix}");
    }
    let dovecot = s.dovecot_log_tail();
    assert!(dovecot.contains("saved mail to INBOX"), "{dovecot}");
    for bad in ["Warning:", "Error:", "Fatal:"] {
        assert!(!dovecot.contains(bad), "Dovecot logged {bad:?}:\n{dovecot}");
    }
}

#[test]
fn smtp_side_can_be_restarted_on_the_same_address() {
    let mut s = start_two_users();
    let addr = s.smtps_addr();
    s.stop_smtp();
    assert!(refuses(addr));
    s.restart_smtp().expect("restart");
    assert_eq!(s.smtps_addr(), addr);
    let msg = message(ALICE, &[BOB], "after-restart");
    let out = curl_send(&s, ALICE, ALICE_PW, ALICE, &[BOB], &msg, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        s.postfix_log_tail()
    );
    let mails = s
        .wait_for_messages(BOB, 1, Duration::from_secs(20))
        .expect("delivered after restart");
    assert!(contains(&mails[0], b"after-restart"));
    let pgid = s.postfix_pgid().expect("running again");
    drop(s);
    assert!(group_is_gone(pgid));
}
