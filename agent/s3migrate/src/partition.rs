//! `--hash-count N --hash-value I`: which keys belong to which process.
//!
//! FNV-1a over the key's bytes. It is fixed here forever: every host of a
//! distributed copy, whatever its version, must put each key in the same
//! share, or keys would be copied twice or not at all.

pub fn fnv1a64(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, Copy)]
pub struct Partition {
    pub count: u32,
    pub value: u32,
}

impl Partition {
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || fnv1a64(key) % self.count as u64 == self.value as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_published_fnv1a() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a64(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64("foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn every_key_has_exactly_one_owner() {
        for i in 0..1000 {
            let k = format!("key/{i}");
            let owners = (0..4)
                .filter(|&v| Partition { count: 4, value: v }.owns(&k))
                .count();
            assert_eq!(owners, 1);
        }
    }
}
