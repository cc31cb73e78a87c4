"""Topic names, fixed by the wire contract."""

IP_REQUESTED = "ip.requested"
IP_PROVISIONED = "ip.provisioned"
SEND_RECORDED = "send.recorded"
DOMAIN_HEALTH_CHECKED = "domain.health_checked"
IP_COMMANDS = "ip.commands"

IP_REQUEST_REJECTED = "ip.request_rejected"
IP_STATE_CHANGED = "ip.state_changed"
POOL_STATE_CHANGED = "pool.state_changed"
DOMAIN_POOL_CHANGED = "domain.pool_changed"
IP_COMMAND_RESULTS = "ip.command_results"

CONSUMED = (IP_REQUESTED, IP_PROVISIONED, SEND_RECORDED, DOMAIN_HEALTH_CHECKED, IP_COMMANDS)
PRODUCED = (
    IP_PROVISIONED,
    IP_REQUEST_REJECTED,
    IP_STATE_CHANGED,
    POOL_STATE_CHANGED,
    DOMAIN_POOL_CHANGED,
    IP_COMMAND_RESULTS,
)


def dead_letter(topic: str) -> str:
    """The dead-letter topic of an input topic."""
    return f"{topic}.dlq"


ALL = tuple(dict.fromkeys((*CONSUMED, *PRODUCED, *(dead_letter(t) for t in CONSUMED))))
