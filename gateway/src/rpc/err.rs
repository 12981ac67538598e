//! Errors of the gRPC front end, the one function that maps error kinds to status codes, and the
//! rich details every error status carries: a `google.rpc.ErrorInfo` (domain [`DOMAIN`], a
//! stable reason per error kind, see [`reason_for`]) and, for errors about a request field, a
//! `google.rpc.BadRequest` naming it.

use std::collections::HashMap;

use session_proto::err::{ErrorKind, HasKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
    /// The thing asked for does not exist (and no store error says so).
    #[error("{0}")]
    NotFound(String),
    /// A background task failed (a panic or a cancelled blocking call).
    #[error("internal error: {0}; see the daemon's log")]
    Internal(String),
    /// A cursor (log_epoch, seq) names another incarnation of the identity's event log: the
    /// identity was deleted and added again under the same name.
    #[error(
        "{field}: log epoch {given} is not the current log of {identity:?} (epoch {current}): \
         the identity was deleted and added again, so its old seqs name other events; start \
         over from seq 0 with log_epoch {current}"
    )]
    EpochMismatch {
        /// The request field holding the epoch.
        field: &'static str,
        /// The identity's name.
        identity: String,
        /// The epoch the client gave.
        given: u64,
        /// The identity's current epoch.
        current: u64,
    },
    /// The request is valid but the daemon does not do this yet (a conversation kind it cannot
    /// send to, say).
    #[error("{0}")]
    Unimplemented(String),
    /// The request is valid but the state does not allow it (a group the identity was removed
    /// from, an invitation not accepted).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A seq past the end of the identity's log (of the right epoch).
    #[error("{field}: seq {seq} is past the end of the log (its last seq is {last_seq})")]
    SeqOutOfRange {
        /// The request field holding the seq.
        field: &'static str,
        /// The seq given.
        seq: u64,
        /// The log's newest seq.
        last_seq: u64,
    },
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

impl ApiError {
    /// The status code: [`code_for`] the kind, except for the cursor errors, whose codes the API
    /// documents (FAILED_PRECONDITION, OUT_OF_RANGE).
    pub fn code(&self) -> Code {
        match self {
            ApiError::EpochMismatch { .. } => Code::FailedPrecondition,
            ApiError::SeqOutOfRange { .. } => Code::OutOfRange,
            ApiError::Internal(_) => Code::Internal,
            ApiError::Unimplemented(_) => Code::Unimplemented,
            e => code_for(e.kind()),
        }
    }

    /// The ErrorInfo reason: [`reason_for`] the kind, or the reason of a condition no kind
    /// names.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::EpochMismatch { .. } => REASON_LOG_EPOCH_MISMATCH,
            ApiError::SeqOutOfRange { .. } => REASON_SEQ_OUT_OF_RANGE,
            ApiError::Internal(_) => REASON_INTERNAL,
            ApiError::Unimplemented(_) => REASON_UNIMPLEMENTED,
            e => reason_for(e.kind()),
        }
    }

    /// The request field this error is about, if it is about one.
    fn bad_field(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidField { field, .. } => Some(field),
            // `what` is a field name when the input was one (no spaces), else a phrase.
            ApiError::Protocol { what, .. }
                if self.code() == Code::InvalidArgument && !what.contains(' ') =>
            {
                Some(what)
            }
            _ => None,
        }
    }

    /// ErrorInfo metadata: what a program needs to act on the error without parsing the
    /// message.
    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        if let Some(field) = self.bad_field() {
            m.insert("field".to_owned(), field.to_owned());
        }
        match self {
            ApiError::EpochMismatch {
                field,
                given,
                current,
                ..
            } => {
                m.insert("field".to_owned(), (*field).to_owned());
                m.insert("log_epoch".to_owned(), current.to_string());
                m.insert("given_log_epoch".to_owned(), given.to_string());
            }
            ApiError::SeqOutOfRange {
                field, last_seq, ..
            } => {
                m.insert("field".to_owned(), (*field).to_owned());
                m.insert("last_seq".to_owned(), last_seq.to_string());
            }
            _ => {}
        }
        m
    }
}

/// The ErrorInfo domain of every sessiond error.
pub const DOMAIN: &str = "sessiond.v1";
/// ErrorInfo reason: a cursor's log_epoch is not the identity's current one.
pub const REASON_LOG_EPOCH_MISMATCH: &str = "LOG_EPOCH_MISMATCH";
/// ErrorInfo reason: a seq past the end of the log.
pub const REASON_SEQ_OUT_OF_RANGE: &str = "SEQ_OUT_OF_RANGE";
/// ErrorInfo reason: a request message over the size limit.
pub const REASON_MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
/// ErrorInfo reason: a request body that is not a valid message (bad protobuf, bad UTF-8).
pub const REASON_MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";
/// ErrorInfo reason: something the daemon does not do yet.
pub const REASON_UNIMPLEMENTED: &str = "UNIMPLEMENTED";
/// ErrorInfo reason: a failure of the daemon itself.
pub const REASON_INTERNAL: &str = "INTERNAL";

/// The stable ErrorInfo reason of an error kind: its name in UPPER_SNAKE_CASE. Clients may
/// match on these; they never change meaning.
pub fn reason_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "INVALID_INPUT",
        ErrorKind::BadCrypto => "BAD_CRYPTO",
        ErrorKind::Unsupported => "UNSUPPORTED",
        ErrorKind::ProtocolViolation => "PROTOCOL_VIOLATION",
        ErrorKind::NetworkUnreachable => "NETWORK_UNREACHABLE",
        ErrorKind::Timeout => "TIMEOUT",
        ErrorKind::ClockSkew => "CLOCK_SKEW",
        ErrorKind::Rejected => "REJECTED",
        ErrorKind::Busy => "BUSY",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::AlreadyExists => "ALREADY_EXISTS",
        ErrorKind::Unauthenticated => "UNAUTHENTICATED",
        ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        ErrorKind::InUse => "IN_USE",
        ErrorKind::CorruptState => "CORRUPT_STATE",
        ErrorKind::LocalIo => "LOCAL_IO",
        ErrorKind::Unavailable => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// A status with sessiond's details: an ErrorInfo with `reason`, and a BadRequest violation if
/// `field` is given.
pub fn status(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    field: Option<&str>,
    metadata: HashMap<String, String>,
) -> Status {
    let message = message.into();
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, metadata);
    if let Some(field) = field {
        details.add_bad_request_violation(field, message.clone());
    }
    Status::with_error_details(code, message, details)
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
            ApiError::NotFound(_) => ErrorKind::NotFound,
            // No kind says "our bug"; LocalIo maps to INTERNAL, which is what a client sees.
            ApiError::Internal(_) => ErrorKind::LocalIo,
            ApiError::EpochMismatch { .. } => ErrorKind::Rejected,
            ApiError::SeqOutOfRange { .. } => ErrorKind::InvalidInput,
            ApiError::Unimplemented(_) => ErrorKind::Unsupported,
            ApiError::FailedPrecondition(_) => ErrorKind::Rejected,
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
        let field = e.bad_field().or(match &e {
            ApiError::EpochMismatch { field, .. } | ApiError::SeqOutOfRange { field, .. } => {
                Some(*field)
            }
            _ => None,
        });
        status(e.code(), e.to_string(), e.reason(), field, e.metadata())
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

    #[test]
    fn statuses_carry_error_info_and_field_violations() {
        let s = Status::from(ApiError::field("recipient", "not an Account ID"));
        let d = s.get_error_details();
        let info = d.error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_INPUT");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("recipient")
        );
        let bad = d.bad_request().expect("bad request");
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "recipient");
        let s = Status::from(ApiError::EpochMismatch {
            field: "log_epoch",
            identity: "alice".into(),
            given: 1,
            current: 2,
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        let d = s.get_error_details();
        let info = d.error_info().expect("error info");
        assert_eq!(info.reason, REASON_LOG_EPOCH_MISMATCH);
        assert_eq!(
            info.metadata.get("log_epoch").map(String::as_str),
            Some("2")
        );
        let s = Status::from(ApiError::Unauthenticated("no token"));
        let d = s.get_error_details();
        assert_eq!(d.error_info().expect("info").reason, "UNAUTHENTICATED");
        assert!(d.bad_request().is_none());
        // Every kind has its own reason.
        let kinds = [
            ErrorKind::InvalidInput,
            ErrorKind::BadCrypto,
            ErrorKind::Unsupported,
            ErrorKind::ProtocolViolation,
            ErrorKind::NetworkUnreachable,
            ErrorKind::Timeout,
            ErrorKind::ClockSkew,
            ErrorKind::Rejected,
            ErrorKind::Busy,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::InUse,
            ErrorKind::CorruptState,
            ErrorKind::LocalIo,
            ErrorKind::Unavailable,
        ];
        let reasons: std::collections::HashSet<_> = kinds.iter().map(|k| reason_for(*k)).collect();
        assert_eq!(reasons.len(), kinds.len());
        assert!(!reasons.contains("UNKNOWN"));
    }
}
