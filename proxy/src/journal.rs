//! The proxy's side of the delete journal (format: `ferry_control::journal`).
//! A migrate-mode delete is recorded here before it is sent anywhere; a
//! later client write of the same key clears the record, because the key
//! is the client's again; detach removes a bucket's records.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use ferry_control::journal::{Entry, entry_name, prefix};
use md5::Digest;

use crate::resign::UpstreamCreds;
use crate::resign::canonical_target;
use crate::s3error::{Code, S3Error};
use crate::upstream::Upstream;
use crate::upstream::fetch::{Body, Fetcher, Request, Side};
use ferry_s3::percent::uri_encode;

/// The journal bucket on the target, and how to reach it.
pub struct Journal {
    /// Swapped whole when a config reload changes the target.
    side: ArcSwap<Side>,
}

fn failed(what: &str, status: u16) -> S3Error {
    tracing::error!(status, "delete journal: {what} failed");
    S3Error::new(
        Code::ServiceUnavailable,
        format!(
            "the delete journal could not be written ({what}: HTTP {status}); nothing was deleted, please retry"
        ),
    )
}

impl Journal {
    pub fn new(bucket: &str, target: Upstream, creds: Arc<UpstreamCreds>) -> Journal {
        Journal {
            side: ArcSwap::from_pointee(Side {
                upstream: target,
                creds,
                bucket: bucket.to_owned(),
                label: "target",
            }),
        }
    }

    /// The target's address or credentials changed (a config reload).
    pub fn retarget(&self, target: Upstream, creds: Arc<UpstreamCreds>) {
        let bucket = self.side.load().bucket.clone();
        self.side.store(Arc::new(Side {
            upstream: target,
            creds,
            bucket,
            label: "target",
        }));
    }

    /// Whether `bucket` is the journal's bucket on the target, which no
    /// client may reach. Asked on every request: no copy.
    pub fn is_bucket(&self, bucket: &str) -> bool {
        self.side.load().bucket == bucket
    }

    fn object_target(&self, name: &str) -> Result<String, S3Error> {
        self.side.load().object(name)
    }

    /// Records that `key` of `bucket` is being deleted. Durable on the
    /// target store when this returns `Ok`.
    pub async fn record(&self, f: &Fetcher, bucket: &str, key: &str) -> Result<(), S3Error> {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let body = Bytes::from(Entry::new(bucket, key, now).to_json());
        let target = self.object_target(&entry_name(bucket, key))?;
        let (status, _) = f
            .fetch(
                &self.side.load(),
                Request {
                    method: "PUT",
                    target: &target,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Body::Full(body),
                },
                64 * 1024,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(failed("record", status));
        }
        Ok(())
    }

    /// Drops the record of `key`: a client wrote it after deleting it.
    pub async fn clear(&self, f: &Fetcher, bucket: &str, key: &str) -> Result<(), S3Error> {
        let target = self.object_target(&entry_name(bucket, key))?;
        self.delete(f, &target).await
    }

    async fn delete(&self, f: &Fetcher, target: &str) -> Result<(), S3Error> {
        let (status, _) = f
            .fetch(
                &self.side.load(),
                Request {
                    method: "DELETE",
                    target,
                    headers: Vec::new(),
                    body: Body::Empty,
                },
                64 * 1024,
            )
            .await?;
        if !(200..300).contains(&status) && status != 404 {
            return Err(failed("clear", status));
        }
        Ok(())
    }

    /// Removes every record of `bucket` (at detach). Returns how many.
    ///
    /// A page of up to 1,000 names at a time, each removed with one
    /// DeleteObjects. Each listing starts after the last name of the page
    /// before, so a listing that lags behind the removals (and still shows
    /// removed names) cannot keep the purge going round: it ends at the
    /// first empty page.
    pub async fn purge(&self, f: &Fetcher, bucket: &str) -> Result<u64, S3Error> {
        let side = self.side.load_full();
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let mut query = format!(
                "list-type=2&max-keys=1000&prefix={}",
                uri_encode(prefix(bucket).as_bytes(), false)
            );
            if let Some(a) = &after {
                query.push_str(&format!("&start-after={}", uri_encode(a.as_bytes(), false)));
            }
            let bucket_path = format!("/{}", uri_encode(side.bucket.as_bytes(), false));
            let target = canonical_target(&bucket_path, &query)?;
            let (status, body) = f.get(&side, &target, 4 << 20).await?;
            if status != 200 {
                return Err(failed("list", status));
            }
            let names = keys(&body);
            let Some(last) = names.last().cloned() else {
                return Ok(removed);
            };
            self.delete_many(f, &bucket_path, &names).await?;
            removed += names.len() as u64;
            after = Some(last);
        }
    }

    /// One DeleteObjects of journal `names` (at most 1,000).
    async fn delete_many(
        &self,
        f: &Fetcher,
        bucket_path: &str,
        names: &[String],
    ) -> Result<(), S3Error> {
        let mut xml = String::from("<Delete><Quiet>true</Quiet>");
        for n in names {
            // Journal names are `bucket/hex`: nothing to escape but the
            // bucket name, which S3 limits to `a-z 0-9 . -`.
            xml.push_str(&format!("<Object><Key>{n}</Key></Object>"));
        }
        xml.push_str("</Delete>");
        // S3 requires an integrity header on DeleteObjects.
        let md5 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            md5::Md5::digest(xml.as_bytes()),
        );
        let target = canonical_target(bucket_path, "delete=")?;
        let (status, answer) = f
            .fetch(
                &self.side.load(),
                Request {
                    method: "POST",
                    target: &target,
                    headers: vec![
                        ("content-md5".into(), md5),
                        ("content-type".into(), "application/xml".into()),
                    ],
                    body: Body::Full(Bytes::from(xml)),
                },
                4 << 20,
            )
            .await?;
        if status != 200 || String::from_utf8_lossy(&answer).contains("<Error>") {
            return Err(failed("purge", status));
        }
        Ok(())
    }
}

/// The `<Key>`s of a listing of journal names, which are
/// `bucket/hex` and so never need XML unescaping.
/// The `<Key>`s of a ListObjectsV2 answer, as written (XML-escaped).
pub(crate) fn keys(xml: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(xml);
    s.split("<Key>")
        .skip(1)
        .filter_map(|p| p.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_read_from_a_listing() {
        let x = b"<ListBucketResult><Contents><Key>b/ab</Key></Contents><Contents><Key>b/cd</Key></Contents></ListBucketResult>";
        assert_eq!(super::keys(x), ["b/ab", "b/cd"]);
    }
}
