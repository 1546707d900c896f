//! The command line as a whole: exit codes and environment variables shared by every command.

use std::process::Command;

fn wstunnel(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn no_color_accepts_any_non_empty_value() {
    for value in ["1", "yes", "true", "anything"] {
        let output = wstunnel(&["pki", "--help"], &[("NO_COLOR", value)]);

        assert!(output.status.success(), "NO_COLOR={value}: {output:?}");
    }
}

#[test]
fn a_wrong_command_line_exits_with_2_and_a_failed_command_with_1() {
    let usage = wstunnel(&["pki", "no-such-subcommand"], &[]);
    let failure = wstunnel(&["pki", "list", "--dir", "/nonexistent/wstunnel-ca"], &[]);

    assert_eq!(usage.status.code(), Some(2));
    assert_eq!(failure.status.code(), Some(1));
    let message = String::from_utf8_lossy(&failure.stderr);
    assert!(message.starts_with("error: "), "{message}");
    assert!(message.contains("/nonexistent/wstunnel-ca"), "{message}");
}

#[test]
fn help_lists_every_subcommand() {
    let output = wstunnel(&["--help"], &[]);

    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["pki", "server", "client", "dev-env"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn upstream_options_this_wstunnel_lacks_are_refused_by_name_with_exit_2() {
    let cases: [&[&str]; 4] = [
        &[
            "client",
            "-R",
            "tcp://8080:127.0.0.1:80",
            "ws://127.0.0.1:9",
        ],
        &[
            "client",
            "--http-proxy",
            "127.0.0.1:3128",
            "ws://127.0.0.1:9",
        ],
        &[
            "server",
            "--restrict-config",
            "restrictions.yaml",
            "ws://127.0.0.1:9",
        ],
        &["server", "--enable-webtransport", "ws://127.0.0.1:9"],
    ];
    for arguments in cases {
        let output = wstunnel(arguments, &[]);

        let message = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {message}");
        assert!(message.contains(arguments[1]), "{arguments:?}: {message}");
        assert!(
            message.contains("does not implement"),
            "{arguments:?}: {message}"
        );
    }
}

#[test]
fn nb_worker_threads_sets_how_many_threads_the_server_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_wstunnel"))
        .args([
            "--nb-worker-threads",
            "3",
            "server",
            &format!("ws://127.0.0.1:{port}"),
        ])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stderr.take().unwrap()),
        &mut first_line,
    )
    .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    assert!(first_line.contains("3 threads"), "{first_line}");
}

#[test]
fn a_client_without_any_tunnel_is_a_usage_error() {
    let output = wstunnel(&["client", "ws://127.0.0.1:9"], &[]);

    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(message.contains("add at least one -L"), "{message}");
}

#[test]
fn tls_files_given_to_a_plain_ws_server_are_refused_by_name() {
    let output = wstunnel(
        &[
            "server",
            "--tls-certificate",
            "server.pem",
            "ws://127.0.0.1:9",
        ],
        &[],
    );

    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("--tls-certificate needs a wss:// server address"),
        "{message}"
    );
}
