//! `wstunnel dev-env`: a complete local mTLS environment in one command.
//!
//! It drives this same binary as child processes (`pki`, `server`, `client`) with exactly the
//! command lines a user would type, so what it proves is what a user gets, and the commands it
//! prints can be pasted as they are.

use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// Name of the server certificate that the environment's server uses. dev-env issues its own
/// rather than reuse `wstunnel-server`, which in a directory made by the OpenSSL walkthrough
/// has no subjectAltName and cannot be verified.
const SERVER_NAME: &str = "dev-server";
/// Name of the client certificate that the environment's tunnel client uses.
const CLIENT_NAME: &str = "dev-client";
/// Stem of the client certificates that `--self-test` revokes (one per run, suffixed with the
/// time, so that a run that failed half-way never blocks the next).
const REVOKED_NAME: &str = "dev-revoked";
/// How long a child gets to start listening, or a check to see its answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The server must apply a new CRL within 2 s; the check allows for a slow machine.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    wstunnel dev-env --self-test\n  \
    wstunnel dev-env ./ca -L tcp://127.0.0.1:5432:127.0.0.1:5432")]
pub struct DevEnvArgs {
    /// CA directory to create, or to reuse when it already holds a CA. By default a new
    /// directory under the system's temporary directory (printed at start).
    dir: Option<PathBuf>,

    /// More tunnels for the client, in `wstunnel client -L` syntax (repeatable). The client
    /// always has one TCP forward from a free local port to a built-in echo service; these come
    /// in addition.
    #[arg(short = 'L', long = "local-to-remote", value_name = "TUNNEL")]
    local_to_remote: Vec<String>,

    /// Check the environment instead of running it: data crosses the tunnel intact, and a
    /// client without a certificate, one from a foreign CA and a freshly revoked one are
    /// refused. Prints one line per check and exits 0 only if all pass.
    #[arg(long)]
    self_test: bool,

    /// Port of the tunnel server on 127.0.0.1. By default a free port.
    #[arg(long, value_name = "PORT")]
    server_port: Option<u16>,

    /// Passphrase of an encrypted CA key, in OpenSSL's forms: pass:TEXT, env:VAR, file:PATH.
    #[arg(long, value_name = "SOURCE")]
    passin: Option<String>,
}

/// Runs `wstunnel dev-env` until Ctrl-C, or, with `--self-test`, until the checks are done.
///
/// # Errors
/// Fails when the CA cannot be created or read, a child process cannot be started, or (with
/// `--self-test`) any check fails.
pub fn run(args: DevEnvArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DevEnvArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the path of this wstunnel binary")?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_dir()?,
    };
    let outcome = tokio::select! {
        outcome = run_environment(&exe, &dir, &args) => outcome,
        signal = termination() => {
            eprintln!("stopping ({signal})");
            Ok(())
        }
    };

    // A self-test in a directory of its own leaves no keys behind; a running environment
    // keeps its directory so that its certificates can be reused.
    if args.self_test
        && args.dir.is_none()
        && let Some(parent) = dir.parent()
    {
        let _ = std::fs::remove_dir_all(parent);
    }
    outcome
}

/// Ctrl-C, SIGTERM (timeout, CI cancel, service managers) or SIGHUP (closed terminal): the
/// children are killed on the way out, since they are `kill_on_drop`.
async fn termination() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return "interrupted";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = terminate.recv() => "terminated",
        _ = hangup.recv() => "hung up",
    }
}

async fn run_environment(exe: &Path, dir: &Path, args: &DevEnvArgs) -> anyhow::Result<()> {
    let exe = exe.to_path_buf();
    if let Some(stdio) = args
        .local_to_remote
        .iter()
        .find(|tunnel| tunnel.starts_with("stdio:"))
    {
        bail!(
            "-L {stdio}: a stdio tunnel would end the environment's client with its input; \
             run `wstunnel client … -L {stdio}` yourself next to dev-env instead"
        );
    }
    let pki = Pki {
        exe: &exe,
        passin: args.passin.as_deref(),
    };
    let ca = prepare_ca(&pki, dir).await?;

    let echo_port = start_echo_service().await?;
    let server_port = match args.server_port {
        Some(port) => {
            // Otherwise whatever already listens there would be tested in our server's place.
            StdTcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .with_context(|| format!("--server-port {port}: 127.0.0.1:{port} is in use"))?;
            port
        }
        None => free_tcp_port()?,
    };
    let server_url = format!("wss://127.0.0.1:{server_port}");
    let server_log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut server = spawn_logged(
        &exe,
        &server_command(&ca, &server_url),
        "server",
        Arc::clone(&server_log),
        !args.self_test,
    )?;
    wait_for_listener(server_port, &mut server, "server", &server_log).await?;

    let local_port = free_tcp_port()?;
    let mut tunnels = vec![format!(
        "tcp://127.0.0.1:{local_port}:127.0.0.1:{echo_port}"
    )];
    tunnels.extend(args.local_to_remote.iter().cloned());
    let mut client_args = client_command(&ca, CLIENT_NAME, &server_url);
    for tunnel in &tunnels {
        client_args.push("-L".into());
        client_args.push(tunnel.clone());
    }
    let client_log = Arc::new(Mutex::new(Vec::new()));
    let mut client = spawn_logged(
        &exe,
        &client_args,
        "client",
        Arc::clone(&client_log),
        !args.self_test,
    )?;
    // A bad -L makes the client exit at once: this reports it before anything says "running".
    wait_for_listener(local_port, &mut client, "client", &client_log).await?;

    let outcome = if args.self_test {
        let checks = SelfTest {
            pki: &pki,
            ca: &ca,
            server_url: &server_url,
            echo_port,
            server_log: &server_log,
        };
        checks.run(local_port).await
    } else {
        print_summary(&exe, &ca, &server_url, echo_port, &tunnels);
        wait_for_exit(&mut server, &mut client).await
    };

    // kill_on_drop would do this too, but waiting makes sure the ports are free on return.
    for child in [&mut client, &mut server] {
        let _ = child.kill().await;
    }
    outcome
}

/// Paths of the CA directory that the children use.
struct CaPaths {
    dir: PathBuf,
}

impl CaPaths {
    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{name}.cert.pem"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join("private").join(format!("{name}.pem"))
    }

    fn ca_cert(&self) -> PathBuf {
        self.dir.join("certs").join("ca.cert.pem")
    }
}

/// A fresh directory under the system's temporary directory, kept after exit so the user can
/// reuse the certificates.
fn default_dir() -> anyhow::Result<PathBuf> {
    let parent = tempfile::Builder::new()
        .prefix("wstunnel-dev-")
        .tempdir()
        .context("cannot create a directory under the system's temporary directory")?
        .keep();
    Ok(parent.join("ca"))
}

/// Creates the CA, the server certificate and the client certificate, each only if missing.
async fn prepare_ca(pki: &Pki<'_>, dir: &Path) -> anyhow::Result<CaPaths> {
    let ca = CaPaths {
        dir: dir.to_path_buf(),
    };
    let dir_arg = dir.display().to_string();
    if ca.ca_cert().exists() {
        eprintln!("reusing the CA in {}", dir.display());
    } else {
        pki.run(&["init", &dir_arg]).await?;
        eprintln!("created a CA in {}", dir.display());
    }
    if !ca.cert(SERVER_NAME).exists() {
        pki.run(&["issue-server", SERVER_NAME, "--dir", &dir_arg])
            .await?;
    }
    if !ca.cert(CLIENT_NAME).exists() {
        pki.run(&["issue-client", CLIENT_NAME, "--dir", &dir_arg])
            .await?;
    }
    Ok(ca)
}

/// Runs `wstunnel pki …` commands, unlocking an encrypted CA key with `passin`.
struct Pki<'a> {
    exe: &'a Path,
    passin: Option<&'a str>,
}

impl Pki<'_> {
    /// Runs `wstunnel pki ARGS…` and fails with its error output if it fails.
    async fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut command = Command::new(self.exe);
        command.arg("pki").args(args).stdin(Stdio::null());
        if let Some(passin) = self.passin {
            command.args(["--passin", passin]);
        }
        let output = command
            .output()
            .await
            .with_context(|| format!("cannot run {} pki", self.exe.display()))?;
        if !output.status.success() {
            bail!(
                "`wstunnel pki {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

fn server_command(ca: &CaPaths, server_url: &str) -> Vec<String> {
    vec![
        "server".into(),
        "--pki".into(),
        ca.dir.display().to_string(),
        "--pki-server".into(),
        SERVER_NAME.into(),
        server_url.into(),
    ]
}

fn client_command(ca: &CaPaths, name: &str, server_url: &str) -> Vec<String> {
    vec![
        "client".into(),
        "--pki".into(),
        ca.dir.display().to_string(),
        "--pki-client".into(),
        name.into(),
        server_url.into(),
    ]
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind a free TCP port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Echoes every byte back: the default destination of the environment's tunnel.
async fn start_echo_service() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("cannot bind the echo service on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    Ok(port)
}

/// Starts `wstunnel ARGS…`; its log lines are kept in `log` and, when `echo` is set, shown on
/// stderr with a `[role]` prefix.
fn spawn_logged(
    exe: &Path,
    args: &[String],
    role: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> anyhow::Result<Child> {
    let mut command = Command::new(exe);
    command.args(args).arg("--no-color");
    if !echo {
        // The self-test reads the server's WARN lines: a quieter RUST_LOG must not hide them.
        command.args(["--log-lvl", "info"]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the {role}: {}", exe.display()))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{role}] {line}");
                }
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    Ok(child)
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or `child` exits; then
/// the error quotes the child's last log lines, which say why.
async fn wait_for_listener(
    port: u16,
    child: &mut Child,
    role: &str,
    log: &Mutex<Vec<String>>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            // The log reader may still be draining the pipe of the process that just exited.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let last_lines = log
                .lock()
                .map(|log| {
                    let start = log.len().saturating_sub(5);
                    log[start..].join("\n  ")
                })
                .unwrap_or_default();
            bail!(
                "the {role} exited ({status}) before listening on 127.0.0.1:{port}:\n  {last_lines}"
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the {role} did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_summary(exe: &Path, ca: &CaPaths, server_url: &str, echo_port: u16, tunnels: &[String]) {
    let exe = exe.display();
    let dir = ca.dir.display();
    let server_address = server_url.trim_start_matches("wss://");
    let client_cert = ca.cert(CLIENT_NAME);
    let client_key = ca.key(CLIENT_NAME);
    let ca_cert = ca.ca_cert();
    println!("wstunnel dev-env is running (Ctrl-C stops everything)");
    println!();
    println!("  CA directory   {dir}");
    println!("  server         {server_url} (mTLS, CRL {dir}/crl/ca.crl.pem)");
    println!("  client         certificate {}", client_cert.display());
    for tunnel in tunnels {
        println!("  tunnel         -L {tunnel}");
    }
    println!("  echo service   127.0.0.1:{echo_port}");
    println!();
    println!("Reach it by hand:");
    println!(
        "  {exe} client --pki {dir} --pki-client {CLIENT_NAME} \
         -L stdio://127.0.0.1:{echo_port} {server_url}"
    );
    println!(
        "  openssl s_client -connect {server_address} -CAfile {} -cert {} -key {}",
        ca_cert.display(),
        client_cert.display(),
        client_key.display()
    );
    println!(
        "  (curl gets `400 Invalid request`: the mTLS handshake worked, tunnels need a client)"
    );
    println!(
        "  curl --cacert {} --cert {} --key {} https://{server_address}/",
        ca_cert.display(),
        client_cert.display(),
        client_key.display()
    );
    println!("The same server and client without dev-env:");
    println!("  {exe} server --pki {dir} --pki-server {SERVER_NAME} {server_url}");
    let mut client_line = format!("  {exe} client --pki {dir} --pki-client {CLIENT_NAME}");
    for tunnel in tunnels {
        client_line.push_str(&format!(" -L {tunnel}"));
    }
    println!("{client_line} {server_url}");
}

/// Returns only when a child exits; Ctrl-C and other signals are handled by the caller.
async fn wait_for_exit(server: &mut Child, client: &mut Child) -> anyhow::Result<()> {
    tokio::select! {
        status = server.wait() => bail!("the server exited unexpectedly ({})", status?),
        status = client.wait() => bail!("the client exited unexpectedly ({})", status?),
    }
}

/// What a tunnel attempt through a throw-away `wstunnel client -L stdio://…` showed.
enum Attempt {
    /// The echo came back intact.
    Accepted,
    /// No echo; the client's last error line, if it printed one.
    Refused(String),
}

/// The checks of `--self-test`, run against the environment that was just started.
struct SelfTest<'a> {
    pki: &'a Pki<'a>,
    ca: &'a CaPaths,
    server_url: &'a str,
    echo_port: u16,
    server_log: &'a Mutex<Vec<String>>,
}

impl SelfTest<'_> {
    async fn run(&self, local_port: u16) -> anyhow::Result<()> {
        let mut failures = 0;
        let mut report = |name: &str, result: anyhow::Result<String>| match result {
            Ok(detail) => println!("ok      {name}: {detail}"),
            Err(error) => {
                failures += 1;
                println!("FAILED  {name}: {error:#}");
            }
        };

        report("tunnel carries data", self.check_data(local_port).await);
        report(
            "client without certificate refused",
            self.check_no_certificate().await,
        );
        report(
            "client from a foreign CA refused",
            self.check_foreign_ca().await,
        );
        report("revoked client refused", self.check_revoked().await);

        if failures > 0 {
            bail!("{failures} self-test check(s) failed");
        }
        println!("all checks passed");
        Ok(())
    }

    /// Sends 4 MiB of random bytes through the environment's tunnel to the echo service.
    async fn check_data(&self, port: u16) -> anyhow::Result<String> {
        const SIZE: usize = 4 << 20;
        let mut payload = vec![0u8; SIZE];
        aws_lc_rs::rand::fill(&mut payload).map_err(|_| anyhow::anyhow!("no random bytes"))?;
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .with_context(|| format!("cannot connect to the tunnel's local port {port}"))?;
        let (mut reader, mut writer) = stream.into_split();
        let sent = payload.clone();
        // The writer is handed back rather than dropped: dropping it half-closes the
        // connection, and a wstunnel tunnel ends on the first EOF in either direction.
        let writing = tokio::spawn(async move { writer.write_all(&sent).await.map(|()| writer) });
        let mut received = vec![0u8; SIZE];
        tokio::time::timeout(STARTUP_TIMEOUT, reader.read_exact(&mut received))
            .await
            .context("the echo did not come back in time")?
            .context("the tunnel closed before the echo came back")?;
        let _writer = writing.await?.context("cannot write into the tunnel")?;
        if received != payload {
            bail!("the echo differs from what was sent");
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &received);
        let short: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!("4 MiB echoed intact (sha256 {short}…)"))
    }

    async fn check_no_certificate(&self) -> anyhow::Result<String> {
        let args = vec![
            "client".into(),
            "--tls-ca-certs".into(),
            self.ca.ca_cert().display().to_string(),
        ];
        self.expect_refused(args, &["no client certificate"]).await
    }

    async fn check_foreign_ca(&self) -> anyhow::Result<String> {
        // The foreign CA lives in its own temporary directory: nothing is written beside DIR.
        let foreign = tempfile::Builder::new()
            .prefix("wstunnel-foreign-ca-")
            .tempdir()
            .context("cannot create a temporary directory for the foreign CA")?;
        let foreign_dir = foreign.path().join("ca");
        let foreign_arg = foreign_dir.display().to_string();
        let foreign_pki = Pki {
            exe: self.pki.exe,
            passin: None,
        };
        let fast_key = ["--key-type", "ecdsa-p256"];
        foreign_pki
            .run(&[&["init", &foreign_arg, "--cn", "Foreign CA"][..], &fast_key].concat())
            .await?;
        foreign_pki
            .run(
                &[
                    &["issue-client", CLIENT_NAME, "--dir", &foreign_arg][..],
                    &fast_key,
                ]
                .concat(),
            )
            .await?;
        let foreign_ca = CaPaths { dir: foreign_dir };
        let args = vec![
            "client".into(),
            "--tls-certificate".into(),
            foreign_ca.cert(CLIENT_NAME).display().to_string(),
            "--tls-private-key".into(),
            foreign_ca.key(CLIENT_NAME).display().to_string(),
            "--tls-ca-certs".into(),
            self.ca.ca_cert().display().to_string(),
        ];
        self.expect_refused(args, &["unknown issuer"]).await
    }

    /// Issues a client, shows it is accepted, revokes it, and expects a refusal without
    /// restarting the server.
    async fn check_revoked(&self) -> anyhow::Result<String> {
        let dir_arg = self.ca.dir.display().to_string();
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let name = format!("{REVOKED_NAME}-{stamp}");
        // `pki revoke` renames the revoked files aside (so NAME can be reissued): keep copies
        // of the certificate and key, outside DIR, to present after revocation.
        let copies = tempfile::Builder::new()
            .prefix("wstunnel-revoked-")
            .tempdir()
            .context("cannot create a temporary directory for the revoked client")?;
        self.pki
            .run(&["issue-client", &name, "--dir", &dir_arg])
            .await?;
        let cert = copies.path().join("revoked.cert.pem");
        let key = copies.path().join("revoked.key.pem");
        std::fs::copy(self.ca.cert(&name), &cert).context("cannot copy the certificate")?;
        std::fs::copy(self.ca.key(&name), &key).context("cannot copy the key")?;
        let client_args = vec![
            "client".to_string(),
            "--tls-certificate".into(),
            cert.display().to_string(),
            "--tls-private-key".into(),
            key.display().to_string(),
            "--tls-ca-certs".into(),
            self.ca.ca_cert().display().to_string(),
            self.server_url.into(),
        ];
        let before = self.attempt(client_args.clone()).await;
        // Revoke even when the check failed, so the certificate never stays valid in DIR.
        self.pki.run(&["revoke", &name, "--dir", &dir_arg]).await?;
        if let Attempt::Refused(reason) = before? {
            bail!("the client was refused before it was revoked: {reason}");
        }

        let started = tokio::time::Instant::now();
        loop {
            let mark = self.log_mark();
            match self.attempt(client_args.clone()).await? {
                Attempt::Refused(client_error) => {
                    let waited = started.elapsed().as_millis();
                    let reason = self
                        .refusal_reason(mark, &client_error, &["revoked"])
                        .await?;
                    return Ok(format!("refused {waited} ms after revocation; {reason}"));
                }
                Attempt::Accepted if started.elapsed() > REVOCATION_DEADLINE => {
                    bail!("still accepted {REVOCATION_DEADLINE:?} after revocation");
                }
                Attempt::Accepted => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Expects the server to refuse the client for a reason that mentions one of `reasons`.
    async fn expect_refused(
        &self,
        mut args: Vec<String>,
        reasons: &[&str],
    ) -> anyhow::Result<String> {
        args.push(self.server_url.into());
        let mark = self.log_mark();
        match self.attempt(args).await? {
            Attempt::Accepted => bail!("the server accepted it"),
            Attempt::Refused(client_error) => Ok(format!(
                "refused; {}",
                self.refusal_reason(mark, &client_error, reasons).await?
            )),
        }
    }

    /// Number of server log lines so far, to find what a later attempt made it log.
    fn log_mark(&self) -> usize {
        self.server_log.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// The reason in the first WARN line the server logged after `mark`, without the
    /// timestamp and module. It must mention one of `expected`: a refusal for another reason
    /// (the client refusing the server, say) proves nothing about the server's checks.
    async fn refusal_reason(
        &self,
        mark: usize,
        client_error: &str,
        expected: &[&str],
    ) -> anyhow::Result<String> {
        // The server's log arrives through a pipe: give the line a moment to get here.
        for _ in 0..10 {
            let warning = self.server_log.lock().ok().and_then(|log| {
                log.iter()
                    .skip(mark)
                    .find_map(|line| line.split_once(" WARN ").map(|(_, rest)| rest.to_string()))
            });
            if let Some(warning) = warning {
                let reason = warning
                    .split_once(": ")
                    .map_or(warning.as_str(), |(_, r)| r);
                if !expected.iter().any(|word| reason.contains(word)) {
                    bail!(
                        "refused, but for another reason: server: {reason}; client: {client_error}"
                    );
                }
                return Ok(format!("server: {reason}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("no echo, but the server logged no rejection ({client_error})")
    }

    /// Runs `wstunnel ARGS… -L stdio://127.0.0.1:ECHO` and sends one line through it.
    async fn attempt(&self, args: Vec<String>) -> anyhow::Result<Attempt> {
        let mut child = Command::new(self.pki.exe)
            .args(&args)
            .arg("-L")
            .arg(format!("stdio://127.0.0.1:{}", self.echo_port))
            .arg("--no-color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.pki.exe.display()))?;
        let probe = b"wstunnel dev-env probe\n";
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the client's standard input or output is missing");
        };
        // A refused client may exit before reading its input: a failed write is an answer too.
        let _ = stdin.write_all(probe).await;
        let mut echo = vec![0u8; probe.len()];
        let read = tokio::time::timeout(STARTUP_TIMEOUT, stdout.read_exact(&mut echo)).await;
        let accepted = matches!(read, Ok(Ok(_))) && echo == probe;
        drop(stdin);
        let _ = child.kill().await;
        if accepted {
            return Ok(Attempt::Accepted);
        }
        let output = child.wait_with_output().await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_error = stderr
            .lines()
            .rev()
            .find(|line| line.contains("ERROR") || line.starts_with("error"))
            .map(|line| format!("client: {}", line.trim().trim_start_matches("error: ")))
            .unwrap_or_else(|| "the client got no echo".into());
        Ok(Attempt::Refused(last_error))
    }
}
