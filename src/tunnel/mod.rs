//! The tunnel: upstream wstunnel v10 protocol, server, client and local listeners.
//!
//! - `spec`: server URLs, `-L` specs, hosts.
//! - `descriptor`: the JWT tunnel descriptor and the tunnel kinds (`p` claim).
//! - `http`: the WebSocket upgrade exchange.
//! - `frame`: WebSocket framing of the data phase.
//! - `pump`: moving bytes and datagrams, pings, teardown.
//! - `restrictions`: which tunnels the server allows.
//! - `server`, `client`, `socks5`: the two roles and the client's SOCKS5 listener.
//!
//! Not implemented yet: reverse tunnels (`-R`; the server answers them 400), the restrictions
//! file, HTTP/2 and WebTransport transports, `-L http://` and `tproxy`.

pub mod cli;
mod client;
mod coalesce;
mod descriptor;
mod frame;
mod http;
mod pool;
mod pump;
mod restrictions;
mod server;
mod socks5;
mod spec;
mod threads;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::tls;
use crate::tls::client::{ClientTlsFiles, ServerVerification};
use crate::tls::server::{CrlFile, IdentitySource, Presence, ServerTlsFiles};
use frame::Masking;
use pool::{Dialer, Pool};
use pump::PumpOptions;
use spec::{Host, Scheme};

pub use threads::set_count as set_worker_threads;

/// Characters kept as they are in a path segment (RFC 3986 unreserved); the rest of a CN is
/// percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Runs `wstunnel server` until it is stopped.
pub fn run_server(args: cli::ServerArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let bind = match &args.url.host {
            Host::Ip(ip) => SocketAddr::new(*ip, args.url.port),
            Host::Domain(name) if name == "localhost" => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.url.port)
            }
            Host::Domain(name) => anyhow::bail!(
                "server address `{name}`: give an IP address to listen on (0.0.0.0, [::], ...)"
            ),
        };
        let tls = match args.url.scheme {
            Scheme::Wss => Some(tls::server::ServerTls::load(server_tls_files(&args)?)?),
            Scheme::Ws => {
                let tls_options = [
                    (args.pki.is_some(), "--pki"),
                    (args.tls_client_ca_certs.is_some(), "--tls-client-ca-certs"),
                    (args.tls_certificate.is_some(), "--tls-certificate"),
                    (args.tls_private_key.is_some(), "--tls-private-key"),
                    (!args.tls_client_crl.is_empty(), "--tls-client-crl"),
                ];
                if let Some((_, option)) = tls_options.iter().find(|(given, _)| *given) {
                    anyhow::bail!(
                        "{option} needs a wss:// server address (ws:// is plain text); use \
                         wss://{}:{}",
                        args.url.host,
                        args.url.port
                    );
                }
                None
            }
        };
        let restrictions = restrictions::Restrictions::from_flags(
            &args.restrict_to,
            &args.restrict_http_upgrade_path_prefix,
        )?;
        let settings = server::ServerSettings {
            bind,
            tls,
            restrictions,
            pump: PumpOptions {
                ping_every: Some(args.websocket_ping_frequency),
            },
        };
        server::serve(settings, threads::count()).await
    })
}

/// Which files the server's TLS uses: explicit flags override single files from --pki.
fn server_tls_files(args: &cli::ServerArgs) -> anyhow::Result<ServerTlsFiles> {
    let pki = args.pki.as_deref();
    let from_pki = |relative: String| pki.map(|dir| dir.join(relative));
    let certificate = args
        .tls_certificate
        .clone()
        .or_else(|| from_pki(format!("certs/{}.cert.pem", args.pki_server)));
    let private_key = args
        .tls_private_key
        .clone()
        .or_else(|| from_pki(format!("private/{}.pem", args.pki_server)));
    let identity = match (certificate, private_key) {
        (Some(certificate), Some(private_key)) => IdentitySource::Files {
            certificate,
            private_key,
        },
        (None, None) => {
            tracing::warn!(
                "no --tls-certificate or --pki given: serving a self-signed certificate made at \
                 start-up; clients must not verify it (upstream's default), or use `--pki DIR` \
                 for a certificate clients can verify"
            );
            IdentitySource::SelfSigned
        }
        (Some(_), None) => anyhow::bail!("--tls-certificate needs --tls-private-key"),
        (None, Some(_)) => anyhow::bail!("--tls-private-key needs --tls-certificate"),
    };
    let client_ca = args
        .tls_client_ca_certs
        .clone()
        .or_else(|| from_pki("certs/ca.cert.pem".into()));
    let crls: Vec<CrlFile> = if !args.tls_client_crl.is_empty() {
        args.tls_client_crl
            .iter()
            .map(|path| CrlFile {
                path: path.clone(),
                presence: Presence::Required,
            })
            .collect()
    } else {
        from_pki("crl/ca.crl.pem".into())
            .map(|path| CrlFile {
                path,
                presence: Presence::Optional,
            })
            .into_iter()
            .collect()
    };
    if client_ca.is_none() && !crls.is_empty() {
        anyhow::bail!("--tls-client-crl needs --tls-client-ca-certs (or --pki)");
    }
    Ok(ServerTlsFiles {
        identity,
        client_ca,
        crls,
    })
}

/// Runs `wstunnel client` until it is stopped (or until its stdio tunnel ends).
pub fn run_client(args: cli::ClientArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let identity = client_identity(&args);
        check_pki_client_files(&args)?;
        let explicit_files = [
            ("--tls-ca-certs", &args.tls_ca_certs),
            ("--tls-certificate", &args.tls_certificate),
            ("--tls-private-key", &args.tls_private_key),
            ("--http-headers-file", &args.http_headers_file),
        ];
        for (option, path) in explicit_files {
            if let Some(path) = path
                && let Err(error) = std::fs::metadata(path)
            {
                anyhow::bail!("{option} {}: {error}", path.display());
            }
        }
        if let Some(path) = &args.http_headers_file {
            cli::read_headers_file(path)?;
        }
        let tls = if client::uses_tls(&args.url) {
            let verification = match (&args.tls_ca_certs, &args.pki) {
                (Some(path), _) => ServerVerification::CaFile(path.clone()),
                (None, Some(dir)) => ServerVerification::CaFile(dir.join("certs/ca.cert.pem")),
                (None, None) if args.tls_verify_certificate => ServerVerification::SystemRoots,
                (None, None) => ServerVerification::Off,
            };
            let files = ClientTlsFiles {
                verification,
                identity: identity.clone(),
                send_sni: !args.tls_sni_disable,
            };
            let name = client::server_name(&args.url, args.tls_sni_override.as_deref())?;
            Some((tls::client::ClientTls::load(files)?, name))
        } else {
            None
        };
        let path_prefix = path_prefix(&args.http_upgrade_path_prefix, identity.as_ref())?;
        let dialer = Dialer {
            url: args.url.clone(),
            tls,
        };
        // A stdio tunnel is one tunnel per run: connections prepared ahead would go unused.
        let listens = (args.local_to_remote.iter())
            .any(|spec| !matches!(spec, spec::LocalTunnelSpec::Stdio { .. }));
        let pool = (args.connection_min_idle > 0 && listens).then(|| {
            Arc::new(Pool::new(
                dialer.clone(),
                args.connection_min_idle.into(),
                args.connect_timeout,
            ))
        });
        let connector = client::Connector {
            url: args.url.clone(),
            dialer,
            pool,
            path_prefix,
            headers: args.http_headers.clone(),
            headers_file: args.http_headers_file.clone(),
            credentials: args.http_upgrade_credentials.clone(),
            masking: if args.websocket_mask_frame {
                Masking::Masked
            } else {
                Masking::Unmasked
            },
            pump: PumpOptions {
                ping_every: Some(args.websocket_ping_frequency),
            },
            connect_timeout: args.connect_timeout,
            retry_window: args.connection_retry_max_backoff,
        };
        client::run(connector, args.local_to_remote, threads::count()).await
    })
}

/// With `--pki DIR --pki-client NAME`, says which of NAME's files is missing and why that
/// usually happens (`pki revoke` moves them aside), rather than only "No such file".
fn check_pki_client_files(args: &cli::ClientArgs) -> anyhow::Result<()> {
    let (Some(dir), Some(name)) = (&args.pki, &args.pki_client) else {
        return Ok(());
    };
    let wanted = [
        (
            args.tls_certificate.is_none(),
            format!("certs/{name}.cert.pem"),
        ),
        (
            args.tls_private_key.is_none(),
            format!("private/{name}.pem"),
        ),
    ];
    for (from_pki, relative) in wanted {
        if from_pki && !dir.join(&relative).exists() {
            anyhow::bail!(
                "--pki-client {name}: {} is missing. List the certificates of this PKI with \
                 `wstunnel pki list --dir {}`; if {name} was revoked (`pki revoke` moves its \
                 files aside as {name}.revoked-SERIAL), issue a new one with `wstunnel pki \
                 issue-client {name} --dir {}`",
                dir.join(&relative).display(),
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Client certificate and key: explicit flags, else `--pki DIR --pki-client NAME`.
fn client_identity(args: &cli::ClientArgs) -> Option<(PathBuf, PathBuf)> {
    match (
        &args.tls_certificate,
        &args.tls_private_key,
        &args.pki,
        &args.pki_client,
    ) {
        (Some(certificate), Some(key), _, _) => Some((certificate.clone(), key.clone())),
        (_, _, Some(dir), Some(name)) => Some((
            args.tls_certificate
                .clone()
                .unwrap_or_else(|| dir.join(format!("certs/{name}.cert.pem"))),
            args.tls_private_key
                .clone()
                .unwrap_or_else(|| dir.join(format!("private/{name}.pem"))),
        )),
        _ => None,
    }
}

/// The upgrade path prefix: `-P` as given, except that the default `v1` is replaced by the
/// client certificate's CN (percent-encoded so that any CN makes a valid path).
fn path_prefix(requested: &str, identity: Option<&(PathBuf, PathBuf)>) -> anyhow::Result<String> {
    let Some((certificate, _)) = identity.filter(|_| requested == "v1") else {
        return Ok(requested.to_string());
    };
    let chain = tls::files::certificates(Path::new(certificate))?;
    Ok(match tls::identity::PeerIdentity::common_name_of(&chain) {
        Some(common_name) => utf8_percent_encode(&common_name, PATH_SEGMENT).to_string(),
        None => requested.to_string(),
    })
}

/// A single-threaded runtime: the client's main thread and each server thread run on one of
/// these (see `threads` for why).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Text from the peer made safe for a log line: control characters (line breaks that would
/// forge log lines, terminal escapes) become `?`, and it is cut at 200 characters.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|character| {
            if character.is_control() {
                '?'
            } else {
                character
            }
        })
        .collect()
}

/// Advice to add to a failed accept: out of file descriptors (EMFILE, ENFILE) is the one
/// failure the user can act on.
pub(crate) fn accept_error_advice(error: &std::io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(24) | Some(23) => " (raise the open-file limit, `ulimit -n`)",
        _ => "",
    }
}

/// One read attempt that does not wait: `Ready` with what is there now (0 at end of stream),
/// or `Pending` when nothing is. The caller's later reads register their own waker.
pub(crate) fn read_now<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
) -> std::task::Poll<std::io::Result<usize>> {
    let mut buffer = tokio::io::ReadBuf::new(buffer);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(reader)
        .poll_read(&mut context, &mut buffer)
        .map_ok(|()| buffer.filled().len())
}
