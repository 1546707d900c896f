//! The HTTP/1.1 WebSocket upgrade exchange, both sides: building and reading the request and
//! the `101` or `400` answer.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest request or response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 64;

/// A request or response head read from the peer, plus bytes read past its end.
pub struct Head {
    /// Request path or response status code as text.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub leftover: Vec<u8>,
}

impl Head {
    /// The first header of that name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Whether a comma-separated header has `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }
}

/// Which head to read.
#[derive(Clone, Copy)]
enum HeadKind {
    Request,
    Response,
}

/// How long a server waits for a request head.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeouts {
    /// For the first byte: a connection prepared ahead by a client pool (ours or upstream's
    /// `--connection-min-idle`) legitimately waits before its request.
    pub first_byte: Duration,
    /// For the whole head once it has started.
    pub head: Duration,
}

/// Reads a request head; `None` when the peer sent nothing before closing, failing or
/// reaching `timeouts.first_byte`: that is an unused connection, not a bad request.
///
/// # Errors
/// A plain-words reason on I/O errors, timeouts, heads over 16 KiB and malformed HTTP.
pub async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
    timeouts: RequestTimeouts,
) -> Result<Option<Head>, String> {
    read_head(reader, Some(timeouts), HeadKind::Request).await
}

/// Reads a response head. It has no timeout of its own: the client bounds the whole tunnel
/// opening (connect, TLS, upgrade) with one `--connect-timeout`, and a second timer of the same
/// length here would race it and report the same stall under another name.
pub async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Head, String> {
    read_head(reader, None, HeadKind::Response)
        .await?
        .ok_or_else(|| "the server closed the connection without answering".to_string())
}

async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    timeouts: Option<RequestTimeouts>,
    kind: HeadKind,
) -> Result<Option<Head>, String> {
    let started = tokio::time::Instant::now();
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        let read = match timeouts {
            Some(timeouts) => {
                let (limit, what) = match buffer.is_empty() {
                    true => (timeouts.first_byte, "no request"),
                    false => (timeouts.head, "no complete HTTP head"),
                };
                match tokio::time::timeout_at(started + limit, reader.read(&mut chunk)).await {
                    Ok(read) => read,
                    Err(_) if buffer.is_empty() => return Ok(None),
                    Err(_) => return Err(format!("{what} within {} s", limit.as_secs())),
                }
            }
            None => reader.read(&mut chunk).await,
        };
        let read = match read {
            Ok(read) => read,
            // Also an unused connection, closed without TLS close_notify.
            Err(_) if buffer.is_empty() && timeouts.is_some() => return Ok(None),
            Err(error) => return Err(describe_io(error)),
        };
        if read == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err("connection closed in the middle of the HTTP head".to_string())
            };
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(head) = parse_head(&buffer, kind)? {
            if buffer.len() - head.leftover.len() > MAX_HEAD {
                return Err("HTTP head larger than 16 KiB".to_string());
            }
            return Ok(Some(head));
        }
        if buffer.len() > MAX_HEAD {
            return Err("HTTP head larger than 16 KiB".to_string());
        }
    }
}

/// Turns an I/O error into words, keeping TLS alert details (they carry the server's verdict).
pub fn describe_io(error: io::Error) -> String {
    crate::tls::reasons::client_side_hint(&error).unwrap_or_else(|| error.to_string())
}

fn parse_head(buffer: &[u8], kind: HeadKind) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (status, target) = match kind {
        HeadKind::Request => {
            let mut request = httparse::Request::new(&mut headers);
            let status = request
                .parse(buffer)
                .map_err(|error| format!("malformed HTTP request: {error}"))?;
            (status, request.path.unwrap_or_default().to_string())
        }
        // A TLS record (alert 0x15 or handshake 0x16, then version 3.x) where HTTP was
        // expected: a ws:// client talking to a wss:// server.
        HeadKind::Response if matches!(buffer, [0x15 | 0x16, 0x03, ..]) => {
            return Err(
                "the server answered with TLS, not HTTP: it seems to speak TLS; use \
                        wss:// instead of ws:// in the server URL"
                    .to_string(),
            );
        }
        HeadKind::Response => {
            let mut response = httparse::Response::new(&mut headers);
            let status = response
                .parse(buffer)
                .map_err(|error| format!("malformed HTTP response: {error}"))?;
            (
                status,
                response
                    .code
                    .map(|code| code.to_string())
                    .unwrap_or_default(),
            )
        }
    };
    let httparse::Status::Complete(length) = status else {
        return Ok(None);
    };
    let headers = headers
        .iter()
        .take_while(|header| !header.name.is_empty())
        .map(|header| (header.name.to_string(), header.value.to_vec()))
        .collect();
    Ok(Some(Head {
        target,
        headers,
        leftover: buffer[length..].to_vec(),
    }))
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455: base64 of SHA-1 over the key and the GUID),
/// computed by tungstenite's handshake helper.
pub fn accept_key(key: &str) -> String {
    derive_accept_key(key.trim().as_bytes())
}

/// Checks the server's `Sec-WebSocket-Accept` against the key we sent.
///
/// # Errors
/// When the header is missing or does not match: the peer is not a WebSocket server that read
/// our request (a proxy answering for it, or another protocol).
pub fn check_accept_key(head: &Head, key: &str) -> Result<(), String> {
    match head.header("sec-websocket-accept") {
        Some(accept) if accept.trim() == accept_key(key) => Ok(()),
        Some(accept) => Err(format!(
            "the server's Sec-WebSocket-Accept `{}` does not match our key: not a WebSocket \
             answer to this request (a proxy in between?)",
            accept.trim().chars().take(60).collect::<String>()
        )),
        None => Err("the server's 101 answer has no Sec-WebSocket-Accept header".to_string()),
    }
}

/// Answers a valid upgrade.
pub async fn write_switching_protocols<W: AsyncWrite + Unpin>(
    writer: &mut W,
    key: &str,
) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-accept: {}\r\nsec-websocket-protocol: v1\r\n\r\n",
        accept_key(key)
    );
    writer.write_all(response.as_bytes()).await?;
    writer.flush().await
}

/// Answers a rejected request as upstream does (same answer whatever the reason).
pub async fn write_bad_request<W: AsyncWrite + Unpin>(writer: &mut W, body: &str) {
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = writer.write_all(response.as_bytes()).await;
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// A fresh `Sec-WebSocket-Key` (16 random bytes, base64), from tungstenite's helper.
pub fn new_websocket_key() -> String {
    generate_key()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn request_head_keeps_bytes_read_past_it() {
        let raw = b"GET /v1/events HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\nXY";
        let mut reader = &raw[..];

        let timeouts = RequestTimeouts {
            first_byte: Duration::from_secs(1),
            head: Duration::from_secs(1),
        };

        let head = read_request(&mut reader, timeouts).await.unwrap().unwrap();

        assert_eq!(head.target, "/v1/events");
        assert!(head.header_has_token("connection", "upgrade"));
        assert_eq!(head.leftover, b"XY");
    }

    #[tokio::test]
    async fn a_head_over_16_kib_is_refused_even_when_it_completes_in_the_last_read() {
        let mut raw = b"GET /v1/events HTTP/1.1\r\nX-Padding: ".to_vec();
        raw.resize(MAX_HEAD + 1024, b'a');
        raw.extend_from_slice(b"\r\n\r\n");
        let mut reader = &raw[..];
        let timeouts = RequestTimeouts {
            first_byte: Duration::from_secs(1),
            head: Duration::from_secs(1),
        };

        let refused = read_request(&mut reader, timeouts).await;

        assert!(matches!(refused, Err(reason) if reason.contains("16 KiB")));
    }
}
