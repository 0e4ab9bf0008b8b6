//! What Ferry's command lines share.

/// A flag error as `<program>: <one line> (see --help)` on stderr, then
/// exit code 2; `--help` and `--version` print and exit 0 as clap's do.
/// clap's own message spans several lines and repeats the usage.
pub fn exit_on_flag_error(program: &str, e: &clap::Error) -> ! {
    if !e.use_stderr() {
        e.exit()
    }
    eprintln!("{program}: {} (see --help)", one_line(e));
    std::process::exit(2)
}

/// clap's error message on one line, without its usage and hint.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let line = line.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}
