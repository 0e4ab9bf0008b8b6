//! `s3find`: parse flags, run the scan (`ferry_agent::find`), print the
//! statistics, map the result to an exit code (0 ok, 1 failed, 2 bad input).

use ferry_agent::find::{self, Args};

/// Flag errors as one line (clap's own output spans several), exit code 2.
fn parse_args() -> Args {
    match Args::try_parse_weka(std::env::args_os()) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            let line = line.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("s3find: {line} (see --help)");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args = parse_args();
    let code = match args.to_options().and_then(|o| find::run(&o)) {
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
