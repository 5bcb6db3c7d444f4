//! Drives the core's pipelines against the Konnektor simulator in-process (no HTTP), with the
//! test world as directory: the same loop a runtime runs, minus the sockets.

use std::time::SystemTime;

use komle_core::directory::CertificateCache;
use komle_core::konnektor::{KonnektorEndpoints, ServiceDirectory};
use komle_core::open::{self, CardCache, Reception};
use komle_core::pop3::{OpenFailure, OpenJob, OpenedMessage};
use komle_core::protect::{self, Protection};
use komle_core::smime::opened_mail::DeliveryOptions;
use komle_core::smtp::{ProtectJob, ProtectedMessage, ProtectionFailure};

use crate::sim::simulator::Simulator;
use crate::world::World;

/// The endpoints the simulator's `connector.sds` announces.
pub fn endpoints(sim: &Simulator) -> KonnektorEndpoints {
    let sds = sim
        .handle_get("/connector.sds", "https://konnektor.test")
        .body;
    ServiceDirectory::parse(&sds)
        .and_then(|d| d.endpoints())
        .expect("the simulator's connector.sds names every service")
}

/// Protects `job`; `calls` records each lookup (`lookup ADDRESS`) and Konnektor operation.
pub fn protect(
    sim: &Simulator,
    world: &World,
    cache: &mut CertificateCache,
    job: ProtectJob,
    now: SystemTime,
    calls: &mut Vec<String>,
) -> Result<ProtectedMessage, ProtectionFailure> {
    let mut p = Protection::new(job, endpoints(sim), now);
    loop {
        match p.step(cache) {
            protect::Step::LookUp(a) => {
                calls.push(format!("lookup {a}"));
                p.directory_answer(cache, Ok(world.directory_entries(&a)));
            }
            protect::Step::Call(c) => {
                calls.push(operation(c.request.soap_action));
                let r = sim.handle(c.request.soap_action, &c.request.body);
                p.konnektor_answer(cache, r.body);
            }
            protect::Step::Done(r) => return r,
        }
    }
}

/// Opens `job` as the POP3 side does, with an empty card cache; `calls` records each
/// Konnektor operation.
pub fn open(
    sim: &Simulator,
    job: OpenJob,
    now: SystemTime,
    calls: &mut Vec<String>,
) -> Result<OpenedMessage, OpenFailure> {
    open_with_cards(sim, &mut CardCache::default(), job, now, calls)
}

/// [`open`](fn@open) with a card cache that outlives the message, as the runtime's does (A_2060).
pub fn open_with_cards(
    sim: &Simulator,
    cards: &mut CardCache,
    job: OpenJob,
    now: SystemTime,
    calls: &mut Vec<String>,
) -> Result<OpenedMessage, OpenFailure> {
    let mut r = Reception::new(job, endpoints(sim), now, DeliveryOptions::default());
    loop {
        match r.step() {
            open::Step::Call(c) => {
                calls.push(operation(c.request.soap_action));
                let answer = sim.handle(c.request.soap_action, &c.request.body);
                r.konnektor_answer(cards, answer.body);
            }
            // Only a pipeline made `with_kas` asks; this one is not.
            open::Step::FetchKas(_) => {
                r.kas_fetched(Err(komle_core::kas::KasOpenError::DownloadFailed))
            }
            open::Step::Done(result) => return result,
        }
    }
}

fn operation(soap_action: &str) -> String {
    soap_action
        .rsplit('#')
        .next()
        .unwrap_or(soap_action)
        .to_owned()
}
