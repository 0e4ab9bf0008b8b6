//! What the three benchmark binaries share: `bench-migrate`
//! (`src/migrate/`), `bench-proxy` (`src/proxy/`) and `bench-find`
//! (`src/find/`). Each binary's own modules stay with it; the stores, free
//! ports and programs come from `ferry-harness`. See docs/benchmarks.md.

pub mod cli;
pub mod host;
pub mod procstat;
pub mod stop;
pub mod units;
