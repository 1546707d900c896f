//! Command-line arguments of `wstunnel server` and `wstunnel client`, with upstream wstunnel
//! v10's flag names and defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::spec::{LocalTunnelSpec, ServerUrl};

/// `wstunnel server [OPTIONS] ws[s]://BIND[:PORT]`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on: `ws://BIND[:PORT]` (plain, port 80 by default) or
    /// `wss://BIND[:PORT]` (TLS, port 443 by default). IPv6 addresses go in brackets.
    #[arg(value_name = "ws[s]://BIND[:PORT]", value_parser = ServerUrl::parse_str)]
    pub url: ServerUrl,

    /// Interval of WebSocket pings sent to each client (`30s`, `2m`; `0` disables). By default
    /// 30 seconds. A client that leaves three pings unanswered is disconnected.
    #[arg(long, alias = "websocket-ping-frequency-sec", value_name = "DURATION",
          default_value = "30s", value_parser = parse_duration)]
    pub websocket_ping_frequency: Duration,

    /// Accepted for compatibility with upstream, where it makes the server unmask incoming
    /// frames. This server always unmasks masked frames and never masks its own.
    #[arg(long)]
    pub websocket_mask_frame: bool,

    /// Only allow tunnels to this `HOST:PORT` (repeatable). By default any destination is
    /// allowed. A host name only matches requests naming that exact host.
    #[arg(long, value_name = "HOST:PORT")]
    pub restrict_to: Vec<String>,

    /// Only allow requests whose upgrade path prefix equals this value (repeatable). By default
    /// any prefix is allowed (with mTLS the prefix must still equal the certificate CN).
    #[arg(
        short = 'r',
        long,
        value_name = "PREFIX",
        env = "WSTUNNEL_RESTRICT_HTTP_UPGRADE_PATH_PREFIX"
    )]
    pub restrict_http_upgrade_path_prefix: Vec<String>,

    /// PEM certificate chain of the server (wss only). Overrides the one from --pki.
    #[arg(long, value_name = "FILE")]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key of the server (PKCS#8, PKCS#1 or SEC1). Overrides the one from --pki.
    #[arg(long, value_name = "FILE")]
    pub tls_private_key: Option<PathBuf>,

    /// PEM bundle of CAs that issue client certificates: turns on mandatory mTLS. Overrides the
    /// CA from --pki.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_certs: Option<PathBuf>,

    /// PEM certificate revocation list checked for client certificates (repeatable). Replaces
    /// the CRL from --pki.
    #[arg(long, value_name = "FILE")]
    pub tls_client_crl: Vec<PathBuf>,

    /// PKI directory (as made by `wstunnel pki`): uses `certs/NAME.cert.pem`,
    /// `private/NAME.pem`, `certs/ca.cert.pem` (client CA, mTLS on) and `crl/ca.crl.pem`.
    #[arg(long, value_name = "DIR")]
    pub pki: Option<PathBuf>,

    /// Certificate name inside --pki. By default `wstunnel-server`.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "wstunnel-server",
        requires = "pki"
    )]
    pub pki_server: String,

    #[command(flatten)]
    pub not_supported: ServerNotSupported,
}

/// Upstream server options this server does not implement: recognised so that an upstream
/// command line gets an error naming the option rather than "unexpected argument".
#[derive(clap::Args, Debug, Default)]
pub struct ServerNotSupported {
    #[arg(long, hide = true, value_name = "FILE")]
    restrict_config: Option<String>,
    #[arg(long, hide = true)]
    enable_webtransport: bool,
    #[arg(long, hide = true, value_name = "URL")]
    dns_resolver: Vec<String>,
    #[arg(long, hide = true)]
    dns_resolver_prefer_ipv4: bool,
    #[arg(short = 'p', long, hide = true, value_name = "PROXY")]
    http_proxy: Option<String>,
    #[arg(long, hide = true, value_name = "LOGIN")]
    http_proxy_login: Option<String>,
    #[arg(long, hide = true, value_name = "PASSWORD")]
    http_proxy_password: Option<String>,
    #[arg(long, hide = true, value_name = "INT")]
    socket_so_mark: Option<String>,
    #[arg(long, hide = true, value_name = "DURATION")]
    remote_to_local_server_idle_timeout: Option<String>,
}

impl ServerNotSupported {
    /// The first upstream-only option given, with what it does upstream.
    pub fn first_given(&self) -> Option<(&'static str, &'static str)> {
        first_given([
            (
                self.restrict_config.is_some(),
                "--restrict-config",
                "the restrictions file",
            ),
            (
                self.enable_webtransport,
                "--enable-webtransport",
                "the WebTransport transport",
            ),
            (
                !self.dns_resolver.is_empty(),
                "--dns-resolver",
                "a custom DNS resolver",
            ),
            (
                self.dns_resolver_prefer_ipv4,
                "--dns-resolver-prefer-ipv4",
                "DNS preferences",
            ),
            (
                self.http_proxy.is_some(),
                "--http-proxy",
                "an HTTP proxy to destinations",
            ),
            (
                self.http_proxy_login.is_some(),
                "--http-proxy-login",
                "an HTTP proxy",
            ),
            (
                self.http_proxy_password.is_some(),
                "--http-proxy-password",
                "an HTTP proxy",
            ),
            (
                self.socket_so_mark.is_some(),
                "--socket-so-mark",
                "SO_MARK on sockets",
            ),
            (
                self.remote_to_local_server_idle_timeout.is_some(),
                "--remote-to-local-server-idle-timeout",
                "reverse tunnels",
            ),
        ])
    }
}

/// `wstunnel client [OPTIONS] ws[s]://HOST[:PORT]`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Server to connect to: `ws://HOST[:PORT]` or `wss://HOST[:PORT]`.
    #[arg(value_name = "ws[s]://HOST[:PORT]", value_parser = ServerUrl::parse_str)]
    pub url: ServerUrl,

    /// Forward tunnel (repeatable): `tcp://[BIND:]PORT:HOST:PORT`,
    /// `udp://[BIND:]PORT:HOST:PORT[?timeout_sec=N]`,
    /// `socks5://[BIND:]PORT[?login=U&password=P]`, `stdio://HOST:PORT`,
    /// `unix://PATH:HOST:PORT`.
    #[arg(short = 'L', long = "local-to-remote", value_name = "SPEC",
          value_parser = LocalTunnelSpec::parse_str)]
    pub local_to_remote: Vec<LocalTunnelSpec>,

    /// Path prefix of the upgrade request (`/PREFIX/events`). By default `v1`; with a client
    /// certificate the default is replaced by the certificate's CN, percent-encoded.
    #[arg(
        short = 'P',
        long,
        value_name = "PREFIX",
        default_value = "v1",
        env = "WSTUNNEL_HTTP_UPGRADE_PATH_PREFIX",
        value_parser = parse_path_prefix
    )]
    pub http_upgrade_path_prefix: String,

    /// Send `Authorization: Basic base64(USER[:PASS])` with each upgrade request.
    #[arg(long, value_name = "USER[:PASS]")]
    pub http_upgrade_credentials: Option<String>,

    /// Extra request header `NAME: VALUE` (repeatable; the last of a name wins). A `Host`
    /// header replaces the Host sent.
    #[arg(short = 'H', long = "http-headers", value_name = "NAME: VALUE",
          value_parser = parse_header)]
    pub http_headers: Vec<(String, String)>,

    /// File of extra request headers, one `NAME: VALUE` per line (blank lines and lines
    /// starting with `#` are skipped). Read again for every tunnel, so edits apply to the next
    /// one; its headers replace same-named `-H` ones.
    #[arg(long, value_name = "FILE")]
    pub http_headers_file: Option<PathBuf>,

    /// Interval of WebSocket pings (`30s`, `2m`; `0` disables). By default 30 seconds.
    #[arg(long, alias = "websocket-ping-frequency-sec", value_name = "DURATION",
          default_value = "30s", value_parser = parse_duration)]
    pub websocket_ping_frequency: Duration,

    /// Mask outgoing WebSocket frames. Off by default, as upstream: an upstream server only
    /// unmasks when it runs with --websocket-mask-frame too.
    #[arg(long)]
    pub websocket_mask_frame: bool,

    /// Keep this many connections to the server open and ready (TCP and TLS done), so that
    /// a new tunnel skips both handshakes. Each serves one tunnel and is replaced after 20
    /// seconds unused. At most 1000. By default 0: every tunnel connects when it starts.
    #[arg(short = 'c', long, value_name = "INT", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=i64::from(super::pool::MAX_SIZE)))]
    pub connection_min_idle: u16,

    /// How long to keep retrying, with growing pauses, when the server cannot be reached (TCP
    /// connection refused or failing); TLS and HTTP refusals are not retried. By default 0: one
    /// attempt (upstream retries for 5 minutes).
    #[arg(long, alias = "connection-retry-max-backoff-sec", value_name = "DURATION",
          default_value = "0s", value_parser = parse_duration)]
    pub connection_retry_max_backoff: Duration,

    /// How long connecting to the server (TCP, TLS and upgrade) may take before the tunnel
    /// fails. By default 10 seconds.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Verify the server certificate against the system CA store (off by default, as
    /// upstream). --tls-ca-certs and --pki turn verification on with their own CA.
    #[arg(long)]
    pub tls_verify_certificate: bool,

    /// PEM bundle of CAs trusted for the server certificate; turns verification on.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_certs: Option<PathBuf>,

    /// Server name to send in SNI (and verify, if verifying) instead of the URL host.
    #[arg(long, value_name = "DNS_NAME", conflicts_with = "tls_sni_disable")]
    pub tls_sni_override: Option<String>,

    /// Send no SNI.
    #[arg(long)]
    pub tls_sni_disable: bool,

    /// PEM client certificate chain (mTLS). Overrides the one from --pki.
    #[arg(long, value_name = "FILE", requires = "tls_private_key")]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key of the client certificate. Overrides the one from --pki.
    #[arg(long, value_name = "FILE", requires = "tls_certificate")]
    pub tls_private_key: Option<PathBuf>,

    /// PKI directory (as made by `wstunnel pki`): presents `certs/NAME.cert.pem` with
    /// `private/NAME.pem` and verifies the server against `certs/ca.cert.pem`.
    #[arg(long, value_name = "DIR", requires = "pki_client")]
    pub pki: Option<PathBuf>,

    /// Client certificate name inside --pki.
    #[arg(long, value_name = "NAME", requires = "pki")]
    pub pki_client: Option<String>,

    #[command(flatten)]
    pub not_supported: ClientNotSupported,
}

/// The first `(given, option, feature)` whose option was given.
fn first_given<const N: usize>(
    options: [(bool, &'static str, &'static str); N],
) -> Option<(&'static str, &'static str)> {
    options
        .into_iter()
        .find_map(|(given, option, feature)| given.then_some((option, feature)))
}

/// Upstream client options this client does not implement: recognised so that an upstream
/// command line gets an error naming the option rather than "unexpected argument".
#[derive(clap::Args, Debug, Default)]
pub struct ClientNotSupported {
    #[arg(short = 'R', long, hide = true, value_name = "SPEC")]
    remote_to_local: Vec<String>,
    #[arg(long, hide = true, value_name = "DURATION")]
    reverse_tunnel_connection_retry_max_backoff: Option<String>,

    #[arg(short = 'p', long, hide = true, value_name = "PROXY")]
    http_proxy: Option<String>,
    #[arg(long, hide = true, value_name = "LOGIN")]
    http_proxy_login: Option<String>,
    #[arg(long, hide = true, value_name = "PASSWORD")]
    http_proxy_password: Option<String>,
    #[arg(long, hide = true, value_name = "URL")]
    dns_resolver: Vec<String>,
    #[arg(long, hide = true)]
    dns_resolver_prefer_ipv4: bool,
    #[arg(long, hide = true, value_name = "INT")]
    socket_so_mark: Option<String>,
    #[arg(long, hide = true)]
    tls_ech_enable: bool,
}

impl ClientNotSupported {
    /// The first upstream-only option given, with what it does upstream.
    pub fn first_given(&self) -> Option<(&'static str, &'static str)> {
        first_given([
            (!self.remote_to_local.is_empty(), "-R", "reverse tunnels"),
            (
                self.reverse_tunnel_connection_retry_max_backoff.is_some(),
                "--reverse-tunnel-connection-retry-max-backoff",
                "reverse tunnels",
            ),
            (
                self.http_proxy.is_some(),
                "--http-proxy",
                "an HTTP proxy to the server",
            ),
            (
                self.http_proxy_login.is_some(),
                "--http-proxy-login",
                "an HTTP proxy",
            ),
            (
                self.http_proxy_password.is_some(),
                "--http-proxy-password",
                "an HTTP proxy",
            ),
            (
                !self.dns_resolver.is_empty(),
                "--dns-resolver",
                "a custom DNS resolver",
            ),
            (
                self.dns_resolver_prefer_ipv4,
                "--dns-resolver-prefer-ipv4",
                "DNS preferences",
            ),
            (
                self.socket_so_mark.is_some(),
                "--socket-so-mark",
                "SO_MARK on sockets",
            ),
            (
                self.tls_ech_enable,
                "--tls-ech-enable",
                "TLS Encrypted Client Hello",
            ),
        ])
    }
}

/// Parses upstream's duration syntax: an integer with an optional `s`, `m` or `h` suffix
/// (bare numbers are seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((index, 's')) => (&text[..index], 1),
        Some((index, 'm')) => (&text[..index], 60),
        Some((index, 'h')) => (&text[..index], 3600),
        _ => (text, 1),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use a number with s, m or h"))?;
    Ok(Duration::from_secs(value.saturating_mul(unit)))
}

/// Checks that a `-P` prefix can go into the request line as given: URL path characters only
/// (RFC 3986 `pchar` and `/`), percent-escapes included.
fn parse_path_prefix(text: &str) -> Result<String, String> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&byte);
    match text.bytes().find(|byte| !allowed(*byte)) {
        None if !text.is_empty() => Ok(text.to_string()),
        None => Err("the path prefix is empty".to_string()),
        Some(byte) => Err(format!(
            "`{}` has {}, which cannot go in a URL path: use letters, digits and \
             -._~!$&'()*+,;=:@/ or percent-escapes (a space is %20)",
            text.escape_debug(),
            match byte {
                b' ' => "a space".to_string(),
                byte if byte.is_ascii() => format!("`{}`", (byte as char).escape_debug()),
                _ => "a non-ASCII character".to_string(),
            }
        )),
    }
}

/// Parses `NAME: VALUE`; the name must be a valid header token.
///
/// # Errors
/// When the `:` is missing, the name is not a token or the value has a line break.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("header `{text}` has no `:`; write it as `NAME: VALUE`"))?;
    let valid_token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid_token {
        return Err(format!(
            "header name `{name}` is not a valid HTTP header name"
        ));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(format!("header `{name}` has a line break in its value"));
    }
    // Replacing these breaks the upgrade itself (Sec-WebSocket-Protocol carries the tunnel's
    // token); upstream's client sends them as given and then fails without a word.
    const PROTOCOL: [&str; 6] = [
        "connection",
        "upgrade",
        "sec-websocket-protocol",
        "sec-websocket-version",
        "content-length",
        "transfer-encoding",
    ];
    if PROTOCOL
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
    {
        return Err(format!(
            "header `{name}` belongs to the WebSocket upgrade and cannot be replaced"
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Reads a `--http-headers-file`: `NAME: VALUE` lines; blank lines and `#` comments skipped.
///
/// # Errors
/// When the file cannot be read, or a line is not a header (the message names the line).
pub fn read_headers_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        anyhow::anyhow!("cannot read the headers file {}: {error}", path.display())
    })?;
    let mut headers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let header = parse_header(line)
            .map_err(|reason| anyhow::anyhow!("{} line {}: {reason}", path.display(), index + 1))?;
        headers.push(header);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_upstream_suffixes() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn headers_need_a_colon_and_a_token_name() {
        assert_eq!(parse_header("X-A: b").unwrap(), ("X-A".into(), "b".into()));
        assert!(parse_header("X A: b").is_err());
        assert!(parse_header("nocolon").is_err());
    }

    #[test]
    fn path_prefixes_must_fit_in_a_url_path() {
        assert_eq!(parse_path_prefix("team-a%20b").unwrap(), "team-a%20b");
        assert!(parse_path_prefix("a b").unwrap_err().contains("a space"));
        assert!(
            parse_path_prefix("caf\u{e9}")
                .unwrap_err()
                .contains("non-ASCII")
        );
        assert!(parse_path_prefix("").is_err());
    }

    #[test]
    fn headers_of_the_upgrade_itself_cannot_be_replaced() {
        for name in [
            "Connection",
            "upgrade",
            "Sec-WebSocket-Protocol",
            "Content-Length",
        ] {
            let refused = parse_header(&format!("{name}: x")).unwrap_err();

            assert!(refused.contains("cannot be replaced"), "{name}: {refused}");
        }
        assert!(parse_header("Host: example.org").is_ok());
    }
}
