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
    /// For an upload of CSV rows refused (`invalid_request`): every mistake found, each with
    /// its line (the header row is line 1). Nothing of the upload was recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RowError>,
}

/// A mistake in one line of an uploaded CSV body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    /// The line it is on, counted from 1 (the header row).
    pub line: u64,
    /// The column it is in, when it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, in words a coordinator can act on.
    pub detail: String,
}

/// Seconds a client waits after `storage_full`: space is freed by an operator, not in a moment.
pub const STORAGE_FULL_RETRY_AFTER: u64 = 30;

/// The base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://timecredits.dev/problems/";

/// Declares [`Code`] from one table: each row is a code's variant, its wire name, its HTTP status
/// and its meaning (its documentation and its line in the API description). A new code is one row.
macro_rules! problem_codes {
    ($($variant:ident = $code:literal, $status:ident, $meaning:literal;)+) => {
        /// Every problem code the API answers. The API description lists them in this order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)+
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &[Code] = &[$(Code::$variant),+];

            /// The stable machine code, also the last segment of the problem `type`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)+
                }
            }

            /// The HTTP status.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)+
                }
            }

            /// What the code means, as the API description says it.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)+
                }
            }
        }
    };
}

problem_codes! {
    MalformedJson = "malformed_json", BAD_REQUEST, "The body is not valid JSON for this operation.";
    InvalidRequest = "invalid_request", BAD_REQUEST, "A field has a value the ledger refuses (zero or too large an amount, text too long, …).";
    InvalidPath = "invalid_path", BAD_REQUEST, "A path parameter is malformed (for example not a UUID).";
    InvalidQuery = "invalid_query", BAD_REQUEST, "A query parameter is malformed or out of range.";
    InvalidSize = "invalid_size", BAD_REQUEST, "A tree size is beyond the ledger or has no checkpoint.";
    IdempotencyKeyMissing = "idempotency_key_missing", BAD_REQUEST, "A POST without an Idempotency-Key header.";
    IdempotencyKeyInvalid = "idempotency_key_invalid", BAD_REQUEST, "The Idempotency-Key header is empty, too long, not visible ASCII, or starts with `expiry:` (kept for the service's own writes).";
    Unauthorized = "unauthorized", UNAUTHORIZED, "No credential, or one that is unknown or revoked.";
    Forbidden = "forbidden", FORBIDDEN, "The credential may not do this (see the permission matrix).";
    PartnerSuspended = "partner_suspended", FORBIDDEN, "The partner is suspended: its keys may read, not write, until an administrator reinstates it.";
    ReversalWindowPassed = "reversal_window_passed", FORBIDDEN, "A partner may reverse its own entries only within the reversal window.";
    NotFound = "not_found", NOT_FOUND, "No such route.";
    AccountNotFound = "account_not_found", NOT_FOUND, "No such account, or one the caller may not see.";
    EntryNotFound = "entry_not_found", NOT_FOUND, "No such entry, or one the caller may not see.";
    PartnerNotFound = "partner_not_found", NOT_FOUND, "No such partner, or one the caller may not see.";
    MemberNotFound = "member_not_found", NOT_FOUND, "No such member, or one whose data the caller may not see.";
    ApiKeyNotFound = "api_key_not_found", NOT_FOUND, "No such API key.";
    CardNotFound = "card_not_found", NOT_FOUND, "No card for this member, no such member, or one the caller may not see.";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, "The route exists but not with this method.";
    IdempotencyKeyInFlight = "idempotency_key_in_flight", CONFLICT, "A request with this key is still being processed.";
    UsernameTaken = "username_taken", CONFLICT, "Another staff login already has this username.";
    MemberErased = "member_erased", GONE, "The member's personal data was erased on request; their pseudonymous entries stay in the ledger.";
    MemberNotLeft = "member_not_left", CONFLICT, "A member's personal data is erased only after they left (their wallet closed by POST /v1/members/{id}/leave).";
    KeyRotationInProgress = "key_rotation_in_progress", CONFLICT, "Another rotation of the signing key is under way.";
    KeyOverlapRunning = "key_overlap_running", CONFLICT, "The last key rotation's overlap has not ended: one rotation per overlap.";
    ExpiryPolicyOff = "expiry_policy_off", CONFLICT, "The service runs with no expiry policy (`expiry_months` is not set): nothing expires.";
    ExpiryNotDue = "expiry_not_due", CONFLICT, "The wallet was used, or its balance changed, since the expiry sweep looked at it: its expiry is not due (the sweep skips it).";
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, "The request body did not arrive within the body timeout (10 s by default).";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, "The body is over the route's limit: 64 KiB, 2 MiB for /v1/earn/batch and /v1/members/batch.";
    BodyNotAllowed = "body_not_allowed", PAYLOAD_TOO_LARGE, "The request takes no body, and one was sent.";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The body is not application/json.";
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, "The key was already used by this caller for a different request.";
    InsufficientCredits = "insufficient_credits", UNPROCESSABLE_ENTITY, "The debited account would go below zero.";
    UnknownAccount = "unknown_account", UNPROCESSABLE_ENTITY, "A movement names an account that does not exist.";
    UnknownEntry = "unknown_entry", UNPROCESSABLE_ENTITY, "A reversal names an entry that does not exist.";
    AccountClosed = "account_closed", UNPROCESSABLE_ENTITY, "An account in the movement is closed.";
    AccountExists = "account_exists", UNPROCESSABLE_ENTITY, "The account already exists.";
    AccountNotEmpty = "account_not_empty", UNPROCESSABLE_ENTITY, "Only an account with a zero balance can be closed.";
    WrongAccountKind = "wrong_account_kind", UNPROCESSABLE_ENTITY, "An account of the wrong kind for this movement (for example a venue as an earn target).";
    ProgrammeAccount = "programme_account", UNPROCESSABLE_ENTITY, "The programme account cannot be closed or reopened.";
    NotReversible = "not_reversible", UNPROCESSABLE_ENTITY, "The entry is not a movement that can be reversed (an open, a close or a reversal).";
    AlreadyReversed = "already_reversed", UNPROCESSABLE_ENTITY, "The entry was already reversed.";
    WrongPartnerRole = "wrong_partner_role", UNPROCESSABLE_ENTITY, "The partner lacks the role this needs (an allocation to a partner that does not earn, a key scope beyond its roles).";
    ApiKeyInUse = "api_key_in_use", UNPROCESSABLE_ENTITY, "An administrator cannot revoke the API key it is calling with.";
    EffectiveDateInFuture = "effective_date_in_future", UNPROCESSABLE_ENTITY, "The date the time was given is after today.";
    AmountOverflow = "amount_overflow", UNPROCESSABLE_ENTITY, "A balance would overflow.";
    SpendCodeInvalid = "spend_code_invalid", UNPROCESSABLE_ENTITY, "No spend code matches.";
    SpendCodeExpired = "spend_code_expired", UNPROCESSABLE_ENTITY, "The spend code has expired (a code is valid for 15 minutes by default).";
    SpendCodeUsed = "spend_code_used", UNPROCESSABLE_ENTITY, "The spend code was already used.";
    SpendCodeRevoked = "spend_code_revoked", UNPROCESSABLE_ENTITY, "The spend code was made before the member's credential was revoked or reissued (say, a lost phone): it no longer pays; the member makes a new one.";
    SpendCodeAmountExceeded = "spend_code_amount_exceeded", UNPROCESSABLE_ENTITY, "The amount is above the cap the member set on the code.";
    CardInvalid = "card_invalid", UNPROCESSABLE_ENTITY, "The card number or the PIN is not right (the answer never says which).";
    CardLocked = "card_locked", UNPROCESSABLE_ENTITY, "The card is locked after too many wrong PINs in a row: the partner that registered the member resets its PIN or reissues it.";
    CardBlocked = "card_blocked", UNPROCESSABLE_ENTITY, "The card and PIN are right, but the card is blocked: the partner that registered the member reissues it.";
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, "Too many requests from this credential or source address; retry after the Retry-After delay.";
    TooManyAttempts = "too_many_attempts", TOO_MANY_REQUESTS, "Too many refused redemptions in the last minute from this API key, its partner or its address, or from everyone (a breaker on the whole code space); see Retry-After.";
    TooManySpendCodes = "too_many_spend_codes", TOO_MANY_REQUESTS, "The member already holds the most unused spend codes allowed (5 by default); see Retry-After.";
    Internal = "internal_error", INTERNAL_SERVER_ERROR, "A fault on the server; nothing a client sent causes it.";
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, "The ledger is not accepting writes (storage failure or shutdown).";
    LedgerBusy = "ledger_busy", SERVICE_UNAVAILABLE, "Too many requests are waiting for the ledger; nothing was written, retry after the Retry-After delay.";
    StorageFull = "storage_full", SERVICE_UNAVAILABLE, "The service's disk is full; nothing was written. Writes resume by themselves once there is room: retry after the Retry-After delay.";
    ShuttingDown = "shutting_down", SERVICE_UNAVAILABLE, "The service is stopping and takes no new request; retry after the Retry-After delay (at another instance, or once it is back).";
}

impl Code {
    /// A short, human-readable summary: the code in words ("Spend code used").
    pub fn title(self) -> String {
        let mut title = self.as_str().replace('_', " ");
        if let Some(first) = title.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        title
    }
}

/// Everything an API call can fail with. Each has one stable [`Code`] (see
/// [`ApiError::code`]), which gives its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// See [`Code::MalformedJson`].
    #[error("{0}")]
    MalformedJson(String),
    /// See [`Code::UnsupportedMediaType`].
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// See [`Code::PayloadTooLarge`].
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The route's limit, in bytes.
        limit: usize,
    },
    /// See [`Code::InvalidPath`].
    #[error("{0}")]
    InvalidPath(String),
    /// See [`Code::InvalidQuery`].
    #[error("{0}")]
    InvalidQuery(String),
    /// See [`Code::InvalidRequest`].
    #[error("{0}")]
    InvalidRequest(String),
    /// See [`Code::NotFound`].
    #[error("no route for {0}")]
    NotFound(String),
    /// See [`Code::MethodNotAllowed`].
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method sent.
        method: String,
        /// The path it was sent to.
        path: String,
    },
    /// See [`Code::IdempotencyKeyMissing`].
    #[error("this request needs an Idempotency-Key header (1 to 255 visible ASCII characters)")]
    IdempotencyKeyMissing,
    /// See [`Code::IdempotencyKeyInvalid`].
    #[error(
        "the Idempotency-Key header must be 1 to 255 visible ASCII characters, not starting with `expiry:`"
    )]
    IdempotencyKeyInvalid,
    /// See [`Code::IdempotencyKeyReused`].
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    /// See [`Code::IdempotencyKeyInFlight`].
    #[error("a request with idempotency key {0:?} is still being processed; retry later")]
    IdempotencyKeyInFlight(String),
    /// See [`Code::KeyRotationInProgress`].
    #[error("another key rotation is under way; retry when it is done")]
    KeyRotationInProgress,
    /// The last key rotation's overlap has not ended: one rotation per overlap.
    #[error(
        "the last key rotation's overlap runs until {until}: the key before it signs checkpoints \
         until then, as promised to verifiers; rotate again after that time"
    )]
    KeyOverlapRunning {
        /// When the overlap ends (RFC 3339).
        until: String,
    },
    /// See [`Code::ExpiryPolicyOff`].
    #[error("the service runs with no expiry policy (start it with `expiry_months` set): nothing expires")]
    ExpiryPolicyOff,
    /// See [`Code::Unauthorized`].
    #[error("{0}")]
    Unauthorized(String),
    /// See [`Code::Forbidden`].
    #[error("{0}")]
    Forbidden(String),
    /// See [`Code::AccountNotFound`].
    #[error("{0}")]
    AccountNotFound(String),
    /// See [`Code::EntryNotFound`].
    #[error("{0}")]
    EntryNotFound(String),
    /// See [`Code::PartnerNotFound`].
    #[error("{0}")]
    PartnerNotFound(String),
    /// See [`Code::MemberNotFound`].
    #[error("{0}")]
    MemberNotFound(String),
    /// See [`Code::MemberErased`].
    #[error("{0}")]
    MemberErased(String),
    /// See [`Code::MemberNotLeft`].
    #[error("{0}")]
    MemberNotLeft(String),
    /// See [`Code::ApiKeyNotFound`].
    #[error("{0}")]
    ApiKeyNotFound(String),
    /// See [`Code::ApiKeyInUse`].
    #[error("{0}")]
    ApiKeyInUse(String),
    /// See [`Code::UsernameTaken`].
    #[error("{0}")]
    UsernameTaken(String),
    /// See [`Code::WrongPartnerRole`].
    #[error("{0}")]
    WrongPartnerRole(String),
    /// A value the domain refuses, found while building the request.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Rows of an uploaded CSV body that cannot be read, all of them (a `Code::InvalidRequest`).
    #[error("{} mistakes in the CSV body, each listed with its line in `errors`; nothing was recorded", .0.len())]
    InvalidRows(Vec<RowError>),
    /// A ledger rule the request breaks; the code is the rule's own.
    #[error("{0}")]
    Rule(RuleViolation),
    /// A rule broken by the member's wallet, told to a venue: the code of the rule, without the
    /// wallet's id or balance, which are the member's.
    #[error("the member's wallet cannot pay this amount")]
    MemberCannotPay(Code),
    /// See [`Code::ReversalWindowPassed`].
    #[error("{0}")]
    ReversalWindowPassed(String),
    /// See [`Code::PartnerSuspended`].
    #[error("partner {0} is suspended: its keys may read, not write, until it is reinstated")]
    PartnerSuspended(uuid::Uuid),
    /// See [`Code::InvalidSize`].
    #[error("{0}")]
    InvalidSize(String),
    /// See [`Code::SpendCodeInvalid`].
    #[error("no spend code matches; check the code with the member")]
    SpendCodeInvalid,
    /// See [`Code::SpendCodeExpired`].
    #[error("this spend code has expired; ask the member for a new one")]
    SpendCodeExpired,
    /// See [`Code::SpendCodeUsed`].
    #[error("this spend code was already used")]
    SpendCodeUsed,
    /// See [`Code::SpendCodeRevoked`].
    #[error(
        "this spend code was made before the member's credential was revoked or reissued; ask \
         the member for a new one"
    )]
    SpendCodeRevoked,
    /// See [`Code::SpendCodeAmountExceeded`].
    #[error("this spend code does not allow this amount; ask the member for a new code")]
    SpendCodeAmountExceeded,
    /// See [`Code::CardNotFound`].
    #[error("{0}")]
    CardNotFound(String),
    /// See [`Code::CardInvalid`].
    #[error("the card number or the PIN is not right; check both with the member")]
    CardInvalid,
    /// See [`Code::CardLocked`].
    #[error("this card is locked after too many wrong PINs; the member's registering partner can reset its PIN")]
    CardLocked,
    /// See [`Code::CardBlocked`].
    #[error("this card is blocked; the member's registering partner can issue a new one")]
    CardBlocked,
    /// See [`Code::TooManyAttempts`].
    #[error("too many refused redemptions; retry in {retry_after} seconds")]
    TooManyAttempts {
        /// Seconds until a redemption is taken again.
        retry_after: u64,
    },
    /// See [`Code::TooManySpendCodes`].
    #[error("a member may hold at most {limit} unused spend codes; use one, or retry in {retry_after} seconds when the oldest expires")]
    TooManySpendCodes {
        /// The most unused codes a member may hold.
        limit: usize,
        /// Seconds until the oldest expires.
        retry_after: u64,
    },
    /// See [`Code::RateLimited`].
    #[error("too many requests from this credential or address; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until the limit lets a request through.
        retry_after: u64,
    },
    /// See [`Code::RequestTimeout`].
    #[error("the request body was not received in time")]
    RequestTimeout,
    /// See [`Code::BodyNotAllowed`].
    #[error("this request takes no body; send it without one")]
    BodyNotAllowed,
    /// See [`Code::Unavailable`].
    #[error("{0}")]
    Unavailable(String),
    /// See [`Code::LedgerBusy`].
    #[error("too many requests are waiting for the ledger; retry in a second")]
    LedgerBusy,
    /// See [`Code::StorageFull`].
    #[error("{0}")]
    StorageFull(String),
    /// See [`Code::ShuttingDown`].
    #[error("the service is shutting down; retry shortly")]
    ShuttingDown,
    /// See [`Code::Internal`].
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code of this error; its status, title and meaning come with it.
    pub fn code(&self) -> Code {
        use ApiError::*;
        match self {
            MalformedJson(_) => Code::MalformedJson,
            UnsupportedMediaType(_) => Code::UnsupportedMediaType,
            PayloadTooLarge { .. } => Code::PayloadTooLarge,
            InvalidPath(_) => Code::InvalidPath,
            InvalidQuery(_) => Code::InvalidQuery,
            InvalidRequest(_) | Validation(_) | InvalidRows(_) => Code::InvalidRequest,
            NotFound(_) => Code::NotFound,
            MethodNotAllowed { .. } => Code::MethodNotAllowed,
            IdempotencyKeyMissing => Code::IdempotencyKeyMissing,
            IdempotencyKeyInvalid => Code::IdempotencyKeyInvalid,
            IdempotencyKeyReused(_) => Code::IdempotencyKeyReused,
            IdempotencyKeyInFlight(_) => Code::IdempotencyKeyInFlight,
            KeyRotationInProgress => Code::KeyRotationInProgress,
            KeyOverlapRunning { .. } => Code::KeyOverlapRunning,
            ExpiryPolicyOff => Code::ExpiryPolicyOff,
            RateLimited { .. } => Code::RateLimited,
            RequestTimeout => Code::RequestTimeout,
            BodyNotAllowed => Code::BodyNotAllowed,
            Unauthorized(_) => Code::Unauthorized,
            Forbidden(_) => Code::Forbidden,
            AccountNotFound(_) => Code::AccountNotFound,
            EntryNotFound(_) => Code::EntryNotFound,
            PartnerNotFound(_) => Code::PartnerNotFound,
            MemberNotFound(_) => Code::MemberNotFound,
            MemberErased(_) => Code::MemberErased,
            MemberNotLeft(_) => Code::MemberNotLeft,
            ApiKeyNotFound(_) => Code::ApiKeyNotFound,
            ApiKeyInUse(_) => Code::ApiKeyInUse,
            UsernameTaken(_) => Code::UsernameTaken,
            WrongPartnerRole(_) => Code::WrongPartnerRole,
            Rule(v) => rule_code(v),
            MemberCannotPay(code) => *code,
            ReversalWindowPassed(_) => Code::ReversalWindowPassed,
            PartnerSuspended(_) => Code::PartnerSuspended,
            InvalidSize(_) => Code::InvalidSize,
            SpendCodeInvalid => Code::SpendCodeInvalid,
            SpendCodeExpired => Code::SpendCodeExpired,
            SpendCodeUsed => Code::SpendCodeUsed,
            SpendCodeRevoked => Code::SpendCodeRevoked,
            SpendCodeAmountExceeded => Code::SpendCodeAmountExceeded,
            CardNotFound(_) => Code::CardNotFound,
            CardInvalid => Code::CardInvalid,
            CardLocked => Code::CardLocked,
            CardBlocked => Code::CardBlocked,
            TooManyAttempts { .. } => Code::TooManyAttempts,
            TooManySpendCodes { .. } => Code::TooManySpendCodes,
            Unavailable(_) => Code::Unavailable,
            LedgerBusy => Code::LedgerBusy,
            StorageFull(_) => Code::StorageFull,
            ShuttingDown => Code::ShuttingDown,
            Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status: its code's.
    pub fn status(&self) -> StatusCode {
        self.code().status()
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

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            kind: format!("{PROBLEM_BASE}{}", code.as_str()),
            title: code.title(),
            status: code.status().as_u16(),
            detail: self.to_string(),
            code: code.as_str().to_owned(),
            errors: match self {
                ApiError::InvalidRows(rows) => rows.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// The code of each ledger rule a request can break.
fn rule_code(v: &RuleViolation) -> Code {
    use RuleViolation::*;
    match v {
        UnknownAccount(_) => Code::UnknownAccount,
        AccountClosed(_) => Code::AccountClosed,
        AccountExists(_) => Code::AccountExists,
        WrongAccountKind { .. } => Code::WrongAccountKind,
        InsufficientCredits { .. } => Code::InsufficientCredits,
        AccountNotEmpty { .. } => Code::AccountNotEmpty,
        ProgrammeClosed | Genesis => Code::ProgrammeAccount,
        UnknownEntry(_) => Code::UnknownEntry,
        NotReversible(_) | ReversalMismatch(_) => Code::NotReversible,
        AlreadyReversed { .. } => Code::AlreadyReversed,
        EffectiveInFuture { .. } => Code::EffectiveDateInFuture,
        Overflow(_) => Code::AmountOverflow,
        // Only the service's expiry sweep makes an `expire`, from what the ledger says is due;
        // the rules refuse it only when the wallet was used since the sweep looked, a conflict
        // (the sweep skips the wallet, so no client sees it).
        ExpiryTooEarly { .. } | ExpiryNotWholeBalance { .. } => Code::ExpiryNotDue,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        // ERROR only for the service's own faults; a client's mistake is its business.
        if self.status().is_server_error() {
            tracing::error!(code = self.code().as_str(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code().as_str(), error = %self, "request refused");
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
        // The code, for the access log and the metrics (`crate::observe`), which see only the
        // response.
        response.extensions_mut().insert(self.code());
        response.json(self.problem())
    }
}

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

/// A profile field refused: the detail names the field (`contact: at most 200 characters`).
impl From<timecredits_domain::profile::ProfileError> for ApiError {
    fn from(e: timecredits_domain::profile::ProfileError) -> Self {
        ApiError::InvalidRequest(e.to_string())
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
    // A problem already, or a page's own error page (HTML, for a person, in their language).
    let answered = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v == HeaderValue::from_static(PROBLEM_JSON) || v.as_bytes().starts_with(b"text/html")
        });
    if answered {
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
    use std::collections::HashSet;

    #[test]
    fn every_code_has_a_unique_name_an_error_status_and_a_meaning() {
        let mut names = HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "{code:?} is listed once");
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{code:?}"
            );
            assert!(!code.meaning().is_empty(), "{code:?}");
            assert!(!code.title().is_empty(), "{code:?}");
        }
    }

    #[test]
    fn a_problem_names_its_code_in_type_and_title() {
        let p = ApiError::SpendCodeUsed.problem();
        assert_eq!(p.code, "spend_code_used");
        assert_eq!(p.kind, format!("{PROBLEM_BASE}spend_code_used"));
        assert_eq!(p.title, "Spend code used");
        assert_eq!(p.status, 422);
    }

    #[test]
    fn a_venue_learns_the_rule_but_not_the_members_wallet() {
        let member = timecredits_domain::AccountId::new();
        let refused = ApiError::Rule(RuleViolation::InsufficientCredits {
            account: member,
            balance: 30,
            needed: 60,
        })
        .for_venue(member);
        assert_eq!(refused.code(), Code::InsufficientCredits);
        assert!(!refused.to_string().contains("30"), "{refused}");
    }
}
