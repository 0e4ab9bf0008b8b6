//! `s3find`: parse flags, run the scan (`s3find`) or the watch
//! (`--watch`), print the statistics, map the result to an exit code (0 ok,
//! 1 failed, 2 bad input).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use s3find::{Args, StderrReport};

/// Flag errors as one line (clap's own output spans several), exit code 2.
fn parse_args() -> Args {
    Args::try_parse_weka(std::env::args_os())
        .unwrap_or_else(|e| ferry_control::cli::exit_on_flag_error("s3find", &e))
}

/// TERM and INT set the returned flag (the handlers are in place when this
/// returns); the watch finishes its current set and returns.
fn stop_on_signals() -> Arc<AtomicBool> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let signals = {
        let _in_runtime = runtime.enter();
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    let (Ok(mut term), Ok(mut int)) = signals else {
        eprintln!("s3find: warning: cannot catch TERM/INT; they will end the watch at once");
        return stop;
    };
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        eprintln!("s3find: stopping: finishing the current set");
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

fn main() {
    let args = parse_args();
    if args.watch {
        let stop = stop_on_signals();
        let code = match args
            .to_watch_options()
            .and_then(|o| s3find::watch(o, stop, &StderrReport))
        {
            Ok(stats) => {
                eprint!("{}", stats.render());
                0
            }
            Err(e) => {
                eprintln!("s3find: {e}");
                e.exit_code()
            }
        };
        std::process::exit(code);
    }
    let code = match args.to_options().and_then(|o| s3find::run(&o)) {
        Ok(stats) => {
            eprint!("{}", stats.render());
            if stats.chunks == 0 {
                eprintln!(
                    "s3find: no file selected: no chunk written (s3migrate --src-folder refuses an empty folder)"
                );
            }
            0
        }
        Err(e) => {
            eprintln!("s3find: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
