//! Text forms of key bytes: S3's `encoding-type=url` and XML text. Keys are
//! compared as raw bytes, so every key leaves and enters the proxy through
//! these two functions.

/// S3's `encoding-type=url`: form style, as the SDKs decode it (botocore
/// and the Java SDK unquote with `+` as space). `/` is kept so that keys
/// stay readable; every other byte outside `A-Z a-z 0-9 - _ . ~` is escaped.
pub(crate) fn url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// Inverse of any upstream's `encoding-type=url`: Garage escapes a space as
/// `%20`, S3 and moto as `+`; either way a literal `+` arrives as `%2B`,
/// so `+` always means a space. `None` on a broken escape.
pub(crate) fn url_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Appends `bytes` as XML text. Control characters cannot be written as
/// XML 1.0 text at all; they go out as character references, as S3 does,
/// and a client that wants them intact asks for `encoding-type=url`.
pub(crate) fn push_xml_text(out: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// A key-like value as the client asked for it: url-encoded or raw.
pub(crate) fn push_key(out: &mut String, bytes: &[u8], encode: bool) {
    if encode {
        // Url encoding leaves only characters that need no XML escape.
        out.push_str(&url_encode(bytes));
    } else {
        push_xml_text(out, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_round_trip_of_odd_keys() {
        for k in [
            &b"a b"[..],
            b"a+b",
            b"a%b",
            b"a-b",
            b"a/",
            b"a/x",
            "\u{e9}t\u{e9}/\u{1f600}".as_bytes(),
            b"\x01\x1f\x7f\n\r\t",
            b"&<>\"'",
        ] {
            let e = url_encode(k);
            assert!(e.bytes().all(|b| b.is_ascii_graphic()), "{e}");
            assert_eq!(url_decode(&e).unwrap(), k);
        }
        assert_eq!(url_encode(b"a b+c/d"), "a+b%2Bc/d");
        // Garage's form.
        assert_eq!(url_decode("a%20b%2Bc").unwrap(), b"a b+c");
        assert_eq!(url_decode("a%2"), None);
    }

    #[test]
    fn xml_text_escapes_markup_and_controls() {
        let mut s = String::new();
        push_xml_text(&mut s, b"a&<>\x01");
        assert_eq!(s, "a&amp;&lt;&gt;&#x1;");
    }
}
