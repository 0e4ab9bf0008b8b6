//! An in-memory S3 bucket answering listings with S3's semantics, written
//! independently of the merge: the test double for each side and, over the
//! union of both sides, the reference the merged listing must match. It
//! builds whole answers in memory, which only a test may do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use bytes::Bytes;

use super::Lister;
use crate::s3error::{Code, S3Error};
use ferry_s3::percent::uri_encode;

#[derive(Default)]
pub(crate) struct MemLister {
    /// Key → ETag value.
    pub objects: BTreeMap<Vec<u8>, String>,
    pub uploads: BTreeSet<(Vec<u8>, String)>,
    /// Every query asked, in order.
    pub asked: Mutex<Vec<Vec<(String, String)>>>,
    /// Fail every request from this one on (0-based).
    pub fail_from: Option<usize>,
    /// A store that answers smaller pages than asked (S3 allows it).
    pub page_cap: Option<usize>,
    /// A store that, given a start-after or marker that is a CommonPrefix,
    /// returns that prefix again (its own tokens it gets right).
    pub repeats_prefix: bool,
}

enum Item {
    Key(Vec<u8>, Option<String>),
    Prefix(Vec<u8>),
}

impl Item {
    fn name(&self) -> &[u8] {
        match self {
            Self::Key(k, _) | Self::Prefix(k) => k,
        }
    }
}

fn rollup(key: &[u8], prefix: &[u8], delim: Option<&[u8]>) -> Option<Vec<u8>> {
    let d = delim?;
    let rest = key.strip_prefix(prefix)?;
    let at = (0..rest.len()).find(|&i| rest[i..].starts_with(d))?;
    Some(key[..prefix.len() + at + d.len()].to_vec())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl MemLister {
    pub(crate) fn calls(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    /// S3's order: candidates after the marker, rolled up, a prefix equal to
    /// the marker left out (it was returned already).
    fn items(
        &self,
        uploads: bool,
        prefix: &[u8],
        delim: Option<&[u8]>,
        marker: Option<&[u8]>,
        uid_marker: Option<&str>,
        repeat: bool,
    ) -> Vec<Item> {
        let cands: Vec<(Vec<u8>, Option<String>)> = if uploads {
            self.uploads
                .iter()
                .map(|(k, u)| (k.clone(), Some(u.clone())))
                .collect()
        } else {
            self.objects.keys().map(|k| (k.clone(), None)).collect()
        };
        let mut out: Vec<Item> = Vec::new();
        for (k, u) in cands {
            if !k.starts_with(prefix) {
                continue;
            }
            if let Some(m) = marker {
                let after = k.as_slice() > m
                    || (k.as_slice() == m
                        && uid_marker.is_some_and(|um| u.as_deref().is_some_and(|u| u > um)));
                if !after {
                    continue;
                }
            }
            match rollup(&k, prefix, delim) {
                Some(p) => {
                    if Some(p.as_slice()) == marker && !repeat {
                        continue;
                    }
                    if out
                        .last()
                        .is_some_and(|l| matches!(l, Item::Prefix(q) if *q == p))
                    {
                        continue;
                    }
                    out.push(Item::Prefix(p));
                }
                None => out.push(Item::Key(k, u)),
            }
        }
        out
    }
}

#[async_trait::async_trait]
impl Lister for MemLister {
    async fn list(&self, query: &[(String, String)]) -> Result<Bytes, S3Error> {
        let n = {
            let mut a = self.asked.lock().unwrap();
            a.push(query.to_vec());
            a.len() - 1
        };
        if self.fail_from.is_some_and(|f| n >= f) {
            return Err(S3Error::new(Code::ServiceUnavailable, "side down"));
        }
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let uploads = get("uploads").is_some();
        let v2 = get("list-type") == Some("2");
        let prefix = get("prefix").unwrap_or("").as_bytes();
        let delim = get("delimiter")
            .filter(|d| !d.is_empty())
            .map(str::as_bytes);
        let encode = get("encoding-type") == Some("url");
        let max: usize = get(if uploads { "max-uploads" } else { "max-keys" })
            .map(|m| m.parse().unwrap())
            .unwrap_or(1000)
            .min(self.page_cap.unwrap_or(1000));
        let repeat = self.repeats_prefix
            && !uploads
            && get("continuation-token").is_none()
            && (get("start-after").is_some() || get("marker").is_some());
        let token = get("continuation-token")
            .map(|t| hex::decode(t.strip_prefix("mem:").expect("a mem token")).unwrap());
        let marker: Option<Vec<u8>> = match (uploads, v2) {
            (true, _) => get("key-marker").map(|m| m.as_bytes().to_vec()),
            (false, true) => token.or_else(|| get("start-after").map(|s| s.as_bytes().to_vec())),
            (false, false) => get("marker").map(|m| m.as_bytes().to_vec()),
        }
        .filter(|m| !m.is_empty());
        let uid_marker = get("upload-id-marker").filter(|u| !u.is_empty());
        let owner = !v2 || uploads || get("fetch-owner") == Some("true");

        let all = self.items(
            uploads,
            prefix,
            delim,
            marker.as_deref(),
            uid_marker,
            repeat,
        );
        let truncated = all.len() > max;
        let page = &all[..all.len().min(max)];
        let k = |b: &[u8]| {
            if encode {
                uri_encode(b, false)
            } else {
                esc(std::str::from_utf8(b).unwrap())
            }
        };
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(if uploads {
            "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
        } else {
            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
        });
        x.push_str(&format!(
            "  <Name>mem</Name>\n  <Prefix>{}</Prefix>\n",
            k(prefix)
        ));
        x.push_str(&format!("  <IsTruncated>{truncated}</IsTruncated>\n"));
        if let Some(last) = page.last().filter(|_| truncated) {
            if uploads {
                x.push_str(&format!(
                    "  <NextKeyMarker>{}</NextKeyMarker>\n",
                    k(last.name())
                ));
                if let Item::Key(_, Some(u)) = last {
                    x.push_str(&format!("  <NextUploadIdMarker>{u}</NextUploadIdMarker>\n"));
                }
            } else if v2 {
                x.push_str(&format!(
                    "  <NextContinuationToken>mem:{}</NextContinuationToken>\n",
                    hex::encode(last.name())
                ));
            } else if delim.is_some() {
                x.push_str(&format!("  <NextMarker>{}</NextMarker>\n", k(last.name())));
            }
        }
        for it in page {
            if let Item::Key(key, u) = it {
                if uploads {
                    x.push_str(&format!(
                        "  <Upload>\n    <Key>{}</Key>\n    <UploadId>{}</UploadId>\n    <StorageClass>STANDARD</StorageClass>\n  </Upload>\n",
                        k(key),
                        u.as_deref().unwrap()
                    ));
                } else {
                    let etag = &self.objects[key];
                    x.push_str(&format!(
                        "  <Contents>\n    <Key>{}</Key>\n    <LastModified>2026-01-01T00:00:00.000Z</LastModified>\n    <ETag>&quot;{etag}&quot;</ETag>\n    <Size>{}</Size>\n",
                        k(key),
                        key.len()
                    ));
                    if owner {
                        x.push_str("    <Owner><ID>o</ID><DisplayName>o</DisplayName></Owner>\n");
                    }
                    x.push_str("    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n");
                }
            }
        }
        for it in page {
            if let Item::Prefix(p) = it {
                x.push_str(&format!(
                    "  <CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>\n",
                    k(p)
                ));
            }
        }
        if encode {
            x.push_str("  <EncodingType>url</EncodingType>\n");
        }
        x.push_str(if uploads {
            "</ListMultipartUploadsResult>"
        } else {
            "</ListBucketResult>"
        });
        Ok(Bytes::from(x))
    }
}
