//! Text forms of key bytes in a listing: XML text, or S3's
//! `encoding-type=url` (`ferry_s3::percent`). Keys are compared as raw
//! bytes, so every key leaves the proxy through [`push_key`].

use ferry_s3::percent::url_encode;

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
    fn xml_text_escapes_markup_and_controls() {
        let mut s = String::new();
        push_xml_text(&mut s, b"a&<>\x01");
        assert_eq!(s, "a&amp;&lt;&gt;&#x1;");
    }
}
