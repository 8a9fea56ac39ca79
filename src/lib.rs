//! s3turbo's engine. The transfer code (`upload`, `download`, `plan`, `progress`, `client`,
//! `runtime`, `errors`, ...) is plain Rust that knows nothing of Python; `python` (sync) and
//! `python_async` (asyncio) are the pyo3 glue.

mod bandwidth;
mod batch;
mod body;
mod buffers;
mod client;
mod credentials;
mod download;
mod error_body;
mod errors;
mod expect_continue;
mod global_endpoint;
mod handoff;
mod http_client;
mod interpreter_exit;
mod own_http;
mod plan;
mod presign;
mod progress;
mod proxy;
mod python;
mod python_async;
mod redirect;
mod request;
mod retries;
mod runtime;
mod server_trust;
mod upload;

use pyo3::prelude::*;

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    interpreter_exit::register(module)?;
    python::register(module)?;
    python_async::register(module)
}
