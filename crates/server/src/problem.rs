//! Every error the API returns, and its one mapping to an RFC 9457 `application/problem+json`
//! response with a stable machine `code`.
//!
//! Handlers return [`ApiError`]; library errors ([`LedgerError`], [`ValidationError`]) convert
//! into it here and nowhere else. Errors actix produces by itself (malformed JSON, bad paths and
//! queries, unknown routes, wrong methods) are turned into problems by [`json_error`],
//! [`path_error`], [`query_error`] and [`status_problem`], wired in [`crate::configure`].

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use timecredits_domain::{RuleViolation, ValidationError};
use timecredits_ledger::LedgerError;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://timecredits.dev/problems/insufficient_credits",
    "title": "Insufficient credits",
    "status": 422,
    "detail": "account 0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e11 holds 30 minutes; 60 are needed",
    "code": "insufficient_credits"
}))]
pub struct Problem {
    /// A URI naming the problem type: the base URI followed by the code.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, in words a developer can act on.
    pub detail: String,
    /// The stable machine-readable error code (see the list in the API description).
    pub code: String,
}

/// Seconds a client waits after `storage_full`: space is freed by an operator, not in a moment.
pub const STORAGE_FULL_RETRY_AFTER: u64 = 30;

/// The base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://timecredits.dev/problems/";

/// Everything an API call can fail with. Each variant has one stable code and status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON for this operation (`malformed_json`, 400).
    #[error("{0}")]
    MalformedJson(String),
    /// The body is not application/json (`unsupported_media_type`, 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is over the route's limit: 64 KiB, 2 MiB for /v1/earn/batch (`payload_too_large`, 413).
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The route's limit, in bytes.
        limit: usize,
    },
    /// A path parameter is malformed (for example not a UUID) (`invalid_path`, 400).
    #[error("{0}")]
    InvalidPath(String),
    /// A query parameter is malformed or out of range (`invalid_query`, 400).
    #[error("{0}")]
    InvalidQuery(String),
    /// A field has a value the ledger refuses (zero or too large an amount, text too long, …)
    /// (`invalid_request`, 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such route (`not_found`, 404).
    #[error("no route for {0}")]
    NotFound(String),
    /// The route exists but not with this method (`method_not_allowed`, 405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method sent.
        method: String,
        /// The path it was sent to.
        path: String,
    },
    /// A POST without an Idempotency-Key header (`idempotency_key_missing`, 400).
    #[error("this request needs an Idempotency-Key header (1 to 255 visible ASCII characters)")]
    IdempotencyKeyMissing,
    /// The Idempotency-Key header is empty, too long or not visible ASCII (`idempotency_key_invalid`,
    /// 400).
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    IdempotencyKeyInvalid,
    /// The key was already used by this caller for a different request (`idempotency_key_reused`, 422).
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    /// A request with this key is still being processed (`idempotency_key_in_flight`, 409).
    #[error("a request with idempotency key {0:?} is still being processed; retry later")]
    IdempotencyKeyInFlight(String),
    /// Another rotation of the signing key is under way (`key_rotation_in_progress`, 409).
    #[error("another key rotation is under way; retry when it is done")]
    KeyRotationInProgress,
    /// The last key rotation's overlap has not ended: one rotation per overlap (`key_overlap_running`,
    /// 409).
    #[error(
        "the last key rotation's overlap runs until {until}: the key before it signs checkpoints \
         until then, as promised to verifiers; rotate again after that time"
    )]
    KeyOverlapRunning {
        /// When the overlap ends (RFC 3339).
        until: String,
    },
    /// No credential, or one that is unknown or revoked (`unauthorized`, 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential may not do this (see the permission matrix) (`forbidden`, 403).
    #[error("{0}")]
    Forbidden(String),
    /// No such account, or one the caller may not see (`account_not_found`, 404).
    #[error("{0}")]
    AccountNotFound(String),
    /// No such entry, or one the caller may not see (`entry_not_found`, 404).
    #[error("{0}")]
    EntryNotFound(String),
    /// No such partner (`partner_not_found`, 404).
    #[error("{0}")]
    PartnerNotFound(String),
    /// No such member (`member_not_found`, 404).
    #[error("{0}")]
    MemberNotFound(String),
    /// No such API key (`api_key_not_found`, 404).
    #[error("{0}")]
    ApiKeyNotFound(String),
    /// An administrator cannot revoke the API key it is calling with (`api_key_in_use`, 422).
    #[error("{0}")]
    ApiKeyInUse(String),
    /// The partner lacks the role this needs (an allocation to a partner that does not earn, a key
    /// scope beyond its roles) (`wrong_partner_role`, 422).
    #[error("{0}")]
    WrongPartnerRole(String),
    /// A value the domain refuses, found while building the request (`invalid_request`, 400).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A ledger rule the request breaks; the code is the rule's own (see `rule_code`), 422.
    #[error("{0}")]
    Rule(RuleViolation),
    /// A rule broken by the member's wallet, told to a venue: the code of the rule, without the
    /// wallet's id or balance, which are the member's.
    #[error("the member's wallet cannot pay this amount")]
    MemberCannotPay(&'static str),
    /// A partner may reverse its own entries only within the reversal window (`reversal_window_passed`,
    /// 403).
    #[error("{0}")]
    ReversalWindowPassed(String),
    /// A tree size is beyond the ledger or has no checkpoint (`invalid_size`, 400).
    #[error("{0}")]
    InvalidSize(String),
    /// No spend code matches (`spend_code_invalid`, 422).
    #[error("no spend code matches; check the code with the member")]
    SpendCodeInvalid,
    /// The spend code has expired (a code is valid for 15 minutes by default) (`spend_code_expired`,
    /// 422).
    #[error("this spend code has expired; ask the member for a new one")]
    SpendCodeExpired,
    /// The spend code was already used (`spend_code_used`, 422).
    #[error("this spend code was already used")]
    SpendCodeUsed,
    /// The cap is the member's: the venue learns only that this amount is too much.
    #[error("this spend code does not allow this amount; ask the member for a new code")]
    SpendCodeAmountExceeded,
    /// Too many refused redemptions in the last minute from this API key, its partner or its address,
    /// or from everyone (a breaker on the whole code space); see Retry-After (`too_many_attempts`,
    /// 429).
    #[error("too many refused redemptions; retry in {retry_after} seconds")]
    TooManyAttempts {
        /// Seconds until a redemption is taken again.
        retry_after: u64,
    },
    /// The member already holds the most unused spend codes allowed (5 by default); see Retry-After
    /// (`too_many_spend_codes`, 429).
    #[error("a member may hold at most {limit} unused spend codes; use one, or retry in {retry_after} seconds when the oldest expires")]
    TooManySpendCodes {
        /// The most unused codes a member may hold.
        limit: usize,
        /// Seconds until the oldest expires.
        retry_after: u64,
    },
    /// Too many requests from this credential or source address; retry after the Retry-After delay
    /// (`rate_limited`, 429).
    #[error("too many requests from this credential or address; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until the limit lets a request through.
        retry_after: u64,
    },
    /// The request body did not arrive within the body timeout (10 s by default) (`request_timeout`,
    /// 408).
    #[error("the request body was not received in time")]
    RequestTimeout,
    /// The request takes no body, and one was sent (`body_not_allowed`, 413).
    #[error("this request takes no body; send it without one")]
    BodyNotAllowed,
    /// The ledger is not accepting writes (storage failure or shutdown) (`unavailable`, 503).
    #[error("{0}")]
    Unavailable(String),
    /// Too many requests are waiting for the ledger; nothing was written, retry after the Retry-After
    /// delay (`ledger_busy`, 503).
    #[error("too many requests are waiting for the ledger; retry in a second")]
    LedgerBusy,
    /// The service's disk is full; nothing was written. Writes resume by themselves once there is room:
    /// retry after the Retry-After delay (`storage_full`, 503).
    #[error("{0}")]
    StorageFull(String),
    /// The service is stopping and takes no new request; retry after the Retry-After delay (at another
    /// instance, or once it is back) (`shutting_down`, 503).
    #[error("the service is shutting down; retry shortly")]
    ShuttingDown,
    /// A fault on the server; nothing a client sent causes it (`internal_error`, 500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine code, also the last segment of the problem `type`.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            UnsupportedMediaType(_) => "unsupported_media_type",
            PayloadTooLarge { .. } => "payload_too_large",
            InvalidPath(_) => "invalid_path",
            InvalidQuery(_) => "invalid_query",
            InvalidRequest(_) => "invalid_request",
            NotFound(_) => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            IdempotencyKeyMissing => "idempotency_key_missing",
            IdempotencyKeyInvalid => "idempotency_key_invalid",
            IdempotencyKeyReused(_) => "idempotency_key_reused",
            IdempotencyKeyInFlight(_) => "idempotency_key_in_flight",
            KeyRotationInProgress => "key_rotation_in_progress",
            KeyOverlapRunning { .. } => "key_overlap_running",
            RateLimited { .. } => "rate_limited",
            RequestTimeout => "request_timeout",
            BodyNotAllowed => "body_not_allowed",
            Unauthorized(_) => "unauthorized",
            Forbidden(_) => "forbidden",
            AccountNotFound(_) => "account_not_found",
            EntryNotFound(_) => "entry_not_found",
            PartnerNotFound(_) => "partner_not_found",
            MemberNotFound(_) => "member_not_found",
            ApiKeyNotFound(_) => "api_key_not_found",
            ApiKeyInUse(_) => "api_key_in_use",
            WrongPartnerRole(_) => "wrong_partner_role",
            Validation(_) => "invalid_request",
            Rule(v) => rule_code(v),
            MemberCannotPay(code) => code,
            ReversalWindowPassed(_) => "reversal_window_passed",
            InvalidSize(_) => "invalid_size",
            SpendCodeInvalid => "spend_code_invalid",
            SpendCodeExpired => "spend_code_expired",
            SpendCodeUsed => "spend_code_used",
            SpendCodeAmountExceeded => "spend_code_amount_exceeded",
            TooManyAttempts { .. } => "too_many_attempts",
            TooManySpendCodes { .. } => "too_many_spend_codes",
            Unavailable(_) => "unavailable",
            LedgerBusy => "ledger_busy",
            StorageFull(_) => "storage_full",
            ShuttingDown => "shutting_down",
            Internal(_) => "internal_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_)
            | InvalidPath(_)
            | InvalidQuery(_)
            | InvalidRequest(_)
            | IdempotencyKeyMissing
            | IdempotencyKeyInvalid
            | Validation(_)
            | InvalidSize(_) => StatusCode::BAD_REQUEST,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            NotFound(_) | AccountNotFound(_) | EntryNotFound(_) | PartnerNotFound(_)
            | MemberNotFound(_) | ApiKeyNotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            IdempotencyKeyInFlight(_) | KeyRotationInProgress | KeyOverlapRunning { .. } => {
                StatusCode::CONFLICT
            }
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) | ReversalWindowPassed(_) => StatusCode::FORBIDDEN,
            IdempotencyKeyReused(_)
            | ApiKeyInUse(_)
            | WrongPartnerRole(_)
            | Rule(_)
            | MemberCannotPay(_)
            | SpendCodeInvalid
            | SpendCodeExpired
            | SpendCodeUsed
            | SpendCodeAmountExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            TooManyAttempts { .. } | TooManySpendCodes { .. } | RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            BodyNotAllowed => StatusCode::PAYLOAD_TOO_LARGE,
            Unavailable(_) | LedgerBusy | StorageFull(_) | ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// This error as a venue redeeming `member`'s code may see it: a rule the member's wallet
    /// broke (too few credits, closed) keeps its code but loses the wallet's id and balance.
    pub fn for_venue(self, member: timecredits_domain::AccountId) -> ApiError {
        match self {
            ApiError::Rule(
                ref v @ (RuleViolation::InsufficientCredits { account, .. }
                | RuleViolation::AccountClosed(account)
                | RuleViolation::UnknownAccount(account)),
            ) if account == member => ApiError::MemberCannotPay(rule_code(v)),
            other => other,
        }
    }

    fn title(&self) -> String {
        let code = self.code();
        let mut title = code.replace('_', " ");
        if let Some(first) = title.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        title
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.code()),
            title: self.title(),
            status: self.status().as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
        }
    }
}

/// The code of each ledger rule a request can break.
fn rule_code(v: &RuleViolation) -> &'static str {
    use RuleViolation::*;
    match v {
        UnknownAccount(_) => "unknown_account",
        AccountClosed(_) => "account_closed",
        AccountExists(_) => "account_exists",
        WrongAccountKind { .. } => "wrong_account_kind",
        InsufficientCredits { .. } => "insufficient_credits",
        AccountNotEmpty { .. } => "account_not_empty",
        ProgrammeClosed => "programme_account",
        Genesis => "programme_account",
        UnknownEntry(_) => "unknown_entry",
        NotReversible(_) => "not_reversible",
        AlreadyReversed { .. } => "already_reversed",
        ReversalMismatch(_) => "not_reversible",
        EffectiveInFuture { .. } => "effective_date_in_future",
        Overflow(_) => "amount_overflow",
    }
}

/// Every code the API can return, with its status, for the API description and its tests.
pub const CODES: &[(&str, u16, &str)] = &[
    (
        "malformed_json",
        400,
        "The body is not valid JSON for this operation.",
    ),
    (
        "invalid_request",
        400,
        "A field has a value the ledger refuses (zero or too large an amount, text too long, …).",
    ),
    (
        "invalid_path",
        400,
        "A path parameter is malformed (for example not a UUID).",
    ),
    (
        "invalid_query",
        400,
        "A query parameter is malformed or out of range.",
    ),
    (
        "invalid_size",
        400,
        "A tree size is beyond the ledger or has no checkpoint.",
    ),
    (
        "idempotency_key_missing",
        400,
        "A POST without an Idempotency-Key header.",
    ),
    (
        "idempotency_key_invalid",
        400,
        "The Idempotency-Key header is empty, too long or not visible ASCII.",
    ),
    (
        "unauthorized",
        401,
        "No credential, or one that is unknown or revoked.",
    ),
    (
        "forbidden",
        403,
        "The credential may not do this (see the permission matrix).",
    ),
    (
        "reversal_window_passed",
        403,
        "A partner may reverse its own entries only within the reversal window.",
    ),
    ("not_found", 404, "No such route."),
    (
        "account_not_found",
        404,
        "No such account, or one the caller may not see.",
    ),
    (
        "entry_not_found",
        404,
        "No such entry, or one the caller may not see.",
    ),
    ("partner_not_found", 404, "No such partner."),
    ("member_not_found", 404, "No such member."),
    ("api_key_not_found", 404, "No such API key."),
    (
        "method_not_allowed",
        405,
        "The route exists but not with this method.",
    ),
    (
        "idempotency_key_in_flight",
        409,
        "A request with this key is still being processed.",
    ),
    (
        "key_rotation_in_progress",
        409,
        "Another rotation of the signing key is under way.",
    ),
    (
        "key_overlap_running",
        409,
        "The last key rotation's overlap has not ended: one rotation per overlap.",
    ),
    (
        "request_timeout",
        408,
        "The request body did not arrive within the body timeout (10 s by default).",
    ),
    (
        "payload_too_large",
        413,
        "The body is over the route's limit: 64 KiB, 2 MiB for /v1/earn/batch.",
    ),
    (
        "body_not_allowed",
        413,
        "The request takes no body, and one was sent.",
    ),
    (
        "unsupported_media_type",
        415,
        "The body is not application/json.",
    ),
    (
        "idempotency_key_reused",
        422,
        "The key was already used by this caller for a different request.",
    ),
    (
        "insufficient_credits",
        422,
        "The debited account would go below zero.",
    ),
    (
        "unknown_account",
        422,
        "A movement names an account that does not exist.",
    ),
    (
        "unknown_entry",
        422,
        "A reversal names an entry that does not exist.",
    ),
    (
        "account_closed",
        422,
        "An account in the movement is closed.",
    ),
    ("account_exists", 422, "The account already exists."),
    (
        "account_not_empty",
        422,
        "Only an account with a zero balance can be closed.",
    ),
    (
        "wrong_account_kind",
        422,
        "An account of the wrong kind for this movement (for example a venue as an earn target).",
    ),
    (
        "programme_account",
        422,
        "The programme account cannot be closed or reopened.",
    ),
    (
        "not_reversible",
        422,
        "The entry is not a movement that can be reversed (an open, a close or a reversal).",
    ),
    ("already_reversed", 422, "The entry was already reversed."),
    (
        "wrong_partner_role",
        422,
        "The partner lacks the role this needs (an allocation to a partner that does not earn, a key scope beyond its roles).",
    ),
    (
        "api_key_in_use",
        422,
        "An administrator cannot revoke the API key it is calling with.",
    ),
    (
        "effective_date_in_future",
        422,
        "The date the time was given is after today.",
    ),
    ("amount_overflow", 422, "A balance would overflow."),
    ("spend_code_invalid", 422, "No spend code matches."),
    (
        "spend_code_expired",
        422,
        "The spend code has expired (a code is valid for 15 minutes by default).",
    ),
    ("spend_code_used", 422, "The spend code was already used."),
    (
        "spend_code_amount_exceeded",
        422,
        "The amount is above the cap the member set on the code.",
    ),
    (
        "rate_limited",
        429,
        "Too many requests from this credential or source address; retry after the Retry-After delay.",
    ),
    (
        "too_many_attempts",
        429,
        "Too many refused redemptions in the last minute from this API key, its partner or its address, or from everyone (a breaker on the whole code space); see Retry-After.",
    ),
    (
        "too_many_spend_codes",
        429,
        "The member already holds the most unused spend codes allowed (5 by default); see Retry-After.",
    ),
    (
        "internal_error",
        500,
        "A fault on the server; nothing a client sent causes it.",
    ),
    (
        "unavailable",
        503,
        "The ledger is not accepting writes (storage failure or shutdown).",
    ),
    (
        "ledger_busy",
        503,
        "Too many requests are waiting for the ledger; nothing was written, retry after the Retry-After delay.",
    ),
    (
        "storage_full",
        503,
        "The service's disk is full; nothing was written. Writes resume by themselves once there is room: retry after the Retry-After delay.",
    ),
    (
        "shutting_down",
        503,
        "The service is stopping and takes no new request; retry after the Retry-After delay (at another instance, or once it is back).",
    ),
];

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        // ERROR only for the service's own faults; a client's mistake is its business.
        if self.status().is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        let mut response = HttpResponse::build(self.status());
        response.content_type(PROBLEM_JSON);
        if let ApiError::TooManyAttempts { retry_after }
        | ApiError::TooManySpendCodes { retry_after, .. }
        | ApiError::RateLimited { retry_after } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if let ApiError::RequestTimeout = self {
            // The rest of the body may still be on its way: the connection cannot be reused.
            response.force_close();
        }
        if let ApiError::LedgerBusy | ApiError::ShuttingDown = self {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::StorageFull(_) = self {
            response.insert_header((header::RETRY_AFTER, STORAGE_FULL_RETRY_AFTER.to_string()));
        }
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // For the access log and the metrics (`crate::observe`), which see only the response.
        response.extensions_mut().insert(ProblemCode(self.code()));
        response.json(self.problem())
    }
}

/// The code of the problem a response carries, kept in the response's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Invalid(v) => ApiError::Validation(v),
            LedgerError::Rejected { violation, .. } => ApiError::Rule(violation),
            LedgerError::IdempotencyConflict { key } => ApiError::IdempotencyKeyReused(key),
            e @ (LedgerError::Proof(_)
            | LedgerError::NoCheckpointAt { .. }
            | LedgerError::ExportStartsPastEnd { .. }) => ApiError::InvalidSize(e.to_string()),
            LedgerError::Unavailable(detail) => ApiError::Unavailable(detail),
            LedgerError::RotationInProgress => ApiError::KeyRotationInProgress,
            LedgerError::KeyOverlapRunning { until } => ApiError::KeyOverlapRunning {
                until: timecredits_domain::entry::format_time(&until),
            },
            LedgerError::Busy => ApiError::LedgerBusy,
            e @ LedgerError::StorageFull => ApiError::StorageFull(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::registry::RegistryError> for ApiError {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError as E;
        match e {
            E::StorageFull { .. } => ApiError::StorageFull(e.to_string()),
            // A failed write was undone (or writes stopped): nothing was written, and a retry
            // may succeed, so it is the storage's unavailability, not an internal error.
            E::Stopped(_) | E::Io { .. } => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Turns actix's JSON body errors into problems.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
            ApiError::PayloadTooLarge { limit }
        }
        E::ContentType => ApiError::UnsupportedMediaType(
            "the body must be JSON with Content-Type: application/json".into(),
        ),
        E::Deserialize(e) => ApiError::MalformedJson(format!("the body is not valid: {e}")),
        E::Payload(e) if crate::limits::timed_out(&e) => ApiError::RequestTimeout,
        other => ApiError::MalformedJson(format!("the body could not be read: {other}")),
    }
    .into()
}

/// Turns actix's path errors into problems.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::InvalidPath(format!("a path parameter is malformed: {err}")).into()
}

/// Turns actix's query-string errors into problems.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::InvalidQuery(format!("the query string is malformed: {err}")).into()
}

/// The default service: no route matched.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// Middleware hook: gives any error response actix made without a problem body (a 405 from a
/// resource, a 404, a 400 from a malformed header) a problem+json body with a matching code.
pub fn status_problem<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == HeaderValue::from_static(PROBLEM_JSON));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, response) = res.into_parts();
    let status = response.status();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        },
        StatusCode::NOT_FOUND => ApiError::NotFound(format!("{} {}", req.method(), req.path())),
        s if s.is_client_error() => ApiError::InvalidRequest(format!(
            "the request was refused: {}",
            s.canonical_reason().unwrap_or("client error")
        )),
        s => ApiError::Internal(format!(
            "the server failed: {}",
            s.canonical_reason().unwrap_or("server error")
        )),
    };
    let mut problem: HttpResponse<BoxBody> = error.error_response();
    // Keep the status actix chose (e.g. 431 for huge headers) even when the code is generic.
    *problem.status_mut() = status;
    let res = ServiceResponse::new(req, problem).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_with_its_status() {
        let errors = [
            ApiError::SpendCodeExpired,
            ApiError::IdempotencyKeyMissing,
            ApiError::TooManyAttempts { retry_after: 3 },
            ApiError::TooManySpendCodes {
                limit: 5,
                retry_after: 3,
            },
            ApiError::SpendCodeAmountExceeded,
            ApiError::Rule(RuleViolation::InsufficientCredits {
                account: timecredits_domain::AccountId::new(),
                balance: 0,
                needed: 60,
            }),
            ApiError::Validation(ValidationError::ZeroAmount),
            ApiError::IdempotencyKeyInFlight("k".into()),
            ApiError::KeyRotationInProgress,
            ApiError::KeyOverlapRunning { until: "t".into() },
            ApiError::RateLimited { retry_after: 1 },
            ApiError::RequestTimeout,
            ApiError::BodyNotAllowed,
            ApiError::LedgerBusy,
            ApiError::StorageFull("registry: the disk is full".into()),
            ApiError::ShuttingDown,
        ];
        for e in errors {
            let listed: Vec<_> = CODES.iter().filter(|(c, ..)| *c == e.code()).collect();
            assert_eq!(listed.len(), 1, "{} listed once", e.code());
            assert_eq!(listed[0].1, e.status().as_u16(), "{}", e.code());
        }
        let mut codes: Vec<_> = CODES.iter().map(|(c, ..)| c).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len());
    }

    #[test]
    fn a_problem_names_its_code_in_type_and_title() {
        let p = ApiError::SpendCodeUsed.problem();
        assert_eq!(p.code, "spend_code_used");
        assert_eq!(p.kind, format!("{PROBLEM_BASE}spend_code_used"));
        assert_eq!(p.title, "Spend code used");
        assert_eq!(p.status, 422);
    }
}
