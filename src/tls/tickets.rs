//! The client's store of TLS 1.3 session tickets.
//!
//! Every tunnel is a new TLS connection, and a resumed handshake skips both certificate
//! signatures and the chain checks, which a profile of 32 tunnels opened at once showed to be
//! a quarter of the CPU spent. rustls' own store keeps 8 tickets per server: with more
//! connections than that being opened at once, the rest did full handshakes. This store keeps
//! up to [`TICKETS_PER_SERVER`] and hands out the newest first, so the ones left behind are
//! the old ones, which are also the first to be dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// Tickets kept per server name: more than the connections a busy client opens at once.
pub const TICKETS_PER_SERVER: usize = 256;

/// Server names remembered; a client talks to one server, so this only bounds memory.
const SERVERS: usize = 8;

/// Tickets older than this are not offered (servers' ticket lifetimes are longer; an old
/// ticket is only more likely to have been forgotten by a restarted server).
const TICKET_MAX_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct TicketStore {
    servers: Mutex<HashMap<ServerName<'static>, ServerTickets>>,
}

#[derive(Debug, Default)]
struct ServerTickets {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Oldest first.
    tls13: VecDeque<(Instant, Tls13ClientSessionValue)>,
}

impl TicketStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<ServerName<'static>, ServerTickets>> {
        // Every operation leaves the map consistent, so a poisoned lock is still usable.
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn edit(&self, server_name: ServerName<'static>, edit: impl FnOnce(&mut ServerTickets)) {
        let mut servers = self.lock();
        if !servers.contains_key(&server_name) && servers.len() >= SERVERS {
            servers.clear();
        }
        edit(servers.entry(server_name).or_default());
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.edit(server_name, |tickets| tickets.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.lock()
            .get(&server_name.to_owned())
            .and_then(|tickets| tickets.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.edit(server_name, |tickets| tickets.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.lock()
            .get(&server_name.to_owned())
            .and_then(|tickets| tickets.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        if let Some(tickets) = self.lock().get_mut(server_name) {
            tickets.tls12 = None;
        }
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.edit(server_name, |tickets| {
            if tickets.tls13.len() >= TICKETS_PER_SERVER {
                tickets.tls13.pop_front();
            }
            tickets.tls13.push_back((Instant::now(), value));
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let mut servers = self.lock();
        let tickets = servers.get_mut(server_name)?;
        let (received, ticket) = tickets.tls13.pop_back()?;
        if received.elapsed() > TICKET_MAX_AGE {
            // Everything older is older still.
            tickets.tls13.clear();
            return None;
        }
        Some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_servers_up_to_the_bound_then_starts_over() {
        let store = TicketStore::default();

        for index in 0..=SERVERS {
            let name = ServerName::try_from(format!("server-{index}.test")).unwrap();
            store.set_kx_hint(name, NamedGroup::X25519);
        }

        assert_eq!(store.lock().len(), 1);
        let last = ServerName::try_from(format!("server-{SERVERS}.test")).unwrap();
        assert_eq!(store.kx_hint(&last), Some(NamedGroup::X25519));
    }
}
