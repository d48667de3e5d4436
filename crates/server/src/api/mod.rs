//! The HTTP API under `/v1`: routes, and the types shared by the handlers.

pub mod accounts;
pub mod admin;
pub mod cards;
pub mod expiries;
mod fields;
pub mod health;
pub mod log;
pub mod members;
pub mod movements;
pub mod privacy;
pub mod reports;
mod resource;
pub mod responses;
pub mod sheets;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::NaiveDate;
use serde::Serialize;
use timecredits_domain::{Entry, EntryBody, Minutes};
use timecredits_ledger::{Committed, SignedCheckpoint};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::ToSchema;

pub use fields::{HoursField, MinutesField, TextField};

use crate::problem;
use resource::Resource;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::problem::ApiError;

/// The header set on an answer that repeats an earlier one for the same `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Every route, each registered with its OpenAPI operation: the API description's paths are
/// collected from this list (see [`crate::openapi::api_doc`]). Each path is one `Resource`.
pub fn routes(cfg: &mut ServiceConfig) {
    // Resources are tried in this order, and each `{id}` pattern is a regex run: the two
    // hottest routes (balance reads and earn) come first so they skip the others' matching.
    cfg.service(Resource::of(
        accounts::get_account,
        accounts::__path_get_account,
    ))
    .service(Resource::of(movements::earn, movements::__path_earn))
    .service(Resource::of(health::healthz, health::__path_healthz))
    .service(Resource::of(health::readyz, health::__path_readyz))
    .service(
        Resource::of(admin::list_partners, admin::__path_list_partners)
            .and(admin::create_partner, admin::__path_create_partner),
    )
    .service(Resource::of(admin::get_partner, admin::__path_get_partner))
    .service(Resource::of(
        members::list_members,
        members::__path_list_members,
    ))
    .service(Resource::of(admin::statement, admin::__path_statement))
    .service(
        Resource::of(admin::list_api_keys, admin::__path_list_api_keys)
            .and(admin::create_api_key, admin::__path_create_api_key),
    )
    .service(
        Resource::of(admin::list_staff_logins, admin::__path_list_staff_logins)
            .and(admin::create_staff_login, admin::__path_create_staff_login),
    )
    .service(Resource::of(admin::revoke_api_key, admin::__path_revoke_api_key).no_body())
    .service(Resource::of(admin::suspend_partner, admin::__path_suspend_partner).no_body())
    .service(Resource::of(admin::reinstate_partner, admin::__path_reinstate_partner).no_body())
    .service(Resource::of(expiries::upcoming, expiries::__path_upcoming))
    .service(Resource::of(expiries::sweep, expiries::__path_sweep).no_body())
    .service(Resource::of(
        movements::allocate,
        movements::__path_allocate,
    ))
    .service(Resource::of(admin::close_account, admin::__path_close_account).no_body())
    .service(Resource::of(admin::register_member, admin::__path_register_member).no_body())
    .service(
        Resource::of(members::register_members, members::__path_register_members)
            .app_data(web::PayloadConfig::new(crate::MAX_BATCH_BODY_BYTES)),
    )
    .service(
        Resource::of(
            members::reissue_credential,
            members::__path_reissue_credential,
        )
        .no_body(),
    )
    .service(
        Resource::of(
            members::revoke_credential,
            members::__path_revoke_credential,
        )
        .no_body(),
    )
    .service(Resource::of(members::leave, members::__path_leave))
    .service(
        Resource::of(cards::issue_card, cards::__path_issue_card)
            .and(cards::print_card, cards::__path_print_card),
    )
    .service(Resource::of(cards::block_card, cards::__path_block_card).no_body())
    .service(Resource::of(cards::reset_pin, cards::__path_reset_pin))
    .service(
        Resource::of(privacy::get_profile, privacy::__path_get_profile)
            .and(privacy::put_profile, privacy::__path_put_profile),
    )
    .service(Resource::of(privacy::erase, privacy::__path_erase).no_body())
    .service(Resource::of(privacy::data, privacy::__path_data))
    .service(Resource::of(admin::rotate_key, admin::__path_rotate_key).no_body())
    .service(Resource::of(accounts::me, accounts::__path_me))
    .service(Resource::of(reports::impact, reports::__path_impact))
    .service(Resource::of(reports::age_bands, reports::__path_age_bands))
    .service(Resource::of(accounts::history, accounts::__path_history))
    .service(
        Resource::of(movements::earn_batch, movements::__path_earn_batch)
            .app_data(
                web::JsonConfig::default()
                    .limit(crate::MAX_BATCH_BODY_BYTES)
                    .error_handler(problem::json_error),
            )
            // A CSV sheet is read as bytes.
            .app_data(web::PayloadConfig::new(crate::MAX_BATCH_BODY_BYTES)),
    )
    .service(Resource::of(
        movements::create_spend_code,
        movements::__path_create_spend_code,
    ))
    .service(Resource::of(movements::redeem, movements::__path_redeem))
    .service(Resource::of(movements::gift, movements::__path_gift))
    .service(Resource::of(
        accounts::get_entry,
        accounts::__path_get_entry,
    ))
    .service(Resource::of(movements::reverse, movements::__path_reverse))
    .service(Resource::of(movements::settle, movements::__path_settle))
    .service(Resource::of(accounts::receipt, accounts::__path_receipt))
    .service(Resource::of(log::checkpoint, log::__path_checkpoint))
    .service(Resource::of(log::key, log::__path_key))
    .service(Resource::of(log::consistency, log::__path_consistency))
    .service(Resource::of(log::export, log::__path_export));
}

/// A committed entry, with exactly the fields (and names) of its canonical encoding.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "seq": 42, "id": "0192f0c1-8a40-7d21-b7c3-5a1f0e9d3c77", "kind": "earn",
    "recorded": "2026-11-23T10:15:00.123456Z", "actor": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e10",
    "key": "earn-2026-11-23-0001", "part": 0,
    "debit": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e11", "credit": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12",
    "minutes": 120, "effective": "2026-11-22", "activity": "lunch club", "reference": "R-1042"
}))]
pub struct EntryView {
    /// Sequence number: the entry's index in the log and its Merkle leaf index.
    pub seq: u64,
    /// The entry's id.
    pub id: Uuid,
    /// open, close, allocate, earn, spend, gift, reverse, retire or key.
    pub kind: String,
    /// Server time of recording (UTC, microseconds).
    pub recorded: String,
    /// The administrator, partner or member that caused it.
    pub actor: Uuid,
    /// The idempotency key of the request that made it.
    pub key: String,
    /// Its index within that request.
    pub part: u32,
    /// For open and close: the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// For open: programme, budget, venue or member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_kind: Option<String>,
    /// For open of a budget or venue: the partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    /// For key (a signing key rotation): the new C2SP verifier key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vkey: Option<String>,
    /// For key: the previous key's signature endorsing the new one (base64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
    /// For movements: the account credits leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debit: Option<Uuid>,
    /// For movements: the account credits go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<Uuid>,
    /// For movements: the amount in minutes (60 minutes = 1 credit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u64>,
    /// For movements: the date the time was given or the activity took place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<NaiveDate>,
    /// For reversals: the sequence number of the entry reversed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<u64>,
    /// For earns and spends: what the time was given for or spent on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// The actor's own reference (a timesheet line, a booking number, a reason for a reversal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// For spends: adults in the party.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adults: Option<u32>,
    /// For spends: children in the party.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<u32>,
    /// For expiries: the expiry period the scheme applied, in months (the wallet was unused for
    /// at least that long).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_months: Option<u32>,
}

impl From<&Entry> for EntryView {
    fn from(e: &Entry) -> Self {
        let mut view = EntryView {
            seq: e.seq,
            id: e.id,
            kind: e.body.kind().as_str().to_owned(),
            recorded: timecredits_domain::entry::format_time(&e.recorded),
            actor: e.actor,
            key: e.key.as_str().to_owned(),
            part: e.part,
            account: None,
            account_kind: None,
            owner: None,
            vkey: None,
            endorsement: None,
            debit: None,
            credit: None,
            minutes: None,
            effective: None,
            reverses: None,
            activity: None,
            reference: None,
            adults: None,
            children: None,
            expiry_months: None,
        };
        match &e.body {
            EntryBody::Open {
                account,
                account_kind,
                owner,
            } => {
                view.account = Some(account.0);
                view.account_kind = Some(account_kind.as_str().to_owned());
                view.owner = *owner;
            }
            EntryBody::Close { account } => view.account = Some(account.0),
            EntryBody::Key(rotation) => {
                view.vkey = Some(rotation.vkey().to_owned());
                view.endorsement = Some(BASE64.encode(rotation.endorsement()));
            }
            EntryBody::Move(m) => {
                view.debit = Some(m.debit.0);
                view.credit = Some(m.credit.0);
                view.minutes = Some(m.minutes.get());
                view.effective = Some(m.effective);
                view.reverses = m.reverses;
                view.activity = m.details.activity.as_ref().map(|t| t.as_str().to_owned());
                view.reference = m.details.reference.as_ref().map(|t| t.as_str().to_owned());
                view.adults = m.details.adults;
                view.children = m.details.children;
                view.expiry_months = m.details.expiry_months;
            }
        }
        view
    }
}

/// A signed checkpoint: the ledger's signed statement of its size and Merkle root.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "origin": "localhost/timecredits", "size": 43,
    "root": "q1GIqbF5sP0CUoUGV0Ulh7n4YMBL0Ifn0bqhU5UM6oE=",
    "note": "localhost/timecredits\n43\nq1GIqbF5sP0CUoUGV0Ulh7n4YMBL0Ifn0bqhU5UM6oE=\n\n— localhost/timecredits Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
}))]
pub struct CheckpointView {
    /// The log's origin line.
    pub origin: String,
    /// The number of entries the tree holds.
    pub size: u64,
    /// The RFC 6962 root hash, base64.
    pub root: String,
    /// The C2SP signed note: verify it with the ledger's verifier key.
    pub note: String,
}

impl From<&SignedCheckpoint> for CheckpointView {
    fn from(c: &SignedCheckpoint) -> Self {
        CheckpointView {
            origin: c.checkpoint.origin.clone(),
            size: c.checkpoint.size,
            root: BASE64.encode(c.checkpoint.root),
            note: c.note.clone(),
        }
    }
}

/// The answer to a write that committed one entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// The entry committed.
    pub entry: EntryView,
    /// A signed checkpoint whose tree includes the entry.
    pub checkpoint: CheckpointView,
}

/// The answer to a write that committed several entries atomically.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedMany {
    /// The entries committed, in order.
    pub entries: Vec<EntryView>,
    /// A signed checkpoint whose tree includes every entry.
    pub checkpoint: CheckpointView,
}

/// An amount given as minutes, or as hours and minutes (minutes then below 60).
pub fn amount(
    hours: Option<HoursField>,
    minutes: Option<MinutesField>,
) -> Result<Minutes, ApiError> {
    Ok(
        match (hours.map(HoursField::get), minutes.map(MinutesField::get)) {
            (None, None) => {
                return Err(ApiError::InvalidRequest(
                    "give the amount as `minutes`, or as `hours` and optionally `minutes`".into(),
                ))
            }
            (None, Some(m)) => Minutes::new(m)?,
            (Some(h), m) => Minutes::from_hours_and_minutes(h, m.unwrap_or(0))?,
        },
    )
}

/// The rule [`amount`] applies, as JSON Schema for the request bodies with `hours` and `minutes`
/// (joined to their derived schemas in [`crate::openapi`]): `minutes` alone, 1 to
/// [`Minutes::MAX`]; or whole `hours` with `minutes` below 60 (or left out), adding up to 1 to
/// [`Minutes::MAX`] minutes.
pub fn amount_rule() -> Schema {
    let max_hours = Minutes::MAX / 60;
    let integer = |min: u64, max: u64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    let or_null =
        |o: ObjectBuilder| o.schema_type(SchemaType::from_iter([Type::Integer, Type::Null]));
    let case = |hours: ObjectBuilder, minutes: ObjectBuilder, required: &[&str]| {
        let case = ObjectBuilder::new()
            .property("hours", hours)
            .property("minutes", minutes);
        required
            .iter()
            .fold(case, |case, field| case.required(*field))
    };
    AnyOfBuilder::new()
        .item(case(
            ObjectBuilder::new().schema_type(Type::Null),
            integer(1, Minutes::MAX),
            &["minutes"],
        ))
        .item(case(integer(0, 0), integer(1, 59), &["hours", "minutes"]))
        .item(case(
            integer(1, max_hours - 1),
            or_null(integer(0, 59)),
            &["hours"],
        ))
        .item(case(
            integer(max_hours, max_hours),
            or_null(integer(0, 0)),
            &["hours"],
        ))
        .description(Some(
            "The amount: `minutes` alone, or whole `hours` with `minutes` below 60, adding up to \
             1 minute to a million hours.",
        ))
        .build()
        .into()
}

/// Deserializers for the integer fields of request bodies. JSON has one kind of number and JSON
/// Schema counts `120.0` as the integer 120, so these fields take a number with a zero fraction
/// as that integer; a fraction, a negative number or one out of range is still malformed.
pub mod whole {
    use serde::de::{Deserializer, Error, Unexpected};
    use serde::Deserialize;

    /// A whole number that fits a `T`.
    struct Whole<T>(T);

    impl<'de, T: TryFrom<u64>> Deserialize<'de> for Whole<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = serde_json::Number::deserialize(d)?;
            n.as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                        .map(|f| f as u64)
                })
                .and_then(|v| T::try_from(v).ok())
                .map(Whole)
                .ok_or_else(|| {
                    D::Error::invalid_value(
                        Unexpected::Other(&n.to_string()),
                        &"a whole number in range",
                    )
                })
        }
    }

    /// For a `u32` field: `#[serde(deserialize_with = "whole::u32")]`.
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        Whole::deserialize(d).map(|w| w.0)
    }

    /// For a `u64` field.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Whole::deserialize(d).map(|w| w.0)
    }

    /// For an optional `u64` field (with `#[serde(default)]`, so it may be left out).
    pub fn option_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<Whole<u64>>::deserialize(d).map(|o| o.map(|w| w.0))
    }
}

/// A 201 (or, for a repeat, the same 201 marked as replayed) with a JSON body.
pub fn created(replayed: bool, body: &impl Serialize) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::CREATED);
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    response.json(body)
}

/// The entry of a committed single-entry write.
pub fn only_entry(committed: &Committed) -> Result<&Entry, ApiError> {
    committed
        .entries
        .first()
        .ok_or_else(|| ApiError::Internal("the ledger committed no entry".into()))
}

/// The 201 answer for a committed single-entry write.
pub fn recorded(committed: Committed) -> Result<HttpResponse, ApiError> {
    let entry = only_entry(&committed)?;
    Ok(created(
        committed.replayed,
        &Recorded {
            entry: entry.into(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}
