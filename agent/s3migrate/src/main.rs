//! `s3migrate`: parse flags, run the engine, map the result to an exit code.

use clap::Parser;
use s3migrate::Args;

/// Flag errors as one line (clap's own output spans several), exit code 2.
fn parse_args() -> Args {
    Args::try_parse().unwrap_or_else(|e| ferry_control::cli::exit_on_flag_error("s3migrate", &e))
}

fn main() {
    #[allow(unused_mut)] // mutated only with the test-hooks feature
    let mut args = parse_args();
    // TEST ONLY: the end-to-end tests hold copies between GET and PUT with
    // this (see `copy::test_pause`); an environment variable, not a flag, so
    // that it never shows in --help or in an agent job's options.
    #[cfg(feature = "test-hooks")]
    {
        args.test_pause_before_put =
            std::env::var_os("FERRY_TEST_PAUSE_BEFORE_PUT").map(Into::into);
    }
    ferry_s3::program::init_logging("S3MIGRATE_LOG", "warn", &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dest_folder = args
        .job
        .dest_folder
        .clone()
        .expect("clap requires --dest-folder");
    let control = s3migrate::Control::new();
    // TERM and INT stop handing out keys; keys in flight finish, and
    // migrate.log ends at a clean checkpoint.
    let on_signal = control.clone();
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!(
            "s3migrate: stopping: finishing the objects in flight, then checkpointing migrate.log"
        );
        on_signal.cancel();
    });
    let result = runtime.block_on(s3migrate::run_with(args, control));
    let code = match result {
        Ok(report) => {
            for p in &report.passes {
                let o = &p.objects;
                println!(
                    "pass {}{}: {} in {:.1}s",
                    p.pass,
                    if p.dry_run {
                        " (dry run: copied = would copy)"
                    } else {
                        ""
                    },
                    o.line(),
                    p.elapsed_secs
                );
                for (class, n) in &p.errors_by_class {
                    println!("  failed {class}: {n}");
                }
                if let Some(j) = &p.journal {
                    println!(
                        "  delete journal: entries={} removed={} (during the pass {}) kept(client)={} absent={} no-record={} not-mine={} unreconciled={}",
                        j.entries,
                        j.removed,
                        j.removed_during_pass,
                        j.kept,
                        j.absent,
                        j.no_record,
                        j.not_mine,
                        j.unreconciled
                    );
                }
                if p.tags_dropped > 0 {
                    println!(
                        "  copied without their tags (the destination has no object tagging): {}",
                        p.tags_dropped
                    );
                }
            }
            if let Some(r) = &report.repair {
                println!("{r}");
            }
            if let Some(v) = &report.verify {
                println!("{v}");
            }
            let failed = report.passes.last().map_or(0, |p| p.objects.fail);
            let differences = report.verify.as_ref().map_or(0, |v| v.problems());
            if failed > 0 {
                eprintln!(
                    "s3migrate: {failed} keys failed; see {}/failed.log (retry with --failed-to-folder DIR)",
                    dest_folder.display()
                );
            }
            if differences > 0 {
                eprintln!(
                    "s3migrate: verify found {differences} differences; see {}/verify.log",
                    dest_folder.display()
                );
            }
            if failed + differences > 0 { 1 } else { 0 }
        }
        Err(e) => {
            eprintln!("s3migrate: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
