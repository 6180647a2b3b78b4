"""/v1/alert-rules and /v1/alerts: an organization's alert rules, and what they raised
(admins only; members are answered 403).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from jobpulse.alerts.schemas import AlertPublic, AlertRuleCreate, AlertRulePublic
from jobpulse.alerts.service import AlertRules
from jobpulse.api.deps import Authenticated
from jobpulse.schemas import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 503)
}
router = APIRouter(prefix="/v1", tags=["alerts"], responses=ERROR_RESPONSES)


async def _alert_rules(request: Request) -> AlertRules:
    rules: AlertRules = request.app.state.alert_rules
    return rules


Rules = Annotated[AlertRules, Depends(_alert_rules)]


@router.post("/alert-rules", status_code=status.HTTP_201_CREATED, response_model=AlertRulePublic)
async def create_alert_rule(
    body: AlertRuleCreate, caller: Authenticated, rules: Rules
) -> AlertRulePublic:
    """A rule on a rolling window of the organization's jobs; it fires (`alert.firing`)
    while its metric is above `above`, and resolves (`alert.resolved`) once it is not.
    """
    rule = await rules.create(caller.actor, **body.model_dump())
    return AlertRulePublic.of(rule)


@router.get("/alert-rules", response_model=list[AlertRulePublic])
async def list_alert_rules(caller: Authenticated, rules: Rules) -> list[AlertRulePublic]:
    """The organization's rules, oldest first, each with its last value and whether it fires."""
    return [AlertRulePublic.of(rule) for rule in await rules.list_rules(caller.actor)]


@router.get("/alert-rules/{rule_id}", response_model=AlertRulePublic)
async def get_alert_rule(rule_id: str, caller: Authenticated, rules: Rules) -> AlertRulePublic:
    """One rule."""
    return AlertRulePublic.of(await rules.get(caller.actor, rule_id))


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_alert_rule(rule_id: str, caller: Authenticated, rules: Rules) -> Response:
    """Delete the rule; if it fires, its alert resolves (`alert.resolved`, reason
    `rule deleted`). Its past alerts stay listed.
    """
    await rules.delete(caller.actor, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/alerts", response_model=list[AlertPublic])
async def list_alerts(caller: Authenticated, rules: Rules) -> list[AlertPublic]:
    """The organization's firing alerts (newest first), then its recently resolved ones."""
    return [AlertPublic.of(alert) for alert in await rules.alerts(caller.actor)]
