//! The SMTP proxy listener on smol: [`ProxyServer`] (the listener and driver shared with
//! tokio) with [`SmolRuntime`]. Over the session limit a client still gets a TLS handshake and
//! then `421 4.3.2 Too many sessions` (RFC 5321 §3.8); see [`komle_service::listener`].
//!
//! The tests below run the SMTP relay end to end over real sockets and TLS against a small
//! MTA, through the same driver code as production.

pub use komle_service::limits::SMTP_TOO_MANY_SESSIONS as TOO_MANY_SESSIONS;
pub use komle_service::limits::ServerLimits;
use komle_service::proxy_server::ProxyServer;

use crate::runtime::SmolRuntime;

/// The SMTP proxy listener on smol: bind with [`ProxyServer::bind`]`(SmolRuntime, addr, tls,
/// SessionContext, limits)`.
pub type SmtpServer = ProxyServer<SmolRuntime>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{self, TestPki};
    use crate::tls_stream;
    use base64::Engine;
    use futures_lite::AsyncReadExt;
    use futures_lite::{AsyncWriteExt, future};
    use komle_conformance::mini_mta::MiniMta;
    use komle_core::secret::SecretBytes;
    use komle_core::smtp::{
        ProtectJob, ProtectedMessage, ProtectionFailure, RecipientVerdict, SmtpConfig,
    };
    use komle_core::upstream_allow::{HostPattern, UpstreamAllowList};
    use komle_service::contracts::{BoxFuture, Protector, RecipientChecker};
    use komle_service::session::SessionContext;
    use komle_service::tls;
    use smol::net::TcpStream;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Duration;
    use std::time::Instant;

    const OUTER: &[u8] =
        b"X-KOM-LE-Version: 1.0\r\nSubject: KOM-LE-Nachricht\r\n\r\n.MIIBBASE64\r\n";
    const T: Duration = Duration::from_secs(10);

    struct AllUsable;
    impl RecipientChecker for AllUsable {
        fn check<'a>(&'a self, address: &'a str) -> BoxFuture<'a, RecipientVerdict> {
            Box::pin(async move {
                if address.starts_with("nocert") {
                    RecipientVerdict::NoValidCertificate
                } else {
                    RecipientVerdict::Usable
                }
            })
        }
    }

    /// (login user, envelope from, recipients, message) of a job.
    type JobRecord = (String, String, Vec<String>, Vec<u8>);

    /// Records the job and answers with [`OUTER`].
    #[derive(Default)]
    struct FixedProtector {
        jobs: Mutex<Vec<JobRecord>>,
    }
    impl Protector for FixedProtector {
        fn protect(
            &self,
            job: ProtectJob,
        ) -> BoxFuture<'_, Result<ProtectedMessage, ProtectionFailure>> {
            Box::pin(async move {
                self.jobs.lock().unwrap().push((
                    job.login.user.clone(),
                    job.envelope_from.clone(),
                    job.recipients.clone(),
                    job.message.as_slice().to_vec(),
                ));
                Ok(ProtectedMessage {
                    message: SecretBytes::from(OUTER),
                    recipients: job.recipients,
                    notice: None,
                    kas_link: None,
                })
            })
        }
    }

    struct Fixture {
        pki: TestPki,
        protector: Arc<FixedProtector>,
    }

    fn fixture() -> Fixture {
        Fixture {
            pki: test_pki::make("Test CA"),
            protector: Arc::new(FixedProtector::default()),
        }
    }

    impl Fixture {
        async fn server(&self, max_sessions: usize, session: SmtpConfig) -> SmtpServer {
            self.server_with_grace(max_sessions, session, Duration::from_millis(500))
                .await
        }

        async fn server_with_grace(
            &self,
            max_sessions: usize,
            session: SmtpConfig,
            grace: Duration,
        ) -> SmtpServer {
            let limits = ServerLimits {
                max_sessions,
                max_sessions_per_address: None,
                handshake_timeout: T,
                grace,
                proxy_protocol: false,
            };
            self.server_with_limits(limits, session).await
        }

        async fn server_with_limits(
            &self,
            limits: ServerLimits,
            session: SmtpConfig,
        ) -> SmtpServer {
            let ctx = SessionContext {
                session,
                upstream_tls: tls::client_config(Some(&self.pki.ca())).unwrap(),
                connect_timeout: T,
                checker: Arc::new(AllUsable),
                protector: self.protector.clone(),
            };
            let server_tls =
                tls::server_config(&self.pki.server_cert(), &self.pki.server_key()).unwrap();
            SmtpServer::bind(
                SmolRuntime,
                "127.0.0.1:0".parse().unwrap(),
                server_tls,
                ctx,
                limits,
            )
            .await
            .unwrap()
        }

        fn mta(&self) -> MiniMta {
            let tls = tls::server_config(&self.pki.server_cert(), &self.pki.server_key()).unwrap();
            MiniMta::start("127.0.0.1:0", tls, "alice@kim.test", "geheim").unwrap()
        }
    }

    /// Session settings that let clients name the MTAs at `mtas` (and nothing else).
    fn allowing(mtas: &[SocketAddr]) -> SmtpConfig {
        SmtpConfig {
            upstream_allow: UpstreamAllowList::new(
                mtas.iter()
                    .map(|a| {
                        a.to_string()
                            .parse::<HostPattern>()
                            .expect("a valid pattern")
                    })
                    .collect(),
            ),
            ..SmtpConfig::default()
        }
    }

    /// A mail client over implicit TLS that reads whole (multi-line) replies.
    struct Client {
        tls: futures_rustls::client::TlsStream<TcpStream>,
        buf: Vec<u8>,
    }

    impl Client {
        async fn connect(pki: &TestPki, addr: SocketAddr) -> Client {
            let tls = tls_stream::connect(
                tls::client_config(Some(&pki.ca())).unwrap(),
                "127.0.0.1",
                addr.port(),
                T,
            )
            .await
            .unwrap();
            Client {
                tls,
                buf: Vec::new(),
            }
        }

        /// The next complete reply, or what arrived before EOF.
        async fn reply(&mut self) -> String {
            loop {
                if let Some(end) = complete_reply(&self.buf) {
                    let r = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end);
                    return r;
                }
                let mut chunk = [0u8; 4096];
                let n = future::or(self.tls.read(&mut chunk), async {
                    smol::Timer::after(T).await;
                    Err(io::Error::new(io::ErrorKind::TimedOut, "no reply"))
                })
                .await
                .unwrap_or(0);
                if n == 0 {
                    return String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        async fn send(&mut self, line: &str) {
            self.tls.write_all(line.as_bytes()).await.unwrap();
            self.tls.flush().await.unwrap();
        }

        async fn say(&mut self, line: &str) -> String {
            self.send(&format!("{line}\r\n")).await;
            self.reply().await
        }

        /// EHLO and AUTH PLAIN with a login name pointing at `mta`.
        async fn login(&mut self, mta: SocketAddr) -> String {
            assert!(self.reply().await.starts_with("220 "));
            assert!(self.say("EHLO client.test").await.starts_with("250"));
            let login = format!("alice@kim.test#127.0.0.1:{}#1#CS#7", mta.port());
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0geheim"));
            self.say(&format!("AUTH PLAIN {token}")).await
        }
    }

    /// End offset of the first complete reply (last line `NNN ` ... CRLF) in `buf`.
    fn complete_reply(buf: &[u8]) -> Option<usize> {
        let mut start = 0;
        while let Some(pos) = buf[start..].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[start..start + pos];
            start += pos + 2;
            if line.len() < 4 || line[3] == b' ' {
                return Some(start);
            }
        }
        None
    }

    fn spawn_server(
        server: SmtpServer,
    ) -> (smol::channel::Sender<()>, smol::Task<io::Result<usize>>) {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let task = smol::spawn(server.run(async move {
            let _ = stopped.recv().await;
        }));
        (stop, task)
    }

    #[test]
    fn a_2019_message_is_protected_and_delivered_end_to_end() {
        let fx = fixture();
        let mta = fx.mta();
        smol::block_on(async {
            let server = fx.server(4, allowing(&[mta.addr()])).await;
            let addr = server.local_addr().unwrap();
            let (stop, task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            assert!(c.login(mta.addr()).await.starts_with("235 "));
            assert!(c.say("MAIL FROM:<alice@kim.test>").await.starts_with("250"));
            assert!(c.say("RCPT TO:<bob@kim.test>").await.starts_with("250"));
            let nocert = c.say("RCPT TO:<nocert@kim.test>").await;
            assert!(nocert.starts_with("550"), "A_2176: {nocert}");
            assert!(c.say("DATA").await.starts_with("354"));
            c.send("Subject: Befund\r\n\r\n..dot-stuffed line\r\nText\r\n.\r\n")
                .await;
            let queued = c.reply().await;
            assert!(queued.starts_with("250"), "{queued}");
            assert!(c.say("QUIT").await.starts_with("221"));
            // The session ends: the server closes the connection.
            assert_eq!(c.reply().await, "");

            let jobs = fx.protector.jobs.lock().unwrap().clone();
            assert_eq!(jobs.len(), 1);
            let (user, from, rcpts, message) = &jobs[0];
            assert_eq!(user, "alice@kim.test");
            assert_eq!(from, "alice@kim.test");
            assert_eq!(rcpts, &["bob@kim.test".to_owned()]);
            assert_eq!(
                message,
                b"Subject: Befund\r\n\r\n.dot-stuffed line\r\nText\r\n"
            );

            let got = mta.received();
            assert_eq!(
                got.len(),
                1,
                "exactly the protected message reached the MTA"
            );
            assert_eq!(got[0].from, "alice@kim.test");
            assert_eq!(got[0].recipients, vec!["bob@kim.test".to_owned()]);
            assert_eq!(
                got[0].data, OUTER,
                "MTA got the protected message, unstuffed intact"
            );

            stop.send(()).await.unwrap();
            assert_eq!(task.await.unwrap(), 0, "no session left to cut off");
        });
    }

    #[test]
    fn large_message_crosses_many_reads_intact() {
        // 8 MiB of 78-byte lines, some starting with a dot: every 16 KiB read boundary falls
        // somewhere inside a line, and the protector must still see the exact message.
        let fx = fixture();
        let mta = fx.mta();
        let mut message = Vec::new();
        let mut stuffed = Vec::new();
        let mut i = 0u32;
        while message.len() < 8 * 1024 * 1024 {
            let line = if i.is_multiple_of(7) {
                format!(".{i:076}\r\n")
            } else {
                format!("{i:077}\r\n")
            };
            message.extend_from_slice(line.as_bytes());
            if line.starts_with('.') {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line.as_bytes());
            i += 1;
        }
        smol::block_on(async {
            let server = fx.server(4, allowing(&[mta.addr()])).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            assert!(c.login(mta.addr()).await.starts_with("235 "));
            assert!(c.say("MAIL FROM:<alice@kim.test>").await.starts_with("250"));
            assert!(c.say("RCPT TO:<bob@kim.test>").await.starts_with("250"));
            assert!(c.say("DATA").await.starts_with("354"));
            let started = Instant::now();
            c.tls.write_all(&stuffed).await.unwrap();
            c.send(".\r\n").await;
            let queued = c.reply().await;
            let elapsed = started.elapsed();
            assert!(queued.starts_with("250"), "{queued}");
            eprintln!(
                "8 MiB DATA through the proxy (TLS in, protector, TLS out) in {} ms",
                elapsed.as_millis()
            );
            let jobs = fx.protector.jobs.lock().unwrap().clone();
            assert_eq!(jobs.len(), 1);
            assert!(jobs[0].3 == message, "protector saw a different message");
            assert_eq!(mta.received()[0].data, OUTER);
        });
    }

    /// Collects every log line of the test process.
    struct Capture(Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            self.0.lock().unwrap().push(format!("{}", record.args()));
        }
        fn flush(&self) {}
    }

    #[test]
    fn a_2005_logs_carry_outcome_and_timing_but_no_content_or_password() {
        static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));
        assert!(
            log::set_logger(&CAPTURE).is_ok(),
            "no other test installs a logger"
        );
        log::set_max_level(log::LevelFilter::Trace);
        let fx = fixture();
        let mta = fx.mta();
        smol::block_on(async {
            let server = fx.server(4, allowing(&[mta.addr()])).await;
            let addr = server.local_addr().unwrap();
            let (stop, task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            assert!(c.login(mta.addr()).await.starts_with("235 "));
            assert!(c.say("MAIL FROM:<alice@kim.test>").await.starts_with("250"));
            assert!(c.say("RCPT TO:<bob@kim.test>").await.starts_with("250"));
            assert!(c.say("DATA").await.starts_with("354"));
            c.send("Subject: GEHEIMER-BEFUND\r\n\r\nDiagnose\r\n.\r\n")
                .await;
            assert!(c.reply().await.starts_with("250"));
            assert!(c.say("QUIT").await.starts_with("221"));
            assert_eq!(c.reply().await, "");
            stop.send(()).await.unwrap();
            task.await.unwrap();
        });
        let lines = CAPTURE.0.lock().unwrap().clone();
        let message_line = lines
            .iter()
            .find(|l| l.contains("message protected in"))
            .expect("one line per message");
        assert!(message_line.starts_with("session="), "{message_line}");
        assert!(
            message_line.contains(" ms: 38 bytes in, "),
            "{message_line}"
        );
        let session_line = lines
            .iter()
            .find(|l| l.contains("ended after") && l.contains("protected=1"))
            .expect("one line per session");
        let id = session_line.split_whitespace().next().unwrap();
        assert!(message_line.starts_with(id), "same correlation id: {id}");
        for line in &lines {
            for secret in [
                "GEHEIMER-BEFUND",
                "Diagnose",
                "geheim",
                "Z2VoZWlt",
                "AGFsaWNl",
            ] {
                assert!(!line.contains(secret), "log line leaks {secret:?}: {line}");
            }
        }
    }

    /// A scripted SMTPS server (std thread, rustls) that records every byte it receives.
    fn scripted_mta(pki: &TestPki) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let config = tls::server_config(&pki.server_cert(), &pki.server_key()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(T)).unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut io = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut seen = Vec::new();
            let say = |io: &mut BufReader<_>, r: &str| {
                let s: &mut rustls::StreamOwned<_, _> = io.get_mut();
                s.write_all(r.as_bytes()).unwrap();
                s.flush().unwrap();
            };
            say(&mut io, "220 mta.test ESMTP\r\n");
            loop {
                let mut line = Vec::new();
                if io.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    return seen;
                }
                seen.extend_from_slice(&line);
                let cmd = String::from_utf8_lossy(&line).to_ascii_uppercase();
                if cmd.starts_with("EHLO") {
                    say(&mut io, "250-mta.test\r\n250 AUTH PLAIN\r\n");
                } else if cmd.starts_with("AUTH") {
                    say(&mut io, "235 2.7.0 ok\r\n");
                } else if cmd.starts_with("DATA") {
                    say(&mut io, "354 go ahead\r\n");
                    while !seen.ends_with(b"\r\n.\r\n") {
                        let mut byte = [0u8; 1];
                        io.read_exact(&mut byte).unwrap();
                        seen.push(byte[0]);
                    }
                    say(&mut io, "250 2.0.0 queued as X1\r\n");
                } else if cmd.starts_with("QUIT") {
                    say(&mut io, "221 2.0.0 bye\r\n");
                    return seen;
                } else {
                    say(&mut io, "250 2.0.0 ok\r\n");
                }
            }
        });
        (addr, handle)
    }

    #[test]
    fn a_2018_bytes_on_the_mta_side_are_exactly_the_protected_exchange() {
        let fx = fixture();
        let (mta, recorded) = scripted_mta(&fx.pki);
        smol::block_on(async {
            let server = fx.server(4, allowing(&[mta])).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            assert!(c.login(mta).await.starts_with("235 "));
            assert_eq!(
                c.say("MAIL FROM:<alice@kim.test>").await,
                "250 2.0.0 ok\r\n"
            );
            assert_eq!(c.say("RCPT TO:<bob@kim.test>").await, "250 2.0.0 ok\r\n");
            assert!(c.say("DATA").await.starts_with("354 "));
            c.send("Subject: Befund\r\n\r\nText\r\n.\r\n").await;
            assert_eq!(c.reply().await, "250 2.0.0 queued as X1\r\n");
            assert_eq!(c.say("QUIT").await, "221 2.0.0 bye\r\n");
            assert_eq!(c.reply().await, "");
        });
        let seen = String::from_utf8(recorded.join().unwrap()).unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode("\0alice@kim.test\0geheim");
        let expected = format!(
            "EHLO client.test\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<alice@kim.test>\r\nRCPT TO:<bob@kim.test>\r\nDATA\r\n\
             X-KOM-LE-Version: 1.0\r\nSubject: KOM-LE-Nachricht\r\n\r\n..MIIBBASE64\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_2015_unreachable_mta_is_reported_to_the_client() {
        let fx = fixture();
        let closed = closed_port();
        smol::block_on(async {
            let server = fx.server(4, allowing(&[closed])).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            let reply = c.login(closed).await;
            assert_eq!(reply, "454 4.7.0 Temporary authentication failure\r\n");
        });
    }

    /// A loopback address nothing listens on.
    fn closed_port() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn a_2010_mta_outside_the_allow_list_gets_the_unreachable_reply_and_no_connection() {
        let fx = fixture();
        // A listening port outside the allow-list: a connection attempt would be accepted here.
        let bait = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        bait.set_nonblocking(true).unwrap();
        let mta = fx.mta();
        let closed = closed_port();
        smol::block_on(async {
            let server = fx.server(4, allowing(&[mta.addr(), closed])).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut refused = Client::connect(&fx.pki, addr).await;
            let refused_reply = refused.login(bait.local_addr().unwrap()).await;
            let mut unreachable = Client::connect(&fx.pki, addr).await;
            let unreachable_reply = unreachable.login(closed).await;
            // Byte for byte the reply of a closed port, and the session stays in CONNECT.
            assert_eq!(refused_reply, unreachable_reply);
            assert!(refused.say("NOOP").await.starts_with("250"));
            // The MTA on the list still works from the same proxy.
            let mut allowed = Client::connect(&fx.pki, addr).await;
            assert!(allowed.login(mta.addr()).await.starts_with("235 "));
        });
        assert_eq!(
            bait.accept().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::WouldBlock),
            "the proxy must not even try to connect"
        );
    }

    #[test]
    fn a_2011_untrusted_mta_certificate_is_never_used() {
        let fx = fixture();
        let other = test_pki::make("Rogue CA");
        let tls = tls::server_config(&other.server_cert(), &other.server_key()).unwrap();
        let rogue = MiniMta::start("127.0.0.1:0", tls, "alice@kim.test", "geheim").unwrap();
        smol::block_on(async {
            let server = fx.server(4, allowing(&[rogue.addr()])).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            let reply = c.login(rogue.addr()).await;
            assert!(reply.starts_with("454"), "{reply}");
        });
    }

    #[test]
    fn extra_connections_get_421_too_many_sessions() {
        let fx = fixture();
        smol::block_on(async {
            let server = fx.server(1, SmtpConfig::default()).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut first = Client::connect(&fx.pki, addr).await;
            assert!(first.reply().await.starts_with("220 "));
            let mut second = Client::connect(&fx.pki, addr).await;
            assert_eq!(
                second.reply().await.as_bytes(),
                TOO_MANY_SESSIONS,
                "the refused client gets a reason"
            );
            assert_eq!(second.reply().await, "", "and is closed");
            // The first session is unaffected; after it ends a new one is admitted.
            assert!(first.say("NOOP").await.starts_with("250"));
            assert!(first.say("QUIT").await.starts_with("221"));
            assert_eq!(first.reply().await, "");
            let mut third = Client::connect(&fx.pki, addr).await;
            let mut greeting = third.reply().await;
            for _ in 0..20 {
                if greeting.starts_with("220 ") {
                    break;
                }
                // The first session's slot is returned a moment after its socket closes.
                smol::Timer::after(Duration::from_millis(50)).await;
                third = Client::connect(&fx.pki, addr).await;
                greeting = third.reply().await;
            }
            assert!(greeting.starts_with("220 "), "{greeting}");
        });
    }

    /// A listener allowing `per_address` sessions per client address (of 4 overall).
    async fn per_address_server(fx: &Fixture, per_address: usize) -> SmtpServer {
        let limits = ServerLimits {
            max_sessions: 4,
            max_sessions_per_address: Some(per_address),
            handshake_timeout: T,
            grace: Duration::from_millis(500),
            proxy_protocol: false,
        };
        fx.server_with_limits(limits, SmtpConfig::default()).await
    }

    #[test]
    fn over_max_sessions_per_address_gets_421_and_the_slot_comes_back_when_sessions_close() {
        let fx = fixture();
        smol::block_on(async {
            let server = per_address_server(&fx, 2).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut first = Client::connect(&fx.pki, addr).await;
            assert!(first.reply().await.starts_with("220 "));
            let mut second = Client::connect(&fx.pki, addr).await;
            assert!(second.reply().await.starts_with("220 "));
            // A third from the same address: the reply of a full server, then closed, although
            // two of the four overall slots are free.
            let mut third = Client::connect(&fx.pki, addr).await;
            assert_eq!(third.reply().await.as_bytes(), TOO_MANY_SESSIONS);
            assert_eq!(third.reply().await, "", "and is closed");
            // The admitted sessions are unaffected.
            assert!(first.say("NOOP").await.starts_with("250"));
            // Sessions end in different ways: QUIT, and the client dropping the connection.
            assert!(first.say("QUIT").await.starts_with("221"));
            assert_eq!(first.reply().await, "");
            drop(second);
            // Both slots come back: two new sessions from the same address are served again.
            let mut again = Vec::new();
            for _ in 0..2 {
                let mut greeting = String::new();
                for _ in 0..40 {
                    let mut c = Client::connect(&fx.pki, addr).await;
                    greeting = c.reply().await;
                    if greeting.starts_with("220 ") {
                        again.push(c);
                        break;
                    }
                    // A slot is returned a moment after its session's socket closes.
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
                assert!(greeting.starts_with("220 "), "{greeting}");
            }
            for c in &mut again {
                assert!(c.say("NOOP").await.starts_with("250"));
            }
        });
    }

    #[test]
    fn client_idle_timeout_comes_from_the_session_timer() {
        let fx = fixture();
        smol::block_on(async {
            let session = SmtpConfig {
                client_idle_timeout: Duration::from_millis(300),
                ..SmtpConfig::default()
            };
            let server = fx.server(4, session).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            let started = Instant::now();
            assert!(c.reply().await.starts_with("220 "));
            let bye = c.reply().await;
            assert!(bye.starts_with("421 4.4.2"), "{bye}");
            assert!(started.elapsed() >= Duration::from_millis(300));
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(c.reply().await, "");
        });
    }

    #[test]
    fn shutdown_stops_accepting_and_cuts_sessions_after_grace() {
        let fx = fixture();
        smol::block_on(async {
            let server = fx.server(4, SmtpConfig::default()).await;
            let addr = server.local_addr().unwrap();
            let (stop, task) = spawn_server(server);
            let mut idle = Client::connect(&fx.pki, addr).await;
            assert!(idle.reply().await.starts_with("220 "));
            let started = Instant::now();
            stop.send(()).await.unwrap();
            let cut = task.await.unwrap();
            assert_eq!(cut, 1, "the idle session outlived the grace period");
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(450), "{waited:?}");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
            assert!(
                TcpStream::connect(addr).await.is_err(),
                "listener must be closed after shutdown"
            );
            assert_eq!(idle.reply().await, "", "cut-off session is closed");
        });
    }

    #[test]
    fn shutdown_lets_a_running_session_finish_within_grace() {
        let fx = fixture();
        smol::block_on(async {
            let server = fx
                .server_with_grace(4, SmtpConfig::default(), Duration::from_secs(20))
                .await;
            let addr = server.local_addr().unwrap();
            let (stop, task) = spawn_server(server);
            let mut c = Client::connect(&fx.pki, addr).await;
            assert!(c.reply().await.starts_with("220 "));
            stop.send(()).await.unwrap();
            smol::Timer::after(Duration::from_millis(100)).await;
            assert!(
                c.say("NOOP").await.starts_with("250"),
                "session still served"
            );
            assert!(c.say("QUIT").await.starts_with("221"));
            assert_eq!(task.await.unwrap(), 0, "finished in time, nothing cut");
        });
    }

    /// A listener behind a balancer: PROXY v2 on, `per_address` sessions per client address,
    /// a short handshake timeout so a silent connection is seen to be cut.
    async fn proxied_server(fx: &Fixture, per_address: usize) -> SmtpServer {
        let limits = ServerLimits {
            max_sessions: 4,
            max_sessions_per_address: Some(per_address),
            handshake_timeout: Duration::from_millis(500),
            grace: Duration::from_millis(500),
            proxy_protocol: true,
        };
        fx.server_with_limits(limits, SmtpConfig::default()).await
    }

    /// A client as HAProxy forwards it: the PROXY v2 header naming `client`, then TLS.
    async fn connect_proxied(pki: &TestPki, addr: SocketAddr, client: &str) -> Client {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let header = komle_core::proxy_protocol::encode(client.parse().unwrap(), addr);
        tcp.write_all(&header).await.unwrap();
        let tls = futures_rustls::TlsConnector::from(tls::client_config(Some(&pki.ca())).unwrap())
            .connect(tls::server_name("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        Client {
            tls,
            buf: Vec::new(),
        }
    }

    #[test]
    fn proxy_protocol_source_address_is_the_client_for_the_per_address_limit() {
        let fx = fixture();
        smol::block_on(async {
            let server = proxied_server(&fx, 1).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            // Every connection comes from 127.0.0.1 (the "balancer"), but the headers name two
            // clients: both are served although one session per address is allowed.
            let mut a = connect_proxied(&fx.pki, addr, "192.0.2.10:40001").await;
            assert!(a.reply().await.starts_with("220 "));
            let mut b = connect_proxied(&fx.pki, addr, "[2001:db8::20]:40002").await;
            assert!(b.reply().await.starts_with("220 "));
            // A second session of the first client is over its own limit.
            let mut again = connect_proxied(&fx.pki, addr, "192.0.2.10:40003").await;
            assert_eq!(again.reply().await.as_bytes(), TOO_MANY_SESSIONS);
            assert!(a.say("NOOP").await.starts_with("250"));
            assert!(b.say("NOOP").await.starts_with("250"));
        });
    }

    #[test]
    fn proxy_protocol_listener_closes_connections_without_a_header() {
        let fx = fixture();
        smol::block_on(async {
            let server = proxied_server(&fx, 4).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            // A mail client connecting directly (TLS ClientHello first) is not served.
            let direct = tls_stream::connect(
                tls::client_config(Some(&fx.pki.ca())).unwrap(),
                "127.0.0.1",
                addr.port(),
                T,
            )
            .await;
            assert!(direct.is_err(), "served without a PROXY header");
            // A connection that sends nothing is closed after the handshake timeout.
            let mut silent = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let mut byte = [0u8; 1];
            let n = future::or(silent.read(&mut byte), async {
                smol::Timer::after(T).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "still open"))
            })
            .await;
            assert!(
                matches!(n, Ok(0) | Err(_)) && started.elapsed() < T,
                "{n:?}"
            );
            // Half a header, then nothing: closed within the handshake timeout as well.
            let mut stalled = TcpStream::connect(addr).await.unwrap();
            let header = komle_core::proxy_protocol::encode("192.0.2.9:1".parse().unwrap(), addr);
            stalled.write_all(&header[..20]).await.unwrap();
            let started = Instant::now();
            let n = future::or(stalled.read(&mut byte), async {
                smol::Timer::after(T).await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "still open"))
            })
            .await;
            assert!(matches!(n, Ok(0)) && started.elapsed() < T, "{n:?}");
            // And a proxied client is still served afterwards.
            let mut ok = connect_proxied(&fx.pki, addr, "192.0.2.30:40004").await;
            assert!(ok.reply().await.starts_with("220 "));
        });
    }

    #[test]
    fn without_proxy_protocol_a_header_is_never_trusted() {
        let fx = fixture();
        smol::block_on(async {
            // The default: no header expected. A header is then just bytes before the TLS
            // ClientHello, the handshake fails and no session starts under the claimed address.
            let server = per_address_server(&fx, 1).await;
            let addr = server.local_addr().unwrap();
            let (_stop, _task) = spawn_server(server);
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let header = komle_core::proxy_protocol::encode("192.0.2.10:1".parse().unwrap(), addr);
            tcp.write_all(&header).await.unwrap();
            let tls =
                futures_rustls::TlsConnector::from(tls::client_config(Some(&fx.pki.ca())).unwrap())
                    .connect(tls::server_name("127.0.0.1").unwrap(), tcp)
                    .await;
            assert!(
                tls.is_err(),
                "a PROXY header was accepted on a plain listener"
            );
            let mut direct = Client::connect(&fx.pki, addr).await;
            assert!(direct.reply().await.starts_with("220 "));
        });
    }
}
