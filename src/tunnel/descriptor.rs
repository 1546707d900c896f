//! The tunnel descriptor: a JWT (compact JWS) carried in `Sec-WebSocket-Protocol` that says
//! which kind of tunnel the client wants and where to.
//!
//! The token is not an authenticator: upstream signs it with a throwaway or fixed key and no
//! server verifies the signature, so neither do we. Authentication comes from (m)TLS, the path
//! prefix and the restrictions.

use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::spec::Host;

/// The `p` claim: every tunnel kind upstream v10 knows, with serde's external tagging so the
/// JSON is byte-compatible with upstream's (`{"Tcp":{"proxy_protocol":false}}`, `"ReverseTcp"`).
///
/// Only the forward kinds are served today; the reverse kinds are decoded so that the server
/// can tell the client "not supported" instead of "malformed".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TunnelKind {
    Tcp {
        proxy_protocol: bool,
    },
    Udp {
        #[serde(default)]
        timeout: Option<Duration>,
    },
    ReverseTcp,
    ReverseUdp {
        #[serde(default)]
        timeout: Option<Duration>,
    },
    ReverseSocks5 {
        #[serde(default)]
        timeout: Option<Duration>,
        #[serde(default)]
        credentials: Option<(String, String)>,
    },
    ReverseHttpProxy {
        #[serde(default)]
        timeout: Option<Duration>,
        #[serde(default)]
        credentials: Option<(String, String)>,
    },
    ReverseUnix {
        path: PathBuf,
    },
    Stdio {
        proxy_protocol: bool,
    },
    Unix {
        path: PathBuf,
        proxy_protocol: bool,
    },
    Socks5 {
        #[serde(default)]
        timeout: Option<Duration>,
        #[serde(default)]
        credentials: Option<(String, String)>,
    },
    HttpProxy {
        #[serde(default)]
        timeout: Option<Duration>,
        #[serde(default)]
        credentials: Option<(String, String)>,
        proxy_protocol: bool,
    },
    TProxyTcp,
    TProxyUdp {
        #[serde(default)]
        timeout: Option<Duration>,
    },
}

impl TunnelKind {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            TunnelKind::Tcp { .. } => "tcp",
            TunnelKind::Udp { .. } => "udp",
            TunnelKind::ReverseTcp => "reverse tcp",
            TunnelKind::ReverseUdp { .. } => "reverse udp",
            TunnelKind::ReverseSocks5 { .. } => "reverse socks5",
            TunnelKind::ReverseHttpProxy { .. } => "reverse http proxy",
            TunnelKind::ReverseUnix { .. } => "reverse unix",
            TunnelKind::Stdio { .. } => "stdio",
            TunnelKind::Unix { .. } => "unix",
            TunnelKind::Socks5 { .. } => "socks5",
            TunnelKind::HttpProxy { .. } => "http proxy",
            TunnelKind::TProxyTcp => "tproxy tcp",
            TunnelKind::TProxyUdp { .. } => "tproxy udp",
        }
    }
}

/// The decoded claims of a tunnel request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    pub id: String,
    pub p: TunnelKind,
    pub r: String,
    pub rp: u16,
}

impl Descriptor {
    /// A fresh descriptor for a forward tunnel to `host:port` with a new UUIDv7 id.
    pub fn new(kind: TunnelKind, host: &Host, port: u16) -> Descriptor {
        Descriptor {
            id: uuid::Uuid::now_v7().to_string(),
            p: kind,
            r: host.to_string(),
            rp: port,
        }
    }

    /// Encodes as upstream does: header `{"typ":"JWT","alg":"HS256"}`, signed with HMAC-SHA256
    /// and the fixed key `champignonfrais` that the oldest 10.x servers verify.
    pub fn encode(&self) -> String {
        const HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;
        // Serialising a struct of strings, integers and enums cannot fail.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"champignonfrais");
        let signature = hmac::sign(&key, signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// Decodes a token without checking its signature (upstream 10.5.3+ behaviour). The header
    /// must name a known JWS algorithm other than `none`.
    ///
    /// # Errors
    /// A plain-words reason when the token is not three base64url parts, the header or payload
    /// is not JSON, the algorithm is unknown, or a claim is missing or of the wrong type.
    pub fn decode(token: &str) -> Result<Descriptor, String> {
        let mut parts = token.trim().rsplitn(3, '.');
        let (_signature, payload, header) = match (parts.next(), parts.next(), parts.next()) {
            (Some(signature), Some(payload), Some(header)) => (signature, payload, header),
            _ => {
                return Err(
                    "tunnel token is not a JWT (expected three dot-separated parts)".into(),
                );
            }
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| "tunnel token header is not base64url".to_string())?;
        let header: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|_| "tunnel token header is not JSON".to_string())?;
        const KNOWN_ALGORITHMS: &[&str] = &[
            "HS256", "HS384", "HS512", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256",
            "PS384", "PS512", "EdDSA",
        ];
        match header.get("alg").and_then(|alg| alg.as_str()) {
            Some(alg) if KNOWN_ALGORITHMS.contains(&alg) => {}
            _ => return Err("tunnel token header has no known `alg`".into()),
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "tunnel token payload is not base64url".to_string())?;
        serde_json::from_slice(&payload).map_err(|error| format!("tunnel token payload: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_upstream_json_shape() {
        let descriptor = Descriptor {
            id: "0190a5e4-3c6f-7d2a-9b1e-5f4c2a1b0c9d".into(),
            p: TunnelKind::Tcp {
                proxy_protocol: false,
            },
            r: "example.com".into(),
            rp: 443,
        };

        let token = descriptor.encode();

        let payload = token.split('.').nth(1).unwrap();
        assert_eq!(
            payload,
            "eyJpZCI6IjAxOTBhNWU0LTNjNmYtN2QyYS05YjFlLTVmNGMyYTFiMGM5ZCIsInAiOnsiVGNwIjp7InByb3h5X3Byb3RvY29sIjpmYWxzZX19LCJyIjoiZXhhbXBsZS5jb20iLCJycCI6NDQzfQ"
        );
        assert!(token.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."));
        assert_eq!(Descriptor::decode(&token).unwrap(), descriptor);
    }

    #[test]
    fn udp_timeout_is_a_secs_nanos_object() {
        let kind = TunnelKind::Udp {
            timeout: Some(Duration::from_secs(30)),
        };
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, r#"{"Udp":{"timeout":{"secs":30,"nanos":0}}}"#);
    }

    #[test]
    fn decoder_tolerates_empty_signature_and_null_unit_variant() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        let payload =
            URL_SAFE_NO_PAD.encode(r#"{"id":"x","p":{"ReverseTcp":null},"r":"a","rp":1}"#);
        let decoded = Descriptor::decode(&format!("{header}.{payload}.")).unwrap();
        assert_eq!(decoded.p, TunnelKind::ReverseTcp);
    }

    #[test]
    fn decoder_refuses_alg_none_and_garbage() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"id":"x","p":"ReverseTcp","r":"a","rp":1}"#);
        assert!(Descriptor::decode(&format!("{header}.{payload}.")).is_err());
        assert!(Descriptor::decode("not-a-token").is_err());
        assert!(Descriptor::decode("a.b.c").is_err());
    }
}
