//! Recognises how a request is authenticated and parses the SigV4 fields.

use std::borrow::Cow;

use super::canonical::lowercase;
use crate::s3error::{Code, S3Error};

/// `AKID/20130524/us-east-1/s3/aws4_request`. Borrowed from the request:
/// the parse runs on every signed request and allocates nothing but the
/// list of signed header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl<'a> Credential<'a> {
    pub fn scope(&self) -> String {
        [
            self.date,
            "/",
            self.region,
            "/",
            self.service,
            "/aws4_request",
        ]
        .concat()
    }

    fn parse(s: &'a str, code: Code) -> Result<Self, S3Error> {
        let mut parts = s.split('/');
        let mut next = || parts.next().unwrap_or_default();
        let (access_key, date, region, service, terminator) =
            (next(), next(), next(), next(), next());
        if terminator != "aws4_request" || parts.next().is_some() || access_key.is_empty() {
            return Err(S3Error::new(
                code,
                "the Credential must be <access key>/<date>/<region>/<service>/aws4_request",
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(S3Error::new(code, "the Credential date must be YYYYMMDD"));
        }
        Ok(Self {
            access_key,
            date,
            region,
            service,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAuth<'a> {
    pub credential: Credential<'a>,
    pub signed_headers: Vec<Cow<'a, str>>,
    pub signature: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedAuth<'a> {
    pub credential: Credential<'a>,
    pub signed_headers: Vec<Cow<'a, str>>,
    pub signature: Cow<'a, str>,
    pub amz_date: &'a str,
    /// Negative: expired before it was made (a client's `ExpiresIn=-1`).
    pub expires_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme<'a> {
    Header(HeaderAuth<'a>),
    Presigned(PresignedAuth<'a>),
    /// No credentials at all.
    Anonymous,
}

fn signed_headers(s: &str, code: Code) -> Result<Vec<Cow<'_, str>>, S3Error> {
    let list: Vec<Cow<'_, str>> = s.split(';').map(|h| lowercase(h.trim())).collect();
    if list.iter().any(|h| h.is_empty()) {
        return Err(S3Error::new(code, "empty name in SignedHeaders"));
    }
    // Strictly increasing: sorted, and no name twice.
    if list.windows(2).any(|w| w[0] >= w[1]) {
        return Err(S3Error::new(
            code,
            "SignedHeaders must be sorted and unique",
        ));
    }
    if !list.iter().any(|h| h == "host") {
        return Err(S3Error::new(code, "SignedHeaders must include host"));
    }
    Ok(list)
}

fn hex_signature(s: &str, code: Code) -> Result<Cow<'_, str>, S3Error> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(S3Error::new(code, "the Signature must be 64 hex digits"));
    }
    Ok(lowercase(s))
}

fn sigv2() -> S3Error {
    S3Error::new(
        Code::InvalidRequest,
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256 (SigV4); SigV2 is not accepted.",
    )
}

/// Finds the scheme from the Authorization header or the query.
pub fn scheme<'a>(
    authorization: Option<&'a str>,
    query: &'a [(Vec<u8>, Vec<u8>)],
) -> Result<Scheme<'a>, S3Error> {
    // A value that is not UTF-8 reads as one that cannot match: no
    // algorithm, credential or signature has such bytes.
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| std::str::from_utf8(v).unwrap_or("\u{fffd}"))
    };
    if let Some(auth) = authorization {
        let auth = auth.trim();
        if auth.starts_with("AWS ") {
            return Err(sigv2());
        }
        let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") else {
            return Err(S3Error::new(
                Code::AuthorizationHeaderMalformed,
                "unsupported Authorization scheme; use AWS4-HMAC-SHA256",
            ));
        };
        let code = Code::AuthorizationHeaderMalformed;
        let (mut cred, mut signed, mut sig) = (None, None, None);
        for field in rest.split(',') {
            let field = field.trim();
            if let Some(v) = field.strip_prefix("Credential=") {
                cred = Some(Credential::parse(v, code)?);
            } else if let Some(v) = field.strip_prefix("SignedHeaders=") {
                signed = Some(signed_headers(v, code)?);
            } else if let Some(v) = field.strip_prefix("Signature=") {
                sig = Some(hex_signature(v, code)?);
            }
        }
        return match (cred, signed, sig) {
            (Some(credential), Some(signed_headers), Some(signature)) => {
                Ok(Scheme::Header(HeaderAuth {
                    credential,
                    signed_headers,
                    signature,
                }))
            }
            _ => Err(S3Error::new(
                code,
                "the Authorization header needs Credential, SignedHeaders and Signature",
            )),
        };
    }
    if q("AWSAccessKeyId").is_some() && q("Signature").is_some() {
        return Err(sigv2());
    }
    let Some(alg) = q("X-Amz-Algorithm") else {
        return Ok(Scheme::Anonymous);
    };
    let code = Code::AuthorizationQueryParametersError;
    if alg != "AWS4-HMAC-SHA256" {
        return Err(S3Error::new(
            code,
            "X-Amz-Algorithm must be AWS4-HMAC-SHA256",
        ));
    }
    let need =
        |name: &'static str| q(name).ok_or_else(|| S3Error::new(code, format!("missing {name}")));
    let credential = Credential::parse(need("X-Amz-Credential")?, code)?;
    let amz_date = need("X-Amz-Date")?;
    let expires_secs: i64 = need("X-Amz-Expires")?
        .parse()
        .map_err(|_| S3Error::new(code, "X-Amz-Expires must be a number of seconds"))?;
    if expires_secs > 604_800 {
        return Err(S3Error::new(
            code,
            "X-Amz-Expires must be less than a week (604800 seconds)",
        ));
    }
    Ok(Scheme::Presigned(PresignedAuth {
        credential,
        signed_headers: signed_headers(need("X-Amz-SignedHeaders")?, code)?,
        signature: hex_signature(need("X-Amz-Signature")?, code)?,
        amz_date,
        expires_secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

    fn header(credential: &str, signed: &str, signature: &str) -> Result<Scheme<'static>, S3Error> {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
        );
        scheme(Some(Box::leak(auth.into_boxed_str())), &[])
    }

    fn refused(r: Result<Scheme<'_>, S3Error>) -> String {
        r.expect_err("refused").message.to_string()
    }

    #[test]
    fn a_header_signature_is_parsed_borrowed_and_lower_cased() {
        let Scheme::Header(h) = header(
            "AKID/20130524/us-east-1/s3/aws4_request",
            "Host;X-Amz-Date",
            &SIG.to_ascii_uppercase(),
        )
        .unwrap() else {
            panic!("not a header signature");
        };
        assert_eq!(
            h.credential,
            Credential {
                access_key: "AKID",
                date: "20130524",
                region: "us-east-1",
                service: "s3",
            }
        );
        assert_eq!(h.credential.scope(), "20130524/us-east-1/s3/aws4_request");
        assert_eq!(h.signed_headers, ["host", "x-amz-date"]);
        assert!(matches!(h.signed_headers[0], Cow::Owned(_)));
        assert_eq!(h.signature, SIG);
        let Scheme::Header(h) =
            header("AKID/20130524/us-east-1/s3/aws4_request", "host", SIG).unwrap()
        else {
            panic!("not a header signature");
        };
        assert!(matches!(h.signed_headers[0], Cow::Borrowed("host")));
        assert!(matches!(h.signature, Cow::Borrowed(_)));
    }

    #[test]
    fn signed_headers_must_be_sorted_unique_and_name_host() {
        let cred = "AKID/20130524/us-east-1/s3/aws4_request";
        for (signed, why) in [
            ("x-amz-date;host", "sorted and unique"),
            ("host;host", "sorted and unique"),
            ("host;X-Amz-Date;x-amz-date", "sorted and unique"),
            ("x-amz-date", "must include host"),
            ("host;;x-amz-date", "empty name"),
        ] {
            let msg = refused(header(cred, signed, SIG));
            assert!(msg.contains(why), "{signed}: {msg}");
        }
    }

    #[test]
    fn a_credential_has_exactly_five_parts_and_a_date() {
        for (cred, why) in [
            ("AKID/20130524/us-east-1/s3", "must be <access key>"),
            (
                "AKID/20130524/us-east-1/s3/aws4_request/x",
                "must be <access key>",
            ),
            (
                "/20130524/us-east-1/s3/aws4_request",
                "must be <access key>",
            ),
            ("AKID/2013052/us-east-1/s3/aws4_request", "YYYYMMDD"),
            ("AKID/2013052x/us-east-1/s3/aws4_request", "YYYYMMDD"),
        ] {
            let msg = refused(header(cred, "host", SIG));
            assert!(msg.contains(why), "{cred}: {msg}");
        }
        assert!(
            refused(header("AKID/20130524/r/s3/aws4_request", "host", &SIG[1..]))
                .contains("64 hex")
        );
    }

    #[test]
    fn a_presigned_query_borrows_its_values_and_refuses_bytes_that_are_not_utf8() {
        let pair = |k: &str, v: &[u8]| (k.as_bytes().to_vec(), v.to_vec());
        let mut query = vec![
            pair("X-Amz-Algorithm", b"AWS4-HMAC-SHA256"),
            pair(
                "X-Amz-Credential",
                b"AKID/20130524/us-east-1/s3/aws4_request",
            ),
            pair("X-Amz-Date", b"20130524T000000Z"),
            pair("X-Amz-Expires", b"86400"),
            pair("X-Amz-SignedHeaders", b"host"),
            pair("X-Amz-Signature", SIG.as_bytes()),
        ];
        let Scheme::Presigned(p) = scheme(None, &query).unwrap() else {
            panic!("not presigned");
        };
        assert_eq!(
            (p.credential.access_key, p.amz_date, p.expires_secs),
            ("AKID", "20130524T000000Z", 86400)
        );
        query[1] = pair(
            "X-Amz-Credential",
            b"AK\xffD/20130524/us-east-1/s3/aws4_request",
        );
        assert!(refused(scheme(None, &query)).contains("must be <access key>"));
    }
}
