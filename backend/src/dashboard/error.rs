//! The dashboard's one error type. Every API failure is answered the Codis way: HTTP status
//! 800 and `{"Cause": "<message>"}` (see `api.rs`).

use crate::proxy_client::RpcError;
use crate::redis::RedisError;

/// Why a dashboard operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The request is not acceptable (bad argument, wrong state, missing object); nothing was
    /// changed.
    #[error("{0}")]
    Invalid(String),
    /// The coordinator failed; what was written before the failure is listed in the log, and
    /// the dashboard reloads its cache from the coordinator before the next operation.
    #[error("coordinator: {0}")]
    Coordinator(#[from] codis_coordinator::Error),
    /// A codis-server or sentinel failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// A proxy call failed.
    #[error("{what}: {source}")]
    Proxy {
        /// Which call, on which proxy.
        what: String,
        /// Why.
        #[source]
        source: RpcError,
    },
    /// Stored data could not be decoded.
    #[error("bad data at {path}: {reason}")]
    BadData {
        /// The coordinator path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The dashboard is closed.
    #[error("use of closed topom")]
    Closed,
}

/// The dashboard's result type.
pub type Result<T, E = DashboardError> = std::result::Result<T, E>;

/// `Err(DashboardError::Invalid(format!(...)))`: a refused request.
macro_rules! invalid {
    ($($arg:tt)*) => {
        Err($crate::dashboard::error::DashboardError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use invalid;
