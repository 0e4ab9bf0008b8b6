//! Random access keys and secrets.

/// `n` random bytes as lowercase hex (`2n` characters).
pub fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)
}

/// Same length and alphabet as `secret`, different in every hex position:
/// each hex digit `d` becomes `15 - d`; other characters are rotated within
/// printable ASCII.
pub fn wrong_secret(secret: &str) -> String {
    let flipped: String = secret
        .chars()
        .map(|c| match c.to_digit(16) {
            Some(d) if c.is_ascii_digit() || c.is_ascii_lowercase() => {
                char::from_digit(15 - d, 16).unwrap_or('0')
            }
            _ if c.is_ascii_graphic() => {
                let b = c as u8 - b'!';
                char::from(b'!' + (b + 1) % (b'~' - b'!' + 1))
            }
            _ => 'x',
        })
        .collect();
    if flipped == secret || flipped.is_empty() {
        format!("{secret}x")
    } else {
        flipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_secret_differs_and_keeps_shape() {
        let s = random_hex(32);
        let w = wrong_secret(&s);
        assert_eq!(w.len(), 64);
        assert!(w.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(s.chars().zip(w.chars()).all(|(a, b)| a != b));
        assert_ne!(wrong_secret("Ab~"), "Ab~");
    }
}
