//! Recognises how a request is authenticated and parses the SigV4 fields.

use crate::s3error::{Code, S3Error};

/// `AKID/20130524/us-east-1/s3/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Credential {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    fn parse(s: &str, code: Code) -> Result<Self, S3Error> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 5 || parts[4] != "aws4_request" || parts[0].is_empty() {
            return Err(S3Error::new(
                code,
                "the Credential must be <access key>/<date>/<region>/<service>/aws4_request",
            ));
        }
        if parts[1].len() != 8 || !parts[1].bytes().all(|b| b.is_ascii_digit()) {
            return Err(S3Error::new(code, "the Credential date must be YYYYMMDD"));
        }
        Ok(Self {
            access_key: parts[0].to_owned(),
            date: parts[1].to_owned(),
            region: parts[2].to_owned(),
            service: parts[3].to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAuth {
    pub credential: Credential,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedAuth {
    pub credential: Credential,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub amz_date: String,
    /// Negative: expired before it was made (a client's `ExpiresIn=-1`).
    pub expires_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Header(HeaderAuth),
    Presigned(PresignedAuth),
    /// No credentials at all.
    Anonymous,
}

fn signed_headers(s: &str, code: Code) -> Result<Vec<String>, S3Error> {
    let list: Vec<String> = s
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if list.iter().any(String::is_empty) {
        return Err(S3Error::new(code, "empty name in SignedHeaders"));
    }
    let mut sorted = list.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != list {
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

fn hex_signature(s: &str, code: Code) -> Result<String, S3Error> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(S3Error::new(code, "the Signature must be 64 hex digits"));
    }
    Ok(s.to_ascii_lowercase())
}

fn sigv2() -> S3Error {
    S3Error::new(
        Code::InvalidRequest,
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256 (SigV4); SigV2 is not accepted.",
    )
}

/// Finds the scheme from the Authorization header or the query.
pub fn scheme(
    authorization: Option<&str>,
    query: &[(Vec<u8>, Vec<u8>)],
) -> Result<Scheme, S3Error> {
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
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
    let credential = Credential::parse(&need("X-Amz-Credential")?, code)?;
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
        signed_headers: signed_headers(&need("X-Amz-SignedHeaders")?, code)?,
        signature: hex_signature(&need("X-Amz-Signature")?, code)?,
        amz_date,
        expires_secs,
    }))
}
