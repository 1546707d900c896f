//! Subject distinguished names as `openssl ca` writes them with the walkthrough's
//! `policy_loose` and `preserve = no`: the policy's field order, countryName as
//! PrintableString, emailAddress as IA5String, everything else UTF8String.

use std::fmt;

use anyhow::{Context, bail};
use rcgen::{DistinguishedName, DnType, DnValue};

/// One attribute the walkthrough's policy knows, in the policy's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Country,
    State,
    Locality,
    Organization,
    OrganizationalUnit,
    CommonName,
    Email,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::Country,
        Field::State,
        Field::Locality,
        Field::Organization,
        Field::OrganizationalUnit,
        Field::CommonName,
        Field::Email,
    ];

    /// OpenSSL's short name, as in `/C=GB/CN=x`.
    pub fn short_name(self) -> &'static str {
        match self {
            Field::Country => "C",
            Field::State => "ST",
            Field::Locality => "L",
            Field::Organization => "O",
            Field::OrganizationalUnit => "OU",
            Field::CommonName => "CN",
            Field::Email => "emailAddress",
        }
    }

    fn oid(self) -> &'static [u64] {
        match self {
            Field::Country => &[2, 5, 4, 6],
            Field::State => &[2, 5, 4, 8],
            Field::Locality => &[2, 5, 4, 7],
            Field::Organization => &[2, 5, 4, 10],
            Field::OrganizationalUnit => &[2, 5, 4, 11],
            Field::CommonName => &[2, 5, 4, 3],
            Field::Email => &[1, 2, 840, 113549, 1, 9, 1],
        }
    }

    fn from_short_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| {
            f.short_name().eq_ignore_ascii_case(name)
                || (*f == Field::Email && name.eq_ignore_ascii_case("email"))
        })
    }

    fn from_oid(oid: &[u64]) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.oid() == oid)
    }
}

/// A subject: at most one value per field, kept in policy order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    fields: Vec<(Field, String)>,
}

impl Subject {
    /// The walkthrough's defaults (`C=GB, ST=England, O=wstunnel development`) and CN.
    pub fn walkthrough_default(common_name: &str) -> Subject {
        let mut subject = Subject::default();
        subject.set(Field::Country, "GB");
        subject.set(Field::State, "England");
        subject.set(Field::Organization, "wstunnel development");
        subject.set(Field::CommonName, common_name);
        subject
    }

    /// Parses OpenSSL's `-subj` form: `/C=GB/ST=England/O=Org/CN=name` (`\/` escapes a
    /// slash). Fields: C, ST, L, O, OU, CN, emailAddress.
    ///
    /// # Errors
    /// Fails on a missing leading `/`, an unknown or repeated field, an empty value, or a
    /// country that is not two letters.
    pub fn parse(text: &str) -> anyhow::Result<Subject> {
        let Some(rest) = text.strip_prefix('/') else {
            bail!("--subject {text:?} must look like /C=GB/O=Org/CN=name (OpenSSL's -subj form)");
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                '/' => parts.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        parts.push(current);
        let mut subject = Subject::default();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("--subject: {part:?} is not FIELD=value"))?;
            let field = Field::from_short_name(key).with_context(|| {
                format!("--subject: unknown field {key:?}; use C, ST, L, O, OU, CN, emailAddress")
            })?;
            if subject.get(field).is_some() {
                bail!("--subject: the field {key} appears twice");
            }
            if value.is_empty() {
                bail!("--subject: the field {key} is empty");
            }
            subject.set(field, value);
        }
        subject.check()?;
        Ok(subject)
    }

    /// Refuses control characters (tab, newline, …) in any value given on the command line:
    /// they have no place in a name and would be hard to see or type again.
    ///
    /// # Errors
    /// Names the field and the option to fix.
    pub fn check_no_control_characters(&self) -> anyhow::Result<()> {
        for (field, value) in &self.fields {
            if let Some(c) = value.chars().find(|c| c.is_control()) {
                bail!(
                    "the subject field {} holds the control character {c:?} (value {value:?}); \
                     remove it from --cn or --subject",
                    field.short_name()
                );
            }
        }
        Ok(())
    }

    /// Reads a parsed X.509 name, keeping the policy's fields and dropping the others
    /// (as `openssl ca` does with `preserve = no`).
    ///
    /// # Errors
    /// Fails on a value that is not a string or a field given twice.
    pub fn from_x509(name: &x509_parser::x509::X509Name<'_>) -> anyhow::Result<Subject> {
        let mut subject = Subject::default();
        for attribute in name.iter_attributes() {
            let oid: Vec<u64> = attribute.attr_type().iter().into_iter().flatten().collect();
            let Some(field) = Field::from_oid(&oid) else {
                continue;
            };
            let value = attribute
                .as_str()
                .with_context(|| format!("the subject field {} is not text", field.short_name()))?;
            if subject.get(field).is_some() {
                bail!(
                    "the subject field {} appears twice; this CA keeps one",
                    field.short_name()
                );
            }
            subject.set(field, value);
        }
        Ok(subject)
    }

    fn check(&self) -> anyhow::Result<()> {
        if let Some(country) = self.get(Field::Country)
            && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bail!("the country (C) must be two letters such as GB, not {country:?}");
        }
        if let Some(email) = self.get(Field::Email)
            && !email.is_ascii()
        {
            bail!("the emailAddress {email:?} must be ASCII");
        }
        Ok(())
    }

    /// Sets a field, keeping policy order.
    pub fn set(&mut self, field: Field, value: &str) {
        self.fields.retain(|(f, _)| *f != field);
        self.fields.push((field, value.to_owned()));
        self.fields.sort_by_key(|(f, _)| *f);
    }

    /// The value of a field.
    pub fn get(&self, field: Field) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }

    /// The common name, required by the walkthrough's policy.
    pub fn common_name(&self) -> Option<&str> {
        self.get(Field::CommonName)
    }

    /// The rcgen name with OpenSSL's string types.
    ///
    /// # Errors
    /// Fails if the country is not printable.
    pub fn to_rcgen(&self) -> anyhow::Result<DistinguishedName> {
        self.check()?;
        let mut name = DistinguishedName::new();
        for (field, value) in &self.fields {
            let value = match field {
                Field::Country => DnValue::PrintableString(
                    value
                        .as_str()
                        .try_into()
                        .context("the country is not printable")?,
                ),
                Field::Email => DnValue::Ia5String(
                    value
                        .as_str()
                        .try_into()
                        .context("the emailAddress is not ASCII")?,
                ),
                _ => DnValue::Utf8String(value.clone()),
            };
            name.push(DnType::from_oid(field.oid()), value);
        }
        Ok(name)
    }

    /// OpenSSL's one-line form used in `index.txt`: `/C=GB/ST=England/CN=name`, with `/` and
    /// `+` inside a value escaped by a backslash (they separate names and multi-valued parts)
    /// and bytes outside printable ASCII as `\xHH`, as `X509_NAME_oneline` writes them.
    pub fn oneline(&self) -> String {
        let mut out = String::new();
        for (field, value) in &self.fields {
            out.push('/');
            out.push_str(field.short_name());
            out.push('=');
            for byte in value.bytes() {
                if byte == b'/' || byte == b'+' {
                    out.push('\\');
                    out.push(byte as char);
                } else if (0x20..0x7f).contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("\\x{byte:02X}"));
                }
            }
        }
        out
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{} = {v}", k.short_name()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_reordered_into_policy_order() {
        let subject = Subject::parse("/CN=x/emailAddress=a@b.c/OU=Dev/L=London/C=GB").unwrap();

        assert_eq!(
            subject.oneline(),
            "/C=GB/L=London/OU=Dev/CN=x/emailAddress=a@b.c"
        );
    }

    #[test]
    fn unknown_and_repeated_fields_are_refused() {
        assert!(Subject::parse("/XX=1/CN=a").is_err());
        assert!(Subject::parse("/CN=a/CN=b").is_err());
        assert!(Subject::parse("CN=a").is_err());
        assert!(Subject::parse("/C=GBR/CN=a").is_err());
    }

    #[test]
    fn slashes_and_pluses_in_values_are_escaped_in_the_one_line_form_as_openssl_does() {
        let subject = Subject::parse("/O=a\\+b\\/c/CN=a\\/CN=root").unwrap();

        assert_eq!(subject.oneline(), "/O=a\\+b\\/c/CN=a\\/CN=root");
    }

    #[test]
    fn escaped_slash_stays_in_the_value() {
        let subject = Subject::parse("/O=a\\/b/CN=c").unwrap();

        assert_eq!(subject.get(Field::Organization), Some("a/b"));
    }
}
