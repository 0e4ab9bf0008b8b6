//! What Ferry's programs do alike at start (feature `program`): a TOML
//! config file read and refused on one line (`FILE: FIELD: PROBLEM`),
//! `--check-config`, the exit on a bad start, logging to stderr. The
//! daemons (ferry-agent, ferry-proxy) use all of it, s3migrate its logging.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file was refused: `FILE: FIELD: PROBLEM`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The offending field as written in the file (`target.secret_file`),
    /// if the problem is in one field.
    pub field: Option<&'static str>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(field) = self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses the TOML config at `path`, then has `finish` make its
/// relative paths absolute from the file's folder (given) and validate it,
/// naming the field at fault. Nothing is created or bound.
pub fn load_toml<T: DeserializeOwned>(
    path: &Path,
    finish: impl FnOnce(&mut T, &Path) -> Result<(), (&'static str, String)>,
) -> Result<T, ConfigError> {
    let err = |field, problem| ConfigError {
        file: path.to_owned(),
        field,
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    let mut config = parse_toml(&text).map_err(|p| err(None, p))?;
    let base = path.parent().unwrap_or(Path::new("."));
    finish(&mut config, base).map_err(|(field, problem)| err(Some(field), problem))?;
    Ok(config)
}

/// TOML text parsed (no validation); an error is `line N: message`, on one
/// line.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {message}")
            }
            None => message,
        }
    })
}

/// A start that cannot go on: `program: msg` on stderr, exit code 2.
pub fn fail(program: &str, msg: impl fmt::Display) -> ! {
    eprintln!("{program}: {msg}");
    std::process::exit(2);
}

/// `--check-config FILE`: prints `FILE: ok` and exits 0 if `load` accepts
/// it, else fails (exit code 2) with why.
pub fn check_config<T, E: fmt::Display>(
    program: &str,
    path: &Path,
    load: impl FnOnce(&Path) -> Result<T, E>,
) -> ! {
    match load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            std::process::exit(0);
        }
        Err(e) => fail(program, e),
    }
}

/// Logs to stderr, filtered by the environment variable `env` (else
/// `default`). Colour codes only for a person at a terminal, never into
/// journald or a file.
pub fn init_logging(env: &str, default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(env)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        #[serde(default)]
        n: u32,
        #[serde(default)]
        dir: PathBuf,
    }

    #[test]
    fn a_toml_error_names_its_line_on_one_line() {
        let e = parse_toml::<Conf>("n = 1\nm = 2\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn load_names_the_file_and_the_field_and_resolves_from_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let finish = |c: &mut Conf, base: &Path| {
            c.dir = base.join(&c.dir);
            if c.n == 0 {
                return Err(("n", "must be at least 1".to_owned()));
            }
            Ok(())
        };
        let e = load_toml(&file, finish).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.problem.starts_with("cannot read: "), "{e}");
        std::fs::write(&file, "n = 0\n").unwrap();
        let e = load_toml(&file, finish).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: n: must be at least 1", file.display())
        );
        std::fs::write(&file, "n = 2\ndir = \"d\"\n").unwrap();
        let c = load_toml(&file, finish).unwrap();
        assert_eq!(c.dir, dir.path().join("d"));
    }
}
