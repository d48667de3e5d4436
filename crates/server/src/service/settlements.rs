//! Settling a partner's account: a `retire` entry takes credits out of circulation, back to the
//! programme. A venue settles the credits it redeemed; an earn partner returns budget it will not
//! give out. Settling is also what empties an account before it can be closed.

use serde::{Deserialize, Serialize};
use timecredits_domain::{
    AccountId, Details, IdempotencyKey, Intent, Minutes, MovementKind, RuleViolation, ShortText,
    Transfer,
};
use timecredits_ledger::Committed;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{balance, moved_before, submit};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::Scope;
use crate::AppState;

/// Which of a partner's accounts is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// The venue account: the credits it redeemed (needs the `spend` scope).
    Venue,
    /// The budget: credits the earn partner will not give out (needs the `earn` scope).
    Budget,
}

impl Settled {
    /// The scope a partner's key needs to settle this account.
    fn scope(self) -> Scope {
        match self {
            Settled::Venue => Scope::Spend,
            Settled::Budget => Scope::Earn,
        }
    }
}

/// Retires `minutes` (everything the account holds when `None`) from partner `partner_id`'s
/// `which` account to the programme, if `caller` may (see [`Caller::may_act_for`]).
pub async fn settle(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    partner_id: Uuid,
    which: Settled,
    minutes: Option<Minutes>,
    reference: Option<ShortText>,
) -> Result<Committed, ApiError> {
    caller.may_act_for(partner_id, which.scope())?;
    let partner = state
        .registry
        .partner(partner_id)
        .ok_or_else(|| ApiError::PartnerNotFound(format!("partner {partner_id} does not exist")))?;
    let account = match which {
        Settled::Venue => partner.venue_account,
        Settled::Budget => partner.budget_account,
    }
    .map(AccountId)
    .ok_or_else(|| {
        ApiError::WrongPartnerRole(format!(
            "partner {partner_id} has no {} account",
            match which {
                Settled::Venue => "venue",
                Settled::Budget => "budget",
            }
        ))
    })?;
    let minutes = match minutes {
        Some(m) => m,
        None => everything(state, caller, idempotency_key, account)?,
    };
    let intent = Intent::Transfer(Transfer {
        kind: MovementKind::Retire,
        debit: account,
        credit: state.ledger.programme_account(),
        minutes,
        effective: None,
        details: Details {
            reference,
            ..Details::default()
        },
    });
    submit(state, caller, idempotency_key, vec![intent]).await
}

/// What "everything" in `account` means for this request: on a repeat, the amount the first
/// request retired; otherwise the balance now. An empty account has nothing to settle.
fn everything(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    account: AccountId,
) -> Result<Minutes, ApiError> {
    if let Some(Some(minutes)) = moved_before(state, caller, idempotency_key)? {
        return Ok(minutes);
    }
    let balance = balance(state, account)?;
    match u64::try_from(balance) {
        Ok(0) | Err(_) => Err(ApiError::Rule(RuleViolation::InsufficientCredits {
            account,
            balance,
            needed: 1,
        })),
        // One movement carries at most `Minutes::MAX`: more is settled in parts.
        Ok(held) => Minutes::new(held).map_err(|_| {
            ApiError::InvalidRequest(format!(
                "account {account} holds {held} minutes, more than one settlement moves ({}); \
                 settle it in parts, with `minutes`",
                Minutes::MAX
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Code;
    use crate::registry::Role;
    use crate::service::{partners, testing};
    use timecredits_domain::EntryBody;

    #[actix_web::test]
    async fn a_budget_is_returned_in_part_then_in_full_and_a_repeat_is_answered() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let name = ShortText::new("name", "Club").unwrap();
        let (partner, _) = partners::create(&state, &admin, &key("p"), name, vec![Role::Earn])
            .await
            .unwrap();
        let budget = AccountId(partner.budget_account.unwrap());
        let allocate = Intent::Transfer(Transfer {
            kind: MovementKind::Allocate,
            debit: state.ledger.programme_account(),
            credit: budget,
            minutes: Minutes::new(300).unwrap(),
            effective: None,
            details: Details::default(),
        });
        submit(&state, &admin, &key("a"), vec![allocate])
            .await
            .unwrap();
        let own = testing::partner(&partner, vec![Scope::Earn]);
        let settle_all = |k: &'static str, who: &Caller, which| {
            let state = &state;
            let who = who.clone();
            async move { settle(state, &who, &key(k), partner.id, which, None, None).await }
        };
        let part = settle(
            &state,
            &own,
            &key("s1"),
            partner.id,
            Settled::Budget,
            Some(Minutes::new(60).unwrap()),
            None,
        )
        .await
        .unwrap();
        assert_eq!(part.entries[0].body.accounts()[0], budget);
        let all = settle_all("s2", &own, Settled::Budget).await.unwrap();
        let EntryBody::Move(m) = &all.entries[0].body else {
            panic!("a retire is a movement")
        };
        assert_eq!(m.minutes.get(), 240);
        let again = settle_all("s2", &own, Settled::Budget).await.unwrap();
        assert!(again.replayed);
        let empty = settle_all("s3", &own, Settled::Budget).await.unwrap_err();
        assert_eq!(empty.code(), Code::InsufficientCredits);
        let no_venue = settle_all("s4", &admin, Settled::Venue).await.unwrap_err();
        assert_eq!(no_venue.code(), Code::WrongPartnerRole);
        let narrowed = testing::partner(&partner, vec![Scope::Spend]);
        let refused = settle_all("s5", &narrowed, Settled::Budget).await;
        assert!(matches!(refused, Err(ApiError::Forbidden(_))));
    }
}
