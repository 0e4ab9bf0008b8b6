//! Run async code from sync harness functions, even when the caller is itself
//! inside a tokio runtime: a dedicated current-thread runtime on its own
//! thread.

use std::future::Future;

pub fn block_on<F, T>(make: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(make())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("harness helper thread panicked"))?
}
