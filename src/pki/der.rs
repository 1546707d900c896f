//! Minimal DER writers for the few structures the profiles need (extension values, names).
//!
//! Only definite-length, primitive-or-constructed TLVs with single-byte tags are written; that
//! covers every extension OpenSSL emits for the walkthrough's profiles.

/// Tag numbers used by the profiles.
pub const SEQUENCE: u8 = 0x30;
pub const OCTET_STRING: u8 = 0x04;
pub const BIT_STRING: u8 = 0x03;
pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const OBJECT_IDENTIFIER: u8 = 0x06;
pub const IA5_STRING: u8 = 0x16;

/// Encodes one TLV with the given tag byte.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded elements.
pub fn sequence(elements: &[Vec<u8>]) -> Vec<u8> {
    tlv(SEQUENCE, &elements.concat())
}

/// An OBJECT IDENTIFIER from its arcs (the first two arcs must be valid per X.690).
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    if arcs.len() >= 2 {
        push_base128(&mut body, arcs[0] * 40 + arcs[1]);
    }
    for arc in arcs.iter().skip(2) {
        push_base128(&mut body, *arc);
    }
    tlv(OBJECT_IDENTIFIER, &body)
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut groups = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        groups.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    groups.reverse();
    out.extend_from_slice(&groups);
}

/// A non-negative INTEGER from big-endian magnitude bytes (leading zeros are trimmed, a zero
/// byte is prepended when the top bit is set).
pub fn unsigned_integer_content(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        return vec![0];
    }
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&trimmed);
    out
}

/// A named-bit BIT STRING: bit 0 is the most significant bit of the first byte, trailing
/// zero bits are removed as DER requires.
pub fn named_bits(bits: &[u8]) -> Vec<u8> {
    let highest = bits.iter().copied().max();
    let Some(highest) = highest else {
        return tlv(BIT_STRING, &[0]);
    };
    let byte_count = highest as usize / 8 + 1;
    let mut bytes = vec![0u8; byte_count];
    for bit in bits {
        bytes[*bit as usize / 8] |= 0x80 >> (bit % 8);
    }
    let last = bytes[byte_count - 1];
    let unused = last.trailing_zeros().min(7) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes);
    tlv(BIT_STRING, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_usage_bits_match_openssl_encoding() {
        assert_eq!(named_bits(&[0, 2]), vec![0x03, 0x02, 0x05, 0xA0]);
        assert_eq!(named_bits(&[0, 1, 2]), vec![0x03, 0x02, 0x05, 0xE0]);
        assert_eq!(named_bits(&[0, 5, 6]), vec![0x03, 0x02, 0x01, 0x86]);
        assert_eq!(named_bits(&[1]), vec![0x03, 0x02, 0x06, 0x40]);
    }

    #[test]
    fn oid_encodes_multi_byte_arcs() {
        assert_eq!(
            oid(&[2, 16, 840, 1, 113730, 1, 1]),
            vec![
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x86, 0xF8, 0x42, 0x01, 0x01
            ]
        );
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let encoded = tlv(OCTET_STRING, &[0u8; 200]);

        assert_eq!(&encoded[..3], &[0x04, 0x81, 200]);
        assert_eq!(encoded.len(), 203);
    }
}
