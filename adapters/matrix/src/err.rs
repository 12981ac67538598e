//! The adapter's errors, and the one function that turns any of them into a Matrix error
//! response (HTTP status, `errcode`, `error`), the daemon's gRPC status codes included.

use http::StatusCode;
use tonic::Code;

/// Why a request failed. [`MatrixError::response_parts`] is the only place that decides what a
/// client sees for each.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// No path of the API matched.
    #[error("unrecognized request: {method} on this path")]
    UnknownEndpoint {
        /// The request's method.
        method: String,
    },
    /// The path exists but not with this method.
    #[error("{method} is not allowed on this endpoint")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
    },
    /// The request carried no access token.
    #[error("missing access token")]
    MissingToken,
    /// The access token is malformed, unknown, revoked, or not an identity's token.
    #[error("unknown or revoked access token")]
    UnknownToken,
    /// The request body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not of the expected shape.
    #[error("the body does not have the expected shape: {0}")]
    BadJson(String),
    /// The body is over the limit.
    #[error("the body is over the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A query or path parameter is malformed.
    #[error("bad parameter {name}: {detail}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// Login refused: wrong user, wrong or revoked password token.
    #[error("invalid username or password")]
    BadLogin,
    /// A login type or identifier type this server does not offer.
    #[error("unsupported login: {0}")]
    UnsupportedLogin(String),
    /// The caller may not do this (another user's profile, a state change the mapping cannot
    /// express).
    #[error("{0}")]
    Forbidden(String),
    /// A room the caller is not in (unknown, malformed, or another identity's room: the answer is
    /// the same, so nothing about other identities leaks).
    #[error("you are not in this room")]
    NotInRoom,
    /// A room id that names no room this user could join.
    #[error("no such room")]
    UnknownRoom,
    /// Something else that does not exist (a filter, a user, an event, a state event).
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but asks for something the mapping cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The daemon answered with an error.
    #[error("the daemon refused: {0}")]
    Daemon(Box<tonic::Status>),
}

impl From<tonic::Status> for MatrixError {
    fn from(status: tonic::Status) -> MatrixError {
        MatrixError::Daemon(Box::new(status))
    }
}

/// What a client is told: HTTP status, Matrix `errcode` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorParts {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Matrix error code, `M_…`.
    pub errcode: &'static str,
    /// A message for a person.
    pub message: String,
}

impl MatrixError {
    /// The one mapping from an error to the Matrix response (client-server API, "Standard error
    /// response"). gRPC codes from the daemon map by meaning: UNAUTHENTICATED is a bad access
    /// token, PERMISSION_DENIED forbidden, INVALID_ARGUMENT a bad parameter, and so on.
    pub fn response_parts(&self) -> ErrorParts {
        use StatusCode as S;
        let (status, errcode) = match self {
            MatrixError::UnknownEndpoint { .. } => (S::NOT_FOUND, "M_UNRECOGNIZED"),
            MatrixError::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED"),
            MatrixError::MissingToken => (S::UNAUTHORIZED, "M_MISSING_TOKEN"),
            MatrixError::UnknownToken => (S::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
            MatrixError::NotJson(_) => (S::BAD_REQUEST, "M_NOT_JSON"),
            MatrixError::BadJson(_) => (S::BAD_REQUEST, "M_BAD_JSON"),
            MatrixError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "M_TOO_LARGE"),
            MatrixError::InvalidParam { .. } => (S::BAD_REQUEST, "M_INVALID_PARAM"),
            MatrixError::BadLogin => (S::FORBIDDEN, "M_FORBIDDEN"),
            MatrixError::UnsupportedLogin(_) => (S::BAD_REQUEST, "M_UNKNOWN"),
            MatrixError::Forbidden(_) | MatrixError::NotInRoom => (S::FORBIDDEN, "M_FORBIDDEN"),
            MatrixError::UnknownRoom | MatrixError::NotFound(_) => (S::NOT_FOUND, "M_NOT_FOUND"),
            MatrixError::Unsupported(_) => (S::BAD_REQUEST, "M_INVALID_PARAM"),
            MatrixError::Daemon(status) => match status.code() {
                Code::Unauthenticated => (S::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
                Code::PermissionDenied => (S::FORBIDDEN, "M_FORBIDDEN"),
                Code::NotFound => (S::NOT_FOUND, "M_NOT_FOUND"),
                Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                    (S::BAD_REQUEST, "M_INVALID_PARAM")
                }
                Code::AlreadyExists => (S::CONFLICT, "M_UNKNOWN"),
                Code::ResourceExhausted => (S::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED"),
                Code::Unimplemented => (S::NOT_IMPLEMENTED, "M_UNRECOGNIZED"),
                Code::Unavailable => (S::SERVICE_UNAVAILABLE, "M_UNKNOWN"),
                Code::DeadlineExceeded => (S::GATEWAY_TIMEOUT, "M_UNKNOWN"),
                _ => (S::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
            },
        };
        let message = match self {
            // The daemon's own words say what was wrong with the request.
            MatrixError::Daemon(status) => status.message().to_owned(),
            other => other.to_string(),
        };
        ErrorParts {
            status,
            errcode,
            message,
        }
    }

    /// A parameter error.
    pub fn param(name: &'static str, detail: impl Into<String>) -> MatrixError {
        MatrixError::InvalidParam {
            name,
            detail: detail.into(),
        }
    }

    /// The daemon's error for a call about one room: NOT_FOUND and PERMISSION_DENIED both mean
    /// "not in this room", so another identity's rooms look exactly like rooms that do not exist.
    pub fn room(status: tonic::Status) -> MatrixError {
        match status.code() {
            Code::NotFound | Code::PermissionDenied => MatrixError::NotInRoom,
            _ => status.into(),
        }
    }
}

/// Why [`crate::serve`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting a connection failed in a way that does not go away by itself.
    #[error("the Matrix listener failed to accept: {0}")]
    Accept(#[source] std::io::Error),
    /// A limit in `[matrix]` is zero (nothing could ever be served).
    #[error("matrix.{0} must be at least 1")]
    ZeroLimit(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_spec_code() {
        let cases: Vec<(MatrixError, u16, &str)> = vec![
            (
                MatrixError::UnknownEndpoint {
                    method: "GET".into(),
                },
                404,
                "M_UNRECOGNIZED",
            ),
            (
                MatrixError::MethodNotAllowed {
                    method: "PUT".into(),
                },
                405,
                "M_UNRECOGNIZED",
            ),
            (MatrixError::MissingToken, 401, "M_MISSING_TOKEN"),
            (MatrixError::UnknownToken, 401, "M_UNKNOWN_TOKEN"),
            (MatrixError::NotJson("x".into()), 400, "M_NOT_JSON"),
            (MatrixError::BadJson("x".into()), 400, "M_BAD_JSON"),
            (MatrixError::TooLarge { limit: 1 }, 413, "M_TOO_LARGE"),
            (MatrixError::NotInRoom, 403, "M_FORBIDDEN"),
            (MatrixError::UnknownRoom, 404, "M_NOT_FOUND"),
            (MatrixError::BadLogin, 403, "M_FORBIDDEN"),
            (
                tonic::Status::unauthenticated("no").into(),
                401,
                "M_UNKNOWN_TOKEN",
            ),
            (
                tonic::Status::invalid_argument("no").into(),
                400,
                "M_INVALID_PARAM",
            ),
            (
                tonic::Status::permission_denied("no").into(),
                403,
                "M_FORBIDDEN",
            ),
            (tonic::Status::internal("no").into(), 500, "M_UNKNOWN"),
        ];
        for (err, status, code) in cases {
            let parts = err.response_parts();
            assert_eq!(
                (parts.status.as_u16(), parts.errcode),
                (status, code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn room_errors_hide_whose_room_it_is() {
        let a = MatrixError::room(tonic::Status::not_found("no conversation")).response_parts();
        let b = MatrixError::room(tonic::Status::permission_denied("other")).response_parts();
        assert_eq!(a, b);
    }
}
