//! Which tunnels the server allows, as rules tried in order (upstream's model): a rule matches
//! a request by its path prefix, then one of its allow entries must accept the tunnel.
//!
//! Rules come from `--restrict-to` and `--restrict-http-upgrade-path-prefix` today; a
//! restrictions file would produce the same `Rule`s. Without any flag everything is allowed.

use std::net::IpAddr;

use super::descriptor::TunnelKind;
use super::spec::Host;

/// The server's tunnel policy.
#[derive(Clone, Debug)]
pub struct Restrictions {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    name: String,
    prefix: PrefixMatch,
    allow: Vec<Allow>,
}

/// Which upgrade path prefixes a rule applies to.
#[derive(Clone, Debug)]
enum PrefixMatch {
    Any,
    Exactly(String),
}

/// One thing a rule allows.
#[derive(Clone, Debug)]
enum Allow {
    /// Every forward and reverse tunnel.
    Everything,
    /// Forward TCP/UDP tunnels to exactly this destination.
    Destination { target: Target, port: u16 },
}

#[derive(Clone, Debug)]
enum Target {
    Ip(IpAddr),
    /// Matches only a request naming this host (an IP destination never matches a name).
    Name(String),
}

impl Restrictions {
    /// Builds the rules upstream derives from its flags.
    ///
    /// # Errors
    /// When a `--restrict-to` entry is not `HOST:PORT`.
    pub fn from_flags(restrict_to: &[String], prefixes: &[String]) -> anyhow::Result<Restrictions> {
        let mut allow = Vec::new();
        for entry in restrict_to {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| anyhow::anyhow!("--restrict-to `{entry}`: expected HOST:PORT"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("--restrict-to `{entry}`: `{port}` is not a port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let target = match host.parse::<IpAddr>() {
                Ok(ip) => Target::Ip(ip),
                Err(_) => Target::Name(host.to_ascii_lowercase()),
            };
            allow.push(Allow::Destination { target, port });
        }
        if allow.is_empty() {
            allow.push(Allow::Everything);
        }
        let rules = if prefixes.is_empty() {
            vec![Rule {
                name: "flags".into(),
                prefix: PrefixMatch::Any,
                allow,
            }]
        } else {
            prefixes
                .iter()
                .map(|prefix| Rule {
                    name: format!("path prefix {prefix}"),
                    prefix: PrefixMatch::Exactly(prefix.clone()),
                    allow: allow.clone(),
                })
                .collect()
        };
        Ok(Restrictions { rules })
    }

    /// Whether a tunnel request is allowed; the error says why not, in plain words.
    pub fn check(
        &self,
        path_prefix: &str,
        kind: &TunnelKind,
        host: &Host,
        port: u16,
    ) -> Result<(), String> {
        let prefix_rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| rule.prefix.matches(path_prefix))
            .collect();
        if prefix_rules.is_empty() {
            return Err(format!("path prefix `{path_prefix}` not allowed"));
        }
        let allowed = prefix_rules.iter().any(|rule| {
            rule.allow
                .iter()
                .any(|allow| allow.accepts(kind, host, port))
        });
        if allowed {
            tracing::debug!(rule = %prefix_rules[0].name, "tunnel allowed");
            Ok(())
        } else {
            Err(format!("destination {host}:{port} not allowed"))
        }
    }
}

impl PrefixMatch {
    fn matches(&self, prefix: &str) -> bool {
        match self {
            PrefixMatch::Any => true,
            PrefixMatch::Exactly(expected) => expected == prefix,
        }
    }
}

impl Allow {
    fn accepts(&self, kind: &TunnelKind, host: &Host, port: u16) -> bool {
        match self {
            Allow::Everything => true,
            Allow::Destination {
                target,
                port: allowed_port,
            } => {
                let forward = matches!(kind, TunnelKind::Tcp { .. } | TunnelKind::Udp { .. });
                let same_target = match (target, host) {
                    (Target::Ip(allowed), Host::Ip(requested)) => allowed == requested,
                    (Target::Name(allowed), Host::Domain(requested)) => allowed == requested,
                    _ => false,
                };
                forward && same_target && *allowed_port == port
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: TunnelKind = TunnelKind::Tcp {
        proxy_protocol: false,
    };

    #[test]
    fn no_flags_allow_everything() {
        let restrictions = Restrictions::from_flags(&[], &[]).unwrap();
        assert!(
            restrictions
                .check("v1", &TunnelKind::ReverseTcp, &Host::parse("a").unwrap(), 1)
                .is_ok()
        );
    }

    #[test]
    fn restrict_to_allows_only_listed_destinations_and_no_reverse() {
        let restrictions =
            Restrictions::from_flags(&["127.0.0.1:22".into(), "db.lan:5432".into()], &[]).unwrap();
        let localhost = Host::parse("127.0.0.1").unwrap();
        assert!(restrictions.check("v1", &TCP, &localhost, 22).is_ok());
        assert!(restrictions.check("v1", &TCP, &localhost, 23).is_err());
        assert!(
            restrictions
                .check("v1", &TCP, &Host::parse("DB.lan").unwrap(), 5432)
                .is_ok()
        );
        assert!(
            restrictions
                .check("v1", &TunnelKind::ReverseTcp, &localhost, 22)
                .is_err()
        );
    }

    #[test]
    fn path_prefix_rules_need_an_exact_prefix() {
        let restrictions = Restrictions::from_flags(&[], &["team-a".into()]).unwrap();
        let host = Host::parse("x").unwrap();
        assert!(restrictions.check("team-a", &TCP, &host, 1).is_ok());
        assert!(restrictions.check("team-b", &TCP, &host, 1).is_err());
    }
}
