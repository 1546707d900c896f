//! The `wstunnel pki` subcommands: argument handling and what they print.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::cli::{PkiArgs, PkiCommand};
use super::{
    AltName, Ca, InitOptions, IssueRequest, Issued, Passphrase, Profile, Revocation, RevokeOutcome,
    RevokeTarget, Serial, Subject, inspect, layout, p12, verify,
};

pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    let passin = args.passin.as_deref().map(Passphrase::parse).transpose()?;
    let passin = passin.as_ref();
    let dir = match (&args.command, args.dir) {
        (PkiCommand::Init(init), _) if init.path.is_some() => init.path.clone().unwrap_or_default(),
        (_, Some(dir)) => dir,
        (_, None) => default_dir()?,
    };
    match args.command {
        PkiCommand::Init(init) => {
            let subject = init.subject.as_deref().map(Subject::parse).transpose()?;
            let encrypt_key = match (init.encrypt_key, init.passout.as_deref()) {
                (true, Some(source)) => Some(Passphrase::parse(source).context("--passout")?),
                (true, None) => bail!("--encrypt-key needs --passout pass:TEXT|env:VAR|file:PATH"),
                (false, _) => None,
            };
            let ca = Ca::init(
                &dir,
                InitOptions {
                    common_name: init.cn,
                    subject,
                    key_type: init.key_type,
                    days: init.days,
                    encrypt_key,
                },
            )?;
            println!("created the CA in {}", ca.dir().display());
            println!(
                "  certificate  {}",
                layout::ca_cert_path(ca.dir()).display()
            );
            println!("  key          {}", layout::ca_key_path(ca.dir()).display());
            println!("  CRL          {}", layout::crl_path(ca.dir()).display());
            println!("  openssl.cnf  {}", layout::config_path(ca.dir()).display());
        }
        PkiCommand::IssueServer(issue) => {
            let json = issue.options.json;
            let request = issue_request(issue.name, Profile::Server, issue.options)?;
            let issued = Ca::open(&dir, passin)?.issue(request)?;
            print_issued(&issued, json)?;
        }
        PkiCommand::IssueClient(issue) => {
            let json = issue.options.json;
            let request = issue_request(issue.name, Profile::Client, issue.options)?;
            let issued = Ca::open(&dir, passin)?.issue(request)?;
            print_issued(&issued, json)?;
        }
        PkiCommand::SignCsr(sign) => {
            let name = match sign.name {
                Some(name) => name,
                None => name_from_file(&sign.file)?,
            };
            let sans = parse_sans(&sign.sans)?;
            let ca = Ca::open(&dir, passin)?;
            let text = std::fs::read(&sign.file)
                .with_context(|| format!("cannot read {}", sign.file.display()))?;
            let issued = ca
                .sign_csr(&text, sign.profile, &name, &sans, sign.days)
                .with_context(|| format!("cannot sign {}", sign.file.display()))?;
            print_issued(&issued, false)?;
        }
        PkiCommand::Revoke(revoke) => {
            let target = match (revoke.name, revoke.serial, revoke.cert) {
                (_, Some(serial), _) => {
                    RevokeTarget::Serial(Serial::parse_hex(&serial).context("--serial")?)
                }
                (_, None, Some(cert)) => RevokeTarget::File(cert),
                (Some(name), None, None) => RevokeTarget::Name(name),
                (None, None, None) => {
                    bail!("give the NAME to revoke, --serial HEX or --cert FILE")
                }
            };
            let ca = Ca::open(&dir, passin)?;
            let Revocation {
                serial,
                outcome,
                crl,
            } = ca.revoke(&target, revoke.reason)?;
            match outcome {
                RevokeOutcome::Revoked => println!("revoked serial {serial}"),
                RevokeOutcome::CrlCompleted => println!(
                    "serial {serial} was already revoked in index.txt but missing from the CRL \
                     (an earlier revoke did not finish); regenerated the CRL"
                ),
                RevokeOutcome::MovedAside => {
                    println!("serial {serial} was already revoked; moved its files aside")
                }
            }
            println!(
                "wrote {} (CRL number 0x{}, {} revoked)",
                crl.path.display(),
                crl.number,
                crl.revoked
            );
        }
        PkiCommand::GenCrl(gen_crl) => {
            let crl = Ca::open(&dir, passin)?.gen_crl(gen_crl.days)?;
            println!(
                "wrote {} (CRL number 0x{}, {} revoked, next update in {} days)",
                crl.path.display(),
                crl.number,
                crl.revoked,
                gen_crl.days
            );
        }
        PkiCommand::List(list) => inspect::list(&dir, list.json)?,
        PkiCommand::Inspect(args) => inspect::inspect(&args.file)?,
        PkiCommand::Verify(args) => {
            let options = verify::VerifyOptions {
                purpose: args.purpose,
                host: args.host,
                chain: args.chain,
                crls: args.crls,
            };
            let outcome = verify::verify(&dir, &args.cert, &options)?;
            println!("{outcome}");
        }
        PkiCommand::Fixtures(args) => {
            let manifest = super::fixtures::generate(&args.out, args.key_type)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&manifest)?);
            } else {
                println!(
                    "wrote {} fixtures to {}",
                    manifest.fixtures.len(),
                    args.out.display()
                );
                for fixture in &manifest.fixtures {
                    let outcome = match fixture.reason {
                        Some(reason) => format!(
                            "reject ({})",
                            serde_json::to_value(reason)?.as_str().unwrap_or("?")
                        ),
                        None => "accept".to_owned(),
                    };
                    println!("  {:<22} {:<28} {}", fixture.name, outcome, fixture.cert);
                }
                println!("manifest: {}", args.out.join("fixtures.json").display());
            }
        }
        PkiCommand::ExportP12(export) => {
            let path = p12::export(
                &dir,
                &export.name,
                &export.password_file,
                export.out,
                passin,
            )?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .context("HOME is not set; give the CA directory with --dir DIR")?;
    Ok(PathBuf::from(home).join("wstunnel").join("ca"))
}

fn parse_sans(sans: &[String]) -> anyhow::Result<Vec<AltName>> {
    sans.iter().map(|s| AltName::parse(s)).collect()
}

fn issue_request(
    name: String,
    profile: Profile,
    options: super::cli::IssueOptions,
) -> anyhow::Result<IssueRequest> {
    layout::validate_new_name(&name)?;
    let mut request = IssueRequest::new(name, profile);
    request.cn = options.cn;
    request.subject = options.subject.as_deref().map(Subject::parse).transpose()?;
    request.sans = parse_sans(&options.sans)?;
    request.days = options.days;
    request.key_type = options.key_type;
    Ok(request)
}

fn name_from_file(file: &Path) -> anyhow::Result<String> {
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name; pass --name", file.display()))?;
    let stem = [".csr.pem", ".csr", ".pem", ".req"]
        .iter()
        .find_map(|suffix| file_name.strip_suffix(suffix))
        .unwrap_or(file_name);
    layout::validate_name(stem)
        .with_context(|| format!("cannot use {file_name:?} as NAME; pass --name"))?;
    Ok(stem.to_owned())
}

fn print_issued(issued: &Issued, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(issued)?);
        return Ok(());
    }
    println!(
        "issued {} (serial {}, {})",
        issued.name, issued.serial, issued.subject
    );
    println!("  certificate  {}", issued.cert_path.display());
    if let Some(key) = &issued.key_path {
        println!("  key          {}", key.display());
    }
    println!("  request      {}", issued.csr_path.display());
    println!("  not after    {}", issued.not_after.date());
    Ok(())
}
