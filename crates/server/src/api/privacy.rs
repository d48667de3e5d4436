//! Members' privacy: their profile, the erasure of their personal data, and the export of
//! everything held about them (docs/privacy.md).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use timecredits_domain::profile::{Consent, Profile};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::AccountView;
use super::responses::{BodilessWriteProblems, JsonWriteProblems};
use super::{EntryView, REPLAYED_HEADER};
use crate::auth::{Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::{CredentialStatus, Erasure};
use crate::service;
use crate::AppState;

/// What the member agreed to; each is no unless given.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentView {
    /// The registering partner may contact them about activities.
    #[serde(default)]
    pub contact_about_activities: bool,
    /// Their age band may be counted in the age-band report (anonymous statistics).
    #[serde(default)]
    pub anonymous_statistics: bool,
}

/// A member's profile: every field optional. A write replaces the whole profile.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "display_name": "Ada", "contact": "ada@example.org", "age_band": "65_plus",
    "postcode_district": "N1",
    "consent": {"contact_about_activities": true, "anonymous_statistics": true}
}))]
pub struct ProfileBody {
    /// How the member likes to be called: 1 to 100 characters, no invisible formatting
    /// characters (stored in NFC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// An email address or a phone number, as free text: 1 to 200 characters, as
    /// `display_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub contact: Option<String>,
    /// under_16, 16_24, 25_49, 50_64, 65_plus or undisclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(under_16|16_24|25_49|50_64|65_plus|undisclosed)$")]
    pub age_band: Option<String>,
    /// The outward part of a UK postcode (`SW1A`, `M1`; stored upper-case) or a place name of
    /// letters, spaces, hyphens, apostrophes and full stops, at most 40 characters. Never a
    /// full postcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 40)]
    pub postcode_district: Option<String>,
    /// What the member agreed to.
    #[serde(default)]
    pub consent: ConsentView,
}

impl ProfileBody {
    fn to_profile(&self) -> Result<Profile, ApiError> {
        let consent = Consent {
            contact_about_activities: self.consent.contact_about_activities,
            anonymous_statistics: self.consent.anonymous_statistics,
        };
        Ok(Profile::from_input(
            self.display_name.as_deref(),
            self.contact.as_deref(),
            self.age_band.as_deref(),
            self.postcode_district.as_deref(),
            consent,
        )?)
    }
}

impl From<&Profile> for ProfileBody {
    fn from(p: &Profile) -> Self {
        ProfileBody {
            display_name: p.display_name.as_ref().map(|t| t.as_str().to_owned()),
            contact: p.contact.as_ref().map(|t| t.as_str().to_owned()),
            age_band: p.age_band.map(|b| b.as_str().to_owned()),
            postcode_district: p.postcode_district.as_ref().map(|d| d.as_str().to_owned()),
            consent: ConsentView {
                contact_about_activities: p.consent.contact_about_activities,
                anonymous_statistics: p.consent.anonymous_statistics,
            },
        }
    }
}

/// A member's profile, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// The member's id.
    pub member_id: Uuid,
    /// The profile (`null`: none was written).
    pub profile: Option<ProfileBody>,
}

/// The problems of the member data operations, besides the credential's.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
enum MemberDataProblems {
    /// `invalid_path`
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No member whose data this credential may read (`member_not_found`): the same answer
    /// whether the member exists or not
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The member's personal data was erased (`member_erased`)
    #[response(status = 410, content_type = "application/problem+json")]
    Gone(Problem),
}

/// A member's profile
///
/// The member's optional profile (display name, contact, age band, postcode district, consent
/// flags), kept outside the ledger. Administrators, the partner that registered the member and
/// the member themself may read it; anyone else is told there is no member they may read.
#[utoipa::path(get, path = "/v1/members/{id}/profile", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id")),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        MemberDataProblems,
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn get_profile(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let profile = service::privacy::profile(&state, &caller, id)?;
    Ok(HttpResponse::Ok().json(ProfileView {
        member_id: id,
        profile: profile.as_ref().map(ProfileBody::from),
    }))
}

/// Write a member's profile
///
/// Replaces the member's whole profile (a field left out is cleared). Administrators and the
/// earn partner that registered the member; another partner is told there is no member it may
/// read. A field the rules refuse is named in the problem's detail (`postcode_district: …`).
/// Idempotent: a repeat with the same `Idempotency-Key` answers with the stored profile.
#[utoipa::path(put, path = "/v1/members/{id}/profile", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    request_body = ProfileBody,
    responses(
        (status = 200, description = "The stored profile", body = ProfileView),
        (status = 400, description = "A field refused (`invalid_request`, naming it), `malformed_json`, `invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or earn partner (`forbidden`, `partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No member whose data this credential may read (`member_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The member's personal data was erased (`member_erased`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn put_profile(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::WriteProfile)?;
    let id = id.into_inner();
    let profile = body.to_profile()?;
    let print = fingerprint("put_profile", &(id, &*body));
    let (stored, replayed) =
        service::privacy::put_profile(&state, &caller, &idempotency_key.0, print, id, profile)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    Ok(response.json(ProfileView {
        member_id: id,
        profile: Some(ProfileBody::from(&stored)),
    }))
}

/// Erase a member's personal data
///
/// On the member's request, after they left (`POST /v1/members/{id}/leave`): their profile is
/// removed (the store is rewritten without it), their credential revoked, the registering
/// partner's reference for them cleared, and the erasure recorded (who, when, which account;
/// nothing personal). Their pseudonymous entries stay in the signed ledger. Administrators and
/// the earn partner that registered the member. A repeat, with any key, answers with the same
/// record.
#[utoipa::path(post, path = "/v1/members/{id}/erasure", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The erasure's record", body = Erasure),
        (status = 400, description = "`invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or earn partner (`forbidden`, `partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No member whose data this credential may read (`member_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member has not left: their wallet is open (`member_not_left`), or `idempotency_key_in_flight`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn erase(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::EraseMember)?;
    let id = id.into_inner();
    let print = fingerprint("erase_member", &id);
    let (erasure, replayed) =
        service::privacy::erase(&state, &caller, &idempotency_key.0, print, id)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((REPLAYED_HEADER, "true"));
    }
    Ok(response.json(erasure))
}

/// Everything held about a member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDataView {
    /// The member's id (their wallet account).
    pub member_id: Uuid,
    /// When they were registered.
    pub registered: chrono::DateTime<chrono::Utc>,
    /// The partner that registered them (`null`: an administrator did).
    pub registered_by: Option<RegistrarView>,
    /// The registering partner's own reference for them.
    pub reference: Option<String>,
    /// Their credential's public record (never the credential).
    pub credential: CredentialStatus,
    /// Their profile (`null`: none was written).
    pub profile: Option<ProfileBody>,
    /// Their wallet.
    pub wallet: AccountView,
    /// Every entry of their wallet's history, newest first (at most 100,000).
    pub entries: Vec<EntryView>,
}

/// The partner that registered a member.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrarView {
    /// The partner's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// A member's data export
///
/// Everything the service holds about a member, as JSON: their registration (the registering
/// partner and its reference for them), their credential's record, their profile, their wallet
/// and its whole history. For the member themself, the partner that registered them and
/// administrators; anyone else is told there is no member they may read.
#[utoipa::path(get, path = "/v1/members/{id}/data", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id")),
    responses(
        (status = 200, description = "Everything held about the member", body = MemberDataView),
        MemberDataProblems,
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn data(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let state = state.into_inner();
    let data = web::block(move || service::privacy::data(&state, &caller, id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"member-{id}.json\""),
        ))
        .json(MemberDataView {
            member_id: id,
            registered: data.member.registered,
            registered_by: data.registered_by.map(|p| RegistrarView {
                id: p.id,
                name: p.name,
            }),
            reference: data.member.reference,
            credential: data.credential,
            profile: data.profile.as_ref().map(ProfileBody::from),
            wallet: AccountView::from(&data.wallet),
            entries: data.entries.iter().map(EntryView::from).collect(),
        }))
}
