//! Merged listings: ListObjects v1/v2 and ListMultipartUploads over both
//! sides (the merge itself is `crate::listing`).

use pingora::proxy::Session;

use super::{Call, Services};
use crate::s3error::{Code, S3Error};

pub async fn serve(_svc: &Services, _session: &mut Session, _call: &Call) -> Result<(), S3Error> {
    Err(S3Error::new(
        Code::NotImplemented,
        "merged listings are not wired yet",
    ))
}
