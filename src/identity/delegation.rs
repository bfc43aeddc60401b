//! Who is acting, worked out from verified claims: the mode, the principal (with the roles and groups its issuer
//! asserts), the delegation chain named by nested `act` claims and checked against the inventory and `may_act`,
//! the chain's scopes and clearance, and revocation.

use serde_json::Value;

use super::{
    Act, Agent, AuthError, Caller, Claims, Identity, Inventory, MayAct, Mode, Principal, Scope,
};
use crate::classification::Classification;

impl Identity {
    /// Works out who is acting from verified claims: mode, lineage, scope, clearance, revocation.
    pub(super) fn caller(&self, claims: &Claims, forwarded: bool) -> Result<Caller, AuthError> {
        let issuer = self
            .issuers
            .get(&claims.iss)
            .ok_or(AuthError::UnknownIssuer)?;
        // A development token never counts through a proxy.
        if forwarded && issuer.config.dev {
            return Err(AuthError::DevThroughProxy);
        }
        let token_scope = match &claims.scope {
            Some(s) => Some(Scope::from_claim(s).map_err(|_| AuthError::BadScope)?),
            None => None,
        };
        // One inventory for the whole request.
        let inventory = self.inventory.load();
        let inventory: &Inventory = &inventory;
        let act = match claims.other.get("act") {
            None => None,
            Some(value) => Some(Act::parse(value).map_err(AuthError::ActInvalid)?),
        };
        let may_act = match claims.other.get("may_act") {
            None => None,
            Some(value) => Some(MayAct::parse(value).map_err(AuthError::MayActInvalid)?),
        };
        let (mode, principal, chain) = match &act {
            Some(act) => {
                // The principal of a delegation must be a human, not an agent borrowing another's chain.
                if inventory.get(&claims.sub).is_some()
                    || inventory
                        .bound_agent(&claims.iss, &claims.sub, Some(&claims.sub))
                        .is_some()
                {
                    return Err(AuthError::PrincipalIsAgent(claims.sub.clone()));
                }
                let chain = self.lineage(inventory, act, &claims.iss)?;
                // The actor acting for the subject directly must be the one `may_act` names, when it names one.
                if let Some(may_act) = &may_act {
                    let first = Self::first_actor(act);
                    let issuer_ok = may_act.iss.as_deref().is_none_or(|i| i == claims.iss);
                    if first.sub != may_act.sub || !issuer_ok {
                        return Err(AuthError::MayActRefused(first.sub.clone()));
                    }
                }
                let principal = Principal {
                    issuer: claims.iss.clone(),
                    subject: claims.sub.clone(),
                    // Only from an issuer configured to assert them.
                    roles: issuer
                        .config
                        .roles_claim
                        .as_ref()
                        .map(|c| string_list(claims.other.get(c)))
                        .unwrap_or_default(),
                    groups: issuer
                        .config
                        .groups_claim
                        .as_ref()
                        .map(|c| string_list(claims.other.get(c)))
                        .unwrap_or_default(),
                };
                (Mode::PrincipalContext, Some(principal), chain)
            }
            None => {
                let agent = Self::agent_alone(inventory, claims)?;
                (Mode::AgentOnly, None, vec![agent.id.clone()])
            }
        };
        let agents: Vec<&Agent> = chain.iter().filter_map(|id| inventory.get(id)).collect();
        let scopes: Vec<Scope> = agents.iter().map(|a| a.scope.clone()).collect();
        let mut token_scope_patterns = None;
        if let Some(asked) = &token_scope {
            // The token may only narrow what every actor in its chain may do.
            if !scopes.iter().all(|s| s.covers(asked)) {
                return Err(AuthError::Escalation);
            }
            token_scope_patterns = Some(asked.patterns());
        }
        let clearance = agents
            .iter()
            .map(|a| a.spec.max_classification)
            .min()
            .unwrap_or(Classification::Public);
        let actor = chain.last().cloned().ok_or(AuthError::AgentMissing)?;
        let caller = Caller {
            mode,
            issuer: claims.iss.clone(),
            subject: claims.sub.clone(),
            principal,
            chain,
            actor,
            scopes,
            token_scopes: token_scope,
            token_scope: token_scope_patterns,
            clearance,
            authenticated_us: 0,
            token_id: claims.jti.clone(),
            issued_at: claims.iat,
            expires_at: claims.exp,
        };
        // Revocation is checked on every request, after the signature: a revoked credential never passes.
        self.revocations.check(&caller)?;
        Ok(caller)
    }

    /// The chain named by nested `act` claims, oldest first, checked against the inventory.
    fn lineage(
        &self,
        inventory: &Inventory,
        act: &Act,
        issuer: &str,
    ) -> Result<Vec<String>, AuthError> {
        let mut newest_first = Vec::new();
        let mut current = Some(act);
        while let Some(a) = current {
            if newest_first.len() >= self.max_chain_depth {
                return Err(AuthError::ChainTooDeep(self.max_chain_depth));
            }
            if a.iss.as_deref().is_some_and(|i| i != issuer) {
                return Err(AuthError::BindingMismatch(a.sub.clone()));
            }
            newest_first.push(a.sub.clone());
            current = a.act.as_deref();
        }
        let chain: Vec<String> = newest_first.into_iter().rev().collect();
        for (i, id) in chain.iter().enumerate() {
            if inventory.get(id).is_none() {
                return Err(AuthError::AgentUnregistered(id.clone()));
            }
            if chain[..i].contains(id) {
                return Err(AuthError::ChainCycle(id.clone()));
            }
        }
        let first = chain
            .first()
            .and_then(|id| inventory.get(id))
            .ok_or(AuthError::AgentMissing)?;
        if !first.spec.acts_for_humans {
            return Err(AuthError::NotForHumans(first.id.clone()));
        }
        for pair in chain.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            let allowed = inventory
                .get(from)
                .is_some_and(|a| a.spec.delegates_to.iter().any(|d| d == to));
            if !allowed {
                return Err(AuthError::DelegationNotAllowed {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
        Ok(chain)
    }

    /// The innermost `act`: the actor acting for the subject directly.
    fn first_actor(act: &Act) -> &Act {
        let mut first = act;
        while let Some(inner) = first.act.as_deref() {
            first = inner;
        }
        first
    }

    /// The registered agent an agent-only token asserts.
    fn agent_alone<'a>(inventory: &'a Inventory, claims: &Claims) -> Result<&'a Agent, AuthError> {
        if let Some(agent) =
            inventory.bound_agent(&claims.iss, &claims.sub, claims.client_id.as_deref())
        {
            return Ok(agent);
        }
        match inventory.get(&claims.sub) {
            Some(agent) if agent.spec.acts_alone.is_empty() => {
                Err(AuthError::ActAloneForbidden(agent.id.clone()))
            }
            Some(agent) => Err(AuthError::BindingMismatch(agent.id.clone())),
            None => Err(AuthError::AgentMissing),
        }
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}
