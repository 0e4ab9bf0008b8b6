//! Issue 14's end-to-end test: the whole migration under client load and
//! faults (ferry_harness::live, the code `ferry-live` and `scripts/demo`
//! run), at CI size: a Garage source, a moto target, a few thousand
//! objects, boto3, awscli and rclone clients, kill -9 of an agent mid-copy
//! and of the proxy, a certificate replaced, the source down for 10 s.

use ferry_harness::StoreKind;
use ferry_harness::live::{Options, run};

#[test]
fn a_bucket_moves_under_client_load_and_faults_and_the_target_holds_the_ledger() {
    let report = run(&Options {
        objects: 2000,
        source: StoreKind::Garage,
        ..Options::default()
    })
    .unwrap();
    // The verdict, printed whatever it is: straight to stderr, which the
    // test runner does not capture, so that CI's log shows it.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{report}\n").as_bytes());
    assert!(report.passed(), "{report}");
    // Each fault happened, and every client kind did work.
    let kinds: Vec<&str> = report.faults.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            "agent kill -9",
            "proxy kill -9",
            "certificate replaced",
            "source down 10 s"
        ],
        "{report}"
    );
    for op in [
        "boto3 put",
        "boto3 get",
        "boto3 delete",
        "boto3 multipart",
        "boto3 copy",
        "boto3 list",
        "awscli put",
        "awscli get",
        "rclone put",
        "rclone get",
    ] {
        assert!(
            report.ops.get(op).copied().unwrap_or(0) > 0,
            "no {op}: {report}"
        );
    }
    // The copy did the moving (clients rewrote or deleted some seed keys
    // first, which the copier rightly skips); the verdict above says that
    // every untouched one is on the target with its content.
    assert!(report.copied > 1000, "{report}");
}
