//! The walkthrough's `openssl.cnf`, written into the CA directory so that `openssl ca
//! -config DIR/openssl.cnf` keeps working on it.

use std::path::Path;

use anyhow::bail;

/// The walkthrough's file with `dir` set to `dir` (absolute). One addition:
/// `copy_extensions = copy`, so that `openssl ca` keeps the subjectAltNames of a request (the
/// walkthrough's server certificate has none, which rustls and browsers reject).
///
/// # Errors
/// Fails if the path cannot be written in an OpenSSL config value (not UTF-8, or holding `$`,
/// `\`, `#` or a line break).
pub fn openssl_cnf(dir: &Path) -> anyhow::Result<String> {
    let Some(dir) = dir.to_str() else {
        bail!(
            "the CA directory {} is not valid UTF-8, which openssl.cnf cannot hold; pick a \
             directory whose path is UTF-8",
            dir.display()
        );
    };
    if dir.contains(['$', '\\', '#', '\n', '\r', '"']) {
        bail!(
            "the CA directory {dir:?} holds a character openssl.cnf cannot express ($ \\ # \"); \
             pick a directory whose path has none of them"
        );
    }
    Ok(TEMPLATE.replace("@DIR@", dir))
}

/// The walkthrough's file for a directory that is checked in or moved: `dir = .`, which
/// OpenSSL resolves from the working directory, so `openssl ca -config openssl.cnf` must run
/// from inside the CA directory (a comment at the top says so).
pub fn relative_openssl_cnf() -> String {
    let header = "# `dir = .`: run `openssl ca -config openssl.cnf` from inside this directory \
                  (OpenSSL resolves `.`\n# from the working directory, so this file works \
                  wherever the directory is checked out).\n";
    format!("{header}{}", TEMPLATE.replace("@DIR@", "."))
}

const TEMPLATE: &str = r#"# Written by `wstunnel pki init`: the OpenSSL CA walkthrough's configuration.
# `openssl ca -config THIS_FILE ...` works on this directory alongside `wstunnel pki`.

[ ca ]
default_ca = CA_default

[ CA_default ]
# Directory and file locations.
dir               = @DIR@
certs             = $dir/certs
crl_dir           = $dir/crl
new_certs_dir     = $dir/newcerts
database          = $dir/index.txt
serial            = $dir/serial
RANDFILE          = $dir/private/.rand

# The root key and root certificate.
private_key       = $dir/private/ca.key.pem
certificate       = $dir/certs/ca.cert.pem

# For certificate revocation lists.
crlnumber         = $dir/crlnumber
crl               = $dir/crl/ca.crl.pem
crl_extensions    = crl_ext
default_crl_days  = 30

# SHA-1 is deprecated, so use SHA-2 instead.
default_md        = sha256

name_opt          = ca_default
cert_opt          = ca_default
default_days      = 375
preserve          = no
policy            = policy_loose
# Added by wstunnel: keep the subjectAltNames a request asks for.
copy_extensions   = copy

[ policy_loose ]
countryName             = optional
stateOrProvinceName     = optional
localityName            = optional
organizationName        = optional
organizationalUnitName  = optional
commonName              = supplied
emailAddress            = optional

[ req ]
# Configuration for a certificate signing request.
default_bits        = 2048
distinguished_name  = req_distinguished_name
string_mask         = utf8only
# SHA-1 is deprecated, so use SHA-2 instead.
default_md          = sha256
# Extension to add when the -x509 option is used.
x509_extensions     = v3_ca

[ req_distinguished_name ]
# See <https://en.wikipedia.org/wiki/Certificate_signing_request>.
countryName                     = Country Name (2 letter code)
stateOrProvinceName             = State or Province Name
localityName                    = Locality Name
0.organizationName              = Organization Name
organizationalUnitName          = Organizational Unit Name
commonName                      = Common Name
emailAddress                    = Email Address

# Optionally, specify some defaults.
countryName_default             = GB
stateOrProvinceName_default     = England
localityName_default            =
0.organizationName_default      = wstunnel development
#organizationalUnitName_default =
#emailAddress_default           =

[ v3_ca ]
# Configuration for a certificate authority.
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign

[ client_cert ]
# Configuration for client certificates.
basicConstraints = CA:FALSE
nsCertType = client, email
nsComment = "OpenSSL Generated Client Certificate"
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, emailProtection

[ server_cert ]
# Configuration for server certificates.
basicConstraints = CA:FALSE
nsCertType = server
nsComment = "OpenSSL Generated Server Certificate"
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth

[ crl_ext ]
# Configuration for CRLs.
authorityKeyIdentifier=keyid:always
"#;
