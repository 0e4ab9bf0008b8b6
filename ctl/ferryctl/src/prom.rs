//! Prometheus text, as `check idle` and `status` read it from the
//! proxies' and a source's metrics endpoints.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::failure::Failure;

/// Samples summed by one label's value (an S3 operation, a side).
pub type Counts = BTreeMap<String, u64>;

/// One sample of a counter: its labels and value.
pub struct Sample {
    labels: Vec<(String, String)>,
    pub value: u64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of counter `name` in `text`.
pub fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = Sample> + 'a {
    text.lines().filter_map(move |line| {
        let (labels, value) = line
            .strip_prefix(name)?
            .strip_prefix('{')?
            .rsplit_once('}')?;
        Some(Sample {
            labels: parse_labels(labels),
            value: value.trim().parse::<f64>().ok()? as u64,
        })
    })
}

/// The samples of counter `name` whose labels match `filter`, summed by
/// the value of `label`.
pub fn by_label(text: &str, name: &str, label: &str, filter: &[(&str, &str)]) -> Counts {
    let mut out = Counts::new();
    for s in samples(text, name) {
        if filter.iter().any(|(k, v)| s.label(k) != Some(*v)) {
            continue;
        }
        if let Some(key) = s.label(label) {
            *out.entry(key.to_owned()).or_default() += s.value;
        }
    }
    out
}

/// `a="x",b="y"` as pairs; values may hold escaped quotes.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    out
}

/// Adds the counts of `from` into `into`, value by value.
pub fn add(into: &mut Counts, from: Counts) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// GET `url` (http only: metrics endpoints), its body as text.
pub fn fetch(url: &str) -> Result<String, Failure> {
    let bad = |why: String| Failure::Unreachable(format!("{url}: {why}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Failure::Usage(format!("{url}: expected http://HOST:PORT/PATH")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let mut stream = TcpStream::connect(authority).map_err(|e| bad(e.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| bad(e.to_string()))?;
    // HTTP/1.0: the answer ends with the connection, never chunked.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")
        .map_err(|e| bad(e.to_string()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no HTTP answer".into()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(bad(format!("HTTP {status}")));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_by_label_and_filtered() {
        let text = "# HELP x\n\
            reads{bucket=\"photos\",served_by=\"target\"} 3\n\
            reads{bucket=\"photos\",served_by=\"target\"} 1\n\
            reads{bucket=\"other\",served_by=\"target\"} 9\n\
            api_s3_request_counter{api_endpoint=\"Put\\\"Object\"} 2\n";
        let c = by_label(text, "reads", "served_by", &[("bucket", "photos")]);
        assert_eq!(c, Counts::from([("target".to_owned(), 4)]));
        let s = by_label(text, "api_s3_request_counter", "api_endpoint", &[]);
        assert_eq!(s, Counts::from([("Put\"Object".to_owned(), 2)]));
    }
}
