//! Textual specifications: server URLs, `-L` tunnel specs and destination hosts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// A destination or server host: an IP address or a (lowercased) domain name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Domain(String),
}

impl Host {
    /// Parses WHATWG-style host text: IPv4 dotted quad, `[IPv6]` in brackets, or a domain.
    /// Legacy IPv4 forms (`0x7f.1`) are treated as domains, unlike upstream.
    pub fn parse(text: &str) -> Result<Host, String> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("`{text}`: IPv6 address without closing `]`"))?;
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{text}` is not a valid IPv6 address"))?;
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        let valid = !text.is_empty()
            && text.len() <= 253
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            return Err(format!("`{text}` is not a valid host name or IP address"));
        }
        Ok(Host::Domain(text.to_ascii_lowercase()))
    }
}

impl fmt::Display for Host {
    /// IPv6 addresses are bracketed, as upstream sends them in the JWT `r` claim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Domain(name) => f.write_str(name),
        }
    }
}

/// Splits `HOST:PORT` at the last colon (a bracketed IPv6 host keeps its colons).
pub fn split_host_port(text: &str) -> Result<(Host, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` has no `:PORT` at the end"))?;
    let port = port
        .parse()
        .map_err(|_| format!("`{port}` in `{text}` is not a port number"))?;
    Ok((Host::parse(host)?, port))
}

/// Transport of the server URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `ws://`: WebSocket over plain TCP.
    Ws,
    /// `wss://`: WebSocket over TLS.
    Wss,
}

/// `ws[s]://HOST[:PORT]`, with port 80/443 by default.
#[derive(Clone, Debug)]
pub struct ServerUrl {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl ServerUrl {
    pub fn parse_str(text: &str) -> Result<ServerUrl, String> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("wss://") {
            (Scheme::Wss, rest)
        } else if let Some(rest) = text.strip_prefix("ws://") {
            (Scheme::Ws, rest)
        } else {
            return Err(format!(
                "`{text}`: only ws:// and wss:// are supported (HTTP/2 and WebTransport are not)"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if scheme == Scheme::Wss { 443 } else { 80 };
        let has_port = match rest.rfind(']') {
            Some(bracket) => rest[bracket..].contains(':'),
            None => rest.contains(':'),
        };
        let (host, port) = if has_port {
            split_host_port(rest)?
        } else {
            (Host::parse(rest)?, default_port)
        };
        Ok(ServerUrl { scheme, host, port })
    }

    /// The `Host` header value: the host, plus `:port` unless the port is 80 or 443.
    pub fn host_header(&self) -> String {
        if self.port == 80 || self.port == 443 {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Text for `connect`: bracketless host and port.
    pub fn connect_target(&self) -> (String, u16) {
        match &self.host {
            Host::Ip(ip) => (ip.to_string(), self.port),
            Host::Domain(name) => (name.clone(), self.port),
        }
    }
}

/// Username and password required by a local SOCKS5 listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: String,
}

/// One `-L` forward tunnel: what the client listens on and where the server connects.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalTunnelSpec {
    Tcp {
        bind: SocketAddr,
        host: Host,
        port: u16,
        proxy_protocol: bool,
    },
    /// `timeout`: the client closes a peer's tunnel after this long without a datagram from
    /// that peer (`None`: never).
    Udp {
        bind: SocketAddr,
        host: Host,
        port: u16,
        timeout: Option<Duration>,
    },
    Socks5 {
        bind: SocketAddr,
        credentials: Option<Credentials>,
        timeout: Option<Duration>,
    },
    Stdio {
        host: Host,
        port: u16,
        proxy_protocol: bool,
    },
    Unix {
        path: PathBuf,
        host: Host,
        port: u16,
        proxy_protocol: bool,
    },
}

impl LocalTunnelSpec {
    pub fn parse_str(text: &str) -> Result<LocalTunnelSpec, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` has no `scheme://`"))?;
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (rest, None),
        };
        let options = QueryOptions::parse(query.unwrap_or(""))
            .map_err(|reason| format!("`{text}`: {reason}"))?;
        match scheme {
            "tcp" => {
                let (bind, remainder) = split_bind_port(body)?;
                let (host, port) = split_host_port(remainder)?;
                Ok(LocalTunnelSpec::Tcp {
                    bind,
                    host,
                    port,
                    proxy_protocol: options.proxy_protocol,
                })
            }
            "udp" => {
                let (bind, remainder) = split_bind_port(body)?;
                let (host, port) = split_host_port(remainder)?;
                Ok(LocalTunnelSpec::Udp {
                    bind,
                    host,
                    port,
                    timeout: options.timeout,
                })
            }
            "socks5" => {
                let (bind, remainder) = split_bind_port(body)?;
                if !remainder.is_empty() {
                    return Err(format!("`{text}`: socks5 takes only [BIND:]PORT"));
                }
                Ok(LocalTunnelSpec::Socks5 {
                    bind,
                    credentials: options.credentials,
                    timeout: options.timeout,
                })
            }
            "stdio" => {
                let (host, port) = split_host_port(body)?;
                Ok(LocalTunnelSpec::Stdio {
                    host,
                    port,
                    proxy_protocol: options.proxy_protocol,
                })
            }
            "unix" => {
                let (path, remainder) = body
                    .split_once(':')
                    .ok_or_else(|| format!("`{text}`: expected unix://PATH:HOST:PORT"))?;
                let (host, port) = split_host_port(remainder)?;
                Ok(LocalTunnelSpec::Unix {
                    path: PathBuf::from(path),
                    host,
                    port,
                    proxy_protocol: options.proxy_protocol,
                })
            }
            other => Err(format!(
                "`{other}://` tunnels are not supported; use tcp, udp, socks5, stdio or unix"
            )),
        }
    }
}

impl fmt::Display for LocalTunnelSpec {
    /// The spec as a user would write it, without the SOCKS5 password (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalTunnelSpec::Tcp {
                bind, host, port, ..
            } => write!(f, "tcp://{bind} -> {host}:{port}"),
            LocalTunnelSpec::Udp {
                bind,
                host,
                port,
                timeout,
            } => match timeout {
                Some(timeout) => write!(
                    f,
                    "udp://{bind} -> {host}:{port} (idle timeout {} s)",
                    timeout.as_secs()
                ),
                None => write!(f, "udp://{bind} -> {host}:{port} (no idle timeout)"),
            },
            LocalTunnelSpec::Socks5 {
                bind, credentials, ..
            } => match credentials {
                Some(credentials) => {
                    write!(
                        f,
                        "socks5://{bind} (login `{}` required)",
                        credentials.login
                    )
                }
                None => write!(f, "socks5://{bind} (no authentication)"),
            },
            LocalTunnelSpec::Stdio { host, port, .. } => write!(f, "stdio -> {host}:{port}"),
            LocalTunnelSpec::Unix {
                path, host, port, ..
            } => {
                write!(f, "unix://{} -> {host}:{port}", path.display())
            }
        }
    }
}

/// Splits the optional `BIND:` and the mandatory `PORT` from the start of a spec; returns the
/// remainder after the port's colon (empty when nothing follows).
fn split_bind_port(body: &str) -> Result<(SocketAddr, &str), String> {
    let (bind_ip, rest) = if let Some(after) = body.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("`{body}`: expected [IPv6]:PORT"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        (IpAddr::V6(ip), rest)
    } else {
        match body.split_once(':') {
            Some((first, rest)) => match first.parse::<Ipv4Addr>() {
                Ok(ip) => (IpAddr::V4(ip), rest),
                Err(_) => (IpAddr::V4(Ipv4Addr::LOCALHOST), body),
            },
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), body),
        }
    };
    let (port, remainder) = match rest.split_once(':') {
        Some((port, remainder)) => (port, remainder),
        None => (rest, ""),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a local port number"))?;
    Ok((SocketAddr::new(bind_ip, port), remainder))
}

/// Options from the query string of a `-L` spec.
struct QueryOptions {
    proxy_protocol: bool,
    /// `timeout_sec`: 30 s by default, `0` = none.
    timeout: Option<Duration>,
    credentials: Option<Credentials>,
}

impl QueryOptions {
    /// Unknown keys are ignored, as upstream does (they may belong to other tunnel kinds).
    ///
    /// # Errors
    /// When `timeout_sec` is not a number, or only one of `login` and `password` is given
    /// (a listener meant to require a password would otherwise take anyone).
    fn parse(query: &str) -> Result<QueryOptions, String> {
        let mut options = QueryOptions {
            proxy_protocol: false,
            timeout: Some(Duration::from_secs(30)),
            credentials: None,
        };
        let (mut login, mut password) = (None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "proxy_protocol" => options.proxy_protocol = true,
                "timeout_sec" => {
                    options.timeout = match value.parse::<u64>() {
                        Ok(0) => None,
                        Ok(seconds) => Some(Duration::from_secs(seconds)),
                        Err(_) => {
                            return Err(format!(
                                "timeout_sec=`{}` is not a number of seconds",
                                value.escape_debug()
                            ));
                        }
                    }
                }
                "login" => login = Some(value),
                "password" => password = Some(value),
                _ => {}
            }
        }
        options.credentials = match (login, password) {
            (Some(login), Some(password)) => Some(Credentials { login, password }),
            (None, None) => None,
            _ => {
                return Err(
                    "give both login and password, or neither (no authentication)".to_string(),
                );
            }
        };
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_spec_defaults_bind_to_loopback() {
        let spec = LocalTunnelSpec::parse_str("tcp://1212:example.com:443").unwrap();
        assert_eq!(
            spec,
            LocalTunnelSpec::Tcp {
                bind: "127.0.0.1:1212".parse().unwrap(),
                host: Host::Domain("example.com".into()),
                port: 443,
                proxy_protocol: false
            }
        );
    }

    #[test]
    fn udp_spec_accepts_ipv6_bind_and_timeout() {
        let spec = LocalTunnelSpec::parse_str("udp://[::1]:5353:1.1.1.1:53?timeout_sec=0").unwrap();
        assert_eq!(
            spec,
            LocalTunnelSpec::Udp {
                bind: "[::1]:5353".parse().unwrap(),
                host: Host::Ip("1.1.1.1".parse().unwrap()),
                port: 53,
                timeout: None
            }
        );
    }

    #[test]
    fn displayed_spec_never_shows_the_password() {
        let spec = LocalTunnelSpec::parse_str("socks5://1080?login=alice&password=s3cret").unwrap();
        let shown = spec.to_string();
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn socks5_spec_with_login_and_password_requires_them() {
        let with = LocalTunnelSpec::parse_str("socks5://127.0.0.1:1080?login=a&password=b%20c");

        match with.unwrap() {
            LocalTunnelSpec::Socks5 {
                credentials: Some(c),
                ..
            } => assert_eq!(c.password, "b c"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unix_and_stdio_specs_parse() {
        let unix = LocalTunnelSpec::parse_str("unix:///run/app.sock:[::1]:5432").unwrap();
        let stdio = LocalTunnelSpec::parse_str("stdio://db:22").unwrap();
        assert!(matches!(unix, LocalTunnelSpec::Unix { port: 5432, .. }));
        assert!(matches!(stdio, LocalTunnelSpec::Stdio { port: 22, .. }));
    }

    #[test]
    fn server_url_has_scheme_default_ports_and_host_header() {
        let url = ServerUrl::parse_str("wss://[::1]").unwrap();
        assert_eq!(url.port, 443);
        assert_eq!(url.host_header(), "[::1]");
        let url = ServerUrl::parse_str("ws://localhost:8080").unwrap();
        assert_eq!(url.host_header(), "localhost:8080");
    }

    #[test]
    fn bare_ipv6_is_not_a_host() {
        assert!(Host::parse("::1").is_err());
        assert!(Host::parse("[::1]").is_ok());
    }

    #[test]
    fn half_given_socks5_credentials_and_unparsable_timeouts_are_refused() {
        let login_only = LocalTunnelSpec::parse_str("socks5://1080?login=alice");
        let password_only = LocalTunnelSpec::parse_str("socks5://1080?password=secret");
        let bad_timeout = LocalTunnelSpec::parse_str("udp://5353:10.0.0.53:53?timeout_sec=abc");

        assert!(login_only.unwrap_err().contains("both login and password"));
        assert!(
            password_only
                .unwrap_err()
                .contains("both login and password")
        );
        assert!(bad_timeout.unwrap_err().contains("not a number of seconds"));
    }
}
