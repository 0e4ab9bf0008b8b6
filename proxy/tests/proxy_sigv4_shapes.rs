//! SigV4 as real clients sign it, in every mode, byte for byte against the
//! same requests sent to the store directly: a request signed with `Date`
//! and no `x-amz-date` (botocore does so when a request carries `Date`),
//! user metadata that is not ASCII, and an expired presigned URL.

use ferry_harness::proxy as common;

use common::migrate::*;
use ferry_harness::{Boto3, Store};

/// A botocore client's requests: one PUT signed with `Date`, one PUT with
/// Latin-1 metadata, read back; prints what it read.
const SNIPPET: &str = r#"
import sys
def with_date(request, **kw):
    request.headers['Date'] = 'set by the signer'
s3.meta.events.register('before-sign.s3.PutObject', with_date)
s3.put_object(Bucket='photos', Key=KEY + '-dated', Body=b'signed with Date')
s3.meta.events.unregister('before-sign.s3.PutObject', with_date)
print('dated', s3.get_object(Bucket='photos', Key=KEY + '-dated')['Body'].read())
# botocore refuses non-ASCII `Metadata`; the header is set as S3
# conformance suites set it, just before signing.
def latin1_meta(request, **kw):
    request.headers['x-amz-meta-x'] = 'Hello World\xe9'
s3.meta.events.register('before-sign.s3.PutObject', latin1_meta)
s3.put_object(Bucket='photos', Key=KEY + '-meta', Body=b'm')
s3.meta.events.unregister('before-sign.s3.PutObject', latin1_meta)
print('meta', ascii(s3.head_object(Bucket='photos', Key=KEY + '-meta')['Metadata']))
# A copy with new metadata: in migrate mode the proxy sends it itself.
s3.meta.events.register('before-sign.s3.CopyObject', latin1_meta)
s3.copy_object(Bucket='photos', Key=KEY + '-copy', MetadataDirective='REPLACE',
               CopySource={'Bucket': 'photos', 'Key': KEY + '-meta'})
s3.meta.events.unregister('before-sign.s3.CopyObject', latin1_meta)
print('copy', ascii(s3.head_object(Bucket='photos', Key=KEY + '-copy')['Metadata']))
"#;

fn run(endpoint: &str, key: &str, secret: &str, region: &str, object: &str) -> String {
    let out = Boto3 {
        endpoint,
        key,
        secret,
        region,
        ca: None,
    }
    .run(&format!("KEY = {object:?}\n{SNIPPET}"));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn date_signed_non_ascii_and_expired_requests_in_every_mode() {
    // Both stores moto: Garage 2.5 itself refuses a request signed with
    // `Date` ("Missing X-Amz-Date field"), so it cannot be the reference.
    let s = setup_on(Store::moto().unwrap());
    let alice = common::ALICE;
    for mode in ["ready", "forward", "migrate"] {
        if mode != "ready" {
            s.proxy.set_mode(BUCKET, mode);
        }
        // The store this mode writes to, asked directly.
        let store = if mode == "forward" {
            &s.source
        } else {
            &s.target
        };
        let direct = run(
            &store.endpoint,
            &store.access_key,
            &store.secret_key,
            &store.region,
            &format!("{mode}-direct"),
        );
        let proxied = run(
            &s.proxy.http,
            alice.access_key,
            alice.secret,
            &s.target.region,
            &format!("{mode}-proxied"),
        );
        assert_eq!(proxied, direct, "{mode}");
        // The metadata arrived, with its non-ASCII byte (moto hands it
        // back UTF-8 encoded, the same with or without the proxy).
        assert_eq!(
            proxied.matches("'Hello World\\x").count(),
            2,
            "{mode}: {proxied}"
        );

        // Expired: a negative lifetime, as `ExpiresIn=-1` writes it.
        let out = Boto3 {
            endpoint: &s.proxy.http,
            key: alice.access_key,
            secret: alice.secret,
            region: &s.target.region,
            ca: None,
        }
        .run(&format!(
            "import urllib.request, urllib.error\n\
             cred = s3._request_signer._credentials\n\
             v4 = boto3.client('s3', endpoint_url=s3.meta.endpoint_url, aws_access_key_id=cred.access_key, aws_secret_access_key=cred.secret_key, region_name=s3.meta.region_name, config=Config(signature_version='s3v4', s3={{'addressing_style': 'path'}}))\n\
             url = v4.generate_presigned_url('get_object', Params={{'Bucket': 'photos', 'Key': '{mode}-proxied-dated'}}, ExpiresIn=-1)\n\
             try:\n  urllib.request.urlopen(url); print('served')\n\
             except urllib.error.HTTPError as e: print(e.code, e.read().decode())"
        ));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("403 ") && text.contains("<Code>AccessDenied</Code>"),
            "{mode}: {out:?}"
        );
    }
}
