//! One line per request, in its span. A busy proxy answers thousands of
//! requests a second, so the line is at debug level
//! (`FERRY_LOG=ferry_proxy=debug`) unless the request failed on our side or
//! upstream's: 5xx, or a connection that broke, is a warning an operator
//! sees by default.

use pingora::Error;

use crate::metrics::RequestRecord;

pub fn access_log(span: &tracing::Span, r: &RequestRecord<'_>, e: Option<&Error>) {
    let elapsed_ms = r.elapsed.as_secs_f64() * 1000.0;
    let error = e.map(ToString::to_string);
    let error = error.as_deref();
    // tracing takes a level only as a constant: one line, at two levels.
    macro_rules! request_line {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                parent: span,
                status = r.status,
                elapsed_ms,
                bytes_in = r.bytes_in,
                bytes_out = r.bytes_out,
                error,
                $message
            )
        };
    }
    if r.status >= 500 || r.status == 0 || error.is_some() {
        request_line!(warn, "request failed");
    } else {
        request_line!(debug, "request");
    }
}
