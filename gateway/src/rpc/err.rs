//! Errors of the gRPC front end, and the one function that maps error kinds to status codes.

use session_proto::err::{ErrorKind, HasKind};
use tonic::{Code, Status};

use crate::store::StoreError;

/// Why a gRPC call failed. The Display text is the status message: it says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A request field is missing or malformed.
    #[error("{field}: {detail}")]
    InvalidField {
        /// The field, as named in the .proto file.
        field: &'static str,
        /// What is wrong and what is expected.
        detail: String,
    },
    /// No or an unknown bearer token.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The token is valid but does not reach this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A protocol operation (keys, recovery password, sealing) failed.
    #[error("{what}: {detail}")]
    Protocol {
        /// What was being done.
        what: &'static str,
        /// The error's text.
        detail: String,
        /// Its kind.
        kind: ErrorKind,
    },
    /// The service asked for is not running.
    #[error("{0}")]
    Unavailable(String),
    /// A background task failed (a panic or a cancelled blocking call).
    #[error("internal error: {0}; see the daemon's log")]
    Internal(String),
}

impl ApiError {
    /// A bad field.
    pub fn field(field: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            field,
            detail: detail.into(),
        }
    }

    /// Wraps a protocol error, keeping its kind.
    pub fn protocol<E: HasKind + std::fmt::Display>(what: &'static str, e: &E) -> ApiError {
        ApiError::Protocol {
            what,
            detail: e.to_string(),
            kind: e.kind(),
        }
    }
}

impl HasKind for ApiError {
    fn kind(&self) -> ErrorKind {
        match self {
            ApiError::InvalidField { .. } => ErrorKind::InvalidInput,
            ApiError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            ApiError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            ApiError::Store(e) => e.kind(),
            ApiError::Protocol { kind, .. } => *kind,
            ApiError::Unavailable(_) => ErrorKind::Unavailable,
            // No kind says "our bug"; LocalIo maps to INTERNAL, which is what a client sees.
            ApiError::Internal(_) => ErrorKind::LocalIo,
        }
    }
}

/// The gRPC status code for an error kind: the one place this mapping lives.
pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidInput | ErrorKind::BadCrypto | ErrorKind::Unsupported => {
            Code::InvalidArgument
        }
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Rejected => Code::FailedPrecondition,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::Busy | ErrorKind::InUse => Code::ResourceExhausted,
        ErrorKind::NetworkUnreachable | ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ClockSkew => Code::FailedPrecondition,
        ErrorKind::ProtocolViolation => Code::Unknown,
        ErrorKind::CorruptState => Code::DataLoss,
        ErrorKind::LocalIo => Code::Internal,
        _ => Code::Unknown,
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(code_for(e.kind()), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_expected_codes() {
        let e = ApiError::field("recipient", "not an Account ID");
        let s = Status::from(e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "recipient: not an Account ID");
        let s = Status::from(ApiError::Store(StoreError::UnknownIdentity {
            name: "x".into(),
        }));
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().contains("sessiond identity list"));
        assert_eq!(
            Status::from(ApiError::Unauthenticated("no token")).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            code_for(ErrorKind::PermissionDenied),
            Code::PermissionDenied
        );
        assert_eq!(code_for(ErrorKind::AlreadyExists), Code::AlreadyExists);
    }
}
