//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json` with interactive docs at `/docs/` (Swagger UI, vendored: no internet needed).
//! The committed copy is `openapi/openapi.json`; `timecredits openapi` prints it.

use actix_web::{web, App};
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api;
use crate::problem::Code;

/// The API description's frame: its info and tags. Its paths and schemas come from the route
/// list, [`api::routes`], and the modifiers complete it (see [`api_doc`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "timecredits",
        description = "The timecredits ledger API: issue, redeem, gift and reverse time credits, \
read balances and histories, and fetch the signed checkpoints that make the ledger verifiable.\n\n\
Amounts are integers in minutes (60 minutes = 1 time credit). Every POST needs an \
`Idempotency-Key` header: a repeat with the same key and body gets the original answer (marked \
`Idempotent-Replayed: true`), the same key with another body gets 422 `idempotency_key_reused`, \
and a repeat while the first is still in flight gets 409 `idempotency_key_in_flight`. Every \
error is an RFC 9457 `application/problem+json` body with a stable `code`.\n\n\
Limits (the defaults; each is configurable): a body is at most 64 KiB (2 MiB for \
`/v1/earn/batch` and `/v1/members/batch`, so that 1,000 items of maximal size fit, as JSON or \
as CSV) and must arrive \
within 10 s of the request head (else 408 `request_timeout`); the POSTs documented without a \
request body refuse one (413 `body_not_allowed`); each credential may make 100 requests per second (bursts of \
200) and each source address 200 (bursts of 400), beyond which any route but the health \
checks answers 429 `rate_limited` with a `Retry-After` header (seconds).",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "administration", description = "Partners, API keys, account closing (administrators)."),
        (name = "members", description = "Member registration, and reissue or revocation of a member's credential."),
        (name = "movements", description = "Allocate, earn, spend, gift and reverse credits."),
        (name = "accounts", description = "Balances, histories and entries."),
        (name = "ledger", description = "The signed, verifiable log: checkpoints, the verifier key, consistency proofs, exports."),
        (name = "reports", description = "Impact reports, re-derivable by auditors from a signed export."),
        (name = "operations", description = "Health checks."),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`tck_…`) of an administrator, auditor or partner.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "member",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A member credential (`tcm_…`), shown once at registration.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Appends the table of every problem code to the API description.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut table =
            String::from("\n\n## Problem codes\n\n| code | status | meaning |\n|---|---|---|\n");
        for code in Code::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.meaning()
            ));
        }
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str(&table);
    }
}

/// What the derived schemas of request bodies cannot state, and the handlers enforce: the rules
/// across fields (an amount, a party), and that no kind of API key holder takes other fields
/// (`deny_unknown_fields` on an enum gives its variants no `additionalProperties: false`).
struct BodyRules;

impl Modify for BodyRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schemas = &mut openapi
            .components
            .as_mut()
            .expect("the document has components")
            .schemas;
        let rules = [
            ("NewAllocation", vec![api::amount_rule()]),
            ("NewEarn", vec![api::amount_rule()]),
            ("NewGift", vec![api::amount_rule()]),
            (
                "NewRedemption",
                vec![
                    api::amount_rule(),
                    api::movements::party_rule(),
                    api::movements::consent_rule(),
                ],
            ),
        ];
        for (name, rules) in rules {
            let derived = schemas
                .remove(name)
                .unwrap_or_else(|| panic!("no schema {name}"));
            let joined = rules
                .into_iter()
                .fold(AllOfBuilder::new().item(derived), AllOfBuilder::item);
            schemas.insert(name.to_owned(), Schema::from(joined.build()).into());
        }
        let Some(RefOr::T(Schema::OneOf(holder))) = schemas.get_mut("KeyHolder") else {
            panic!("KeyHolder is a oneOf");
        };
        for variant in &mut holder.items {
            if let RefOr::T(Schema::Object(object)) = variant {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// The generated API description: the frame, the operations of every route registered by
/// [`api::routes`] with the schemas they use, and what the modifiers add.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(api::routes)
        .split_for_parts();
    let modifiers: [&dyn Modify; 3] = [&Security, &ErrorCodes, &BodyRules];
    for modifier in modifiers {
        modifier.modify(&mut doc);
    }
    doc
}

/// The document as pretty JSON with a final newline: the committed file's exact content.
pub fn document() -> String {
    let mut json = api_doc()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

/// Serves `/openapi.json` and the interactive docs at `/docs/` (`/docs` redirects there), with
/// Swagger UI's validator off.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/docs", "/docs/").permanent())
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                .url("/openapi.json", api_doc())
                // No validator badge: it makes the browser send the spec's URL to
                // validator.swagger.io ("none" is Swagger UI's switch; the CSP blocks it too).
                .config(utoipa_swagger_ui::Config::default().validator_url("none")),
        );
}
