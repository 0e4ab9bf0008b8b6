//! Where the binaries are: Ferry's own, built by cargo next to the running
//! test; the stores', from an environment override, else the cache that
//! `scripts/setup` fills, else `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One of Ferry's programs (`s3migrate`, `ferryctl`, ...), from the folder
/// cargo builds it into: the parent of the running test's `deps/`. A test
/// of one package may run another package's program: `cargo test
/// --workspace` builds them all.
pub fn program(name: &str) -> PathBuf {
    let dir = profile_dir().expect("a test binary lives in <target>/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --bin {name}` first)",
        p.display()
    );
    p
}

/// One of Ferry's programs for a benchmark, which measures release builds
/// and takes a path flag for each: `given` if any, else `name` in the
/// running binary's profile folder (as [`program`]), else in
/// `$CARGO_TARGET_DIR/release`; an error saying where it looked.
pub fn find_program(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        anyhow::ensure!(p.is_file(), "{name}: {} does not exist", p.display());
        return Ok(p.to_owned());
    }
    let mut tried: Vec<PathBuf> = profile_dir().map(|d| d.join(name)).into_iter().collect();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        tried.push(Path::new(&t).join("release").join(name));
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "{name} is missing (looked at {}): build it with `cargo build --release -p {name}`, \
         or pass its path",
        tried.join(", ")
    )
}

/// Where cargo put the running binary's profile: its own folder, or for a
/// test (built into `<profile>/deps`) the one above.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_owned)
    } else {
        Some(dir.to_owned())
    }
}

/// The `s3migrate` program.
pub fn s3migrate_bin() -> PathBuf {
    program("s3migrate")
}

/// The `s3find` program.
pub fn s3find_bin() -> PathBuf {
    program("s3find")
}

/// The `ferry-agent` program.
pub fn agent_bin() -> PathBuf {
    program("ferry-agent")
}

/// The `ferry-proxy` program.
pub fn proxy_bin() -> PathBuf {
    program("ferry-proxy")
}

/// The `ferryctl` program.
pub fn ferryctl_bin() -> PathBuf {
    program("ferryctl")
}

/// Garage: `$GARAGE_BIN`, else `~/.cache/ferry/tools/bin/garage`, else `garage` on `PATH`.
///
/// When none exists this still returns the cache path, so that the error from
/// running it names the place `scripts/setup` installs to.
pub fn garage_bin() -> PathBuf {
    locate("GARAGE_BIN", &["tools", "bin", "garage"], "garage")
}

/// moto: `$MOTO_SERVER`, else `~/.cache/ferry/venv/bin/moto_server`, else
/// `moto_server` on `PATH` (same fallback rule as [`garage_bin`]).
pub fn moto_server_bin() -> PathBuf {
    locate(
        "MOTO_SERVER",
        &["venv", "bin", "moto_server"],
        "moto_server",
    )
}

/// The Python of moto's venv, which has boto3: the directory of
/// [`moto_server_bin`].
pub fn python_bin() -> PathBuf {
    let moto = moto_server_bin();
    moto.parent()
        .map(|d| d.join("python"))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn locate(env_var: &str, cache_parts: &[&str], name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cached = ferry_cache().map(|c| cache_parts.iter().fold(c, |p, part| p.join(part)));
    if let Some(c) = cached.as_ref().filter(|c| c.is_file()) {
        return c.clone();
    }
    if let Some(p) = on_path(OsStr::new(name)) {
        return p;
    }
    cached.unwrap_or_else(|| PathBuf::from(name))
}

fn ferry_cache() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".cache").join("ferry"))
}

fn on_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
