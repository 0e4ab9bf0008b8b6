//! Key lists: the sorted, chunked files that `s3find` writes and `s3migrate`
//! reads (ARCHITECTURE.md, "Key lists").
//!
//! One key per line. `%`, CR, LF and the other control bytes are written as
//! `%XX`, so any S3 key round-trips; every other byte is written as is, so a
//! plain key is its own line. Keys are ordered by their raw UTF-8 bytes,
//! within a chunk and across chunks, which is the order S3 lists in.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use ferry_s3::durable;

/// File name suffix of a chunk. Anything else in a key-list folder (logs,
/// summaries, temporary files) is not a chunk.
pub const CHUNK_SUFFIX: &str = ".keys";
/// Most keys in one chunk, as the WEKA tools write them.
pub const CHUNK_KEYS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyListError {
    #[error("cannot read key-list folder {path}: {source}")]
    Folder { path: PathBuf, source: io::Error },
    #[error("key-list folder {0} holds no *{CHUNK_SUFFIX} chunk files")]
    Empty(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: malformed key line: {why}")]
    Malformed {
        path: PathBuf,
        line: u64,
        why: &'static str,
    },
    #[error(
        "{path}:{line}: keys out of order (each key must sort after the one before it, across chunks too)"
    )]
    Unsorted { path: PathBuf, line: u64 },
    #[error("cannot write key list {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

fn needs_escape(b: u8) -> bool {
    b == b'%' || b < 0x20 || b == 0x7f
}

/// Encode a raw key as one key-list line (without the newline).
pub fn escape(key: &str) -> String {
    if !key.bytes().any(needs_escape) {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 8);
    for c in key.chars() {
        if c.is_ascii() && needs_escape(c as u8) {
            out.push_str(&format!("%{:02X}", c as u8));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decode one key-list line back into the raw key.
pub fn unescape(line: &str) -> Result<String, &'static str> {
    if line.is_empty() {
        return Err("empty line (an S3 key has at least one byte)");
    }
    if !line.contains('%') {
        if line.bytes().any(needs_escape) {
            return Err("raw control byte (must be %-escaped)");
        }
        return Ok(line.to_owned());
    }
    let bytes = line.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            // Digits only: `u8::from_str_radix` would also take a sign ("%+A").
            let digit = |b: u8| char::from(b).to_digit(16).ok_or("bad %-escape");
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else if needs_escape(b) {
            return Err("raw control byte (must be %-escaped)");
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escapes decode to invalid UTF-8")
}

/// The chunk files of a key-list folder, in the order they are read.
pub fn chunk_files(dir: &Path) -> Result<Vec<PathBuf>, KeyListError> {
    let folder_err = |source| KeyListError::Folder {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(folder_err)? {
        let entry = entry.map_err(folder_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(CHUNK_SUFFIX) {
            continue;
        }
        if entry.file_type().map_err(folder_err)?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Streams the keys of a folder of chunks in order, checking the order as
/// it goes. Memory is one line, whatever the folder holds.
pub struct KeyListReader {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    last: Option<String>,
    line: String,
}

impl KeyListReader {
    /// Opens a folder that must hold at least one chunk.
    pub fn open(dir: &Path) -> Result<Self, KeyListError> {
        let files = chunk_files(dir)?;
        if files.is_empty() {
            return Err(KeyListError::Empty(dir.to_owned()));
        }
        Ok(Self::from_files(files))
    }

    /// Opens a folder that may hold no chunk at all (then it yields nothing).
    pub fn open_optional(dir: &Path) -> Result<Self, KeyListError> {
        Ok(Self::from_files(chunk_files(dir)?))
    }

    fn from_files(files: Vec<PathBuf>) -> Self {
        Self {
            files: files.into_iter(),
            current: None,
            last: None,
            line: String::new(),
        }
    }

    /// The next key, raw (unescaped), or `None` at the end of the last chunk.
    pub fn next_key(&mut self) -> Result<Option<String>, KeyListError> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.next() else {
                    return Ok(None);
                };
                let file = File::open(&path).map_err(|source| KeyListError::Read {
                    path: path.clone(),
                    source,
                })?;
                self.current = Some((path, BufReader::with_capacity(256 * 1024, file), 0));
            }
            let (path, reader, lineno) = self.current.as_mut().expect("set above");
            self.line.clear();
            let n = reader
                .read_line(&mut self.line)
                .map_err(|source| KeyListError::Read {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                self.current = None;
                continue;
            }
            *lineno += 1;
            let malformed = |why| KeyListError::Malformed {
                path: path.clone(),
                line: *lineno,
                why,
            };
            let Some(body) = self.line.strip_suffix('\n') else {
                return Err(malformed("last line has no newline (truncated file?)"));
            };
            let key = unescape(body).map_err(malformed)?;
            if key.len() > 1024 {
                return Err(malformed("key longer than 1024 bytes"));
            }
            if let Some(prev) = &self.last
                && prev.as_str() >= key.as_str()
            {
                return Err(KeyListError::Unsorted {
                    path: path.clone(),
                    line: *lineno,
                });
            }
            self.last = Some(key.clone());
            return Ok(Some(key));
        }
    }
}

/// Reads a whole folder once to check it and count its keys, so that bad
/// input is refused before anything is written and the total is known for
/// the progress line.
pub fn validate(dir: &Path) -> Result<u64, KeyListError> {
    let mut reader = KeyListReader::open(dir)?;
    let mut n = 0;
    while reader.next_key()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Writes sorted keys as chunks of at most `CHUNK_KEYS`, each written to a
/// temporary name, synced and renamed, so a crash never leaves a half chunk
/// that looks whole.
pub struct KeyListWriter {
    dir: PathBuf,
    prefix: String,
    chunk_no: u32,
    buf: Vec<u8>,
    in_chunk: usize,
    last: Option<String>,
}

impl KeyListWriter {
    pub fn create(dir: &Path, prefix: &str) -> Result<Self, KeyListError> {
        fs::create_dir_all(dir).map_err(|source| KeyListError::Write {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            chunk_no: 0,
            buf: Vec::new(),
            in_chunk: 0,
            last: None,
        })
    }

    /// As `create`, after removing the chunk files a earlier list left in
    /// `dir`: the folder then holds only what this writer writes.
    pub fn replace(dir: &Path, prefix: &str) -> Result<Self, KeyListError> {
        if dir.exists() {
            for old in chunk_files(dir)? {
                fs::remove_file(&old)
                    .map_err(|source| KeyListError::Write { path: old, source })?;
            }
        }
        Self::create(dir, prefix)
    }

    /// Appends a key; keys must come in strictly increasing order.
    pub fn push(&mut self, key: &str) -> Result<(), KeyListError> {
        if let Some(prev) = &self.last {
            assert!(prev.as_str() < key, "KeyListWriter fed out of order");
        }
        self.buf.extend_from_slice(escape(key).as_bytes());
        self.buf.push(b'\n');
        self.in_chunk += 1;
        self.last = Some(key.to_owned());
        if self.in_chunk == CHUNK_KEYS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), KeyListError> {
        if self.in_chunk == 0 {
            return Ok(());
        }
        let path = self
            .dir
            .join(format!("{}{:06}{CHUNK_SUFFIX}", self.prefix, self.chunk_no));
        durable::write(&path, &self.buf, None).map_err(|source| KeyListError::Write {
            path: path.clone(),
            source,
        })?;
        self.chunk_no += 1;
        self.buf.clear();
        self.in_chunk = 0;
        Ok(())
    }

    /// Writes the last partial chunk; returns how many chunks were written.
    pub fn finish(mut self) -> Result<u32, KeyListError> {
        self.flush_chunk()?;
        Ok(self.chunk_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_their_own_line() {
        for k in ["a", "dir/", "a b+c?d#e", "ünï/こんにちは", "//x", "/lead"] {
            assert_eq!(escape(k), k);
            assert_eq!(unescape(k).unwrap(), k);
        }
    }

    #[test]
    fn percent_and_controls_round_trip() {
        let k = "50%\r\nline\tx\u{7f}";
        let e = escape(k);
        assert_eq!(e, "50%25%0D%0Aline%09x%7F");
        assert_eq!(unescape(&e).unwrap(), k);
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(unescape("%4").is_err());
        assert!(unescape("%zz").is_err());
        assert!(unescape("%FF").is_err());
        assert!(unescape("%+A").is_err(), "a sign is no hex digit");
        assert!(unescape("a\rb").is_err());
        assert!(unescape("").is_err());
    }

    #[test]
    fn reader_checks_order_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.keys"), "a\nc\n").unwrap();
        fs::write(dir.path().join("b.keys"), "b\n").unwrap();
        let err = validate(dir.path()).unwrap_err();
        assert!(
            matches!(err, KeyListError::Unsorted { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn writer_chunks_and_reader_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = KeyListWriter::create(dir.path(), "t-").unwrap();
        let keys: Vec<String> = (0..(CHUNK_KEYS + 5)).map(|i| format!("k{i:08}%")).collect();
        for k in &keys {
            w.push(k).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 2);
        let mut r = KeyListReader::open(dir.path()).unwrap();
        let mut got = Vec::new();
        while let Some(k) = r.next_key().unwrap() {
            got.push(k);
        }
        assert_eq!(got, keys);
    }

    /// Escaped lines do not sort like their keys ("\n" < "!", "%0A" >
    /// "!"): that is why the reader checks the order of unescaped keys.
    #[test]
    fn escaped_lines_need_not_sort_like_keys() {
        assert!("\n" < "!");
        assert!(escape("\n").as_str() > escape("!").as_str());
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.keys"), "%0A\n!\n").unwrap();
        assert_eq!(validate(dir.path()).unwrap(), 2);
    }
}

/// The promises of the module doc, for any key.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn is_control(b: u8) -> bool {
        b < 0x20 || b == 0x7f
    }

    /// Keys rich in what needs escaping, and arbitrary ones. An S3 key has
    /// at least one byte.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z/%\\\\\r\n\t\x00\x1f\x7f é中😀]{1,24}",
            any::<String>().prop_filter("non-empty", |k| !k.is_empty()),
        ]
    }

    /// A valid line with something no writer writes put in at a char
    /// boundary: a raw control byte, a `%` whose two bytes are not hex
    /// digits, an escape of a byte that is never UTF-8, or a `%` too close
    /// to the end.
    fn malformed() -> impl Strategy<Value = String> {
        let junk = prop_oneof![
            1 => (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            1 => Just("\x7f".to_owned()),
            // A sign is no hex digit, though `u8::from_str_radix` takes one.
            3 => ("[+\\-gG %é]", "[0-9A-F+\\-gG %é]").prop_map(|(a, b)| format!("%{a}{b}")),
            2 => ("[0-9A-F]", "[+\\-gG %é]").prop_map(|(a, b)| format!("%{a}{b}")),
            1 => "%[89A-Fa-f][0-9A-Fa-f]",
        ];
        let inserted = (key(), junk, any::<prop::sample::Index>()).prop_map(|(k, junk, at)| {
            let line = escape(&k);
            let bounds: Vec<usize> = line
                .char_indices()
                .map(|(i, _)| i)
                .chain([line.len()])
                .collect();
            let at = bounds[at.index(bounds.len())];
            format!("{}{junk}{}", &line[..at], &line[at..])
        });
        let truncated = (key(), "%[0-9A-F]?").prop_map(|(k, tail)| escape(&k) + &tail);
        prop_oneof![3 => inserted, 1 => truncated, 1 => Just(String::new())]
    }

    proptest! {
        #[test]
        fn any_key_round_trips(k in key()) {
            prop_assert_eq!(unescape(&escape(&k)), Ok(k));
        }

        #[test]
        fn escaped_lines_hold_no_control_byte(k in key()) {
            let line = escape(&k);
            prop_assert!(!line.bytes().any(is_control), "{:?} -> {:?}", k, line);
        }

        #[test]
        fn a_plain_key_is_its_own_line(k in "[^%\x00-\x1f\x7f]{1,24}") {
            prop_assert_eq!(escape(&k), k);
        }

        #[test]
        fn malformed_lines_are_errors(line in malformed()) {
            prop_assert!(unescape(&line).is_err(), "{:?} -> {:?}", line, unescape(&line));
        }

        #[test]
        fn unescape_never_panics(
            line in prop_oneof![any::<String>(), malformed(), "[%0-9A-Fa-f+é\n]{0,8}"],
        ) {
            let _ = unescape(&line);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Keys in raw byte order, escaped into two chunks, read back in
        /// that order, with no order error, across the chunk boundary too.
        #[test]
        fn keys_keep_raw_byte_order_across_chunks(
            keys in prop::collection::btree_set(key(), 1..40),
            split in any::<prop::sample::Index>(),
        ) {
            let keys: Vec<String> = keys.into_iter().collect();
            let split = split.index(keys.len() + 1);
            let dir = tempfile::tempdir().unwrap();
            for (name, part) in [("a.keys", &keys[..split]), ("b.keys", &keys[split..])] {
                let text: String = part.iter().map(|k| escape(k) + "\n").collect();
                fs::write(dir.path().join(name), text).unwrap();
            }
            let mut r = KeyListReader::open(dir.path()).unwrap();
            let mut got = Vec::new();
            while let Some(k) = r.next_key().unwrap() {
                got.push(k);
            }
            prop_assert_eq!(got, keys);
        }
    }
}
