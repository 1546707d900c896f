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
