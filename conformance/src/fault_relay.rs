//! A TCP relay for fault injection: sits between the proxy and one upstream (the MTA, the
//! Konnektor's HTTPS port, the LDAP directory) or between a mail client and the proxy,
//! forwards bytes both ways and, per a [`Plan`], breaks the path at one chosen point.
//!
//! The point is "the k-th chunk in one direction since the plan was armed", counted over all
//! connections through the relay (a pooled Konnektor or LDAP connection carries several
//! exchanges). At that chunk the relay either drops both connections ([`FaultKind::Drop`]) or
//! stalls ([`FaultKind::Stall`]): the chunk and everything after it is swallowed while both
//! sockets stay open, until one side gives up and closes; then the relay closes the other side
//! too, the way the far end would notice after its own timeout.
//!
//! A chunk approximates a protocol step ([`Chunking`]). The relayed protocols are
//! request/response: a peer writes one step (a command, a reply, a handshake flight, an HTTP
//! request) and then waits. For plain protocols (LDAP) a chunk is one read; two steps may
//! arrive in one read, or one in two. TLS passes through untouched, so the relay cannot see
//! steps, but it can see records (5-byte plaintext headers): there a chunk is one TLS record,
//! which does not depend on how the kernel happened to split or join the bytes, so the same
//! k hits the same point in every run. Looping k over every chunk until the fault no longer
//! fires therefore visits every step, which is all the fault loops need.
//!
//! Plain threads and `std::net`: two threads per connection, no async runtime to keep alive.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Which way bytes travel. The relay's client is whoever connects to it (the proxy; or a
/// mail client when the relay sits in front of the proxy), its server is the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: commands, requests.
    ToServer,
    /// Server to client: replies, responses.
    ToClient,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// What the relay counts as one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// One read from the socket (plain protocols).
    Reads,
    /// One TLS record, found by its header; the fault strikes at the record's first byte.
    TlsRecords,
}

/// What happens at the chosen chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Both connections are closed; the chunk is not forwarded.
    Drop,
    /// Nothing more is forwarded on that connection; the sockets stay open.
    Stall,
}

/// Where and how to break the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub direction: Direction,
    /// 0-based index of the chunk, counted per direction since [`FaultRelay::arm`].
    pub chunk: usize,
    pub kind: FaultKind,
    /// The path stays broken: every later chunk in `direction`, on any connection, meets the
    /// same fault until the relay is armed again (an outage starting at that step, which a
    /// client's reconnect cannot heal). Otherwise the fault strikes once.
    pub lasting: bool,
}

/// The fault that struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    pub plan: Plan,
    /// When the relay read the chunk it then dropped or swallowed: the bytes had left the
    /// sender before this instant.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    plan: Option<Plan>,
    /// Chunks read per direction since the plan was armed.
    chunks: [usize; 2],
    fired: Option<Fired>,
}

struct Shared {
    upstream: SocketAddr,
    chunking: Chunking,
    state: Mutex<State>,
    /// Both sockets of every live connection, to shut them down when the relay stops.
    live: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next_id: AtomicU64,
    accepted: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u64, [TcpStream; 2]>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running relay; stops accepting and closes every connection when dropped.
pub struct FaultRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// How long the relay may take to reach the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 16 * 1024;

impl FaultRelay {
    /// Listens on `127.0.0.1:0` and relays every connection to `upstream`; no plan armed.
    pub fn start(upstream: SocketAddr, chunking: Chunking) -> std::io::Result<FaultRelay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream,
            chunking,
            state: Mutex::new(State::default()),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::Builder::new()
            .name("fault-relay-accept".into())
            .spawn(move || accept_loop(listener, s))?;
        Ok(FaultRelay { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the plan (`None`: relay faithfully) and restarts the chunk count and the record of
    /// a fired fault.
    pub fn arm(&self, plan: Option<Plan>) {
        *self.shared.state() = State {
            plan,
            ..State::default()
        };
    }

    /// The fault, if it struck since the last [`arm`](Self::arm).
    pub fn fired(&self) -> Option<Fired> {
        self.shared.state().fired
    }

    /// Chunks read in `direction` since the last [`arm`](Self::arm).
    pub fn chunks(&self, direction: Direction) -> usize {
        self.shared.state().chunks[direction.index()]
    }

    /// Connections currently open through the relay.
    pub fn open_connections(&self) -> usize {
        self.shared.live().len()
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for [a, b] in self.shared.live().values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                let _ = thread::Builder::new()
                    .name("fault-relay-conn".into())
                    .spawn(move || connection(client, s));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One relayed connection: this thread pumps client -> server, a second one the other way.
fn connection(client: TcpStream, shared: Arc<Shared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
        return;
    };
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    shared.live().insert(id, [c3, u3]);
    let stalled = Arc::new(AtomicBool::new(false));
    let back = {
        let (shared, stalled) = (shared.clone(), stalled.clone());
        thread::Builder::new()
            .name("fault-relay-pump".into())
            .spawn(move || pump(u2, c2, Direction::ToClient, &shared, &stalled))
    };
    pump(client, upstream, Direction::ToServer, &shared, &stalled);
    if let Ok(t) = back {
        let _ = t.join();
    }
    shared.live().remove(&id);
}

/// Copies `from` to `to` until either ends. Any end, error or fault shuts both sockets down,
/// which also ends the pump of the other direction.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    direction: Direction,
    shared: &Shared,
    stalled: &AtomicBool,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut records = RecordSplitter::default();
    'relay: loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.load(Ordering::SeqCst) {
            continue;
        }
        let starts = match shared.chunking {
            Chunking::Reads => vec![0],
            Chunking::TlsRecords => records.starts(&buf[..n]),
        };
        for start in starts {
            match strike(shared, direction) {
                None => continue,
                Some(FaultKind::Drop) => {
                    let _ = to.write_all(&buf[..start]);
                    break 'relay;
                }
                Some(FaultKind::Stall) => {
                    let _ = to.write_all(&buf[..start]);
                    stalled.store(true, Ordering::SeqCst);
                    continue 'relay;
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Finds where TLS records start in a byte stream read in arbitrary pieces: each record is a
/// 5-byte header (type, version, 16-bit length) and that many bytes.
#[derive(Default)]
struct RecordSplitter {
    /// Header bytes of the current record seen so far (fewer than 5).
    header: Vec<u8>,
    /// Body bytes of the current record still to come.
    body_left: usize,
}

impl RecordSplitter {
    /// Offsets in `bytes` (the next piece of the stream) at which a record starts.
    fn starts(&mut self, bytes: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if self.body_left > 0 {
                let take = self.body_left.min(bytes.len() - i);
                self.body_left -= take;
                i += take;
                continue;
            }
            if self.header.is_empty() {
                starts.push(i);
            }
            let take = (5 - self.header.len()).min(bytes.len() - i);
            self.header.extend_from_slice(&bytes[i..i + take]);
            i += take;
            if self.header.len() == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
            }
        }
        starts
    }
}

/// Counts one chunk in `direction` and says whether the armed fault strikes at it.
fn strike(shared: &Shared, direction: Direction) -> Option<FaultKind> {
    let mut state = shared.state();
    let index = state.chunks[direction.index()];
    state.chunks[direction.index()] += 1;
    let plan = state.plan?;
    if plan.direction != direction {
        return None;
    }
    if state.fired.is_some() {
        return plan.lasting.then_some(plan.kind);
    }
    if plan.chunk != index {
        return None;
    }
    state.fired = Some(Fired {
        plan,
        at: Instant::now(),
    });
    Some(plan.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// An upstream that answers every line with "ok <line>".
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    for line in BufReader::new(s).lines() {
                        let Ok(line) = line else { return };
                        if w.write_all(format!("ok {line}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn ask(r: &mut BufReader<TcpStream>, line: &str) -> Option<String> {
        r.get_mut().write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut a = String::new();
        match r.read_line(&mut a) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(a.trim_end().to_owned()),
        }
    }

    fn client(relay: &FaultRelay) -> BufReader<TcpStream> {
        let s = TcpStream::connect(relay.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        BufReader::new(s)
    }

    fn settle(relay: &FaultRelay) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        while relay.open_connections() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        relay.open_connections()
    }

    #[test]
    fn relays_faithfully_and_counts_chunks_and_connections() {
        let relay = FaultRelay::start(echo_server(), Chunking::Reads).unwrap();
        let mut c = client(&relay);
        assert_eq!(ask(&mut c, "a").as_deref(), Some("ok a"));
        assert_eq!(ask(&mut c, "b").as_deref(), Some("ok b"));
        assert_eq!(relay.chunks(Direction::ToServer), 2);
        assert_eq!(relay.chunks(Direction::ToClient), 2);
        assert_eq!(relay.fired(), None);
        assert_eq!(relay.open_connections(), 1);
        drop(c);
        assert_eq!(settle(&relay), 0);
        assert_eq!(relay.accepted(), 1);
    }

    #[test]
    fn drop_at_the_second_reply_closes_the_connection_there() {
        let relay = FaultRelay::start(echo_server(), Chunking::Reads).unwrap();
        relay.arm(Some(Plan {
            direction: Direction::ToClient,
            chunk: 1,
            kind: FaultKind::Drop,
            lasting: false,
        }));
        let mut c = client(&relay);
        assert_eq!(ask(&mut c, "a").as_deref(), Some("ok a"));
        let before = Instant::now();
        assert_eq!(ask(&mut c, "b"), None);
        let fired = relay.fired().expect("fired");
        assert_eq!(fired.plan.chunk, 1);
        assert!(fired.at >= before);
        assert_eq!(settle(&relay), 0);
    }

    #[test]
    fn stall_keeps_the_connection_open_until_a_side_closes() {
        let relay = FaultRelay::start(echo_server(), Chunking::Reads).unwrap();
        relay.arm(Some(Plan {
            direction: Direction::ToServer,
            chunk: 0,
            kind: FaultKind::Stall,
            lasting: false,
        }));
        let mut c = client(&relay);
        // The read times out: no answer, no close.
        assert_eq!(ask(&mut c, "a"), None);
        assert!(relay.fired().is_some());
        assert_eq!(relay.open_connections(), 1);
        drop(c);
        assert_eq!(settle(&relay), 0);
        // A new connection passes: the fault fires once per arm.
        let mut c = client(&relay);
        assert_eq!(ask(&mut c, "b").as_deref(), Some("ok b"));
    }

    #[test]
    fn tls_records_are_found_however_the_bytes_are_split() {
        let record = |len: u16| {
            let mut r = vec![0x17, 3, 3];
            r.extend_from_slice(&len.to_be_bytes());
            r.extend(std::iter::repeat_n(0xaa, usize::from(len)));
            r
        };
        let stream: Vec<u8> = [record(3), record(0), record(300), record(1)].concat();
        let want = vec![0, 8, 13, 318];
        // In one piece, and byte by byte.
        assert_eq!(RecordSplitter::default().starts(&stream), want);
        let mut s = RecordSplitter::default();
        let one_by_one: Vec<usize> = (0..stream.len())
            .filter(|&i| !s.starts(&stream[i..=i]).is_empty())
            .collect();
        assert_eq!(one_by_one, want);
    }

    #[test]
    fn a_lasting_drop_breaks_every_later_connection_until_rearmed() {
        let relay = FaultRelay::start(echo_server(), Chunking::Reads).unwrap();
        relay.arm(Some(Plan {
            direction: Direction::ToServer,
            chunk: 1,
            kind: FaultKind::Drop,
            lasting: true,
        }));
        let mut c = client(&relay);
        assert_eq!(ask(&mut c, "a").as_deref(), Some("ok a"));
        assert_eq!(ask(&mut c, "b"), None);
        assert_eq!(ask(&mut client(&relay), "c"), None);
        relay.arm(None);
        assert_eq!(ask(&mut client(&relay), "d").as_deref(), Some("ok d"));
    }

    #[test]
    fn a_fault_inside_a_read_forwards_the_records_before_it() {
        // An upstream that reports how many bytes reached it before the relay closed.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = tx.send(got);
        });
        let relay = FaultRelay::start(upstream, Chunking::TlsRecords).unwrap();
        relay.arm(Some(Plan {
            direction: Direction::ToServer,
            chunk: 1,
            kind: FaultKind::Drop,
            lasting: false,
        }));
        let first = [0x16, 3, 3, 0, 2, 0xaa, 0xbb];
        let second = [0x17, 3, 3, 0, 1, 0xcc];
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        c.write_all(&[&first[..], &second[..]].concat()).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, first);
        assert!(relay.fired().is_some());
    }

    #[test]
    fn dropping_the_relay_closes_live_connections() {
        let relay = FaultRelay::start(echo_server(), Chunking::Reads).unwrap();
        let mut c = client(&relay);
        assert_eq!(ask(&mut c, "a").as_deref(), Some("ok a"));
        drop(relay);
        assert_eq!(ask(&mut c, "b"), None);
    }
}
