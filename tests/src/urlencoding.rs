//! Decoding of keys returned with `encoding-type=url`.

/// Decode S3's form encoding of a key: `+` is a space, `%XX` is a byte. The
/// result must be UTF-8. A `%` not followed by two hex digits is an error.
pub fn form_decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| anyhow::anyhow!("bad percent escape at byte {i} in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| anyhow::anyhow!("decoded key {s:?} is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::form_decode;

    #[test]
    fn decodes_form_encoding() {
        assert_eq!(form_decode("a+b%2Bc").unwrap(), "a b+c");
        assert_eq!(form_decode("a%20b").unwrap(), "a b");
        assert_eq!(form_decode("%C3%A9/%c3%bc").unwrap(), "é/ü");
        assert_eq!(form_decode("tab%09x%01").unwrap(), "tab\tx\u{1}");
        assert_eq!(form_decode("p%25q").unwrap(), "p%q");
        assert_eq!(form_decode("plain").unwrap(), "plain");
        assert!(form_decode("bad%2").is_err());
        assert!(form_decode("bad%zz").is_err());
        assert!(form_decode("%FF").is_err());
    }
}
