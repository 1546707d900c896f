//! Who a client certificate names: the facts the tunnel server needs after the handshake.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The end-entity certificate a client presented.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    /// First subject CN, if any. Upstream requires the path prefix to equal it.
    pub common_name: Option<String>,
    /// DER of the issuer name, to match CRLs.
    pub issuer: Vec<u8>,
    /// Serial number bytes as encoded in the certificate.
    pub serial: Vec<u8>,
    /// Serial in hex, for logs.
    pub serial_hex: String,
}

impl PeerIdentity {
    /// The first certificate of the chain that is not a CA, as upstream picks it. `None` when
    /// no certificate parses or all are CAs.
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Option<PeerIdentity> {
        chain.iter().find_map(|der| {
            let (_, certificate) = X509Certificate::from_der(der.as_ref()).ok()?;
            let is_ca = matches!(certificate.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
            if is_ca {
                return None;
            }
            let common_name = certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string);
            Some(PeerIdentity {
                common_name,
                issuer: certificate.issuer().as_raw().to_vec(),
                serial: certificate.raw_serial().to_vec(),
                // Uppercase hex without separators, as index.txt and `pki list` show it.
                serial_hex: certificate
                    .raw_serial()
                    .iter()
                    .skip_while(|&&byte| byte == 0)
                    .map(|byte| format!("{byte:02X}"))
                    .collect(),
            })
        })
    }

    /// First CN of a PEM certificate file's first non-CA certificate.
    pub fn common_name_of(chain: &[CertificateDer<'_>]) -> Option<String> {
        PeerIdentity::from_chain(chain).and_then(|identity| identity.common_name)
    }
}
