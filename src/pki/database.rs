//! OpenSSL's CA database files, read and written in OpenSSL's own formats: `index.txt`
//! (tab-separated status, expiry, revocation, serial, file, subject), `serial` and
//! `crlnumber` (uppercase hex, even number of digits).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use time::OffsetDateTime;

use super::fsutil::{FileMode, PreparedFile};
use super::layout;

/// A certificate serial or CRL number: a non-negative integer as big-endian bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Serial(Vec<u8>);

impl Ord for Serial {
    /// Numeric order: the bytes carry no leading zeros, so a longer number is larger.
    fn cmp(&self, other: &Serial) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Serial {
    fn partial_cmp(&self, other: &Serial) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serial {
    /// From big-endian bytes (leading zero bytes are dropped).
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        Serial(if trimmed.is_empty() { vec![0] } else { trimmed })
    }

    /// Parses hex digits (either case, surrounding white space ignored).
    ///
    /// # Errors
    /// Fails on anything that is not hex or is longer than 20 bytes.
    pub fn parse_hex(text: &str) -> anyhow::Result<Serial> {
        let text = text.trim();
        if text.is_empty() || text.len() > 40 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{text:?} is not a hexadecimal serial number (such as 1000)");
        }
        let padded = if text.len() % 2 == 1 {
            format!("0{text}")
        } else {
            text.to_owned()
        };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Serial::from_bytes(&bytes))
    }

    /// Whether this is 0 (not a valid certificate serial).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// The big-endian magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The next number.
    pub fn next(&self) -> Serial {
        let mut bytes = self.0.clone();
        for byte in bytes.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                return Serial(bytes);
            }
        }
        bytes.insert(0, 1);
        Serial(bytes)
    }
}

impl fmt::Display for Serial {
    /// Uppercase hex with an even number of digits, as OpenSSL writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// Why a certificate was revoked: the RFC 5280 reasons that OpenSSL's `index.txt` can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    #[value(name = "unspecified")]
    Unspecified,
    #[value(name = "keyCompromise", alias = "key-compromise")]
    KeyCompromise,
    #[value(name = "CACompromise", alias = "ca-compromise", alias = "cACompromise")]
    CaCompromise,
    #[value(name = "affiliationChanged", alias = "affiliation-changed")]
    AffiliationChanged,
    #[value(name = "superseded")]
    Superseded,
    #[value(name = "cessationOfOperation", alias = "cessation-of-operation")]
    CessationOfOperation,
    #[value(name = "certificateHold", alias = "certificate-hold")]
    CertificateHold,
    #[value(name = "removeFromCRL", alias = "remove-from-crl")]
    RemoveFromCrl,
}

impl RevocationReason {
    /// The name OpenSSL writes in `index.txt`.
    pub fn openssl_name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "CACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
        }
    }

    /// The CRL reason code.
    pub fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold => rcgen::RevocationReason::CertificateHold,
            RevocationReason::RemoveFromCrl => rcgen::RevocationReason::RemoveFromCrl,
        }
    }
}

impl FromStr for RevocationReason {
    type Err = anyhow::Error;

    /// Reads OpenSSL's reason names, including its `holdInstruction`, `keyTime` and
    /// `CAkeyTime` forms.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let all = [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold,
            RevocationReason::RemoveFromCrl,
        ];
        if let Some(reason) = all
            .into_iter()
            .find(|r| r.openssl_name().eq_ignore_ascii_case(text))
        {
            return Ok(reason);
        }
        match text {
            "holdInstruction" => Ok(RevocationReason::CertificateHold),
            "keyTime" => Ok(RevocationReason::KeyCompromise),
            "CAkeyTime" => Ok(RevocationReason::CaCompromise),
            _ => bail!(
                "unknown revocation reason {text:?} (expected an RFC 5280 name such as \
                 keyCompromise, superseded or cessationOfOperation)"
            ),
        }
    }
}

/// Status letter of an `index.txt` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Valid,
    Revoked,
    Expired,
}

/// One line of `index.txt`.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    pub status: Status,
    pub expiry: OffsetDateTime,
    /// Revocation time and reason (`R` lines).
    pub revoked: Option<(OffsetDateTime, Option<RevocationReason>)>,
    pub serial: Serial,
    pub file: String,
    pub subject: String,
    /// The line as read, kept so lines we do not change are written back byte for byte.
    raw: Option<String>,
}

impl IndexEntry {
    /// A new `V` line.
    pub fn valid(serial: Serial, expiry: OffsetDateTime, subject: String) -> IndexEntry {
        IndexEntry {
            status: Status::Valid,
            expiry,
            revoked: None,
            serial,
            file: "unknown".to_owned(),
            subject,
            raw: None,
        }
    }

    /// Marks the entry revoked at `time`.
    pub fn revoke(&mut self, time: OffsetDateTime, reason: Option<RevocationReason>) {
        self.status = Status::Revoked;
        self.revoked = Some((time, reason));
        self.raw = None;
    }

    fn parse(line: &str) -> anyhow::Result<IndexEntry> {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 6 {
            bail!("expected 6 tab-separated fields, found {}", fields.len());
        }
        let status = match fields[0] {
            "V" => Status::Valid,
            "R" => Status::Revoked,
            "E" => Status::Expired,
            other => bail!("unknown status {other:?} (expected V, R or E)"),
        };
        let expiry = parse_time(fields[1])?;
        let revoked = if status == Status::Revoked {
            let mut parts = fields[2].split(',');
            let time = parse_time(parts.next().unwrap_or_default())?;
            let reason = parts.next().map(str::parse).transpose()?;
            Some((time, reason))
        } else {
            None
        };
        Ok(IndexEntry {
            status,
            expiry,
            revoked,
            serial: Serial::parse_hex(fields[3])?,
            file: fields[4].to_owned(),
            subject: fields[5].to_owned(),
            raw: Some(line.to_owned()),
        })
    }

    fn render(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let letter = match self.status {
            Status::Valid => "V",
            Status::Revoked => "R",
            Status::Expired => "E",
        };
        let revocation = match &self.revoked {
            Some((time, Some(reason))) => {
                format!("{},{}", format_time(*time), reason.openssl_name())
            }
            Some((time, None)) => format_time(*time),
            None => String::new(),
        };
        format!(
            "{letter}\t{}\t{revocation}\t{}\t{}\t{}",
            format_time(self.expiry),
            self.serial,
            self.file,
            self.subject
        )
    }

    /// Valid, revoked, or expired (a `V` line past its expiry counts as expired).
    pub fn effective_status(&self, now: OffsetDateTime) -> Status {
        match self.status {
            Status::Valid if self.expiry <= now => Status::Expired,
            other => other,
        }
    }
}

/// `index.txt`: the list of issued certificates.
#[derive(Debug, Default)]
pub struct Index {
    pub entries: Vec<IndexEntry>,
}

impl Index {
    /// Reads `DIR/index.txt`.
    ///
    /// # Errors
    /// Fails naming the file and line if a line is not in OpenSSL's format.
    pub fn load(dir: &Path) -> anyhow::Result<Index> {
        let path = layout::index_path(dir);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let entry = IndexEntry::parse(line).with_context(|| {
                format!(
                    "{} line {} is not an OpenSSL database line; fix or remove that line",
                    path.display(),
                    number + 1
                )
            })?;
            entries.push(entry);
        }
        Ok(Index { entries })
    }

    /// Writes `DIR/index.txt` atomically.
    ///
    /// # Errors
    /// Fails if the file cannot be replaced.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.prepare(dir)?.commit()
    }

    /// The new `index.txt`, written under a temporary name until committed.
    ///
    /// # Errors
    /// Fails if the directory is not writable; `index.txt` is then unchanged.
    pub fn prepare(&self, dir: &Path) -> anyhow::Result<PreparedFile> {
        let mut text = String::new();
        for entry in &self.entries {
            text.push_str(&entry.render());
            text.push('\n');
        }
        PreparedFile::write(&layout::index_path(dir), text.as_bytes(), FileMode::Public)
    }

    /// The entry with this serial.
    pub fn find_mut(&mut self, serial: &Serial) -> Option<&mut IndexEntry> {
        self.entries.iter_mut().find(|e| &e.serial == serial)
    }
}

/// Reads a hex counter file (`serial`, `crlnumber`).
///
/// # Errors
/// Fails naming the file if it is missing or not hex.
pub fn read_counter(path: &Path) -> anyhow::Result<Serial> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Serial::parse_hex(&text).with_context(|| {
        format!(
            "{} is damaged; it must hold one hexadecimal number (such as 1000): restore it, or \
             write the next free number into it",
            path.display()
        )
    })
}

/// Writes a hex counter file atomically.
///
/// # Errors
/// Fails if the file cannot be replaced.
pub fn write_counter(path: &Path, value: &Serial) -> anyhow::Result<()> {
    prepare_counter(path, value)?.commit()
}

/// The new version of a counter file, written under a temporary name until committed.
///
/// # Errors
/// Fails if the directory is not writable; the file is then unchanged.
pub fn prepare_counter(path: &Path, value: &Serial) -> anyhow::Result<PreparedFile> {
    PreparedFile::write(path, format!("{value}\n").as_bytes(), FileMode::Public)
}

/// Parses OpenSSL's `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime).
///
/// # Errors
/// Fails on any other text.
pub fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    let digits = text
        .strip_suffix('Z')
        .filter(|d| d.chars().all(|c| c.is_ascii_digit()))
        .with_context(|| format!("{text:?} is not a time such as 271214153439Z"))?;
    let (year, rest) = match digits.len() {
        12 => {
            let short: i32 = digits[..2].parse()?;
            (
                if short < 50 {
                    2000 + short
                } else {
                    1900 + short
                },
                &digits[2..],
            )
        }
        14 => (digits[..4].parse()?, &digits[4..]),
        _ => bail!("{text:?} is not a time such as 271214153439Z"),
    };
    let number = |i: usize| rest[i..i + 2].parse::<u8>();
    let month = time::Month::try_from(number(0)?)?;
    let date = time::Date::from_calendar_date(year, month, number(2)?)?;
    let time = time::Time::from_hms(number(4)?, number(6)?, number(8)?)?;
    Ok(date.with_time(time).assume_utc())
}

/// Formats a time as OpenSSL does: UTCTime before 2050, GeneralizedTime from 2050 on.
pub fn format_time(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    let year = if time.year() < 2050 && time.year() >= 1950 {
        format!("{:02}", time.year() % 100)
    } else {
        format!("{:04}", time.year())
    };
    format!(
        "{year}{:02}{:02}{:02}{:02}{:02}Z",
        time.month() as u8,
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

impl FromStr for Serial {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        Serial::parse_hex(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_numbers() {
        assert!(Serial::parse_hex("1000").unwrap() > Serial::parse_hex("FF").unwrap());
        assert!(Serial::parse_hex("1001").unwrap() > Serial::parse_hex("1000").unwrap());
    }

    #[test]
    fn serial_is_written_like_openssl() {
        assert_eq!(
            Serial::parse_hex("1000").unwrap().next().to_string(),
            "1001"
        );
        assert_eq!(Serial::parse_hex("FF").unwrap().next().to_string(), "0100");
        assert_eq!(Serial::parse_hex("fff").unwrap().to_string(), "0FFF");
    }

    #[test]
    fn openssl_index_lines_round_trip() {
        let lines = [
            "V\t271214153439Z\t\t1000\tunknown\t/C=GB/ST=England/CN=wstunnel-server",
            "R\t271214153442Z\t261204153448Z,keyCompromise\t1001\tunknown\t/CN=x",
            "R\t271214153442Z\t261204153448Z\t1002\tunknown\t/CN=y",
        ];
        for line in lines {
            let mut entry = IndexEntry::parse(line).unwrap();
            entry.raw = None;
            assert_eq!(entry.render(), line);
        }
    }

    #[test]
    fn times_after_2049_use_four_digit_years() {
        let time = parse_time("20510101000000Z").unwrap();
        assert_eq!(format_time(time), "20510101000000Z");
        assert_eq!(
            format_time(parse_time("491231235959Z").unwrap()),
            "491231235959Z"
        );
    }
}
