//! The merge-join of two upstream listings. Each side is a lazy stream that
//! holds at most one upstream page; a client page of N entries asks each
//! side for no more than N + 1 entries in all, the one extra deciding
//! IsTruncated.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::Lister;
use super::entry::{Entry, Position};
use super::params::PAGE_CAP;
use super::parse::parse_page;
use crate::s3error::{Code, S3Error};

/// Which upstream operation a side pages through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// ListObjectsV2, for v1 and v2 clients alike: one paging scheme.
    Objects,
    Uploads,
    Versions,
}

#[derive(PartialEq, Eq)]
enum Cursor {
    /// The first upstream request, from the client's resume position.
    Start,
    /// The upstream's own continuation, within this client request.
    Token(String),
    Marker(String, Option<String>),
    Done,
}

pub(crate) struct Side<'a> {
    lister: &'a dyn Lister,
    op: Op,
    base: Vec<(String, String)>,
    prefix: &'a [u8],
    delimiter: Option<&'a [u8]>,
    /// Entries at or before this were returned already: the client's resume
    /// position, then the last entry this side gave. Upstreams differ on
    /// what they answer for a start-after that is a CommonPrefix (some
    /// return the prefix, or keys under it, again), so every entry is
    /// checked against it.
    position: Option<Position>,
    keep_owner: bool,
    buf: VecDeque<Entry>,
    cursor: Cursor,
    /// An entry past the position has been seen: from here on the upstream's
    /// IsTruncated can be trusted without filtering what follows.
    past_position: bool,
}

fn text(b: &[u8]) -> Result<String, S3Error> {
    String::from_utf8(b.to_vec())
        .map_err(|_| S3Error::new(Code::InvalidArgument, "A listing key is not UTF-8"))
}

fn stalled() -> S3Error {
    S3Error::new(
        Code::InternalError,
        "an upstream listing stopped making progress",
    )
}

impl<'a> Side<'a> {
    /// `base` is the query every request to this side carries (prefix,
    /// delimiter, encoding-type=url, ...); paging parameters are added here.
    pub(crate) fn new(
        lister: &'a dyn Lister,
        op: Op,
        base: Vec<(String, String)>,
        (prefix, delimiter): (&'a [u8], Option<&'a [u8]>),
        position: Option<Position>,
        keep_owner: bool,
    ) -> Self {
        Self {
            lister,
            op,
            base,
            prefix,
            delimiter,
            past_position: position.is_none(),
            position,
            keep_owner,
            buf: VecDeque::new(),
            cursor: Cursor::Start,
        }
    }

    async fn fetch(&mut self, want: usize) -> Result<(), S3Error> {
        let mut q = self.base.clone();
        let max = want.clamp(1, PAGE_CAP).to_string();
        match self.op {
            Op::Objects | Op::Versions => q.push(("max-keys".into(), max)),
            Op::Uploads => q.push(("max-uploads".into(), max)),
        }
        let id_marker = match self.op {
            Op::Versions => "version-id-marker",
            _ => "upload-id-marker",
        };
        match (&self.cursor, self.op) {
            (Cursor::Start, Op::Objects) => {
                if let Some(p) = &self.position {
                    q.push(("start-after".into(), text(&p.name)?));
                }
            }
            (Cursor::Start, Op::Uploads | Op::Versions) => {
                if let Some(p) = &self.position {
                    q.push(("key-marker".into(), text(&p.name)?));
                    if let Some(u) = &p.upload_id {
                        q.push((id_marker.into(), u.clone()));
                    }
                }
            }
            (Cursor::Token(t), _) => q.push(("continuation-token".into(), t.clone())),
            (Cursor::Marker(k, _), Op::Objects) => q.push(("start-after".into(), k.clone())),
            (Cursor::Marker(k, u), Op::Uploads | Op::Versions) => {
                q.push(("key-marker".into(), k.clone()));
                if let Some(u) = u {
                    q.push((id_marker.into(), u.clone()));
                }
            }
            (Cursor::Done, _) => return Ok(()),
        }
        let body = self.lister.list(&q).await?;
        let page = parse_page(&body, self.keep_owner)?;
        let last = page
            .entries
            .last()
            .map(|e| (e.name().to_vec(), e.upload_id().map(str::to_owned)));
        let cursor = if !page.truncated {
            Cursor::Done
        } else if let Some(t) = page.next_token {
            Cursor::Token(t)
        } else if let Some(m) = page.next_marker {
            Cursor::Marker(text(&m)?, page.next_upload_id)
        } else if let Some((k, u)) = last {
            Cursor::Marker(text(&k)?, u)
        } else {
            return Err(stalled());
        };
        let before = self.buf.len();
        for e in page.entries {
            if self.position.as_ref().is_none_or(|p| p.passes(&e)) {
                self.past_position = true;
                self.buf.push_back(e);
            }
        }
        if self.buf.len() == before && cursor == self.cursor {
            // Nothing new and the same way on: asking again would loop.
            return Err(stalled());
        }
        self.cursor = cursor;
        if let Some(e) = self.buf.back() {
            self.position = Some(Position::new(
                e.name().to_vec(),
                e.upload_id().map(str::to_owned),
                self.prefix,
                self.delimiter,
            ));
        }
        Ok(())
    }

    /// The next entry, fetching a page (sized for `want` more) if none is
    /// buffered.
    pub(crate) async fn peek(&mut self, want: usize) -> Result<Option<&Entry>, S3Error> {
        while self.buf.is_empty() && !matches!(self.cursor, Cursor::Done) {
            self.fetch(want).await?;
        }
        Ok(self.buf.front())
    }

    fn pop(&mut self) -> Option<Entry> {
        self.buf.pop_front()
    }

    /// Whether another entry exists, fetching only when the upstream's
    /// IsTruncated cannot be taken at its word (entries before the
    /// position may still be filtered out).
    async fn has_more(&mut self) -> Result<bool, S3Error> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        if matches!(self.cursor, Cursor::Done) {
            return Ok(false);
        }
        if self.past_position {
            return Ok(true);
        }
        Ok(self.peek(1).await?.is_some())
    }
}

/// Up to `limit` entries of the merged stream, and whether more exist. On a
/// key both sides hold, the target's entry wins; identical uploads and
/// prefixes appear once. Any side's error is the answer: never a partial
/// listing.
pub(crate) async fn merge(
    target: &mut Side<'_>,
    source: &mut Side<'_>,
    limit: usize,
) -> Result<(Vec<Entry>, bool), S3Error> {
    let mut out = Vec::with_capacity(limit.min(PAGE_CAP));
    if limit == 0 {
        return Ok((out, false));
    }
    while out.len() < limit {
        let want = limit - out.len() + 1;
        // Both sides at once: when both need a page (the first one, at
        // least), the listing waits for the slower side, not for the sum.
        // The target's error wins: a bucket missing there is missing for
        // the client, whatever the source says.
        let (t, s) = futures::join!(target.peek(want), source.peek(want));
        let order = match (t?, s?) {
            (None, None) => return Ok((out, false)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(t), Some(s)) => t.order(s),
        };
        let e = match order {
            Ordering::Less => target.pop(),
            Ordering::Greater => source.pop(),
            Ordering::Equal => {
                source.pop();
                target.pop()
            }
        };
        out.extend(e);
    }
    let more = target.has_more().await? || source.has_more().await?;
    Ok((out, more))
}
