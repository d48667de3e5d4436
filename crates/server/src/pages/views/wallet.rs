//! The member wallet: balance, history, spend codes and gifts.

use actix_web::{web, HttpResponse};
use askama::Template;
use timecredits_domain::{AccountId, Details, Intent, MovementKind, Transfer};
use timecredits_ledger::HistoryQuery;
use uuid::Uuid;

use crate::auth::{Caller, Operation};
use crate::pages::{render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::Role;
use crate::service;
use crate::AppState;

use super::{
    checked, entry_rows, form_key, format_minutes, not_allowed, signed_in, Chrome, EntryRow, Page,
    Refusal, Said,
};

#[derive(Template)]
#[template(path = "app/wallet.html")]
struct WalletPage {
    c: Chrome,
    member_id: Uuid,
    balance: String,
    history: Vec<EntryRow>,
    earn_at: Vec<String>,
    spend_at: Vec<String>,
    code_key: String,
    gift_key: String,
}

#[derive(Template)]
#[template(path = "app/spend_code.html")]
struct SpendCodePage {
    c: Chrome,
    code: String,
    qr: String,
    expires: String,
}

fn wallet_caller(v: &Visitor, state: &AppState) -> Result<(Caller, AccountId), Refusal> {
    let caller = signed_in(v, state)?;
    match &caller {
        Caller::Member(m) => {
            let account = AccountId(m.account);
            Ok((caller, account))
        }
        Caller::ApiKey { .. } => Err(not_allowed(v, &caller)),
    }
}

fn wallet_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    account: AccountId,
    said: Said,
) -> HttpResponse {
    let status = said.status();
    let query = HistoryQuery {
        before: None,
        limit: 50,
        kinds: vec![],
        from: None,
        to: None,
    };
    let balance =
        service::accounts::visible_account(state, caller, account.0).map_or(0, |a| a.balance);
    let history = service::accounts::history(state, caller, account.0, &query)
        .map(|h| entry_rows(&v.t, &h.entries, &h.partners, account))
        .unwrap_or_default();
    let partners = state.registry.partners();
    let named = |role: Role| -> Vec<String> {
        partners
            .iter()
            .filter(|p| p.roles.contains(&role) && p.suspended.is_none())
            .map(|p| p.name.clone())
            .collect()
    };
    render_with(
        status,
        &WalletPage {
            c: Chrome::new(v, Some(caller), "/app/wallet", "wallet-title").say(said),
            member_id: account.0,
            balance: format_minutes(balance.unsigned_abs()),
            history,
            earn_at: named(Role::Earn),
            spend_at: named(Role::Spend),
            code_key: form_key(),
            gift_key: form_key(),
        },
    )
}

/// `GET /app/wallet`.
pub async fn wallet(v: Visitor, state: web::Data<AppState>) -> Page {
    let (caller, account) = wallet_caller(&v, &state)?;
    Ok(wallet_page(&v, &state, &caller, account, Said::Nothing))
}

/// `POST /app/wallet/spend-code`: a one-time code, shown large.
pub async fn wallet_spend_code(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, account) = wallet_caller(&v, &state)?;
    let outcome = (|| {
        caller.permit(Operation::CreateSpendCode)?;
        let key = form.idempotency_key()?;
        let print = form.fingerprint("app/wallet/spend-code");
        service::spend_codes::issue(&state, &caller, &key, account, print, None)
    })();
    Ok(match outcome {
        Ok((issued, _)) => render(&SpendCodePage {
            c: Chrome::new(&v, Some(&caller), "/app/wallet", "wallet-your-code"),
            expires: v.t.with(
                "wallet-code-expires",
                "time",
                &issued.expires.format("%H:%M UTC"),
            ),
            qr: crate::qr::data_uri(&issued.code, 240),
            code: issued.code,
        }),
        Err(e) => wallet_page(&v, &state, &caller, account, Said::refused(&v.t, &e)),
    })
}

/// `POST /app/wallet/gift`: credits to another member.
pub async fn wallet_gift(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, account) = wallet_caller(&v, &state)?;
    let outcome = async {
        caller.permit(Operation::Gift)?;
        let to = form
            .get("to_member_id")
            .and_then(|m| m.parse::<Uuid>().ok())
            .ok_or_else(|| ApiError::InvalidRequest("to_member_id: not a member number".into()))?;
        let intent = Intent::Transfer(Transfer {
            kind: MovementKind::Gift,
            debit: account,
            credit: AccountId(to),
            minutes: form.amount()?,
            effective: None,
            details: Details {
                reference: form.text("reference")?,
                ..Details::default()
            },
        });
        let key = form.idempotency_key()?;
        service::submit(&state, &caller, &key, vec![intent]).await
    }
    .await;
    Ok(wallet_page(
        &v,
        &state,
        &caller,
        account,
        Said::of(&v.t, outcome, |_| v.t.get("wallet-gifted")),
    ))
}
