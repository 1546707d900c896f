//! Helpers shared by the tunnel integration tests: a PKI directory made with our `wstunnel pki`
//! (or, for the walkthrough's own test, with the real openssl CLI), running our binary (and
//! upstream's), and real peers on 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The walkthrough's OpenSSL CA configuration (the seed's `openssl.cnf`), with the server
/// certificate also naming `localhost` and `127.0.0.1` (rustls ignores the CN).
const OPENSSL_CNF: &str = r#"[ ca ]
default_ca = CA_default

[ CA_default ]
dir               = @DIR@
certs             = $dir/certs
crl_dir           = $dir/crl
new_certs_dir     = $dir/newcerts
database          = $dir/index.txt
serial            = $dir/serial
RANDFILE          = $dir/private/.rand
private_key       = $dir/private/ca.key.pem
certificate       = $dir/certs/ca.cert.pem
crlnumber         = $dir/crlnumber
crl               = $dir/crl/ca.crl.pem
crl_extensions    = crl_ext
default_crl_days  = 30
default_md        = sha256
name_opt          = ca_default
cert_opt          = ca_default
default_days      = 375
preserve          = no
policy            = policy_loose

[ policy_loose ]
countryName             = optional
stateOrProvinceName     = optional
localityName            = optional
organizationName        = optional
organizationalUnitName  = optional
commonName              = supplied
emailAddress            = optional

[ req ]
default_bits        = 2048
distinguished_name  = req_distinguished_name
string_mask         = utf8only
default_md          = sha256
x509_extensions     = v3_ca

[ req_distinguished_name ]
commonName                      = Common Name

[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign

[ client_cert ]
basicConstraints = CA:FALSE
nsCertType = client, email
nsComment = "OpenSSL Generated Client Certificate"
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, emailProtection

[ server_cert ]
basicConstraints = CA:FALSE
nsCertType = server
nsComment = "OpenSSL Generated Server Certificate"
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1

[ crl_ext ]
authorityKeyIdentifier=keyid:always
"#;

/// Names of the certificates `pki_dir` issues.
pub const SERVER: &str = "wstunnel-server";
/// CN `wstunnel Development Client 1` (spaces: exercises percent-encoding).
pub const CLIENT: &str = "wstunnel-client-1";
/// CN `wstunnel-client-2`: a CN upstream can put in a path as-is (for interop).
pub const PLAIN_CLIENT: &str = "wstunnel-client-2";
/// Valid until revoked by a test.
pub const TO_REVOKE: &str = "wstunnel-client-to-revoke";
/// Valid from 2020 to 2021.
pub const EXPIRED: &str = "wstunnel-client-expired";
/// Issued by another CA (`foreign/`), stored in this directory's layout.
pub const FOREIGN: &str = "foreign-client";
/// The seed's self-signed "faux" client.
pub const FAUX: &str = "faux-client";

/// A PKI directory in the seed walkthrough's layout.
pub struct Pki {
    pub dir: PathBuf,
    /// Which tool manages it (revocations go through the same tool).
    pub made_by: Maker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maker {
    /// `wstunnel pki` commands.
    Wstunnel,
    /// The walkthrough's openssl commands.
    Openssl,
}

/// Key type of every key `pki_dir` makes: fast to generate, accepted by rustls and upstream.
const KEY_TYPE: &str = "ecdsa-p256";

impl Pki {
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("certs/{name}.cert.pem"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("private/{name}.pem"))
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("certs/ca.cert.pem")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl/ca.crl.pem")
    }

    /// Revokes a certificate and regenerates `crl/ca.crl.pem`. With `wstunnel pki`, which
    /// moves the revoked files aside, copies of them are put back at the original paths: the
    /// client's machine still holds its certificate and key after the CA revoked them.
    pub fn revoke(&self, name: &str) {
        match self.made_by {
            Maker::Wstunnel => {
                let (certificate, key) = (
                    std::fs::read(self.cert(name)).unwrap(),
                    std::fs::read(self.key(name)).unwrap(),
                );
                wstunnel_pki(&["revoke", name, "--dir", s(&self.dir)]);
                std::fs::write(self.cert(name), certificate).unwrap();
                std::fs::write(self.key(name), key).unwrap();
            }
            Maker::Openssl => {
                let cnf = self.dir.join("openssl.cnf");
                openssl(
                    &self.dir,
                    &[
                        "ca",
                        "-config",
                        s(&cnf),
                        "-batch",
                        "-revoke",
                        s(&self.cert(name)),
                    ],
                );
                self.gencrl();
            }
        }
    }

    /// Issues another client certificate `name` with common name `common_name`.
    pub fn issue_client(&self, name: &str, common_name: &str) {
        match self.made_by {
            Maker::Wstunnel => wstunnel_pki(&[
                "issue-client",
                name,
                "--cn",
                common_name,
                "--key-type",
                KEY_TYPE,
                "--dir",
                s(&self.dir),
            ]),
            Maker::Openssl => issue(&self.dir, name, common_name, "client_cert", &[]),
        }
    }

    fn gencrl(&self) {
        let cnf = self.dir.join("openssl.cnf");
        // Written to a temporary file and renamed so a watcher never sees half a CRL.
        let partial = self.dir.join("crl/ca.crl.pem.new");
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                s(&cnf),
                "-batch",
                "-gencrl",
                "-out",
                s(&partial),
            ],
        );
        std::fs::rename(&partial, self.crl()).unwrap();
    }
}

/// THE place where test certificates are made, with `wstunnel pki` commands (ECDSA P-256 keys
/// to keep it fast).
///
/// Issues: CA, `wstunnel-server` (serverAuth, SANs localhost, 127.0.0.1 and ::1), `CLIENT`,
/// `PLAIN_CLIENT`, `TO_REVOKE`, `EXPIRED`, `FOREIGN` (another `pki init`), `FAUX`
/// (self-signed), and an empty CRL. `pki` cannot back-date a certificate, so `EXPIRED` is
/// signed by `openssl ca` with this directory's own `openssl.cnf`; `FAUX` is the seed's own
/// `openssl req -x509` command.
pub fn pki_dir(parent: &Path) -> Pki {
    let dir = parent.join("ca");
    let pki = Pki {
        dir: dir.clone(),
        made_by: Maker::Wstunnel,
    };
    let dir_arg = s(&dir).to_string();
    wstunnel_pki(&["init", &dir_arg, "--key-type", KEY_TYPE]);
    wstunnel_pki(&[
        "issue-server",
        SERVER,
        "--key-type",
        KEY_TYPE,
        "--dir",
        &dir_arg,
    ]);
    for (name, common_name) in [
        (CLIENT, "wstunnel Development Client 1"),
        (PLAIN_CLIENT, PLAIN_CLIENT),
        (TO_REVOKE, TO_REVOKE),
    ] {
        pki.issue_client(name, common_name);
    }

    // Valid from 2020 to 2021: signed by openssl with the directory's own configuration.
    openssl(
        &dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            s(&pki.key(EXPIRED)),
        ],
    );
    let csr = dir.join(format!("csr/{EXPIRED}.csr.pem"));
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-key",
            s(&pki.key(EXPIRED)),
            "-subj",
            &format!("/CN={EXPIRED}"),
            "-out",
            s(&csr),
        ],
    );
    openssl(
        &dir,
        &[
            "ca",
            "-config",
            s(&dir.join("openssl.cnf")),
            "-batch",
            "-notext",
            "-extensions",
            "client_cert",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-in",
            s(&csr),
            "-out",
            s(&pki.cert(EXPIRED)),
        ],
    );
    wstunnel_pki(&["gen-crl", "--dir", &dir_arg]);

    // Another CA whose client certificate our server must not trust.
    let foreign = parent.join("foreign-ca");
    let foreign_arg = s(&foreign).to_string();
    wstunnel_pki(&[
        "init",
        &foreign_arg,
        "--key-type",
        KEY_TYPE,
        "--cn",
        "Foreign Root CA",
    ]);
    wstunnel_pki(&[
        "issue-client",
        FOREIGN,
        "--key-type",
        KEY_TYPE,
        "--dir",
        &foreign_arg,
    ]);
    std::fs::copy(
        foreign.join(format!("certs/{FOREIGN}.cert.pem")),
        pki.cert(FOREIGN),
    )
    .unwrap();
    std::fs::copy(
        foreign.join(format!("private/{FOREIGN}.pem")),
        pki.key(FOREIGN),
    )
    .unwrap();
    std::fs::create_dir_all(parent.join("foreign")).unwrap();
    std::fs::copy(
        foreign.join("certs/ca.cert.pem"),
        parent.join("foreign/ca.pem"),
    )
    .unwrap();

    faux(&pki);
    pki
}

/// Runs `wstunnel pki ARGS`, failing the test with its output when it fails.
pub fn wstunnel_pki(arguments: &[&str]) {
    let output = Command::new(wstunnel())
        .arg("pki")
        .args(arguments)
        .env_remove("WSTUNNEL_PKI_DIR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wstunnel pki {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The seed's self-signed "faux" client.
fn faux(pki: &Pki) {
    openssl(
        &pki.dir,
        &[
            "req",
            "-nodes",
            "-x509",
            "-sha256",
            "-newkey",
            "rsa:2048",
            "-keyout",
            s(&pki.key(FAUX)),
            "-out",
            s(&pki.cert(FAUX)),
            "-days",
            "356",
            "-subj",
            "/C=GB/ST=England/L=London/O=ACME Corp/OU=IT Dept/CN=Development Faux Client",
        ],
    );
}

/// The seed walkthrough's steps with the openssl CLI, non-interactive: the same names as
/// `pki_dir`, to prove the tunnel consumes openssl's output.
pub fn openssl_pki_dir(parent: &Path) -> Pki {
    let dir = parent.join("ca");
    for sub in ["certs", "csr", "crl", "newcerts", "private"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let cnf = dir.join("openssl.cnf");
    std::fs::write(&cnf, OPENSSL_CNF.replace("@DIR@", s(&dir))).unwrap();
    let pki = Pki {
        dir: dir.clone(),
        made_by: Maker::Openssl,
    };

    openssl(&dir, &["genrsa", "-out", "private/ca.key.pem", "2048"]);
    openssl(
        &dir,
        &[
            "req",
            "-config",
            s(&cnf),
            "-key",
            "private/ca.key.pem",
            "-new",
            "-x509",
            "-days",
            "7300",
            "-sha256",
            "-extensions",
            "v3_ca",
            "-subj",
            "/C=GB/ST=England/O=wstunnel development/CN=wstunnel Development Root CA",
            "-out",
            "certs/ca.cert.pem",
        ],
    );
    issue(
        &dir,
        SERVER,
        "wstunnel Development Server",
        "server_cert",
        &[],
    );
    issue(
        &dir,
        CLIENT,
        "wstunnel Development Client 1",
        "client_cert",
        &[],
    );
    issue(&dir, PLAIN_CLIENT, "wstunnel-client-2", "client_cert", &[]);
    issue(
        &dir,
        TO_REVOKE,
        "wstunnel-client-to-revoke",
        "client_cert",
        &[],
    );
    issue(
        &dir,
        EXPIRED,
        "wstunnel-client-expired",
        "client_cert",
        &[
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
        ],
    );
    pki.gencrl();

    // A second CA whose client certificate our server must not trust.
    let foreign = parent.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    openssl(
        &foreign,
        &[
            "req",
            "-nodes",
            "-x509",
            "-sha256",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Foreign Root CA",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        &foreign,
        &[
            "req",
            "-nodes",
            "-new",
            "-newkey",
            "rsa:2048",
            "-keyout",
            s(&pki.key(FOREIGN)),
            "-out",
            "client.csr",
            "-subj",
            "/CN=foreign-client",
        ],
    );
    let extensions = foreign.join("client.ext");
    std::fs::write(
        &extensions,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        &foreign,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            s(&extensions),
            "-out",
            s(&pki.cert(FOREIGN)),
        ],
    );

    faux(&pki);
    pki
}

fn issue(dir: &Path, name: &str, common_name: &str, extensions: &str, extra: &[&str]) {
    let key = format!("private/{name}.pem");
    let csr = format!("csr/{name}.csr.pem");
    let cert = format!("certs/{name}.cert.pem");
    let cnf = dir.join("openssl.cnf");
    openssl(dir, &["genrsa", "-out", &key, "2048"]);
    let subject = format!("/C=GB/ST=England/O=wstunnel development/CN={common_name}");
    openssl(
        dir,
        &[
            "req",
            "-config",
            s(&cnf),
            "-key",
            &key,
            "-new",
            "-sha256",
            "-subj",
            &subject,
            "-out",
            &csr,
        ],
    );
    let mut args = vec![
        "ca",
        "-config",
        s(&cnf),
        "-batch",
        "-extensions",
        extensions,
        "-days",
        "375",
        "-notext",
        "-md",
        "sha256",
        "-in",
        &csr,
        "-out",
        &cert,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A child process whose stderr goes to a log file; killed (by its own pid) when dropped.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `program args`, logging to `log`.
    pub fn start(program: &str, args: &[String], log: PathBuf) -> Process {
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Process { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (panics with the log after 20 s).
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "`{needle}` never appeared in {}:\n{}",
            self.log.display(),
            self.log()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wstunnel() -> String {
    env!("CARGO_BIN_EXE_wstunnel").to_string()
}

/// The upstream binary named by `UPSTREAM_WSTUNNEL`, if any.
pub fn upstream() -> Option<String> {
    std::env::var("UPSTREAM_WSTUNNEL")
        .ok()
        .filter(|path| Path::new(path).exists())
}

pub fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Starts a server (ours or another binary) and waits until it listens.
pub fn start_server(
    program: &str,
    dir: &Path,
    name: &str,
    args: Vec<String>,
    port: u16,
) -> Process {
    let process = Process::start(program, &args, dir.join(format!("{name}.log")));
    wait_for_port(port, &process);
    process
}

/// Starts a client and waits until its first TCP listener port answers.
pub fn start_client(
    program: &str,
    dir: &Path,
    name: &str,
    args: Vec<String>,
    port: u16,
) -> Process {
    let process = Process::start(program, &args, dir.join(format!("{name}.log")));
    wait_for_port(port, &process);
    process
}

/// Starts our server with `--pki DIR` on a free port of 127.0.0.1, logging to
/// `temp/server.log`, and waits until it listens. Returns the server and its port.
pub fn start_pki_server(temp: &Path, pki: &Pki) -> (Process, u16) {
    let port = free_port();
    let server = start_server(
        &wstunnel(),
        temp,
        "server",
        args(&[
            "server",
            "--pki",
            s(&pki.dir),
            &format!("wss://127.0.0.1:{port}"),
        ]),
        port,
    );
    (server, port)
}

/// Starts our client with `--pki DIR --pki-client CERTIFICATE`, forwarding a free local port
/// (`-L tcp://LOCAL:ECHO`) through our server on `server_port`, logging to `temp/client.log`,
/// and waits until the local port answers. Returns the client and its local port.
pub fn start_pki_client(
    temp: &Path,
    pki: &Pki,
    certificate: &str,
    server_port: u16,
    echo: SocketAddr,
) -> (Process, u16) {
    let local = free_port();
    let client = start_client(
        &wstunnel(),
        temp,
        "client",
        args(&[
            "client",
            "-L",
            &format!("tcp://{local}:{echo}"),
            "--pki",
            s(&pki.dir),
            "--pki-client",
            certificate,
            &format!("wss://127.0.0.1:{server_port}"),
        ]),
        local,
    );
    (client, local)
}

/// Waits until something listens on 127.0.0.1:port.
pub fn wait_for_port(port: u16, process: &Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}; log:\n{}", process.log());
}

/// Waits until a UDP listener is bound on 127.0.0.1:port (binding it fails).
pub fn wait_for_udp_port(port: u16, process: &Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing bound udp {port}; log:\n{}", process.log());
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP echo server on 127.0.0.1 (one thread per connection).
pub fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    address
}

/// A UDP echo server on 127.0.0.1.
pub fn udp_echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buffer = vec![0u8; 65536];
        while let Ok((length, peer)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(&buffer[..length], peer);
        }
    });
    address
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Sends `data` through `stream` while reading the echo; returns what came back.
pub fn echo_through(mut stream: TcpStream, data: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let to_send = data.to_vec();
    let sender = thread::spawn(move || writer.write_all(&to_send).unwrap());
    let mut received = vec![0u8; data.len()];
    stream.read_exact(&mut received).unwrap();
    sender.join().unwrap();
    received
}

/// Whether a connection through a tunnel port works: a short echo round trip. False when the
/// tunnel was refused (the client closes the local connection).
pub fn round_trip_works(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    if stream.write_all(b"ping through the tunnel").is_err() {
        return false;
    }
    let mut buffer = [0u8; 23];
    stream.read_exact(&mut buffer).is_ok() && &buffer == b"ping through the tunnel"
}

/// SOCKS5 handshake with username/password and CONNECT to an IPv4 address.
pub fn socks5_connect(
    port: u16,
    login: &str,
    password: &str,
    destination: SocketAddr,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reply = [0u8; 2];
    stream.write_all(&[5, 1, 2]).unwrap();
    stream.read_exact(&mut reply).map_err(|e| e.to_string())?;
    if reply != [5, 2] {
        return Err(format!("method refused: {reply:?}"));
    }
    let mut auth = vec![1, login.len() as u8];
    auth.extend_from_slice(login.as_bytes());
    auth.push(password.len() as u8);
    auth.extend_from_slice(password.as_bytes());
    stream.write_all(&auth).unwrap();
    stream.read_exact(&mut reply).map_err(|e| e.to_string())?;
    if reply != [1, 0] {
        return Err(format!("authentication refused: {reply:?}"));
    }
    let std::net::SocketAddr::V4(v4) = destination else {
        panic!("IPv4 only")
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&request).unwrap();
    let mut answer = [0u8; 10];
    stream.read_exact(&mut answer).map_err(|e| e.to_string())?;
    if answer[1] != 0 {
        return Err(format!("request refused: {}", answer[1]));
    }
    Ok(stream)
}

/// Sends datagrams of several sizes through a UDP tunnel port and checks each echo arrives
/// whole (lost datagrams are retried: the check is about boundaries, not delivery).
pub fn udp_boundaries_hold(port: u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.connect(("127.0.0.1", port)).unwrap();
    for (index, size) in [1usize, 100, 1400, 9000, 30000, 60000].iter().enumerate() {
        let datagram = random_bytes(*size, index as u64 + 10);
        let mut buffer = vec![0u8; 65536];
        let received = (0..6).find_map(|_| {
            socket.send(&datagram).unwrap();
            socket.recv(&mut buffer).ok()
        });
        let length = received.expect("no echo through the UDP tunnel");
        assert_eq!(
            length, *size,
            "datagram of {size} bytes arrived as {length}"
        );
        assert_eq!(&buffer[..length], &datagram[..]);
    }
}

/// Runs `program args` as a stdio tunnel, pushes `length` bytes through stdin and checks the
/// echo on stdout by SHA-256.
pub fn stdio_round_trip(program: &str, arguments: &[String], log: &Path, length: usize) {
    let log_file = std::fs::File::create(log).unwrap();
    let mut child = Command::new(program)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let data = random_bytes(length, 99);
    let to_send = data.clone();
    let writer = thread::spawn(move || {
        stdin.write_all(&to_send).unwrap();
        stdin
    });
    let mut received = vec![0u8; length];
    let read = stdout.read_exact(&mut received);
    drop(writer.join().unwrap());
    let _ = child.kill();
    let _ = child.wait();
    read.unwrap_or_else(|error| {
        panic!(
            "stdio tunnel: {error}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    assert_eq!(sha256(&received), sha256(&data));
}

/// SOCKS5 UDP ASSOCIATE with username/password: returns the control connection (keep it open)
/// and the relay address to send datagrams to.
pub fn socks5_udp_associate(port: u16, login: &str, password: &str) -> (TcpStream, SocketAddr) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reply = [0u8; 2];
    stream.write_all(&[5, 1, 2]).unwrap();
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [5, 2]);
    let mut auth = vec![1, login.len() as u8];
    auth.extend_from_slice(login.as_bytes());
    auth.push(password.len() as u8);
    auth.extend_from_slice(password.as_bytes());
    stream.write_all(&auth).unwrap();
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [1, 0]);
    stream.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let mut answer = [0u8; 10];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer[..4],
        &[5, 0, 0, 1],
        "UDP ASSOCIATE accepted with an IPv4 relay"
    );
    let relay_ip = std::net::Ipv4Addr::new(answer[4], answer[5], answer[6], answer[7]);
    let relay_port = u16::from_be_bytes([answer[8], answer[9]]);
    (stream, SocketAddr::from((relay_ip, relay_port)))
}

/// Sends datagrams of several sizes through a SOCKS5 UDP relay to `destination` (an IPv4 UDP
/// echo) and checks each answer: SOCKS5 header naming the destination, then the whole datagram.
pub fn socks5_udp_boundaries_hold(relay: SocketAddr, destination: SocketAddr) {
    let SocketAddr::V4(target) = destination else {
        panic!("IPv4 only")
    };
    let mut header = vec![0, 0, 0, 1];
    header.extend_from_slice(&target.ip().octets());
    header.extend_from_slice(&target.port().to_be_bytes());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for (index, size) in [1usize, 100, 1400, 9000, 30000, 60000].iter().enumerate() {
        let payload = random_bytes(*size, index as u64 + 40);
        let mut datagram = header.clone();
        datagram.extend_from_slice(&payload);
        let mut buffer = vec![0u8; 65536];
        let received = (0..6).find_map(|_| {
            socket.send_to(&datagram, relay).unwrap();
            socket.recv(&mut buffer).ok()
        });
        let length = received.expect("no answer through the SOCKS5 UDP relay");
        assert_eq!(
            &buffer[..header.len()],
            &header[..],
            "answer names the destination"
        );
        assert_eq!(
            &buffer[header.len()..length],
            &payload[..],
            "datagram of {size} bytes"
        );
    }
}

/// Short round trips through `local`, each written as soon as the connection is made, until
/// the client's debug log shows that the first bytes of one went out with its upgrade request
/// (up to 50 tries, as that depends on the bytes arriving before the client looks). Every
/// round trip must come back intact.
pub fn first_bytes_ride_with_the_upgrade_request(local: u16, client: &Process) {
    for attempt in 0..50u64 {
        let message = random_bytes(32, 100 + attempt);
        let echoed = echo_through(TcpStream::connect(("127.0.0.1", local)).unwrap(), &message);
        assert_eq!(echoed, message, "round trip {attempt} came back altered");
        thread::sleep(Duration::from_millis(20));
        if client
            .log()
            .contains("first bytes went with the upgrade request")
        {
            return;
        }
    }
    panic!(
        "no tunnel sent its first bytes with the upgrade request; client log:\n{}",
        client.log()
    );
}
