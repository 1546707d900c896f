//! `wstunnel`: a dev/test PKI toolkit and an mTLS WebSocket tunnel compatible with upstream
//! wstunnel v10.
//!
//! This file is the table of contents: it parses the command line, sets up logging, runs one
//! function per subcommand and turns an error into one message and one exit code.
//!
//! Exit codes: 0 success, 1 the command failed (the message says why), 2 the command line was
//! wrong (printed by clap).

mod devenv;
mod pki;
mod tls;
mod tunnel;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wstunnel", version, about, propagate_version = true)]
struct Cli {
    /// Log filter: TRACE, DEBUG, INFO, WARN, ERROR, OFF or a tracing directive such as
    /// `wstunnel=debug`. By default INFO.
    #[arg(
        long = "log-lvl",
        global = true,
        env = "RUST_LOG",
        default_value = "INFO"
    )]
    log_lvl: String,

    /// Disable colours in log output. Also set by a non-empty NO_COLOR environment variable.
    #[arg(long, global = true)]
    no_color: bool,

    /// Threads for `server` and `client` (each runs its own event loop). By default one per
    /// CPU; the TOKIO_WORKER_THREADS environment variable is read when this is not given.
    #[arg(long, global = true, value_name = "INT",
          value_parser = clap::value_parser!(u16).range(1..))]
    nb_worker_threads: Option<u16>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Certificate authority for development and tests (the OpenSSL CA walkthrough as commands).
    Pki(pki::cli::PkiArgs),
    /// Run a tunnel server (upstream wstunnel v10 wire protocol).
    Server(Box<tunnel::cli::ServerArgs>),
    /// Run a tunnel client (upstream wstunnel v10 wire protocol).
    Client(Box<tunnel::cli::ClientArgs>),
    /// Start a complete local mTLS environment (CA, server, client) in one command.
    DevEnv(devenv::DevEnvArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // NO_COLOR means "no colour" whatever its value (no-color.org), which clap's boolean
    // parsing of environment variables would reject as "1" or "yes".
    let no_color = cli.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    init_logging(&cli.log_lvl, no_color);
    refuse_upstream_only_options(&cli.command);
    if let Some(threads) = cli.nb_worker_threads {
        tunnel::set_worker_threads(threads.into());
    }

    let result = match cli.command {
        Command::Pki(args) => pki::run(args),
        Command::Server(args) => tunnel::run_server(*args),
        Command::Client(args) => tunnel::run_client(*args),
        Command::DevEnv(args) => devenv::run(args),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Exits with 2 when an option of upstream wstunnel that this one does not implement was
/// given, naming it ("unexpected argument" would suggest a typo), or when a client has no
/// tunnel.
fn refuse_upstream_only_options(command: &Command) {
    let given = match command {
        Command::Server(args) => args.not_supported.first_given(),
        Command::Client(args) => args.not_supported.first_given(),
        Command::Pki(_) | Command::DevEnv(_) => None,
    };
    if let Some((option, feature)) = given {
        let message = format!(
            "{option} is upstream wstunnel's option for {feature}, which this wstunnel does not \
             implement; remove it (docs/tunnel.md lists the differences from upstream)"
        );
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    // Checked here rather than by clap so that an upstream-only option such as -R is named
    // first.
    if let Command::Client(args) = command
        && args.local_to_remote.is_empty()
    {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no tunnel given: add at least one -L SPEC (see `wstunnel client --help`)",
            )
            .exit();
    }
}

/// Logs go to stderr so that `stdio://` tunnels and `--json` output keep stdout clean.
fn init_logging(filter: &str, no_color: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
